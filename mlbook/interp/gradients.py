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
