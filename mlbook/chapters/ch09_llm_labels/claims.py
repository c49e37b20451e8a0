"""Chapter 9's statistics and their resampling units (``mlbook.core.evidence``).

Label quality is a *balanced* accuracy — the mean of the accuracy on gold spam and on gold ham — so that an
annotator that calls everything ham does not score 69 %:

    bal(ŷ, y) = ½ · mean_{i: y_i = 1} [ŷ_i = 1] + ½ · mean_{i: y_i = 0} [ŷ_i = 0],

which is a mean of two stratum means: its units are the emails' correctness, stratified by gold class
(``bal_units``), and a paired difference of two interfaces is the per-email difference, stratified the same way.
Classifier comparisons are per seed (each seed's test bootstrap; ``per_seed``).
"""
from __future__ import annotations

import numpy as np

from mlbook.core import evidence


def bal_acc(pred, gold) -> float:
    pred, gold = np.asarray(pred), np.asarray(gold)
    return 0.5 * float((pred[gold == 1] == 1).mean()) + 0.5 * float((pred[gold == 0] == 0).mean())


def bal_units(pred, gold, minus: float = 0.5) -> list[list[float]]:
    """Units of bal(pred, gold) − ``minus``: per gold class, each email's correctness − ``minus``."""
    c = (np.asarray(pred) == np.asarray(gold)).astype(float) - minus
    gold = np.asarray(gold)
    return [c[gold == 1].tolist(), c[gold == 0].tolist()]


def paired_bal_units(pred_a, pred_b, gold) -> list[list[float]]:
    """Units of bal(a) − bal(b): per gold class, each email's correctness under a − under b."""
    gold = np.asarray(gold)
    d = (np.asarray(pred_a) == gold).astype(float) - (np.asarray(pred_b) == gold).astype(float)
    return [d[gold == 1].tolist(), d[gold == 0].tolist()]


def label_quality(pred, gold) -> dict:
    from sklearn.metrics import f1_score

    pred, gold = np.asarray(pred), np.asarray(gold)
    return {"balanced accuracy": bal_acc(pred, gold), "accuracy": float((pred == gold).mean()),
            "positive rate": float(pred.mean()), "precision": float(gold[pred == 1].mean()) if pred.any() else float("nan"),
            "recall": float(pred[gold == 1].mean()), "F1-macro": float(f1_score(gold, pred, average="macro"))}


def nearest_budget(budgets, want: float) -> int:
    """The budget of the grid closest to ``want`` (the lower one on a tie)."""
    budgets = np.asarray(sorted(set(budgets)))
    return int(budgets[np.argmin(np.abs(budgets - want))])


def at_budget(df, encoder: str, oracle: str, strategy: str, n_labels: int, column: str = "f1"):
    """Per seed (sorted), the curve's value at ``n_labels``."""
    sel = df[(df.encoder == encoder) & (df.oracle == oracle) & (df.strategy == strategy) & (df.n_labels == n_labels)]
    return sel.sort_values("seed")[column].to_numpy()


def gain_units(df, encoder: str, oracle: str, strategy: str, min_labels: int, baseline: str = "random") -> list[float]:
    """Per seed: the mean over budgets ≥ ``min_labels`` of F1(strategy) − F1(baseline), same oracle."""
    sel = df[(df.encoder == encoder) & (df.oracle == oracle) & (df.n_labels >= min_labels)]
    piv = sel.pivot_table(index=["seed", "n_labels"], columns="strategy", values="f1")
    return (piv[strategy] - piv[baseline]).groupby("seed").mean().tolist()


def topic_lift(errors, topics, boot, seed: int, min_count: int) -> float:
    """Cross-fitted concentration of errors in topics, on one seed's test bootstrap ``boot`` (indices): the
    sample is split in two random halves; on half A the topic with the highest error rate (among topics with
    ≥ ``min_count`` items there) is chosen, and on half B its error rate minus B's overall error rate is
    returned.  Choosing and measuring on the same items would find a 'worst topic' in pure noise."""
    errors, topics = np.asarray(errors, float)[boot], np.asarray(topics)[boot]
    half = np.random.default_rng([seed, 3]).permutation(len(boot)) < len(boot) // 2
    a_top, a_err = topics[half], errors[half]
    rates = {t: a_err[a_top == t].mean() for t in np.unique(a_top) if (a_top == t).sum() >= min_count}
    if not rates:
        return 0.0
    worst = max(sorted(rates), key=lambda t: rates[t])
    b_top, b_err = topics[~half], errors[~half]
    if not (b_top == worst).any():
        return 0.0
    return float(b_err[b_top == worst].mean() - b_err.mean())


def fp_share(pred, gold) -> float:
    """Of the errors, the share that are false positives (½: balanced; 1: all errors say 'spam')."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    wrong = pred != gold
    return float((pred[wrong] == 1).mean()) if wrong.any() else 0.5


def exact(value: float) -> dict:
    """Units of a statistic known exactly (a ratio of prices): an interval of zero width."""
    return {"estimate": float(value), "lo": float(value), "hi": float(value), "se": 0.0, "n": 1}


def fmt(units) -> str:
    return evidence.fmt_interval(evidence.interval(units))


def break_even(budgets, f1_human, f1_llm: float, human_usd_per_label: float, llm_tokens: float) -> float:
    """The LLM price (USD per million tokens) at which full LLM labelling costs as much as the human labels
    that reach its F1: n* = the smallest budget whose human F1 ≥ ``f1_llm`` (∞ when none does), and
    price* = n* · human price / tokens · 10⁶.  Above price*, the human labels are the cheaper way to that F1."""
    budgets, f1_human = np.asarray(budgets, float), np.asarray(f1_human, float)
    order = np.argsort(budgets, kind="stable")
    budgets, f1_human = budgets[order], f1_human[order]
    reached = np.flatnonzero(f1_human >= f1_llm)
    if not len(reached):
        return float("inf")
    return float(budgets[reached[0]] * human_usd_per_label / llm_tokens * 1e6)
