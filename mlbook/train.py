"""One small training loop for every chapter that trains: AdamW, a learning-rate schedule,
gradient clipping, gradient accumulation, Accelerate (CPU, one GPU or several, unchanged), a
progress bar, and atomic checkpoints from which a killed run resumes bit for bit.

    history = fit(model, loss_fn, batches, steps=100, lr=1e-4)

``loss_fn(model, batch)`` returns a scalar loss or ``(loss, stats)``; ``batches`` is an
iterable or a callable ``i -> batch`` (on-policy methods generate their batch inside the
callable, from the current model).  ``history`` holds ``loss`` (one value per step), every
stat the loss function returned (lists), ``lr``, ``grad_norm``, ``seconds`` and ``steps``.

Also here, because several chapters need them: the supervised fine-tuning loss on completion
tokens (``sft_batches``, ``sft_loss``), ``save_pretrained`` (a folder that ``from_pretrained``
loads) and LoRA helpers on top of peft (``add_lora``, ``adapter_disabled``, ``merged``).
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

SCHEDULES = ("constant", "cosine", "linear")
_STATE = "state.pt"            # optimizer, scheduler, step, RNG states, history
_WEIGHTS = "trainable.pt"      # the trainable parameters (all of them for full fine-tuning, the adapter for LoRA)


# ----------------------------------------------------------------------------- schedule
def lr_factor(step: int, steps: int, warmup: int = 0, schedule: str = "constant") -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based).

    Linear warm-up over ``warmup`` steps, then ``constant`` (1), ``cosine`` (1 → 0) or ``linear`` (1 → 0).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    frac = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * frac)) if schedule == "cosine" else max(0.0, 1 - frac)


# ----------------------------------------------------------------------------- RNG
def _rng_state() -> dict:
    import numpy as np
    import torch

    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    import numpy as np
    import torch

    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# ----------------------------------------------------------------------------- checkpoints
def _trainable(model) -> dict:
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
def _written_then_renamed(final: Path, prefix: str):
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


def _save_checkpoint(ckpt_dir: Path, step: int, model, opt, sched, history: dict, meta: dict) -> Path:
    import torch

    final = ckpt_dir / f"step-{step:06d}"
    with _written_then_renamed(final, ".tmp-") as tmp:
        weights = {n: p.detach().cpu().clone() for n, p in _trainable(model).items()}
        torch.save(weights, tmp / _WEIGHTS)
        torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "rng": _rng_state(), "history": history, "meta": meta}, tmp / _STATE)
    for old in ckpt_dir.glob("step-*"):             # keep only the newest
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _load_checkpoint(folder: Path, model, opt, sched) -> tuple[int, dict]:
    import torch

    weights = torch.load(folder / _WEIGHTS, map_location="cpu", weights_only=True)
    params = _trainable(model)
    if set(weights) != set(params):
        raise ValueError(f"checkpoint {folder} holds other trainable parameters than the model "
                         f"(missing {sorted(set(params) - set(weights))[:3]}, extra {sorted(set(weights) - set(params))[:3]})")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n].to(p.device, p.dtype))
    state = torch.load(folder / _STATE, map_location="cpu", weights_only=False)  # our own file: RNG states are not tensors
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return state["step"], state["history"]


# ----------------------------------------------------------------------------- the loop
def to_device(batch, device):
    """``batch`` with every tensor in it (nested dicts, lists, tuples) moved to ``device``; the rest as is."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def fit(model, loss_fn: Callable, batches: Iterable | Callable[[int], object], *, steps: int, lr: float,
        params=None, weight_decay: float = 0.0, betas=(0.9, 0.999), grad_clip: float | None = 1.0,
        warmup: int = 0, schedule: str = "constant", grad_accum: int = 1, ckpt_dir=None,
        save_every: int | None = None, save_last: bool = True, seed: int = 0, progress: bool = True,
        desc: str = "train", fused: bool = False,
        accelerator=None) -> dict:
    """Train ``model`` for ``steps`` optimizer steps of AdamW on ``loss_fn(model, batch)``.

    - ``batches``: an iterable of batches, or a callable ``i -> batch`` called with the index of
      the micro-batch (``step * grad_accum + j``; the step itself when ``grad_accum == 1``); the
      tensors in a batch are moved to the accelerator's device (a GPU when there is one).
    - ``params``: None → every parameter with ``requires_grad``; else parameters or param groups.
    - ``ckpt_dir``: every ``save_every`` steps and at the end, the trainable weights, optimizer,
      scheduler, step, RNG states and history are saved atomically; if ``ckpt_dir`` already holds a
      checkpoint, training resumes from it and ends with the same weights as an uninterrupted run.
      A finished checkpoint (step == steps) returns its history without training.
      ``save_last=False`` skips the checkpoint of the final step, for a caller that saves the trained
      model itself right away (a kill before that resumes from the last periodic checkpoint).
    - ``fused``: torch's fused AdamW kernel (one pass per parameter; on 2 CPU cores ≈4× faster per step
      than the default per-tensor loop for a 135M model). Same update rule, different float rounding.
    - Deterministic on CPU for a given ``seed`` (every RNG is seeded at the start and restored on resume).
    """
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from .run import seed_everything

    if steps < 0 or grad_accum < 1:
        raise ValueError(f"steps must be >= 0 and grad_accum >= 1 (got steps={steps}, grad_accum={grad_accum})")
    lr_factor(0, steps, warmup, schedule)                       # validates the schedule name
    acc = accelerator if accelerator is not None else Accelerator()
    seed_everything(seed + acc.process_index)                  # each process samples its own on-policy batches

    trainable = [p for p in model.parameters() if p.requires_grad] if params is None else params
    trainable = list(trainable)
    if not trainable:
        raise ValueError("no parameter to train: every parameter has requires_grad=False")
    opt = torch.optim.AdamW(trainable, lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                            **({"fused": True} if fused else {}))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup, schedule))
    model, opt = acc.prepare(model, opt)        # the scheduler stays ours: one step per optimizer step
    raw = acc.unwrap_model(model)
    clip_params = [p for p in raw.parameters() if p.requires_grad]

    history: dict = defaultdict(list)
    start = 0
    ckpt = Path(ckpt_dir) if ckpt_dir is not None else None
    if ckpt is not None and (found := latest_checkpoint(ckpt)) is not None:
        start, saved = _load_checkpoint(found, raw, opt, sched)
        history.update({k: (list(v) if isinstance(v, list) else v) for k, v in saved.items()})
        if start > steps:
            raise ValueError(f"{found} is at step {start}, beyond steps={steps}")
    meta = {"steps": steps, "lr": lr, "grad_accum": grad_accum, "schedule": schedule, "warmup": warmup}

    it = None
    if not callable(batches):
        it = iter(batches)
        for _ in range(start * grad_accum if start < steps else 0):     # a resumed run skips what was consumed
            next(it)

    seconds_before = float(history.get("seconds", 0.0) or 0.0)
    t0 = time.perf_counter()
    was_training = raw.training
    model.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=desc,
               disable=not progress or not acc.is_local_main_process, leave=True)
    for step in bar:
        losses, stats = [], defaultdict(list)
        for j in range(grad_accum):
            i = step * grad_accum + j
            batch = to_device(batches(i) if it is None else next(it), acc.device)
            sync = contextlib.nullcontext() if j == grad_accum - 1 else acc.no_sync(model)
            with sync:
                out = loss_fn(model, batch)
                loss, st = out if isinstance(out, tuple) else (out, {})
                acc.backward(loss / grad_accum)
            losses.append(float(loss.detach().float()))
            for k, v in st.items():
                stats[k].append(float(v))
        gnorm = acc.clip_grad_norm_(clip_params, grad_clip) if grad_clip else None
        history["lr"].append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        history["loss"].append(sum(losses) / len(losses))
        history["grad_norm"].append(float(gnorm) if gnorm is not None else float("nan"))
        for k, v in stats.items():
            history[k].append(sum(v) / len(v))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
        last = step + 1 == steps
        if ckpt is not None and ((last and save_last) or (save_every and (step + 1) % save_every == 0)):
            history["seconds"] = seconds_before + time.perf_counter() - t0
            acc.wait_for_everyone()
            if acc.is_main_process:
                _save_checkpoint(ckpt, step + 1, raw, opt, sched, dict(history), meta)
            acc.wait_for_everyone()
    bar.close()
    model.train(was_training)
    history["seconds"] = seconds_before + time.perf_counter() - t0
    history["steps"] = steps
    return dict(history)


# ----------------------------------------------------------------------------- supervised fine-tuning
def sft_example(tokenizer, prompt: str, completion: str, max_len: int | None = None,
                prompt_loss: bool = False) -> dict:
    """Token ids of ``prompt + completion`` and labels that train on the completion only (-100 elsewhere),
    or on every token when ``prompt_loss`` (plain language-model pre-training on the whole document).

    ``prompt`` is already formatted (chat template applied); ``completion`` should end with the
    tokenizer's end-of-turn text, so that the model learns to stop.
    """
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = (p + c)[:max_len] if max_len else p + c
    labels = ((p if prompt_loss else [-100] * len(p)) + c)[: len(ids)]
    return {"input_ids": ids, "labels": labels}


def sft_batches(examples: list[dict], batch_size: int, *, epochs: float = 1.0, seed: int = 0, pad_id: int = 0):
    """Shuffled, right-padded batches ``{input_ids, attention_mask, labels}`` over ``epochs`` passes.

    A list (not a generator), so that ``fit`` can skip the consumed part when it resumes.
    Examples of similar length are batched together (sorted within shuffled pools) to waste little padding.
    """
    import torch

    rng = random.Random(seed)
    n_batches = max(1, round(len(examples) * epochs / batch_size))
    order: list[int] = []
    while len(order) < n_batches * batch_size:
        idx = list(range(len(examples)))
        rng.shuffle(idx)
        order += idx
    order = order[: n_batches * batch_size]
    pool = 16 * batch_size                       # sort by length inside pools of 16 batches, then shuffle the batches
    chunks = []
    for s in range(0, len(order), pool):
        part = sorted(order[s:s + pool], key=lambda i: len(examples[i]["input_ids"]))
        chunks += [part[k:k + batch_size] for k in range(0, len(part), batch_size)]
    rng.shuffle(chunks)
    out = []
    for idx in chunks:
        width = max(len(examples[i]["input_ids"]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            e = examples[i]
            n = len(e["input_ids"])
            ids[r, :n] = torch.tensor(e["input_ids"])
            labels[r, :n] = torch.tensor(e["labels"])
            mask[r, :n] = 1
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def sft_loss(model, batch: dict):
    """Mean next-token cross-entropy over the completion tokens (labels != -100)."""
    dev = next(model.parameters()).device
    out = model(input_ids=batch["input_ids"].to(dev), attention_mask=batch["attention_mask"].to(dev),
                labels=batch["labels"].to(dev))
    return out.loss


# ----------------------------------------------------------------------------- saving and LoRA
def save_pretrained(model, tokenizer, folder: str | Path, *, merge_lora: bool = True) -> Path:
    """Write ``model`` (+ ``tokenizer``) as a safetensors folder that ``from_pretrained`` loads.

    A LoRA model is saved merged (a plain checkpoint of the base architecture) unless
    ``merge_lora=False`` (then peft's adapter folder).  Written into a temporary sibling and
    renamed into place, so a reader never sees half a checkpoint.
    """
    folder = Path(folder)
    with _written_then_renamed(folder, f".{folder.name}.") as tmp:
        m = merged(model) if merge_lora and is_lora(model) else model
        m.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for p in [tmp, *tmp.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    return folder


def is_lora(model) -> bool:
    """True for a peft model (LoRA adapters on a frozen base)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def add_lora(model, r: int = 16, alpha: int = 32, dropout: float = 0.0, targets="all-linear"):
    """Wrap ``model`` with LoRA adapters (peft) on ``targets`` (default: every linear layer but the LM head).

    Only the adapters train; the base weights are frozen, so the *initial policy* stays available
    by switching the adapters off (``adapter_disabled``) — COPSD's frozen teacher at no memory cost.
    """
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def adapter_disabled(model):
    """Context in which a LoRA model computes as its base (adapters off); a no-op for other models."""
    return model.disable_adapter() if is_lora(model) else contextlib.nullcontext()


def merged(model):
    """A plain model with the LoRA adapters folded into the weights (the input is left unchanged)."""
    import copy

    return copy.deepcopy(model).merge_and_unload() if is_lora(model) else model


def fit_cached(name: str, setup: Callable[[], tuple], tokenizer=None, *, save_every: int | None = None,
               **fit_kwargs) -> tuple[Path, dict]:
    """Train once and keep the result: ``(folder, history)``.

    ``setup()`` returns ``(model, loss_fn, batches)``.  The trained model is saved with
    ``save_pretrained`` (with ``tokenizer``) in ``<mlbook cache>/<name>/model`` next to
    ``history.json``; a second call returns them without training.  While training, checkpoints go
    to ``<mlbook cache>/<name>.ckpt`` every ``save_every`` steps, so a killed run resumes there.
    """
    import json

    from .cache import cache_dir, cached_folder

    ckpt = cache_dir() / f"{name}.ckpt"

    def build(folder: Path):
        model, loss_fn, batches = setup()
        hist = fit(model, loss_fn, batches, ckpt_dir=ckpt, save_every=save_every, **fit_kwargs)
        save_pretrained(model, tokenizer, folder / "model")
        (folder / "history.json").write_text(json.dumps(hist))
        return {"steps": hist["steps"]}

    folder = cached_folder(name, build)
    shutil.rmtree(ckpt, ignore_errors=True)
    return folder, json.loads((folder / "history.json").read_text())
