"""Chapter 4's exercise checks accept a right answer and reject wrong ones."""
import numpy as np
import pytest

from mlbook.chapters.ch04_anatomy_of_an_edit import exercises as ex


def _stub(*a):
    raise NotImplementedError


def test_frozen_logits_check():
    assert ex.check_frozen_logits(lambda x, g, s, W: W @ (g * x / s)).startswith("✔")
    for wrong in (lambda x, g, s, W: W @ (g * x / np.sqrt((x ** 2).mean() + 1e-6)),   # the live norm: not linear
                  lambda x, g, s, W: W @ (x / s),                                        # no gain
                  lambda x, g, s, W: W @ (g * x) * s):                                   # × s
        with pytest.raises(AssertionError):
            ex.check_frozen_logits(wrong)
    assert "not implemented" in ex.check_frozen_logits(_stub)


def _logp(x, g, s, W, w):
    z = W @ (g * x / s)
    z = z - z.max()
    return z[w] - np.log(np.exp(z).sum())


def test_neuron_imp_check():
    assert ex.check_neuron_imp(lambda h, m, wi, g, s, W, w: _logp(h + m * wi, g, s, W, w) - _logp(h, g, s, W, w)).startswith("✔")
    soft = lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    for wrong in (lambda h, m, wi, g, s, W, w: soft(W @ (g * (h + m * wi) / s))[w] - soft(W @ (g * h / s))[w],   # probabilities
                  lambda h, m, wi, g, s, W, w: _logp(h + wi, g, s, W, w) - _logp(h, g, s, W, w),                 # m_i forgotten
                  lambda h, m, wi, g, s, W, w: _logp(m * wi, g, s, W, w) - _logp(h, g, s, W, w)):                # no h
        with pytest.raises(AssertionError):
            ex.check_neuron_imp(wrong)
    assert "not implemented" in ex.check_neuron_imp(_stub)


def test_rank_one_check():
    def right(W, C, k, v):
        u = np.linalg.solve(C, k)
        return np.outer(v - W @ k, u) / (u @ k)
    assert ex.check_rank_one(right).startswith("✔")
    for wrong in (lambda W, C, k, v: np.outer(v - W @ k, k) / (k @ k),               # ignores C: disturbs other keys
                  lambda W, C, k, v: np.outer(v, np.linalg.solve(C, k)) / (np.linalg.solve(C, k) @ k),   # v, not v − W k
                  lambda W, C, k, v: np.outer(v - W @ k, C @ k) / ((C @ k) @ k)):    # C, not C⁻¹
        with pytest.raises(AssertionError):
            ex.check_rank_one(wrong)
    assert "not implemented" in ex.check_rank_one(_stub)
