"""Checks for chapter 9's exercises: each draws fresh random inputs and compares the reader's function with
the chapter's own (``mlbook.training.active.query``, ``claims.break_even``)."""
from __future__ import annotations

import math
import random

import numpy as np

from mlbook.core.exercises import exercise
from mlbook.training import active

from . import claims


@exercise
def check_margin_query(fn, trials: int = 200) -> str:
    """``fn(proba, k) -> indices``: the k rows with the smallest margin p_(1) − p_(2), smallest first (ties:
    the lower index first)."""
    rng = np.random.default_rng(random.randrange(10 ** 6))
    for _ in range(trials):
        n, c = int(rng.integers(4, 30)), int(rng.integers(2, 6))
        p = rng.dirichlet(np.full(c, rng.uniform(0.3, 3)), size=n)
        if rng.random() < 0.3:  # ties
            p = np.round(p, 1)
            p /= p.sum(1, keepdims=True)
        k = int(rng.integers(1, n))
        want = active.query(p, "margin", k).tolist()
        got = [int(i) for i in np.asarray(fn(p.copy(), k)).ravel()]
        if got != want:
            raise AssertionError(f"proba=\n{np.round(p, 3)}\nk={k}: expected rows {want}, got {got}")
    return "✔ margin sampling picks the same rows as mlbook.training.active, in the same order"


@exercise
def check_break_even(fn, trials: int = 200) -> str:
    """``fn(budgets, f1_human, f1_llm, human_usd_per_label, llm_tokens) -> USD per million tokens``."""
    rng = random.Random(random.randrange(10 ** 6))
    for _ in range(trials):
        budgets = sorted(rng.sample(range(5, 500), rng.randint(2, 12)))
        f1 = sorted(round(rng.uniform(0.3, 0.95), 2) for _ in budgets)
        f1_llm = rng.choice([round(rng.uniform(0.3, 0.99), 2), rng.choice(f1)])
        price, tokens = rng.uniform(0.01, 1.0), rng.uniform(1e3, 1e7)
        want = claims.break_even(budgets, f1, f1_llm, price, tokens)
        got = float(fn(list(budgets), list(f1), f1_llm, price, tokens))
        if not (math.isinf(want) and math.isinf(got)) and not math.isclose(want, got, rel_tol=1e-9):
            raise AssertionError(f"budgets={budgets}, f1_human={f1}, f1_llm={f1_llm}, price={price:.4f}, "
                                 f"tokens={tokens:.0f}: expected {want}, got {got}")
    return "✔ break-even price right, including an LLM F1 the human curve never reaches"
