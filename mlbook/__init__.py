"""mlbook — the helper library of the Shammie book.

Imports are lazy: ``import mlbook`` costs nothing; ``mlbook.models`` or
``mlbook.record`` import their module on first use.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_MODULES = {"cache", "run", "models", "data", "hooks", "scorecard", "cli", "book", "gluscope", "neuronview", "exercises", "lens", "convert", "stats", "merging", "ocr", "render", "crnn", "ocr_engines", "ocr_bench", "scenes", "vlm", "choice", "crosslingual", "dim3", "train", "rollout", "wordproblems", "organism", "distill", "rl"}
_FUNCTIONS = {
    "record": "run",
    "start": "run",
    "seed_everything": "run",
    "pick_device": "run",
    "load_causal_lm": "models",
    "load_encoder": "models",
}


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(f"{__name__}.{_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module 'mlbook' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _MODULES | set(_FUNCTIONS))
