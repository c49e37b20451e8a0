"""Gradients at any site: what a scalar of the output would do if an activation moved.

Inside ``capture_grads(model, addresses)``, a forward pass records each activation ``a``
and, once a scalar ``m`` of its output is back-propagated, ``∂m/∂a`` of the same shape.
Attribution patching, EAP-IG and integrated gradients all start from this pair.

The activation need not come from trainable weights: when it does not require gradients
(frozen model, ``requires_grad_(False)``), the hook swaps in a leaf copy that does, so
the backward pass stops there -- which is also all a first-order attribution needs.
"""
from __future__ import annotations

from contextlib import contextmanager

from . import hooks


@contextmanager
def capture_grads(model, addresses):
    """Yield ``(acts, grads)``: dicts ``address -> tensor``; ``acts`` fill during the
    forward pass (detached), ``grads`` during ``backward()``.  The last pass wins."""
    addresses = hooks._as_list(addresses)
    acts: dict = {}
    grads: dict = {}

    def make(address):
        def fn(act):
            new = None
            if not act.requires_grad:
                act = new = act.detach().requires_grad_(True)
            acts[address] = act.detach()

            def keep(g):
                grads[address] = g.detach()
            act.register_hook(keep)
            return new
        return fn

    with hooks.hooked(model, {a: make(a) for a in addresses}):
        yield acts, grads


@contextmanager
def frozen(model):
    """The model's parameters stop requiring gradients inside the block (restored after): a backward pass
    then computes the activations' gradients only -- no weight gradient, which would cost as much again
    and which an attribution never reads."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)


def keep_logits(n: int, T: int):
    """The ``logits_to_keep`` argument for the last ``n`` of ``T`` positions (0: all): the positions as a
    tensor, not the int ``n``.  With an int, Hugging Face slices the hidden states to a non-contiguous view,
    and with frozen weights the LM head's matmul on it falls back to a batched matmul against an expanded
    copy of the weight (a 160 × 6-token batch of SmolLM2: 2.8 s forward and backward instead of 1.9 s)."""
    import torch

    if n < 0:
        raise ValueError(f"logits_to_keep must be >= 0, not {n}")
    return 0 if n == 0 or n >= T else torch.arange(T - n, T)
