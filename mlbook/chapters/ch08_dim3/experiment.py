"""Chapter 8's experiment per seed: V and M trained (cached), every merge of the grid built from them
(V's vision tower + projector + a merged language model), each scored on validation and test; the
summary over seeds and the paper's claims as numbers."""
from __future__ import annotations

from mlbook.interp.crosslingual import thirds
from mlbook.merging.folders import merge_state_dicts
from mlbook.merging.methods import METHODS

from .evaluation import (
    build_suite,
    evaluate,
    image_processor,
    lm_weights,
    load_three,
    set_lm,
    similarity,
)

BASELINES = ("task_arithmetic", "ties", "dare", "breadcrumbs")


def grid(spec: dict) -> list[tuple[str, dict]]:
    """The merge configurations of a sweep from a compact spec (the chapter card's ``grid``):
    ``{"task_arithmetic": {"lambdas": [[1, 1], …]}, "ties": {"density": […], "lam": […]}, …}`` → every
    combination per method, as (method, kwargs)."""
    import itertools


    out = []
    for method, options in spec.items():
        if method not in METHODS:
            raise ValueError(f"unknown merge method {method!r} in the grid; one of {METHODS}")
        keys = sorted(options)
        for values in itertools.product(*(options[k] for k in keys)):
            out.append((method, dict(zip(keys, values))))
    return out


def label(method: str, kw: dict) -> str:
    """A short readable name of a configuration, e.g. ``ties(density=0.5, lam=1)``."""
    args = ", ".join(f"{k}={v}" for k, v in sorted(kw.items()))
    return f"{method}({args})" if args else method


def multilingual(scores: dict) -> float:
    """Mean over the non-English languages of a {lang: accuracy} dict."""
    xs = [v for k, v in scores.items() if k != "en"]
    return sum(xs) / len(xs) if xs else float("nan")


def others(langs: list[str]) -> list[str]:
    """The languages other than English."""
    return [lang for lang in langs if lang != "en"]


def asked(name: str, langs: list[str]) -> dict:
    """What each model is asked on the test split ({kind: languages}, for ``evaluation.evaluate``): exactly what
    some number of the chapter reads. V and DiM3: the visual questions in every language (English ones: the
    premise and claim 3) and in words in the other languages; B: in words (the premise's M − B); M and the
    baselines: both kinds in the other languages (claims 1 and 2, and M's own multilingual numbers)."""
    if name in ("V", "dim3"):
        return {"vqa": list(langs), "text": others(langs)}
    if name == "B":
        return {"text": others(langs)}
    return {"vqa": others(langs), "text": others(langs)}


def run_seed(lm_name: str, langs: list[str], seed: int, S, grid_spec: dict, v_dir, m_dir, dim3_kw: dict | None = None,
             chat: bool = False, device: str = "cpu", progress: bool = True, shared: dict | None = None) -> dict:
    """One seed of the experiment on the checkpoints B (``lm_name``), V (``v_dir``) and M (``m_dir``): evaluate
    B, V, M, sweep every baseline on the validation split (the other languages only: the choice reads them
    alone) and keep each method's best configuration (a method with a single configuration in the grid skips
    validation: there is nothing to choose), then evaluate those and DiM3 on the test split (what each model is
    asked: :func:`asked`; held-out UDHR too for B, V, M and DiM3), and the per-layer cross-lingual similarity of
    B, V, M and DiM3.
    ``S``: the sizes (run.sizes). ``shared``: a dict kept across the seeds of a run (or None): the held-out UDHR
    paragraphs are the same for every seed, so a model's NLL on them — keyed by its checkpoints — is computed
    once. Returns the numbers, and the weights and suite for further use."""
    import time

    from tqdm.auto import tqdm


    t0 = time.perf_counter()
    B, V, M, tok = load_three(lm_name, v_dir, m_dir, device)
    names = set(B.state_dict())
    W = {"B": lm_weights(B, names), "V": lm_weights(V, names), "M": lm_weights(M, names)}
    del B, M
    suite = build_suite(tok, V, langs, S.n_val, S.n_test, seed, S.n_udhr, chat=chat, image_processor=image_processor(v_dir))
    work = V  # one LLaVA container: V's vision tower + projector, any LM weights
    res = {"v_dir": str(v_dir), "m_dir": str(m_dir), "test": {}, "val": {}, "sim": {}}
    nll = {} if shared is None else shared.setdefault(("udhr_nll", lm_name, str(v_dir), str(m_dir), S.n_udhr, *dim3_key(dim3_kw)), {})

    def score(name, weights, split, kinds=None, udhr=False):
        set_lm(work, weights)
        r = evaluate(work, tok, suite, split, kinds=kinds, udhr=udhr and name not in nll)
        if udhr:
            r["udhr_nll"] = nll.setdefault(name, r.get("udhr_nll"))
        res[split][name] = r
        return r

    configs = grid(grid_spec)
    n_of = {m: sum(1 for m_, _ in configs if m_ == m) for m, _ in configs}
    bar = tqdm(total=len(configs) + 6, desc=f"seed {seed}: merge + evaluate", disable=not progress)
    for name in ("B", "V", "M"):
        score(name, W[name], "test", asked(name, langs), udhr=True)
        bar.update()
    best = {}
    val_kinds = {"vqa": others(langs), "text": others(langs)}
    for method, kw in configs:  # the sweep: every baseline configuration on the validation split
        merged = merge_state_dicts(W["B"], [W["V"], W["M"]], method, seed=seed, **kw)
        if n_of[method] == 1:  # nothing to choose between: no validation pass
            best[method] = (None, kw, merged)
        else:
            r = score(label(method, kw), merged, "val", val_kinds)
            val = 0.5 * (multilingual(r["vqa"]) + multilingual(r["text"]))
            if method not in best or val > best[method][0]:
                best[method] = (val, kw, merged)
        bar.update()
    res["best"] = {m: {"config": label(m, kw), "kw": kw, "val": v} for m, (v, kw, _) in best.items()}
    for method in list(best):
        score(method, best.pop(method)[2], "test", asked(method, langs))  # pop: one merged model in memory at a time
    bar.update()
    dim3 = merge_state_dicts(W["B"], [W["V"], W["M"]], "dim3", **(dim3_kw or {}))
    score("dim3", dim3, "test", asked("dim3", langs), udhr=True)
    bar.update()
    for name, weights in (("B", W["B"]), ("V", W["V"]), ("M", W["M"]), ("dim3", dim3)):
        set_lm(work, weights)
        res["sim"][name] = {k: v.tolist() for k, v in similarity(work, tok, suite, n_scenes=S.n_sim).items()}
    bar.update()
    bar.close()
    res["seconds"] = time.perf_counter() - t0
    res["weights"], res["work"], res["tok"], res["suite"] = W | {"dim3": dim3}, work, tok, suite
    return res


def dim3_key(dim3_kw: dict | None) -> tuple:
    """DiM3's options as a hashable key (its UDHR NLL depends on them)."""
    return tuple(sorted((dim3_kw or {}).items()))


SHORT = {"b": "B", "v": "V", "m": "M", "ta": "task_arithmetic", "ties": "ties", "dare": "dare",
         "breadcrumbs": "breadcrumbs", "dim3": "dim3"}
BASELINES = ("ta", "ties", "dare", "breadcrumbs")


def summarise(results: dict) -> dict:
    """Mean and sd over seeds of every number the card records; ``results``: {seed: run_seed(...)}.

    mvqa / mtext: multilingual accuracy (non-English languages) on visual / text-only questions;
    en_vqa: English visual questions; udhr_nll: held-out UDHR, nats per token, mean over the non-English
    languages (B, V, M and DiM3 only)."""
    import numpy as np


    seeds = sorted(results)
    m: dict = {"n_seeds": len(seeds)}

    def put(key, per_seed):
        xs = [float(per_seed(results[s])) for s in seeds]
        m[key], m[key + "_std"] = float(np.mean(xs)), float(np.std(xs))
        m[key + "_per_seed"] = xs

    first = results[seeds[0]]["test"]
    for short, name in SHORT.items():  # each model's numbers on what it was asked (run_seed's ``asked``)
        t = first[name]
        if "vqa" in t:
            put(f"{short}_mvqa", lambda r: multilingual(r["test"][name]["vqa"]))
        if "text" in t:
            put(f"{short}_mtext", lambda r: multilingual(r["test"][name]["text"]))
        if "en" in t.get("vqa", {}):
            put(f"{short}_en_vqa", lambda r: r["test"][name]["vqa"]["en"])
        if "udhr_nll" in t:  # B, V, M and DiM3 (run_seed skips the baselines)
            put(f"{short}_udhr_nll", lambda r: np.mean([v for k, v in r["test"][name]["udhr_nll"].items() if k != "en"]))
    base = [SHORT[b] for b in BASELINES]
    for task in ("mvqa", "mtext"):
        metric = "vqa" if task == "mvqa" else "text"
        put(f"best_baseline_{task}", lambda r: max(multilingual(r["test"][b][metric]) for b in base))
        put(f"dim3_margin_{task}", lambda r: multilingual(r["test"]["dim3"][metric])
            - max(multilingual(r["test"][b][metric]) for b in base))
        put(f"dim3_gain_{task}", lambda r: multilingual(r["test"]["dim3"][metric]) - multilingual(r["test"]["V"][metric]))
    put("dim3_en_vqa_retention", lambda r: r["test"]["dim3"]["vqa"]["en"] / max(r["test"]["V"]["vqa"]["en"], 1e-9))
    n_layers = len(results[seeds[0]]["sim"]["V"]["vqa"]) - 1
    parts = dict(zip(("lower", "middle", "upper"), thirds(n_layers)))
    for kind in ("vqa", "text"):
        for part, layers in parts.items():
            put(f"sim_gain_{part}_{kind}", lambda r: np.mean([r["sim"]["dim3"][kind][i] - r["sim"]["V"][kind][i]
                                                              for i in layers]))
    put("sim_gain_middle_minus_rest", lambda r: min(
        np.mean([r["sim"]["dim3"][k][i] - r["sim"]["V"][k][i] for i in parts["middle"]])
        - max(np.mean([r["sim"]["dim3"][k][i] - r["sim"]["V"][k][i] for i in parts[p]]) for p in ("lower", "upper"))
        for k in ("vqa", "text")))
    return m


RETENTION = 0.90   # claim 3: DiM3 keeps at least this share of V's English visual-question accuracy


def claim_units(results: dict) -> dict:
    """The claims' statistics and resampling units (one stratum per seed) from ``{seed: run_seed(...)}``, for
    ``mlbook.core.evidence``: test items, paired across the merges (every model answers the same items);
    for claim 4 the (target-language item, its English twin) pairs of the similarity.

    - ``dim3_minus_<baseline>_<task>``: DiM3 minus one baseline (at its validation-best configuration), per
      item in the non-English languages — claim 1 tests each baseline, so no baseline is picked on the test
      items; ``dim3_margin_<task>``, DiM3 minus the seed's best baseline *by test accuracy*, is descriptive only
      (the max of four noisy test accuracies is biased upwards); ``dim3_gain_<task>``: DiM3 minus V, per item;
    - ``dim3_en_retention_margin``: DiM3's correctness minus RETENTION × V's, per English visual item (> 0 ⟺
      DiM3 keeps more than RETENTION of V's accuracy);
    - ``sim_middle_minus_<lower|upper>_<kind>``: per pair, the similarity gain (DiM3 − V) averaged over the
      middle third of the layers minus the same average over the lower (upper) third;
    - the premise: ``v_en_vqa_above_chance`` (V's correctness minus a guess's, per English visual item) and
      ``m_minus_b_mtext`` (M minus B, per non-English item in words)."""
    import numpy as np

    seeds = sorted(results)
    base = [SHORT[b] for b in BASELINES]
    units: dict = {}

    def items(r, name, kind, english=False, what="correct"):
        """One model's per-item correctness (or a guess's, ``what="chance"``) on the English items of a kind or
        on the others, in the suite's order: every model's list is the same items in the same order."""
        t = r["test"][name]
        keep = (np.array(t[f"{kind}_langs"]) == "en") == english
        return np.array(t[f"{kind}_{what}"], float)[keep]

    for task, kind in (("mvqa", "vqa"), ("mtext", "text")):
        margin, gain, each = [], [], {b: [] for b in BASELINES}
        for s in seeds:
            r = results[s]
            d = items(r, "dim3", kind)
            best = max(base, key=lambda b: multilingual(r["test"][b][kind]))
            margin.append((d - items(r, best, kind)).tolist())
            gain.append((d - items(r, "V", kind)).tolist())
            for b in BASELINES:
                each[b].append((d - items(r, SHORT[b], kind)).tolist())
        units[f"dim3_margin_{task}__units"], units[f"dim3_gain_{task}__units"] = margin, gain
        for b in BASELINES:
            units[f"dim3_minus_{b}_{task}__units"] = each[b]
    units["dim3_en_retention_margin__units"] = [
        (items(results[s], "dim3", "vqa", english=True) - RETENTION * items(results[s], "V", "vqa", english=True)).tolist()
        for s in seeds]
    # the premise: the parents of the merge learned their tasks (V sees: English visual questions above chance;
    # M reads the languages: questions in words better than B)
    units["v_en_vqa_above_chance__units"] = [
        (items(results[s], "V", "vqa", english=True) - items(results[s], "V", "vqa", english=True, what="chance")).tolist()
        for s in seeds]
    units["m_minus_b_mtext__units"] = [(items(results[s], "M", "text") - items(results[s], "B", "text")).tolist()
                                       for s in seeds]
    n_layers = len(results[seeds[0]]["sim"]["V"]["vqa"]) - 1
    parts = dict(zip(("lower", "middle", "upper"), thirds(n_layers)))
    for kind in ("vqa", "text"):
        for side in ("lower", "upper"):
            per_seed = []
            for s in seeds:
                g = np.array(results[s]["sim"]["dim3"][f"{kind}_pairs"]) - np.array(results[s]["sim"]["V"][f"{kind}_pairs"])
                per_seed.append((g[:, list(parts["middle"])].mean(1) - g[:, list(parts[side])].mean(1)).tolist())
            units[f"sim_middle_minus_{side}_{kind}__units"] = per_seed
    out = {}
    for key, u in units.items():
        out[key] = u
        out[key[: -len("__units")]] = float(np.mean([np.mean(x) for x in u]))   # the statistic: mean of seed means
    return out
