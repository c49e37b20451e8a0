"""Chapter 3's exercises, checked on fresh inputs (the reader's function never sees the reference's output).

1. ``iou(a, b)``: the overlap of two circuits given as sets of edges.
2. ``neuron_ig(grad_fn, a, steps)``: integrated gradients of neurons from the zero baseline.
"""
from __future__ import annotations

import random

import numpy as np

from mlbook.core.exercises import exercise


def _ref_iou(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def _edges(rng: random.Random, n: int, pool: int) -> set:
    senders = ["embed"] + [f"head {layer}.{h}" for layer in range(4) for h in range(3)] + [f"mlp {layer}" for layer in range(4)]
    receivers = [f"attn {layer}" for layer in range(4)] + [f"mlp {layer}" for layer in range(4)] + ["logits"]
    every = [(s, r) for s in senders for r in receivers][:pool]
    return set(rng.sample(every, n))


@exercise
def check_iou(fn) -> str:
    """``fn(a, b)`` on two sets of (sender, receiver) edges must return |A ∩ B| / |A ∪ B| (1 for two empty sets)."""
    rng = random.Random(random.randrange(10 ** 6))
    cases = [(_edges(rng, 12, 60), _edges(rng, 30, 60)), (_edges(rng, 5, 20), _edges(rng, 5, 20)),
             (_edges(rng, 8, 100), _edges(rng, 2, 100))]
    a = _edges(rng, 10, 80)
    cases += [(a, set(a)), (a, set()), (set(), set())]
    for a, b in cases:
        got = float(fn(set(a), set(b)))
        want = _ref_iou(a, b)
        if not a and not b:
            assert got == 1.0, "two empty circuits are the same circuit: their IoU is 1"
            continue
        assert abs(got - want) < 1e-12, (
            f"|A| = {len(a)}, |B| = {len(b)}, |A ∩ B| = {len(a & b)}: expected {want:.4f}, got {got:.4f} — "
            "the shared edges over every edge in either circuit")
        assert abs(float(fn(set(b), set(a))) - got) < 1e-12, "the overlap of A with B is the overlap of B with A"
    return "✔ IoU: right on fresh edge sets, symmetric, 1 for identical circuits"


def _ref_neuron_ig(grad_fn, a, steps):
    return a * sum(grad_fn((k / steps) * a) for k in range(1, steps + 1)) / steps


@exercise
def check_neuron_ig(fn) -> str:
    """``fn(grad_fn, a, steps)`` must return a_i · (1/m) Σ_{k=1..m} ∂_i F((k/m) a), one value per neuron."""
    rng = np.random.default_rng(random.randrange(10 ** 6))
    for D in (4, 12):
        W, v = rng.normal(size=(3, D)), rng.normal(size=3)

        def F(x, W=W, v=v):
            return float(v @ np.tanh(W @ x) + 0.5 * (x ** 2).sum() * 0.1)

        def grad_fn(x, W=W, v=v):
            return W.T @ (v * (1 - np.tanh(W @ x) ** 2)) + 0.1 * x
        a = np.abs(rng.normal(size=D)) + 0.1
        for steps in (1, 3, 20):
            got = np.asarray(fn(grad_fn, a.copy(), steps), float)
            assert got.shape == (D,), f"expected one attribution per neuron, shape ({D},), got {got.shape}"
            assert np.allclose(got, _ref_neuron_ig(grad_fn, a, steps), atol=1e-9), (
                "with one step it is the activation times the gradient at the activation itself" if steps == 1 else
                f"wrong at steps = {steps}: the points are k/m · a for k = 1 … m, and the gradients are averaged")
        err = abs(float(np.asarray(fn(grad_fn, a, 4000)).sum()) - (F(a) - F(np.zeros(D))))
        assert err < 0.01, f"with many steps the attributions must add up to F(a) − F(0) (off by {err:.3g})"
    return "✔ neuron IG: right on fresh networks, and complete as the steps grow"
