"""mlbook.stats against hand-worked values and closed forms."""
from math import comb

import numpy as np
import pytest

from mlbook.core import stats


def test_correlation_ranks_and_binomial_tail():
    assert stats.ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    neg = stats.correlation(x, -x + rng.normal(size=500), n_perm=199)
    assert neg["r"] < -0.5 and neg["p_neg"] == pytest.approx(1 / 200)
    null = stats.correlation(x, rng.normal(size=500), n_perm=199)
    assert abs(null["r"]) < 0.15 and null["p_neg"] > 0.01
    want = sum(comb(20, i) * 0.05 ** i * 0.95 ** (20 - i) for i in range(3, 21))
    assert stats.binom_tail(3, 20, 0.05) == pytest.approx(want)


def test_pearson_and_spearman_match_numpy_references():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=200), rng.normal(size=200)
    y = 0.3 * x + y
    assert stats.correlation(x, y, "pearson", 0)["r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    # Spearman = Pearson of the ranks; a monotone transform leaves it unchanged
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    assert stats.correlation(x, y, "spearman", 0)["r"] == pytest.approx(np.corrcoef(rx, ry)[0, 1])
    assert stats.correlation(np.exp(x), y ** 3, "spearman", 0)["r"] == pytest.approx(np.corrcoef(rx, ry)[0, 1])
