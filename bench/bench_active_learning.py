"""Pool-based active learning on SpamAssassin, three ways, on the same pool, model and initial labels:

    python3.11 -m venv /tmp/albench
    /tmp/albench/bin/pip install numpy scipy scikit-learn==1.9.1 small-text==1.4.1 scikit-activeml==1.0.1 tqdm datasets==5.2.0
    PYTHONPATH=. /tmp/albench/bin/python bench/bench_active_learning.py               # 3000 / 1000 emails, 20 × 10
    PYTHONPATH=. /tmp/albench/bin/python bench/bench_active_learning.py --rounds 5 --out /tmp/al.json

The peers live in their own virtual env (never in .venv); ``mlbook.training.active`` needs numpy only, and the
corpus loader ``mlbook.corpora.spamassassin`` needs ``datasets`` (hence ``datasets==5.2.0`` above; it reads
the table cached in the mlbook cache, or builds it from the npm package in node_modules/).

Data: ``--pool`` + ``--test`` emails drawn with ``--seed``; TF-IDF (sublinear tf, min_df 2, 20,000 features)
fitted on the pool texts; ``label`` 1 = spam.  The features are a *dense* float64 array for all three, because
scikit-activeml's wrapper rejects sparse input (``check_array`` without ``accept_sparse``) and the same input
keeps the three numerically comparable.  Model: ``LogisticRegression(max_iter=1000)``, refitted from scratch
each round; one initial labelled set of 10 items holding both classes, drawn with ``--seed``.

- ``ours``       ``mlbook.training.active.run(..., init=...)``;
- ``small-text`` ``PoolBasedActiveLearner(SklearnClassifierFactory(LogisticRegression), strategy, SklearnDataset)``
                 with ``PredictionEntropy`` / ``BreakingTies`` / ``LeastConfidence`` / ``RandomSampling``;
- ``skactiveml`` ``SklearnClassifier(LogisticRegression, classes=[0, 1])`` fitted on y with ``MISSING_LABEL``,
                 then ``UncertaintySampling(method=...).query(..., fit_clf=False)`` / ``RandomSampling``.

Reported per strategy: whether each peer picks the same *set* of items as ours in every round (the order
within a batch is not compared: small-text returns an ``argpartition``, unordered), the first round where
they differ, the largest |ΔF1-macro| between the curves, and the median seconds per round (fit + test
prediction + query, as ``Curve.seconds`` times ours).  How ties are broken differs: ours takes the lower
pool index, small-text whatever ``np.argpartition`` leaves, scikit-activeml a random one (``rand_argmax``);
and the peers train on the labelled rows in another order (scikit-activeml: pool order), which moves the
probabilities by float noise.  So where a peer's picks differ, the bench reruns it *in lockstep* (labelled set
= ours' before each round, via small-text's ``initialize_data`` and scikit-activeml's ``y``) and checks that
every differing item's uncertainty under ours' model is within 1e-9 of the batch's cut-off value: a tie, not
a disagreement.  For two classes BreakingTies' margin p(1) − p(2) = |2p − 1| orders like ours.  Random
sampling: the three RNGs differ (numpy Generator, the global np.random, a RandomState), so only its time counts.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

PIP = "/tmp/albench/bin/pip install small-text==1.4.1 scikit-activeml==1.0.1"
STRATEGIES = {"entropy": ("PredictionEntropy", "entropy"), "margin": ("BreakingTies", "margin_sampling"),
              "least_confidence": ("LeastConfidence", "least_confident"), "random": ("RandomSampling", None)}
TIE_TOL = 1e-9


def make_model():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro"))


def data(n_pool: int, n_test: int, seed: int):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from mlbook.corpora.spamassassin import spamassassin

    ds = spamassassin()
    texts, y = ds["text"], np.asarray(ds["label"], dtype=int)
    idx = np.random.default_rng(seed).permutation(len(y))
    pool, test = idx[:n_pool], idx[n_pool:n_pool + n_test]
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2, max_features=20000)
    X = vec.fit_transform([texts[i] for i in pool]).toarray()
    X_test = vec.transform([texts[i] for i in test]).toarray()
    return X, y[pool], X_test, y[test]


def initial(y, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    while True:
        init = rng.choice(len(y), size=n, replace=False)
        if len(np.unique(y[init])) == 2:
            return init


def ours(X, y, Xt, yt, strategy, init, batch, rounds, seed):
    from mlbook.training import active

    c = active.run(X, y, make_model, strategy, n_init=len(init), batch=batch, rounds=rounds + 1, seed=seed,
                   X_test=Xt, y_test=yt, metric=f1, init=init)
    picks = [c.labelled[len(init) + r * batch:len(init) + (r + 1) * batch] for r in range(rounds)]
    return {"picks": picks, "f1": c.score, "seconds": c.seconds[:rounds]}


def small_text(X, y, Xt, yt, strategy, init, batch, rounds, seed, follow=None):
    import small_text as st

    np.random.seed(seed)  # small-text's RandomSampling draws from the global numpy RNG
    pool = st.SklearnDataset(X, np.full(len(y), st.LABEL_UNLABELED), target_labels=np.array([0, 1]))
    test = st.SklearnDataset(Xt, yt, target_labels=np.array([0, 1]))
    al = st.PoolBasedActiveLearner(st.SklearnClassifierFactory(make_model(), 2),
                                   getattr(st, STRATEGIES[strategy][0])(), pool)
    out, t0 = {"picks": [], "f1": [], "seconds": []}, time.perf_counter()
    al.initialize_data(np.asarray(init), y[init])
    for r in range(rounds + 1):
        if follow is not None and r > 0:  # lockstep: the labelled set is ours' before this round
            al.initialize_data(np.asarray(follow[r]), y[follow[r]])
        out["f1"].append(f1(yt, al.classifier.predict(test)))
        if r == rounds:
            break
        q = al.query(num_samples=batch)
        out["picks"].append([int(i) for i in q])
        out["seconds"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        if follow is None:
            al.update(y[q])
    return out


def skactiveml(X, y, Xt, yt, strategy, init, batch, rounds, seed, follow=None):
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import RandomSampling, UncertaintySampling
    from skactiveml.utils import MISSING_LABEL

    method = STRATEGIES[strategy][1]
    qs = RandomSampling(random_state=seed) if method is None else UncertaintySampling(method=method, random_state=seed)
    lab = np.full(len(y), MISSING_LABEL)
    lab[init] = y[init]
    out = {"picks": [], "f1": [], "seconds": []}
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        if follow is not None:
            lab = np.full(len(y), MISSING_LABEL)
            lab[follow[r]] = y[follow[r]]
        clf = SklearnClassifier(make_model(), classes=[0, 1], random_state=seed).fit(X, lab)
        out["f1"].append(f1(yt, clf.predict(Xt)))
        if r == rounds:
            break
        q = qs.query(X, lab, batch_size=batch) if method is None else qs.query(X, lab, clf, fit_clf=False,
                                                                              batch_size=batch)
        out["picks"].append([int(i) for i in q])
        out["seconds"].append(time.perf_counter() - t0)
        lab[q] = y[q]
    return out


def tie_check(X, y, strategy, labelled, mine, theirs) -> float:
    """Largest |u − cut-off| over the items where two picks differ, u from ours' model on ``labelled``."""
    from mlbook.training.active import uncertainty

    unl = np.setdiff1d(np.arange(len(y)), labelled)
    u = dict(zip(unl.tolist(), uncertainty(make_model().fit(X[labelled], y[labelled]).predict_proba(X[unl]), strategy)))
    cut = min(u[i] for i in mine)
    return max(abs(u[i] - cut) for i in set(mine) ^ set(theirs))


def compare(X, y, Xt, yt, strategy, init, res, peer, fn, args) -> dict:
    a, b = res["ours"], res[peer]
    differ = [r for r, (p, q) in enumerate(zip(a["picks"], b["picks"])) if set(p) != set(q)]
    out = {"same_picks": not differ, "first_differing_round": differ[0] + 1 if differ else None,
           "max_abs_f1_diff": max(abs(s - t) for s, t in zip(a["f1"], b["f1"]))}
    if differ:  # rerun the peer on ours' labelled sets: are all differences ties at the cut-off?
        follow = [list(init) + sum(a["picks"][:r], []) for r in range(args.rounds + 1)]
        lock = fn(X, y, Xt, yt, strategy, init, args.batch, args.rounds, args.seed, follow=follow)
        gaps = [tie_check(X, y, strategy, np.array(follow[r]), p, q) for r, (p, q)
                in enumerate(zip(a["picks"], lock["picks"])) if set(p) != set(q)]
        out.update(lockstep_rounds_differing=len(gaps), lockstep_max_gap=max(gaps, default=0.0),
                   only_ties=all(g <= TIE_TOL for g in gaps))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", type=int, default=3000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=20, help="query rounds (each: fit, evaluate, query)")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-init", type=int, default=10)
    p.add_argument("--out", default="/tmp/bench_active_learning.json")
    args = p.parse_args(argv)

    t_start, load_before = time.perf_counter(), os.getloadavg()
    impls, missing = {"ours": ours}, {}
    for name, fn, module in (("small-text", small_text, "small_text"), ("skactiveml", skactiveml, "skactiveml")):
        try:
            __import__(module)
            impls[name] = fn
        except ImportError as e:
            missing[name] = f"{name} not importable ({e}); install it with: {PIP}"
            print(f"SKIPPED {missing[name]}")
    X, y, Xt, yt = data(args.pool, args.test, args.seed)
    init = initial(y, args.n_init, args.seed)
    print(f"pool {X.shape[0]} × {X.shape[1]} (spam {y.mean():.1%}), test {len(yt)}, init {args.n_init} "
          f"({int(y[init].sum())} spam), {args.rounds} rounds × {args.batch}, seed {args.seed}")
    out = {"args": vars(args), "platform": platform.platform(), "load_before": load_before, "missing": missing,
           "init": [int(i) for i in init], "strategies": {}}
    rows = []
    for strategy in STRATEGIES:
        res = {name: fn(X, y, Xt, yt, strategy, init, args.batch, args.rounds, args.seed) for name, fn in impls.items()}
        cmp = {} if strategy == "random" else {
            peer: compare(X, y, Xt, yt, strategy, init, res, peer, impls[peer], args) for peer in impls if peer != "ours"}
        out["strategies"][strategy] = {"runs": res, "compare": cmp}

        def same(peer):
            if peer not in impls:
                return "missing"
            if strategy == "random":
                return "n/a (RNGs differ)"
            c = cmp[peer]
            if c["same_picks"]:
                return f"yes, {args.rounds}/{args.rounds}"
            tie = "ties only" if c["only_ties"] else f"NOT ties (gap {c['lockstep_max_gap']:.1e})"
            return f"no from round {c['first_differing_round']} ({tie})"

        ms = [f"{1000 * np.median(res[k]['seconds']):.0f}" if k in res else "—" for k in ("ours", "small-text", "skactiveml")]
        rows.append(f"| {strategy} | {same('small-text')} | {same('skactiveml')} | " + " | ".join(ms) + " |")
    print("\n| strategy | same picks ours=small-text | ours=skactiveml | ms/round ours | small-text | skactiveml |")
    print("|---|---|---|---:|---:|---:|")
    print("\n".join(rows))
    print("\nF1-macro curves, max |Δ| vs ours; lockstep (peer fed ours' labelled set): rounds differing, max gap "
          f"of a differing item's uncertainty to the cut-off (≤ {TIE_TOL:g}: a tie)")
    for strategy, s in out["strategies"].items():
        for peer, c in s["compare"].items():
            extra = (f"; lockstep: {c['lockstep_rounds_differing']} rounds differ, max gap {c['lockstep_max_gap']:.1e}"
                     if "only_ties" in c else "")
            print(f"  {strategy:16s} {peer:10s} max |ΔF1| {c['max_abs_f1_diff']:.4f}{extra}")
        final = ", ".join(f"{k} {v['f1'][-1]:.3f}" for k, v in s["runs"].items())
        print(f"  {strategy:16s} final F1-macro at {args.n_init + args.rounds * args.batch} labels: {final}")
    out["load_after"], out["wall_s"] = os.getloadavg(), time.perf_counter() - t_start
    print(f"\nwall {out['wall_s']:.0f} s; load average before {load_before[0]:.2f}, after {out['load_after'][0]:.2f} "
          "(1-minute; above ~0.5 before the run: contended, times are upper bounds)")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"written {args.out}")
    return out


if __name__ == "__main__":
    main()
