"""Chapter 4's exercises, checked on fresh inputs (the reader's function never sees the reference's output).

1. ``frozen_logits(x, g, s, W_U)``: the final RMS norm frozen at scale s, then the unembedding -- and why it
   is linear in x;
2. ``neuron_imp(h, m_i, w_i, g, s, W_U, w)``: NLKA's importance of one FFN neuron, by hand;
3. ``rank_one(W, C, k, v)``: ROME's update, which must map k to v and leave C-orthogonal keys alone.
"""
from __future__ import annotations

import random

import numpy as np

from mlbook.core.exercises import exercise


def _rng():
    return np.random.default_rng(random.randrange(10 ** 6))


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


@exercise
def check_frozen_logits(fn) -> str:
    """``fn(x, g, s, W_U)`` must return W_U (g ⊙ x / s) -- and so be linear in x at a fixed s."""
    rng = _rng()
    for d, V in ((6, 11), (16, 40)):
        W, g, s = rng.normal(size=(V, d)), rng.normal(size=d), float(rng.uniform(0.5, 3))
        x, y = rng.normal(size=d), rng.normal(size=d)
        got = np.asarray(fn(x.copy(), g, s, W), float)
        assert got.shape == (V,), f"expected one logit per vocabulary entry, shape ({V},), got {got.shape}"
        assert np.allclose(got, W @ (g * x / s), atol=1e-9), (
            "the norm is frozen: divide by the given s, not by x's own root mean square, and multiply by the gain g")
        both = np.asarray(fn(x + 2 * y, g, s, W), float)
        assert np.allclose(both, got + 2 * np.asarray(fn(y, g, s, W), float), atol=1e-9), \
            "at a fixed s the map must be linear: f(x + 2y) = f(x) + 2 f(y)"
    return "✔ frozen logits: right on fresh inputs, and linear in x"


def _ref_imp(h, m, w_i, g, s, W, w):
    lp = lambda x: _log_softmax(W @ (g * x / s))[w]
    return float(lp(h + m * w_i) - lp(h))


@exercise
def check_neuron_imp(fn) -> str:
    """``fn(h, m_i, w_i, g, s, W_U, w)`` must return log p(w | h + m_i w_i) − log p(w | h) under the frozen norm."""
    rng = _rng()
    for d, V in ((5, 9), (12, 30)):
        W, g, s = rng.normal(size=(V, d)), rng.uniform(0.5, 1.5, size=d), float(rng.uniform(0.5, 3))
        h, w_i = rng.normal(size=d), rng.normal(size=d)
        for m in (0.0, 1.7, -0.6):
            w = int(rng.integers(V))
            got = float(fn(h.copy(), m, w_i.copy(), g, s, W, w))
            want = _ref_imp(h, m, w_i, g, s, W, w)
            if m == 0.0:
                assert abs(got) < 1e-9, "a neuron that does not fire (m_i = 0) writes nothing: its importance is 0"
                continue
            assert abs(got - want) < 1e-8, (
                f"expected {want:.5f}, got {got:.5f}: a difference of *log*-probabilities of token w, the neuron's "
                "write m_i · w_i added to h, both read through the frozen norm (÷ s, × g) and W_U")
    return "✔ neuron importance: right on fresh tensors, and 0 for a silent neuron"


def _ref_rank_one(W, C, k, v):
    u = np.linalg.solve(C, k)
    return np.outer(v - W @ k, u) / (u @ k)


@exercise
def check_rank_one(fn) -> str:
    """``fn(W, C, k, v)`` must return ΔW with (W + ΔW) k = v and ΔW k' = 0 for every k' with k'ᵀ C⁻¹ k = 0."""
    rng = _rng()
    for d, dm in ((4, 6), (8, 20)):
        W, k, v = rng.normal(size=(d, dm)), rng.normal(size=dm), rng.normal(size=d)
        A = rng.normal(size=(dm, 3 * dm))
        C = A @ A.T / (3 * dm)
        dW = np.asarray(fn(W.copy(), C.copy(), k.copy(), v.copy()), float)
        assert dW.shape == W.shape, f"ΔW has W's shape {W.shape}, got {dW.shape}"
        assert np.allclose((W + dW) @ k, v, atol=1e-8), "the edited layer must map the subject's key k to v"
        u = np.linalg.solve(C, k)
        other = rng.normal(size=dm)
        other -= (other @ u) / (u @ u) * u                      # k'ᵀ C⁻¹ k = k' · u = 0
        assert np.allclose(dW @ other, 0, atol=1e-8), (
            "a key that is C-orthogonal to k (k'ᵀ C⁻¹ k = 0) must not move: the update's direction is C⁻¹ k, not k")
        assert np.allclose(dW, _ref_rank_one(W, C, k, v), atol=1e-8), "ΔW = (v − W k) uᵀ / (uᵀ k) with u = C⁻¹ k"
    return "✔ rank-one update: k ↦ v, and the keys it must not touch stay where they were"
