"""Chapter 5's statistics, each with the units its interval resamples (``mlbook.core.evidence``).

For a fact f (relation r, country e, language ℓ) in seed s, with D_f = [Q1 correct] and M_{f,s,t} = [Q2 correct]
for the synthetic (t = syn) and the real name (t = real):

    Δ_{f,s}          = D_f − (M_{f,s,syn} + M_{f,s,real}) / 2           claim 1: mean Δ > 0
    name_{f,s}       = M_{f,s,real} − M_{f,s,syn}                        claim 3: |mean| < margin
    origin_f         = mean_s M_{f,s,real} over own-origin seeds − over foreign-origin seeds
    P(Q2 | Q1)       = mean of M over facts with D_f = 1

all over the *eligible* cells (r, ℓ) only: those where the model's direct recall is clearly above chance.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mlbook.core import evidence

from .experiment import eligible_cells


def per_fact(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (fact, seed): D (direct correct), M_syn, M_real, own (the real name's origin is the
    prompt's language), with the fact's relation, locale, country and chance."""
    d = df[df.kind == "direct"].set_index("fact")
    m = df[df.kind == "mediated"]
    wide = m.pivot_table(index=["fact", "seed"], columns="name_type", values="correct", aggfunc="mean").reset_index()
    own = m[m.name_type == "real"].set_index(["fact", "seed"])["own"]
    wide["own"] = own.reindex(pd.MultiIndex.from_frame(wide[["fact", "seed"]])).to_numpy()
    for col in ("relation", "locale", "country", "chance"):
        wide[col] = d.loc[wide.fact, col].to_numpy()
    wide["D"] = d.loc[wide.fact, "correct"].astype(float).to_numpy()
    wide = wide.rename(columns={"synthetic": "M_syn", "real": "M_real"})
    wide["delta"] = wide.D - (wide.M_syn + wide.M_real) / 2
    wide["name"] = wide.M_real - wide.M_syn
    return wide


def only(pf: pd.DataFrame, cells: dict) -> pd.DataFrame:
    keep = [bool(cells.get((r, loc))) for r, loc in zip(pf.relation, pf.locale)]
    return pf[np.asarray(keep, bool)]


def by_seed(pf: pd.DataFrame, col: str) -> list[list[float]]:
    """Units stratified by seed: one list of values per seed."""
    return [g[col].astype(float).tolist() for _, g in pf.groupby("seed")]


NOTHING = {"estimate": 0.0, "lo": None, "hi": None, "se": None, "n": 0}  # no units: no interval, inconclusive


def _empty(units) -> bool:
    if isinstance(units, dict):
        return "minus" in units and any(_empty(u) for u in units["minus"])
    return not any((len(u) if isinstance(u, list) else 1) for u in units)


def or_nothing(units):
    """The units as they are, or :data:`NOTHING` when there are none to resample."""
    return NOTHING if _empty(units) else units


def origin_units(pf: pd.DataFrame) -> list[float]:
    """Per fact with both kinds of real name over the seeds: accuracy with own-origin names minus with
    foreign ones (paired within the fact)."""
    out = []
    for _, g in pf.groupby("fact"):
        a, b = g[g.own.astype(bool)].M_real, g[~g.own.astype(bool)].M_real
        if len(a) and len(b):
            out.append(float(a.mean() - b.mean()))
    return out


def cells_dropping(pf: pd.DataFrame) -> list[float]:
    """Per eligible cell: 1 if its mean Δ over facts and seeds is above zero."""
    return [float(g.delta.mean() > 0) for _, g in pf.groupby(["relation", "locale"])]


def split_countries(countries) -> tuple[set, set]:
    """Two fixed halves of the countries (alternating in code order): one to choose, one to test."""
    cs = sorted(set(countries))
    return set(cs[0::2]), set(cs[1::2])


def relation_spread(pf: pd.DataFrame) -> tuple[dict, dict]:
    """Claim 1's second half, cross-fitted so that the choice does not inflate the test: on one half of
    the countries pick the relations with the largest and the smallest mean Δ, then on the other half
    compare them — ``{"minus": [Δ units of the largest, of the smallest]}`` stratified by seed.
    Returns (units, {"high": relation, "low": relation}); fewer than two relations: no interval."""
    choose, test = split_countries(pf.country)
    a = pf[pf.country.isin(choose)].groupby("relation").delta.mean()
    b = pf[pf.country.isin(test)]
    rels = [r for r in a.index if (b.relation == r).sum() >= 2]
    if len(rels) < 2:
        return NOTHING, {"high": "", "low": ""}
    a = a[rels]
    hi, lo = str(a.idxmax()), str(a.idxmin())
    return {"minus": [by_seed(b[b.relation == hi], "delta"), by_seed(b[b.relation == lo], "delta")]}, \
        {"high": hi, "low": lo}


def family(name: str) -> str:
    """A checkpoint's family: its name with the size taken out (SmolLM2-135M-Instruct → SmolLM2-*-Instruct)."""
    return re.sub(r"(?i)(?<=[-_])\d+(\.\d+)?[mb](?=$|[-_])", "*", name.split("/")[-1])


def size_pair(models: dict) -> tuple[str, str, int]:
    """(smaller, larger, sizes in the family): the smallest and the largest model of the family with the most
    sizes; with no family of two sizes, the smallest and largest model overall (a comparison across
    families, which cannot separate size from family)."""
    fam: dict = {}
    for label, d in models.items():
        fam.setdefault(family(d["name"]), []).append(label)
    best = max(fam.values(), key=len)
    pool = best if len(best) > 1 else list(models)
    pool = sorted(pool, key=lambda lbl: models[lbl]["params"])
    return pool[0], pool[-1], len(best)


def size_gap_units(pf_small: pd.DataFrame, pf_large: pd.DataFrame, cells_small: dict, cells_large: dict) -> dict:
    """Δ(smaller) − Δ(larger), paired per (fact, seed), over the cells eligible for both models."""
    both = {k for k in cells_small if cells_small[k] and cells_large.get(k)}
    a = only(pf_small, dict.fromkeys(both, True)).set_index(["fact", "seed"])
    b = only(pf_large, dict.fromkeys(both, True)).set_index(["fact", "seed"])
    j = a[["delta"]].join(b[["delta"]], rsuffix="_large", how="inner").reset_index()
    j["gap"] = j.delta - j.delta_large
    return by_seed(j, "gap")


def model_metrics(p: str, df: pd.DataFrame, margin: float, greedy: list[dict] | None = None) -> tuple[dict, dict, pd.DataFrame]:
    """(metrics, cells, per-fact table) of one model's prompt table ``df``, its metric names prefixed ``p_``:
    accuracies, the eligible cells, claim 1's Δ, P(Q2 | Q1 correct), the cells that drop, the cross-fitted
    relation spread, claim 3's name and origin effects — each statistic with its ``__units``."""
    cells = eligible_cells(df, margin)
    pf = per_fact(df)
    el = only(pf, cells)
    en = df[(df.kind == "direct") & (df.locale == "en")]
    spread, chosen = relation_spread(el)
    knows = el[el.D == 1]
    m = {f"{p}_direct_acc": float(df[df.kind == "direct"].correct.mean()),
         f"{p}_mediated_acc": float(df[df.kind == "mediated"].correct.mean()),
         f"{p}_direct_acc_en": float(en.correct.mean()),
         f"{p}_direct_gain_en": float((en.correct - en.chance).mean()),
         f"{p}_direct_gain_en__units": (en.correct.astype(float) - en.chance).tolist(),
         f"{p}_n_eligible_cells": int(sum(cells.values())), f"{p}_n_eligible_facts": int(el.fact.nunique()),
         f"{p}_cond_recall": float(((knows.M_syn + knows.M_real) / 2).mean()) if len(knows) else 0.0,
         f"{p}_relation_high": chosen["high"], f"{p}_relation_low": chosen["low"]}
    stats = {"delta": by_seed(el, "delta"), "cells_dropping": cells_dropping(el), "relation_spread": spread,
             "name_effect": by_seed(el, "name"), "origin_effect": origin_units(el)}
    for k, units in stats.items():
        units = or_nothing(units)
        m[f"{p}_{k}"] = float(np.nan_to_num(evidence.interval(units)["estimate"]))
        m[f"{p}_{k}__units"] = units
    if greedy:  # what the model says (greedy) against what the ranking picks, where it names a candidate at all
        g = pd.DataFrame(greedy)
        ranked = df.predicted_index.to_numpy()[g.prompt.to_numpy()]
        named = g.pick.to_numpy() >= 0
        m[f"{p}_greedy_acc"] = float(g.greedy_correct.mean())
        m[f"{p}_greedy_named"] = float(named.mean())
        m[f"{p}_greedy_agreement"] = float((g.pick.to_numpy()[named] == ranked[named]).mean()) if named.any() else 0.0
    return m, cells, pf
