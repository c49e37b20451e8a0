"""Load the book's models by name: one loader per kind (causal LM, sentence encoder), a causal LM
cut to its first layers (``truncated``), and the bundled models' status for ``mlbook doctor``.

Heavy imports (torch, transformers) happen inside functions: importing this module is cheap.
"""
from __future__ import annotations

import json
from pathlib import Path

from mlbook.core.cache import cache_dir, cached_folder, key_of
from mlbook.core.context import pick_device

from . import registry
from .hub import from_hf_cache
from .registry import BUNDLED, install_hint
from .resolve import cache_name, resolve


def _torch_dtype(dtype):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype != "auto":
        return getattr(torch, dtype)
    return dtype


def truncated(name: str, n_layers: int) -> Path:
    """A causal LM cut to its first ``n_layers`` decoder layers — embeddings, final norm and LM head kept —
    saved once in the mlbook cache (keyed by the source checkpoint and ``n_layers``) so that ``from_pretrained``
    loads it. A real checkpoint's own weights at a fraction of the cost: chapters' ``smoke`` profiles use it to
    run every code path of a chapter built on a larger model."""
    import hashlib

    path = resolve(name, "causal_lm")
    cfg = json.loads((path / "config.json").read_text())
    total = cfg.get("num_hidden_layers")
    if not isinstance(n_layers, int) or not 1 <= n_layers <= (total or n_layers):
        raise ValueError(f"n_layers must be an int in 1 … {total} for {name} (got {n_layers!r})")
    ident = hashlib.sha256()
    for f in sorted(path.iterdir()):  # what the weights are: names, sizes and modification times of the files
        if f.is_file():
            ident.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns};".encode())
    key = key_of("truncated", str(path), ident.hexdigest(), n_layers)

    def build(folder: Path):
        model, tok = load_causal_lm(str(path))
        model.model.layers = model.model.layers[:n_layers]
        model.config.num_hidden_layers = n_layers
        if isinstance(getattr(model.config, "layer_types", None), list):
            model.config.layer_types = model.config.layer_types[:n_layers]
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        return {"source": str(path), "n_layers": n_layers, "of": total}

    return cached_folder(f"models/truncated-{path.name}-{n_layers}-{key}", build)


def load_causal_lm(name: str = "HuggingFaceTB/SmolLM2-135M-Instruct", device: str = "cpu", dtype=None):
    """``(model, tokenizer)`` of a causal LM, ``model.eval()`` on ``device``.

    ``name``: hub id, alias (``"smollm2"``, ``"gemma3-270m"``) or local folder.
    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``.  ``dtype``: None → float32, or a
    torch dtype / its name / ``"auto"`` (the checkpoint's own).  A tokenizer without a
    pad token gets its eos token as pad, so batches can be padded.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(name, "causal_lm")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_torch_dtype(dtype), local_files_only=True)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return model.to(pick_device(device)).eval(), tok


def _has_pooler(folder: Path) -> bool:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return True  # .bin checkpoints: let transformers decide
    for f in files:
        with safe_open(f, "pt") as st:
            if any(k.endswith("pooler.dense.weight") for k in st.keys()):
                return True
    return False


def load_encoder(name: str = "intfloat/multilingual-e5-small", device: str = "cpu", dtype=None):
    """``(model, tokenizer)`` of a transformers encoder (``AutoModel``), ``model.eval()`` on ``device``.

    Use :func:`embed` for sentence embeddings.  A BERT checkpoint saved without its
    pooler (our e5 conversion: e5 mean-pools) loads without one rather than with a
    random one.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = resolve(name, "encoder")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    kwargs = {}
    if AutoConfig.from_pretrained(path, local_files_only=True).model_type == "bert" and not _has_pooler(path):
        kwargs["add_pooling_layer"] = False
    model = AutoModel.from_pretrained(path, dtype=_torch_dtype(dtype), local_files_only=True, **kwargs)
    return model.to(pick_device(device)).eval(), tok


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def status() -> list[dict]:
    """One row per bundled model, for ``mlbook doctor``: what is installed, converted, missing.

    Cheap: nothing is loaded or hashed (a load re-verifies the cache manifest anyway).
    """
    rows = []
    for hub_id, info in BUNDLED.items():
        versions = {d: registry.package_version(d) for d in info["packages"]}
        missing = [d for d, v in versions.items() if v is None]
        folder = None if missing else cache_dir() / cache_name(hub_id)
        converted = folder is not None and (folder / "MANIFEST.json").exists()
        hf = from_hf_cache(hub_id)
        loader = "load_causal_lm" if info["kind"] == "causal_lm" else "load_encoder"
        if missing:
            fix = install_hint(missing)
        elif not converted and hf is None:
            fix = f"python -c \"import mlbook.models as m; m.{loader}('{info['aliases'][0]}')\"  # converts once"
        else:
            fix = ""
        rows.append({
            "hub_id": hub_id,
            "kind": info["kind"],
            "aliases": list(info["aliases"]),
            "packages": versions,
            "installed": not missing,
            "licence": info["licence"],
            "converted": converted,
            "path": str(folder) if converted else None,
            "size_mb": round(_folder_size(folder) / 2**20, 1) if converted else None,
            "hf_cache": str(hf) if hf else None,
            "fix": fix,
        })
    return rows
