"""Linear probes, with the control task that says whether a probe reads the representation
or learns the task itself (Hewitt & Liang 2019).

A probe is a logistic regression from one site's activations to a property (the continent
of the country a prompt names).  Its test accuracy alone does not show the model encodes
the property: a flexible probe can memorise.  The control task gives every *item* (here a
country) a random label, fixed across its prompts, with the real labels' class shares;
a probe that scores well on it is memorising items.  *Selectivity* = accuracy on the real
task − accuracy on the control task, both on held-out prompts of seen items.
"""
from __future__ import annotations


def control_labels(items: list, labels: list, seed: int = 0) -> list:
    """A random label per distinct item (the real labels of the items, shuffled), repeated
    wherever the item occurs: same class shares, no relation to the property."""
    import random

    first = {}
    for it, lab in zip(items, labels):
        first.setdefault(it, lab)
    keys = list(first)
    shuffled = [first[k] for k in keys]
    random.Random(seed).shuffle(shuffled)
    table = dict(zip(keys, shuffled))
    return [table[it] for it in items]


def probe_accuracy(X_train, y_train, X_test, y_test, C: float = 1.0) -> float:
    """Test accuracy of a standardised, L2-regularised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    clf.fit(X_train, y_train)
    return float((clf.predict(X_test) == y_test).mean())
