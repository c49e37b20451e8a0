"""Chapter 2's exercises, checked on fresh inputs (the reader's function never sees the reference's output).

1. ``attribution(clean_act, corrupt_act, grad)``: attribution patching per position.
2. ``integrated(grad_fn, a_corr, a_clean, steps)``: the path-averaged version, per feature.
"""
from __future__ import annotations

import random

import numpy as np

from mlbook.core.exercises import exercise


def _ref_attribution(clean_act, corrupt_act, grad):
    return ((clean_act - corrupt_act) * grad).sum(-1)


@exercise
def check_attribution(fn) -> str:
    """``fn(clean_act, corrupt_act, grad)`` on (T, D) arrays must return the (T,) first-order estimates
    Σ_d (clean − corrupt) · grad."""
    rng = np.random.default_rng(random.randrange(10 ** 6))
    for T, D in ((5, 8), (1, 3), (7, 16)):
        c, k, g = (rng.normal(size=(T, D)) for _ in range(3))
        got = fn(c.copy(), k.copy(), g.copy())
        got = np.asarray(got, dtype=float)
        assert got.shape == (T,), f"expected one estimate per position, shape ({T},), got {got.shape}"
        assert np.allclose(got, _ref_attribution(c, k, g), atol=1e-8), \
            "not the first-order estimate: which direction does the patch move the activation, and what multiplies it?"
    # exact on a linear metric m(a) = Σ w·a: the estimate equals the true effect of patching each position
    w = rng.normal(size=(4, 6))
    c, k = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    true = (w * c).sum(-1) - (w * k).sum(-1)
    assert np.allclose(np.asarray(fn(c, k, w), float), true), "on a linear metric the estimate must be exact"
    return "✔ attribution patching: right on fresh inputs, and exact on a linear metric"


def _ref_integrated(grad_fn, a_corr, a_clean, steps):
    g = sum(grad_fn(a_corr + (k / steps) * (a_clean - a_corr)) for k in range(steps)) / steps
    return (a_clean - a_corr) * g


@exercise
def check_integrated(fn) -> str:
    """``fn(grad_fn, a_corr, a_clean, steps)`` must return, per feature, (a_clean − a_corr) times the gradient
    averaged over the points a_corr + (k/steps)(a_clean − a_corr), k = 0 … steps − 1."""
    rng = np.random.default_rng(random.randrange(10 ** 6))
    for D in (3, 10):
        W = rng.normal(size=(D, D))
        v = rng.normal(size=D)

        def f(a, W=W, v=v):
            return float(v @ np.tanh(W @ a))

        def grad_fn(a, W=W, v=v):
            return W.T @ (v * (1 - np.tanh(W @ a) ** 2))
        a0, a1 = rng.normal(size=D), rng.normal(size=D)
        for steps in (1, 4, 32):
            got = np.asarray(fn(grad_fn, a0.copy(), a1.copy(), steps), float)
            assert got.shape == (D,), f"expected one attribution per feature, shape ({D},), got {got.shape}"
            assert np.allclose(got, _ref_integrated(grad_fn, a0, a1, steps), atol=1e-8), (
                f"wrong at steps={steps}: with steps = 1 it must be attribution patching (the gradient at the "
                "corrupted point)" if steps == 1 else f"wrong at steps={steps}: check the points of the path and the average")
        # completeness: along the path φ(t) = f(a0 + t·d), the k/steps points are a left Riemann sum of
        # ∫φ' = f(a1) − f(a0), off by at most max|φ''| / (2·steps), and φ'' = Σ_i v_i tanh''(·) (W d)_i² with
        # |tanh''| ≤ 4/(3√3): a bound every right answer meets, whatever the fresh draw
        d = a1 - a0
        bound = 4 / (3 * np.sqrt(3)) * float(np.abs(v) @ (W @ d) ** 2) / (2 * 256)
        err = abs(float(np.asarray(fn(grad_fn, a0, a1, 256)).sum()) - (f(a1) - f(a0)))
        assert err <= bound + 1e-9, (f"with many steps the attributions must add up to f(clean) − f(corrupt) "
                                     f"(off by {err:.3g}, more than the {bound:.3g} a left Riemann sum allows)")
    return "✔ integrated patching: right on fresh inputs; steps = 1 is attribution patching; complete as steps grow"
