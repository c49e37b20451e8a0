"""Chapter 6's study, one seed at a time: every encoder the chapter compares, its distances, its transfer.

    texts = prepare(model, tok, k)                          # every text encoded once (the frozen layers)
    result = run_seed(model, texts, seed, sizes)            # aligned models, fine-tunes, zero-shot scores

Per seed (:func:`run_seed`): the split of paragraphs (``data.split``); the *base* top layers and, for each
pair × alignment loss, the top layers aligned on the pair's train sentences, and a *placebo* (the same number
of updates by the sentence loss on mismatched pairs: what any extra training of the top layers does); for each of these encoders and
each task, a fine-tune on English and its zero-shot score on every test language; the relative distances of
the test translations; and, at the base encoder fine-tuned for each task, the gradient cosines.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import data as D
from . import experiment as X
from . import pos_data
from . import word_alignment as W
from .encoder import TopLayers, encode

LOSSES = ("sentence", "token")
POS_LANG = {"fra": "fr", "spa": "es", "deu_1996": "de", "tur": "tr"}   # the POS test languages with a UDHR code


def para_of(unit_id: str) -> tuple[int, int]:
    """(article, paragraph) of a POS row id ``a3.p1.s0``."""
    a, p, _ = unit_id.split(".")
    return int(a[1:]), int(p[1:])


@dataclass
class Texts:
    topic: dict        # lang → (rows, States): the sentences of data.sentences(lang)
    pos: dict          # lang → (rows, States, labels): the POS rows, tags as indices of pos_data.UPOS
    parallel: dict     # lang → (units, src States, tgt States): udhr_pairs("eng", lang)
    links: dict        # pair → word alignments of every parallel unit (simalign, cached)


def prepare(model, tok, k: int, langs=D.EVAL, pairs=D.PAIRS, max_length: int = 64, progress: bool = True) -> Texts:
    """Encode, once, every text the chapter reads (English and ``langs``), up to the top ``k`` layers; align
    the words of the ``pairs``' parallel sentences."""
    if not set(pairs) <= set(langs):
        raise ValueError(f"every aligned pair must also be a test language: {sorted(set(pairs) - set(langs))}")
    langs = ("eng", *langs)
    pos_langs = ["en"] + [POS_LANG[x] for x in langs if x in POS_LANG]
    topic = {lang: D.sentences(lang) for lang in langs}
    parallel = {lang: D.udhr_pairs("eng", lang) for lang in langs[1:]}
    pos = {lang: pos_data.load_pos(lang) for lang in pos_langs}
    unique: dict[tuple, int] = {}                                    # every distinct word list, encoded once
    row = lambda words: unique.setdefault(tuple(words), len(unique))  # noqa: E731
    topic_rows = {lang: [row(W.words(r["text"])) for r in rows] for lang, rows in topic.items()}
    par_rows = {lang: ([row(W.words(u["src"])) for u in units], [row(W.words(u["tgt"])) for u in units])
                for lang, units in parallel.items()}
    pos_rows = {lang: [row(r["words"]) for r in rows] for lang, rows in pos.items()}
    every = encode(model, tok, [list(w) for w in unique], k, max_length, progress=progress)
    topic = {lang: (rows, every.subset(topic_rows[lang])) for lang, rows in topic.items()}
    parallel = {lang: (units, every.subset(par_rows[lang][0]), every.subset(par_rows[lang][1]))
                for lang, units in parallel.items()}
    pos = {lang: (rows, every.subset(pos_rows[lang]), [[pos_data.UPOS.index(t) for t in r["upos"]] for r in rows])
           for lang, rows in pos.items()}
    links = {p: W.cached_alignments("eng", p, parallel[p][0], progress=progress) for p in pairs}
    return Texts(topic, pos, parallel, links)


def _pick(rows, keep) -> list[int]:
    return [i for i, r in enumerate(rows) if keep(r)]


def run_seed(model, texts: Texts, seed: int, S, bar=None) -> dict:
    """Everything one seed measures (see the module docstring); ``S``: the run's sizes (``k``, ``pairs``,
    ``eval_langs``, ``pos_test``, steps, learning rates, ``batch``, ``tau``, ``grad_batches``)."""
    import time

    t0 = time.perf_counter()
    test = D.split(seed)
    in_test = lambda r: (r["article"], r["paragraph"]) in test  # noqa: E731
    en_rows, en_states = texts.topic["eng"]
    tr_idx = _pick(en_rows, lambda r: not in_test(r))
    topic_train = (en_states.subset(tr_idx), [en_rows[i]["topic"] for i in tr_idx])
    topic_test = {}
    for lang in ("eng", *S.eval_langs):             # English: how well the task was learned, on its test paragraphs
        rows, st = texts.topic[lang]
        idx = _pick(rows, in_test)
        topic_test[lang] = (st.subset(idx), [rows[i]["topic"] for i in idx])
    rows, st, lab = texts.pos["en"]
    idx = _pick(rows, lambda r: para_of(r["id"]) not in test)
    pos_train = (st.subset(idx), [lab[i] for i in idx])
    pos_test, noun = {}, pos_data.UPOS.index("NOUN")
    for lang in ("en", *S.pos_test):
        rows, st, lab = texts.pos[lang]
        idx = list(range(len(rows))) if lang == "tr" else _pick(rows, lambda r: para_of(r["id"]) in test)
        pos_test[lang] = (st.subset(idx), [lab[i] for i in idx])
    par_test, par_train = {}, {}
    for lang in S.eval_langs:
        units, src, tgt = texts.parallel[lang]
        idx = _pick(units, in_test)
        par_test[lang] = (src.subset(idx), tgt.subset(idx))
    for pair in S.pairs:                            # what the alignments train on: the pair's train paragraphs
        units, src, tgt = texts.parallel[pair]
        idx = _pick(units, lambda r: not in_test(r))
        par_train[pair] = (src.subset(idx), tgt.subset(idx), [texts.links[pair][i] for i in idx])

    base = TopLayers(model, S.k).eval()
    encoders = {"base": base}
    for pair, (src, tgt, links) in par_train.items():
        for kind in LOSSES:
            encoders[(pair, kind)] = X.align(base, src, tgt, kind, steps=S.align_steps, lr=S.lr, batch=S.batch,
                                             seed=seed, tau=S.tau, alignments=links)
            if bar is not None:
                bar.update()
    # the placebo: the first pair's sentence loss on mismatched pairs (each English sentence with the translation
    # of another) — as many updates of the same layers by the same loss, with no translation in them
    src, tgt, _ = par_train[S.pairs[0]]
    half = len(tgt) // 2
    encoders["placebo"] = X.align(base, src, tgt.subset(list(range(half, len(tgt))) + list(range(half))),
                                  "sentence", steps=S.align_steps, lr=S.lr, batch=S.batch, seed=seed, tau=S.tau)
    if bar is not None:
        bar.update()
    out = {"seed": seed, "encoders": list(encoders), "distance": {}, "raw_distance": {}, "score": {}, "geometry": {},
           "noun_share": {lang: [sum(t == noun for t in y) / len(y) for y in lab] for lang, (_, lab) in pos_test.items()}}
    for name, top in encoders.items():
        for lang, (src, tgt) in par_test.items():
            d = X.pair_distances(None if name == "base" else top, src, tgt)
            out["distance"][(name, lang)] = d["relative"]
            out["raw_distance"][(name, lang)] = d["raw"]
        for task, (train, tests, n_labels) in {"topic": (topic_train, topic_test, len(D.TOPICS)),
                                              "pos": (pos_train, pos_test, len(pos_data.UPOS))}.items():
            t, h = X.fine_tune(top, task, *train, n_labels, steps=S.task_steps, lr=S.lr, head_lr=S.head_lr,
                               batch=S.batch, seed=seed)
            for lang, (st, lab) in tests.items():
                out["score"][(name, task, lang)] = X.correct(t, h, st, lab)
            if name == "base":
                geo = X.gradient_cosines(t, h, *train, {(pair, kind): (src, tgt, kind, links if kind == "token" else None)
                                                        for pair, (src, tgt, links) in par_train.items() for kind in LOSSES},
                                         n_batches=S.grad_batches, batch=S.batch, seed=seed, tau=S.tau)
                out["geometry"].update({(task, pair, kind): v for (pair, kind), v in geo.items()})
            if bar is not None:
                bar.update()
    out["seconds"] = time.perf_counter() - t0
    return out
