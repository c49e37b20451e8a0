"""Atomic, resumable checkpoints of a training run, and ``save_pretrained``: a folder is written into a
temporary sibling and renamed into place (a reader sees the old folder or the new one, never half), and
a checkpoint holds the trainable weights, optimizer, scheduler, step, RNG states and history, so that a
killed run resumes bit for bit."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from pathlib import Path

from .lora import is_lora, merged

_STATE = "state.pt"            # optimizer, scheduler, step, RNG states, history

_WEIGHTS = "trainable.pt"      # the trainable parameters (all of them for full fine-tuning, the adapter for LoRA)


def rng_state() -> dict:
    import numpy as np
    import torch

    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    import numpy as np
    import torch

    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def trainable(model) -> dict:
    """name -> parameter, for the parameters that train (shared weights appear once)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder ``step-NNNNNN`` in ``ckpt_dir`` (None if there is none).

    A folder appears under its final name only once fully written (atomic rename), so every
    ``step-*`` folder is complete; half-written ones carry a ``.tmp`` prefix and are ignored.
    """
    d = Path(ckpt_dir)
    if not d.is_dir():
        return None
    done = sorted(p for p in d.glob("step-*") if p.is_dir() and (p / _STATE).exists() and (p / _WEIGHTS).exists())
    return done[-1] if done else None


@contextlib.contextmanager
def written_then_renamed(final: Path, prefix: str):
    """Yield a fresh temporary sibling folder of ``final``; once the block has filled it, it replaces ``final``
    by one rename (a reader sees the old folder or the new one, never half of one). On an error the
    temporary folder is removed and ``final`` is left as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=prefix))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_checkpoint(ckpt_dir: Path, step: int, model, opt, sched, history: dict, meta: dict) -> Path:
    import torch

    final = ckpt_dir / f"step-{step:06d}"
    with written_then_renamed(final, ".tmp-") as tmp:
        weights = {n: p.detach().cpu().clone() for n, p in trainable(model).items()}
        torch.save(weights, tmp / _WEIGHTS)
        torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "rng": rng_state(), "history": history, "meta": meta}, tmp / _STATE)
    for old in ckpt_dir.glob("step-*"):             # keep only the newest
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, model, opt, sched) -> tuple[int, dict]:
    import torch

    weights = torch.load(folder / _WEIGHTS, map_location="cpu", weights_only=True)
    params = trainable(model)
    if set(weights) != set(params):
        raise ValueError(f"checkpoint {folder} holds other trainable parameters than the model "
                         f"(missing {sorted(set(params) - set(weights))[:3]}, extra {sorted(set(weights) - set(params))[:3]})")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n].to(p.device, p.dtype))
    state = torch.load(folder / _STATE, map_location="cpu", weights_only=False)  # our own file: RNG states are not tensors
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return state["step"], state["history"]


def save_pretrained(model, tokenizer, folder: str | Path, *, merge_lora: bool = True) -> Path:
    """Write ``model`` (+ ``tokenizer``) as a safetensors folder that ``from_pretrained`` loads.

    A LoRA model is saved merged (a plain checkpoint of the base architecture) unless
    ``merge_lora=False`` (then peft's adapter folder).  Written into a temporary sibling and
    renamed into place, so a reader never sees half a checkpoint.
    """
    folder = Path(folder)
    with written_then_renamed(folder, f".{folder.name}.") as tmp:
        m = merged(model) if merge_lora and is_lora(model) else model
        m.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    return folder
