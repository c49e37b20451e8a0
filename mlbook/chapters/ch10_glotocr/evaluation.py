"""The engines on the benchmark: one row per (image, engine) with its reading, CER, output script and
hallucination class; scores by tier and profile; the chapter's three claims as numbers."""
from __future__ import annotations

from mlbook.ocr.metrics import ACC_THRESHOLDS, cer, hallucination_class
from mlbook.ocr.scripts import same_script
from mlbook.text.scripts import dominant_script


def evaluate(ds, engines, progress: bool = True):
    """Every engine on every image: a pandas DataFrame with id, engine, profile, script, tier,
    language, text, pred, cer, output_script ('none': no letters), output_known (the engine was
    trained for the output's script), hclass (correct / wrong_script / empty / artefact), trained
    (the engine was trained for the line's script), seconds (the engine's time per image)."""
    import time

    import pandas as pd
    from tqdm.auto import tqdm
    meta = ds.remove_columns(["image"]).to_pandas()
    images = list(ds["image"])
    rows = []
    for eng in tqdm(engines, desc="engines", disable=not progress):
        t0 = time.perf_counter()
        preds = eng.read(images, list(meta.script))
        per_image = (time.perf_counter() - t0) / max(1, len(images))
        for r, pred in zip(meta.itertuples(), preds):
            c = cer(pred, r.text, rtl=r.rtl)
            rows.append({"id": r.id, "engine": eng.name, "profile": r.profile, "script": r.script, "tier": r.tier,
                         "language": r.language, "seed": r.seed, "text": r.text, "pred": pred, "cer": c,
                         "output_script": dominant_script(pred) or "none",
                         "output_known": eng.knows(dominant_script(pred)),
                         "hclass": hallucination_class(pred, r.script, c), "trained": eng.knows(r.script),
                         "seconds": per_image})
    return pd.DataFrame(rows)


def scores(df, by=("engine", "profile", "tier")):
    """Per group: n, mean CER, Acc@t for t in ACC_THRESHOLDS (as acc@0, acc@2, acc@5, acc@10, in
    shares), and script accuracy (the reading's dominant script is the line's)."""
    import pandas as pd

    def summary(g):
        out = {"n": len(g), "cer": g.cer.mean()}
        for t in ACC_THRESHOLDS:
            out[f"acc@{int(round(t * 100))}"] = float((g.cer <= t + 1e-12).mean())
        out["script_acc"] = float(sum(same_script(o, s) for o, s in zip(g.output_script, g.script)) / len(g))
        return pd.Series(out)
    return df.groupby(list(by)).apply(summary, include_groups=False)


def output_confusion(df, engine: str, profile: str = "PLAIN"):
    """GT script × output script counts (output 'none': no letters) of one engine in one profile."""
    import pandas as pd
    d = df[(df.engine == engine) & (df.profile == profile)]
    return pd.crosstab(d.script, d.output_script)


def claims(df, pretrained=("tess_script", "tess_eng", "rapidocr")) -> dict:
    """The three claims as numbers, from one seed's evaluate() table (the chapter averages over seeds).

    1. coverage: (a) tiers — mean CER over the pretrained engines on PLAIN images rises High < Mid < Low;
       (b) every engine's mean CER on PLAIN images of scripts it was not trained for minus that on its
       trained scripts ({engine}_coverage_gap).
    2. hallucination: on PLAIN images of scripts an engine was not trained for, for every engine: the
       shares correct, empty, and of the readings that contain letters those in a script the engine was
       trained for (no reading with letters counts as 0).
    3. degradation: on the (engine, script) pairs where the engine was trained, mean CER on
       OLD_DOCUMENT minus PLAIN in every tier (degradation_cer_{tier}).
    The thresholds of the claims are in the card; ``claim_units`` gives their resampling units."""
    import numpy as np

    def mean(x):
        return float(np.mean(x)) if len(x) else float("nan")
    out = {}
    plain = df[df.profile == "PLAIN"]
    pre = plain[plain.engine.isin(pretrained)]
    for t in ("High", "Mid", "Low"):
        out[f"tier_cer_{t.lower()}"] = mean(pre[pre.tier == t].cer)
    for eng, g in plain.groupby("engine"):
        u = g[~g.trained]
        lettered = u[u.output_script != "none"]
        out[f"{eng}_cer_trained"] = mean(g[g.trained].cer)
        out[f"{eng}_cer_untrained"] = mean(u.cer)
        out[f"{eng}_coverage_gap"] = out[f"{eng}_cer_untrained"] - out[f"{eng}_cer_trained"]
        for cls in ("correct", "empty", "wrong_script", "artefact"):
            out[f"{eng}_untrained_{cls}"] = mean(u.hclass == cls)
        out[f"{eng}_untrained_known_script"] = mean(lettered.output_known) if len(lettered) else 0.0
    tr = df[df.trained]
    for t in ("High", "Mid", "Low"):
        for p in ("PLAIN", "OLD_DOCUMENT"):
            sel = tr[(tr.tier == t) & (tr.profile == p)]
            out[f"trained_cer_{p.lower()}_{t.lower()}"] = mean(sel.cer)
            out[f"trained_acc5_{p.lower()}_{t.lower()}"] = mean(sel.cer <= 0.05)
        t_ = t.lower()
        out[f"degradation_cer_{t_}"] = out[f"trained_cer_old_document_{t_}"] - out[f"trained_cer_plain_{t_}"]
        out[f"degradation_acc5_{t_}"] = out[f"trained_acc5_plain_{t_}"] - out[f"trained_acc5_old_document_{t_}"]
    return out


def claim_units(dfs, engines, pretrained=("tess_script", "tess_eng", "rapidocr")) -> dict:
    """The claims' resampling units from the per-seed evaluate() tables (one stratum per seed), for
    ``mlbook.core.evidence``: lines for the tier and coverage comparisons, readings of unfamiliar scripts for
    the hallucination shares, (engine, line) pairs for the degradation (the same line in both profiles)."""
    out: dict = {}
    plain = [d[d.profile == "PLAIN"] for d in dfs]
    per_line = [p[p.engine.isin(pretrained)].groupby(["tier", "id"]).cer.mean() for p in plain]

    def tier(t):
        return [s.loc[t].tolist() if t in s.index.get_level_values(0) else [] for s in per_line]
    out["tier_mid_minus_high__units"] = {"minus": [tier("Mid"), tier("High")]}
    out["tier_low_minus_mid__units"] = {"minus": [tier("Low"), tier("Mid")]}
    for e in engines:
        g = [p[p.engine == e] for p in plain]
        out[f"{e}_coverage_gap__units"] = {"minus": [[x[~x.trained].cer.tolist() for x in g],
                                                     [x[x.trained].cer.tolist() for x in g]]}
        u = [x[~x.trained] for x in g]
        out[f"{e}_untrained_correct__units"] = [(x.hclass == "correct").astype(float).tolist() for x in u]
        out[f"{e}_untrained_empty__units"] = [(x.hclass == "empty").astype(float).tolist() for x in u]
        known = [x[x.output_script != "none"].output_known.astype(float).tolist() for x in u]
        out[f"{e}_untrained_known_script__units"] = known if any(known) else [[0.0]]
    for t in ("High", "Mid", "Low"):
        strata = []
        for d in dfs:
            tr = d[d.trained & (d.tier == t)].pivot_table(index=["engine", "id"], columns="profile", values="cer")
            strata.append((tr["OLD_DOCUMENT"] - tr["PLAIN"]).dropna().tolist() if len(tr) else [])
        out[f"degradation_cer_{t.lower()}__units"] = [s for s in strata if s] or [[float("nan")]]
    return out
