"""Train once into the cache: a trained artefact lives in a cache folder named by a key of everything
that determines it, with its training log next to it (``TRAINING_LOG``, one name for the whole book);
while it trains, checkpoints go to a sibling ``.ckpt`` folder, so a killed run resumes there."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from mlbook.core.cache import cache_dir, cached_folder, source_digest

from .checkpoint import save_pretrained
from .fit import fit

TRAINING_LOG = "training_log.json"   # what a trained folder's training wrote down: curves, sizes, seconds


TRAINING_CODE = ("mlbook.training", "mlbook.text")   # the loop, the losses and the batching: part of every key


def trained_folder(name: str, build: Callable[[Path, Path], dict], code: tuple[str, ...] = ()) -> tuple[Path, dict]:
    """``(folder, log)``: ``<mlbook cache>/<name>-<code digest>``, built once by ``build(folder, ckpt_dir) -> log``.

    The name carries a digest of the source of ``code`` (module or package names: what defines the data and
    the model) and of ``TRAINING_CODE``, so an entry trained by older code is never returned for newer code.

    ``build`` trains, fills ``folder`` and returns its training log (JSON-serialisable), which is kept as
    ``folder/TRAINING_LOG``; ``ckpt_dir`` is where its ``fit`` may checkpoint (removed once the folder is
    complete)."""
    name = f"{name}-{source_digest(*TRAINING_CODE, *code)}"
    ckpt = cache_dir() / f"{name}.ckpt"

    def builder(folder: Path):
        log = build(folder, ckpt)
        (folder / TRAINING_LOG).write_text(json.dumps(log))
        return {"training_log": TRAINING_LOG}

    folder = cached_folder(name, builder)
    shutil.rmtree(ckpt, ignore_errors=True)
    return folder, json.loads((folder / TRAINING_LOG).read_text())


def read_log(folder: str | Path) -> dict:
    """The training log of a folder written by :func:`trained_folder` (``{}`` when it has none)."""
    path = Path(folder) / TRAINING_LOG
    return json.loads(path.read_text()) if path.exists() else {}


def fit_cached(name: str, setup: Callable[[], tuple], tokenizer=None, *, save_every: int | None = None,
               code: tuple[str, ...] = (), **fit_kwargs) -> tuple[Path, dict]:
    """Train once and keep the result: ``(folder, history)``.

    ``setup()`` returns ``(model, loss_fn, batches)``.  The trained model is saved with
    ``save_pretrained`` (with ``tokenizer``) in ``<mlbook cache>/<name>/model``, its ``fit`` history as
    the folder's training log; a second call returns them without training.  ``code``: the modules whose
    source is part of the cache key (those ``setup`` builds the model, the loss and the batches with).
    """
    def build(folder: Path, ckpt: Path) -> dict:
        model, loss_fn, batches = setup()
        hist = fit(model, loss_fn, batches, ckpt_dir=ckpt, save_every=save_every, **fit_kwargs)
        save_pretrained(model, tokenizer, folder / "model")
        return hist

    return trained_folder(name, build, code)
