"""Small statistics the chapters share, written out so that each is readable (no scipy needed):
average ranks, Pearson/Spearman correlation with a permutation p-value, a binomial tail."""
from __future__ import annotations


def ranks(x):
    """Average ranks (1..n, ties share their mean rank), as scipy.stats.rankdata."""
    import numpy as np

    _, inv, counts = np.unique(np.asarray(x), return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inv.ravel()]


def correlation(x, y, method: str = "spearman", n_perm: int = 999, seed: int = 0) -> dict:
    """Pearson or Spearman r with a one-sided permutation p-value for r < 0 (and for r > 0)."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)
    if method == "spearman":
        x, y = ranks(x), ranks(y)
    x, y = (x - x.mean()) / x.std(), (y - y.mean()) / y.std()
    r = float((x * y).mean())
    rng = np.random.default_rng(seed)
    null = np.array([(x * y[rng.permutation(len(y))]).mean() for _ in range(n_perm)])
    return {"r": r, "p_neg": (1 + (null <= r).sum()) / (n_perm + 1), "p_pos": (1 + (null >= r).sum()) / (n_perm + 1),
            "n": len(x)}


def binom_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    from math import exp, lgamma, log

    if k <= 0:
        return 1.0
    return min(1.0, sum(exp(lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1) + i * log(p) + (n - i) * log(1 - p))
                        for i in range(k, n + 1)))
