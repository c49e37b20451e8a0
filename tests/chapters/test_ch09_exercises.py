"""Chapter 9's exercise checks accept a right answer and reject wrong ones."""
import numpy as np
import pytest

from mlbook.chapters.ch09_llm_labels import claims
from mlbook.chapters.ch09_llm_labels import exercises as ex


def right_margin(proba, k):
    top = np.sort(proba, axis=1)
    return np.argsort(top[:, -1] - top[:, -2], kind="stable")[:k]


def widest_margin(proba, k):  # the most certain rows
    top = np.sort(proba, axis=1)
    return np.argsort(-(top[:, -1] - top[:, -2]), kind="stable")[:k]


def entropy_instead(proba, k):  # another uncertainty score: differs from margin on three classes or more
    h = -(proba * np.log(np.clip(proba, 1e-12, 1))).sum(1)
    return np.argsort(-h, kind="stable")[:k]


def unstable_ties(proba, k):  # the right score, but ties broken by the higher index
    top = np.sort(proba, axis=1)
    m = top[:, -1] - top[:, -2]
    return np.lexsort((-np.arange(len(m)), m))[:k]


def test_margin_check():
    assert ex.check_margin_query(right_margin).startswith("✔")
    for wrong in (widest_margin, entropy_instead, unstable_ties):
        with pytest.raises(AssertionError):
            ex.check_margin_query(wrong)
    assert "not implemented" in ex.check_margin_query(lambda p, k: (_ for _ in ()).throw(NotImplementedError))


def right_break_even(budgets, f1_human, f1_llm, price, tokens):
    for b, f in sorted(zip(budgets, f1_human)):
        if f >= f1_llm:
            return b * price / tokens * 1e6
    return float("inf")


def strict_inequality(budgets, f1_human, f1_llm, price, tokens):  # "beats" instead of "reaches"
    for b, f in sorted(zip(budgets, f1_human)):
        if f > f1_llm:
            return b * price / tokens * 1e6
    return float("inf")


def per_token(budgets, f1_human, f1_llm, price, tokens):  # USD per token, not per million
    return right_break_even(budgets, f1_human, f1_llm, price, tokens) / 1e6


def test_break_even_check():
    assert ex.check_break_even(right_break_even).startswith("✔")
    for wrong in (strict_inequality, per_token):
        with pytest.raises(AssertionError):
            ex.check_break_even(wrong)


def test_break_even_by_hand():
    # 40 human labels at $0.10 reach F1 0.8; the LLM labels read 2 M tokens: $4 / 2 M tokens = $2 per M
    assert claims.break_even([10, 40, 80], [0.6, 0.8, 0.9], 0.8, 0.10, 2e6) == pytest.approx(2.0)
    assert claims.break_even([10, 40], [0.6, 0.7], 0.8, 0.10, 2e6) == float("inf")
