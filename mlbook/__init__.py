"""mlbook — the helper library of the Shammie book, in layers:

    core/       the platform: catalogue, run context (profiles, seeding, device, record), cache, scorecard, stats
    tools/      the command line, executing notebooks, building the book, doctor
    models/     name resolution + loaders, converters, model layout, the architectures built here
    text/       batching, sampling with a KV cache, multiple-choice scoring, scripts
    interp/     hooks, logit lens, GLU cases and their viewer, cross-lingual similarity
    training/   fit, checkpoints, train-once-into-the-cache, SFT, LoRA, the on-policy loop, GRPO, COPSD
    merging/    the merge methods, streamed over safetensors folders
    ocr/        metrics, scripts, fonts, typesetting, rendering, line crops, engines
    corpora/    one file per corpus (UDHR, gflanguages, CLDR capitals)
    chapters/   chNN_slug/: one chapter's own experiment, data, prompts and exercise checks

Imports are lazy: ``import mlbook`` costs nothing; ``mlbook.start``, ``mlbook.record``,
``mlbook.load_causal_lm`` and ``mlbook.load_encoder`` import their module on first use, and so does
``mlbook.<package>``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

PACKAGES = ("core", "tools", "models", "text", "interp", "training", "merging", "ocr", "corpora", "chapters")
_FUNCTIONS = {
    "start": "core.context",
    "record": "core.context",
    "load_causal_lm": "models.loading",
    "load_encoder": "models.loading",
}


def __getattr__(name: str):
    if name in PACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"{__name__}.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'mlbook' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(PACKAGES) | set(_FUNCTIONS))
