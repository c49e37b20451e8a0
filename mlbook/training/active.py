"""Pool-based active learning: uncertainty sampling and the loop that asks an annotator for labels.

A classifier trained on the labelled set L gives, for every unlabelled pool item x, class probabilities
p(c | x).  An uncertainty strategy asks next for the items the classifier is least sure about:

    least confidence   u(x) = 1 − max_c p(c | x)
    margin             u(x) = −(p_(1)(x) − p_(2)(x))          (p_(1) ≥ p_(2) the two largest)
    entropy            u(x) = −Σ_c p(c | x) log p(c | x)

and queries the ``batch`` items of largest u (ties: the lower pool index first, so a pick is reproducible
and comparable with other libraries).  ``random`` draws them uniformly instead.  For two classes the three
uncertainty scores are monotone in |p(1 | x) − ½| and pick the same items; they differ from three classes on.

The loop (``run``) starts from ``n_init`` random items, then for each round refits the classifier from
scratch on L, evaluates it on a fixed test set, and queries the next batch.  Labels come from an *oracle
array*: the label the annotator (a human, the gold standard; or an LLM) gives each pool item, revealed
only when queried.  While L holds one class only, no classifier can be fitted and the loop queries at random
(the cold start).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

STRATEGIES = ("random", "entropy", "margin", "least_confidence")


def uncertainty(proba, strategy: str) -> np.ndarray:
    """u(x) for each row of ``proba`` (n, classes); larger = asked first."""
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"proba must be (n, classes ≥ 2), got shape {p.shape}")
    if strategy == "least_confidence":
        return 1.0 - p.max(axis=1)
    if strategy == "margin":
        top2 = np.sort(p, axis=1)[:, -2:]
        return -(top2[:, 1] - top2[:, 0])
    if strategy == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    raise ValueError(f"unknown uncertainty strategy {strategy!r}; one of {STRATEGIES[1:]}")


def query(proba, strategy: str, batch: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices (into the rows of ``proba``) of the ``batch`` items to label next, most uncertain first."""
    n = len(proba)
    batch = min(int(batch), n)
    if strategy == "random":
        if rng is None:
            raise ValueError("random sampling needs an rng")
        return np.sort(rng.choice(n, size=batch, replace=False))
    u = uncertainty(proba, strategy)
    return np.argsort(-u, kind="stable")[:batch]


@dataclass
class Curve:
    """One run of the loop: per round, the labels used, the test metric and the test positive rate."""

    strategy: str
    n_labels: list[int] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    positive_rate: list[float] = field(default_factory=list)
    labelled: list[int] = field(default_factory=list)  # pool indices in the order they were asked
    seconds: list[float] = field(default_factory=list)  # wall time of each round (fit + evaluate + query)


def _rows(X, idx):
    return X[np.asarray(idx)]


def run(X_pool, oracle, make_model: Callable, strategy: str, *, n_init: int, batch: int, rounds: int, seed: int,
        X_test, y_test, metric: Callable, positive: int = 1, init: np.ndarray | None = None) -> Curve:
    """Pool-based active learning: ``rounds`` evaluations, the first after ``n_init`` labels, each later one
    after ``batch`` more.  ``oracle[i]`` is the label the annotator gives pool item i; ``make_model()``
    returns a fresh classifier with ``fit``/``predict_proba``/``predict``; ``metric(y_true, y_pred)``.
    ``init``: the first labelled items (default: ``n_init`` drawn with ``seed``), so that conditions can
    share one start."""
    import time

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of {STRATEGIES}")
    oracle = np.asarray(oracle)
    n = len(oracle)
    if n_init + batch * (rounds - 1) > n:
        raise ValueError(f"{n_init} + {batch} × {rounds - 1} labels asked of a pool of {n}")
    rng = np.random.default_rng(seed)
    labelled = list(rng.choice(n, size=n_init, replace=False) if init is None else np.asarray(init)[:n_init])
    unlabelled = np.setdiff1d(np.arange(n), labelled)
    curve = Curve(strategy)
    y_test = np.asarray(y_test)
    for r in range(rounds):
        t0 = time.perf_counter()
        y_l = oracle[labelled]
        if len(np.unique(y_l)) < 2:  # cold start: nothing to fit yet
            model, pred = None, np.full(len(y_test), y_l[0])
        else:
            model = make_model().fit(_rows(X_pool, labelled), y_l)
            pred = model.predict(X_test)
        curve.n_labels.append(len(labelled))
        curve.score.append(float(metric(y_test, pred)))
        curve.positive_rate.append(float(np.mean(pred == positive)))
        if r < rounds - 1:
            if model is None or strategy == "random":
                pick = query(np.zeros((len(unlabelled), 2)), "random", batch, rng)
            else:
                pick = query(model.predict_proba(_rows(X_pool, unlabelled)), strategy, batch)
            labelled += unlabelled[pick].tolist()
            unlabelled = np.delete(unlabelled, pick)
        curve.seconds.append(time.perf_counter() - t0)
    curve.labelled = [int(i) for i in labelled]
    return curve
