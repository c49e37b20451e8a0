"""Chapter 9's experiment: the pool and the test set, the three encoders' features, the annotation
conditions (who labels, how items are chosen), their costs and their learning curves.

A *condition* is an oracle (the gold labels, standing for the human annotators; or an LLM interface's
labels) and a way of choosing which pool items get labelled (random, or an uncertainty strategy of
``mlbook.training.active``); "full" labels the whole pool at once.  Every classifier is a logistic regression
on one encoder's features, evaluated against the *gold* labels of the test set.

What a seed changes: the first labelled items (shared by every strategy of that seed), the random draws,
and the test set, which is a bootstrap resample of the held-out emails — so the spread over seeds holds both
the sampling of labels and that of the test set, and a per-seed difference is a paired resampling unit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlbook.core.cache import cached_folder, key_of, source_digest
from mlbook.models import embedding, loading
from mlbook.training import active

VERSION = 1
ENCODERS = {"tfidf": None, "minilm": ("sentence-transformers/all-MiniLM-L6-v2", ""),
            "e5": ("intfloat/multilingual-e5-small", "query: ")}
PAPER_HUMAN_USD_PER_LABEL = 316 / 3800  # the paper: $316 for 3,800 human labels
PAPER_LLM_USD_PER_LABEL = 43 / 25974  # the paper: $43 for 25,974 GPT-5.2 labels
PAPER_HUMAN_TO_LLM_LABELS = 5000 / 25974  # the paper's human labels per LLM label


def split(n: int, n_pool: int, n_test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed pool and test indices into a corpus of ``n`` items (disjoint, drawn with ``seed``)."""
    if n_pool + n_test > n:
        raise ValueError(f"a pool of {n_pool} and a test set of {n_test} need {n_pool + n_test} items; the corpus has {n}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[:n_pool]), np.sort(perm[n_pool:n_pool + n_test])


def embeddings(name: str, prefix: str, texts: list[str], ids: list[str], max_length: int, device: str = "cpu"):
    """Sentence embeddings of ``texts`` with the encoder ``name`` (``mlbook.models.embedding``), cached."""
    key = key_of("ch09-embed", name, prefix, list(ids), max_length, VERSION, source_digest("mlbook.models.embedding"))

    def build(folder):
        model, tok = loading.load_encoder(name, device=device)
        np.save(folder / "E.npy", embedding.embed(model, tok, texts, prefix=prefix, max_length=max_length).numpy())
        return {"encoder": name, "n": len(texts)}

    return np.load(cached_folder(f"ch09/embed-{key}", build) / "E.npy")


def features(kind: str, pool_texts, test_texts, pool_ids, test_ids, max_length: int, device: str = "cpu"):
    """(X_pool, X_test) of one encoder: TF-IDF fitted on the pool's texts (unsupervised: no label is used),
    or sentence embeddings."""
    if kind not in ENCODERS:
        raise ValueError(f"unknown encoder {kind!r}; one of {list(ENCODERS)}")
    if kind == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=20000)
        return vec.fit_transform(pool_texts), vec.transform(test_texts)
    name, prefix = ENCODERS[kind]
    E = embeddings(name, prefix, list(pool_texts) + list(test_texts), list(pool_ids) + list(test_ids), max_length,
                   device)
    return E[:len(pool_texts)], E[len(pool_texts):]


def make_model(kind: str):
    """A fresh classifier for one encoder: logistic regression (C = 1) with classes weighted inversely to
    their frequency in the labels it is given (on dense embeddings after standardising each dimension on the
    labelled items).  Unweighted, C = 1 on TF-IDF predicts the majority class until some 200 labels, and
    every comparison at small budgets would be about regularisation instead of labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    return lr if kind == "tfidf" else make_pipeline(StandardScaler(), lr)


def f1_macro(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


@dataclass(frozen=True)
class Prices:
    """What a label costs: a human label a fixed price, an LLM label the tokens it reads and writes."""

    human_usd_per_label: float = PAPER_HUMAN_USD_PER_LABEL
    llm_usd_per_mtok_in: float = 2.0
    llm_usd_per_mtok_out: float = 8.0

    def llm(self, tokens_in, tokens_out) -> float:
        """Cost of LLM labels reading ``tokens_in`` tokens in all and writing ``tokens_out``."""
        return (float(np.sum(tokens_in)) * self.llm_usd_per_mtok_in + float(np.sum(tokens_out)) * self.llm_usd_per_mtok_out) / 1e6

    def human(self, n_labels) -> float:
        return float(n_labels) * self.human_usd_per_label


def curves(X_pool, X_test, y_test, oracles: dict, kind: str, seeds, *, n_init: int, batch: int, rounds: int,
           strategies: dict, progress: bool = True) -> list[dict]:
    """Every condition's learning curve, for each seed: ``strategies`` maps an oracle name to the
    strategies run with it.  One row per (seed, oracle, strategy, round)."""
    from tqdm.auto import tqdm

    rows = []
    y_test = np.asarray(y_test)
    jobs = [(s, o, st) for s in seeds for o, sts in strategies.items() for st in sts]
    for seed, o, st in tqdm(jobs, desc=f"AL curves ({kind})", disable=not progress):
        init, boot = first_labels(oracles["gold"], n_init, seed), test_bootstrap(len(y_test), seed)
        c = active.run(X_pool, oracles[o], lambda: make_model(kind), st, n_init=n_init, batch=batch, rounds=rounds,
                       seed=seed, X_test=X_test[boot], y_test=y_test[boot], metric=f1_macro, init=init)
        for r, (n, f, pr, sec) in enumerate(zip(c.n_labels, c.score, c.positive_rate, c.seconds)):
            rows.append({"encoder": kind, "seed": seed, "oracle": o, "strategy": st, "round": r, "n_labels": n,
                         "f1": f, "positive_rate": pr, "seconds": sec, "queried": c.labelled[:n]})
    return rows


def first_labels(gold, n_init: int, seed: int) -> np.ndarray:
    """A seed's first labelled pool items: random, redrawn until they hold both gold classes (so that every
    condition fits a classifier from its first round); the same items for every oracle and strategy."""
    rng = np.random.default_rng([seed, 1])
    gold = np.asarray(gold)
    for _ in range(1000):
        init = rng.choice(len(gold), size=n_init, replace=False)
        if len(np.unique(gold[init])) > 1:
            return init
    raise ValueError("the pool's gold labels hold one class only")


def test_bootstrap(n_test: int, seed: int) -> np.ndarray:
    """A seed's test set: ``n_test`` indices into the held-out emails, drawn with replacement."""
    return np.random.default_rng([seed, 2]).integers(0, n_test, size=n_test)


def full(X_pool, X_test, y_test, labels, kind: str, seeds) -> tuple[list[dict], np.ndarray]:
    """"Full" labelling: one classifier on the whole pool's labels, evaluated on each seed's test bootstrap;
    also its predictions on the whole test set (for the error profile)."""
    labels, y_test = np.asarray(labels), np.asarray(y_test)
    if len(np.unique(labels)) < 2:  # an annotator that gives one label teaches a constant
        pred = np.full(len(y_test), labels[0])
    else:
        pred = make_model(kind).fit(X_pool, labels).predict(X_test)
    out = []
    for seed in seeds:
        boot = test_bootstrap(len(y_test), seed)
        out.append({"seed": seed, "f1": f1_macro(y_test[boot], pred[boot]), "positive_rate": float(pred[boot].mean()),
                    "boot": boot})
    return out, pred
