"""Active learning: each strategy's pick on hand-made probability tables, and the loop's bookkeeping."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from mlbook.training import active

# three classes, worked by hand:
#   row  p                 1 − max   margin p1 − p2   entropy (nats)
#   0    (0.90 .05 .05)    0.10      0.85             0.394
#   1    (0.40 .40 .20)    0.60      0.00             1.055
#   2    (0.50 .25 .25)    0.50      0.25             1.040
#   3    (0.34 .33 .33)    0.66      0.01             1.0986
#   4    (0.55 .45 .00)    0.45      0.10             0.688
P = np.array([[.9, .05, .05], [.4, .4, .2], [.5, .25, .25], [.34, .33, .33], [.55, .45, 0.0]])


def test_scores_by_hand():
    np.testing.assert_allclose(active.uncertainty(P, "least_confidence"), [.1, .6, .5, .66, .45])
    np.testing.assert_allclose(active.uncertainty(P, "margin"), [-.85, 0, -.25, -.01, -.1], atol=1e-12)
    want = [-sum(p * np.log(p) for p in row if p > 0) for row in P]
    np.testing.assert_allclose(active.uncertainty(P, "entropy"), want)
    assert abs(want[3] - 1.0986) < 1e-3 and abs(want[4] - 0.6881) < 1e-3


def test_the_three_strategies_pick_differently_on_three_classes():
    assert active.query(P, "least_confidence", 2).tolist() == [3, 1]
    assert active.query(P, "margin", 2).tolist() == [1, 3]
    assert active.query(P, "entropy", 2).tolist() == [3, 1]
    assert active.query(P, "entropy", 3).tolist() == [3, 1, 2]
    assert active.query(P, "least_confidence", 3).tolist() == [3, 1, 2]
    assert active.query(P, "margin", 3).tolist() == [1, 3, 4]  # margin prefers row 4 (0.10) to row 2 (0.25)


def test_two_classes_all_uncertainty_strategies_agree_and_ties_go_to_the_lower_index():
    p1 = np.array([.9, .5, .3, .5, .62, .05])
    P2 = np.stack([1 - p1, p1], axis=1)
    for s in ("entropy", "margin", "least_confidence"):
        assert active.query(P2, s, 4).tolist() == [1, 3, 4, 2]


def test_bad_input():
    with pytest.raises(ValueError, match="unknown"):
        active.uncertainty(P, "variance")
    with pytest.raises(ValueError, match="shape"):
        active.uncertainty(np.ones(3), "entropy")
    with pytest.raises(ValueError, match="rng"):
        active.query(P, "random", 2)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    X = rng.normal(size=(n, 5)) + y[:, None] * 1.5
    return X, y


def test_loop_bookkeeping_and_reproducibility():
    X, y = _data()
    kw = dict(n_init=10, batch=5, rounds=6, seed=3, X_test=X[300:], y_test=y[300:],
              metric=lambda a, b: f1_score(a, b, average="macro"))
    make = lambda: LogisticRegression(max_iter=500)  # noqa: E731
    a = active.run(X[:300], y[:300], make, "entropy", **kw)
    b = active.run(X[:300], y[:300], make, "entropy", **kw)
    assert a.n_labels == [10, 15, 20, 25, 30, 35]
    assert a.labelled == b.labelled and a.score == b.score
    assert len(set(a.labelled)) == 35
    r = active.run(X[:300], y[:300], make, "random", **kw)
    assert r.labelled[:10] == a.labelled[:10]  # the same start for every strategy
    assert a.score[-1] > 0.7
    # the oracle, not the gold, is what the loop learns from: inverted labels give an inverted classifier
    inv = active.run(X[:300], 1 - y[:300], make, "random", **kw)
    assert inv.score[-1] < 0.3


def test_entropy_queries_the_items_the_model_is_least_sure_of():
    X, y = _data()
    make = lambda: LogisticRegression(max_iter=500)  # noqa: E731
    c = active.run(X[:300], y[:300], make, "entropy", n_init=20, batch=10, rounds=2, seed=0, X_test=X[300:],
                   y_test=y[300:], metric=lambda a, b: float((a == b).mean()))
    first = np.array(c.labelled[:20])
    rest = np.setdiff1d(np.arange(300), first)
    p = make().fit(X[first], y[first]).predict_proba(X[rest])[:, 1]
    want = rest[np.argsort(-(-np.abs(p - 0.5)), kind="stable")[:10]]
    assert sorted(c.labelled[20:]) == sorted(want.tolist())


def test_cold_start_queries_at_random_until_both_classes_are_seen():
    X, y = _data()
    y = y.copy()
    init = np.flatnonzero(y[:300] == 0)[:4]
    c = active.run(X[:300], y[:300], lambda: LogisticRegression(), "margin", n_init=4, batch=20, rounds=3, seed=0,
                   X_test=X[300:], y_test=y[300:], metric=lambda a, b: float((a == b).mean()), init=init)
    assert c.positive_rate[0] == 0.0 and c.n_labels == [4, 24, 44]
    with pytest.raises(ValueError, match="pool of 300"):
        active.run(X[:300], y[:300], LogisticRegression, "margin", n_init=10, batch=100, rounds=4, seed=0,
                   X_test=X, y_test=y, metric=f1_score)
