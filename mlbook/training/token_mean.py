"""A loss averaged over the optimizer step's tokens — every accumulated micro-batch, every process —
as TRL's ``dapo`` loss type does, for ``fit``.

``fit`` divides each micro-batch's loss by ``grad_accum``, and Accelerate (DDP) averages the processes'
gradients, so a per-micro-batch mean ends up as a mean of means: a short completion's tokens weigh
more than a long one's.  ``token_mean`` wraps a loss function and the batches so that

    ∇ step loss = ∇ ( Σ over every item of the step, on every process, of ℓ ) / N_step

    loss_fn, batches = token_mean(loss_fn, batches, count=onpolicy.completion_tokens,
                                  grad_accum=2, accelerator=acc)
    fit(model, loss_fn, batches, steps=..., grad_accum=2, accelerator=acc)

``count(batch)`` gives a micro-batch's items (tokens); the wrapped batches carry
``batch["num_items_in_batch"]`` (N_step, summed over the step's micro-batches and over the processes),
and ``loss_fn`` must return ``Σ_items ℓ / batch["num_items_in_batch"]`` when the key is there (the GRPO
and COPSD losses do).  The step's micro-batches are built before its first forward pass: on-policy
rollouts all come from the same policy either way, since the weights change only at the step's end.
"""
from __future__ import annotations

from typing import Callable


def token_mean(loss_fn: Callable, batches: Callable[[int], dict], *, count: Callable[[dict], int], grad_accum: int,
               accelerator) -> tuple[Callable, Callable[[int], dict]]:
    """``(loss_fn, batches)`` for ``fit(..., grad_accum=grad_accum, accelerator=accelerator)`` whose step loss is
    the mean over the step's ``count``-ed items on every process (see the module's docstring)."""
    import torch

    if grad_accum < 1:
        raise ValueError(f"grad_accum must be >= 1 (got {grad_accum})")
    if not callable(batches):
        raise TypeError("token_mean needs batches as a callable i -> batch (the micro-batch index)")
    held: dict[int, dict] = {}

    def step_batches(i: int) -> dict:
        if i not in held:                      # the step's first micro-batch: build the whole step and count it
            held.clear()
            first = i - i % grad_accum
            micro = {j: batches(j) for j in range(first, first + grad_accum)}
            local = torch.tensor(float(sum(count(b) for b in micro.values())), device=accelerator.device)
            n_step = accelerator.reduce(local, "sum").clamp(min=1.0)
            for b in micro.values():
                b["num_items_in_batch"] = n_step
            held.update(micro)
        return held.pop(i)

    def scaled(model, batch):
        out = loss_fn(model, batch)
        loss, stats = out if isinstance(out, tuple) else (out, {})
        # fit divides by grad_accum and the processes' gradients are averaged: undo both, since the loss is
        # already this micro-batch's share of the step's mean
        return loss * (grad_accum * accelerator.num_processes), stats

    return scaled, step_batches
