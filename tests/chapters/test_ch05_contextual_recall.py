"""Chapter 5's prompt set, scorer and statistics against hand-worked cases, and the gpu profile's CPU parts
(family detection, eight candidates, the scoring path) at tiny sizes."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlbook.chapters.ch05_contextual_recall import claims, experiment
from mlbook.chapters.ch05_contextual_recall import prompts as P
from mlbook.core import evidence
from mlbook.core.context import sizes
from tests.tiny import llama


@pytest.fixture(scope="module")
def facts():
    return experiment.select_facts(P.LANGUAGES, 6)


def test_templates_read_as_written():
    assert P.direct("en", "capital", "France") == "The capital of France is"
    assert P.mediated("en", "capital", "France", "Lena", "lives") == \
        "Lena lives in a country called France. The capital of the country where Lena lives is"
    assert P.mediated("de", "continent", "Frankreich", "Lena", "from") == \
        "Lena stammt aus einem Land namens Frankreich. Das Land, aus dem Lena stammt, liegt in"
    assert P.direct("ru", "capital", "Франция") == "Столица страны Франция —"
    with pytest.raises(ValueError, match="no templates for language 'xx'"):
        P.check_languages(["en", "xx"])


def test_articles():
    assert P.with_article("fr", "currency", "euro") == "l’euro"
    assert P.with_article("fr", "currency", "livre sterling") == "la livre sterling"
    assert P.with_article("fr", "currency", "dollar des États-Unis") == "le dollar des États-Unis"
    assert P.with_article("fr", "language", "anglais") == "l’anglais"
    assert P.with_article("es", "currency", "libra esterlina") == "la libra esterlina"
    assert P.with_article("en", "currency", "Euro") == "Euro"


def test_synthetic_names_are_new_and_seeded():
    a = P.synthetic_names("ru", 30, seed=1, forbidden={"лена"})
    assert a == P.synthetic_names("ru", 30, seed=1, forbidden={"лена"}) != P.synthetic_names("ru", 30, seed=2)
    assert len(set(a)) == 30 and all(4 <= len(n) <= 9 and n[0].isupper() for n in a)
    assert all("\u0400" <= ch <= "\u04ff" for n in a for ch in n)          # Cyrillic
    real = {f.casefold() for forms in P.name_lists()["real"].values() for pair in forms for f in pair}
    assert not {n.casefold() for n in a} & real


def test_candidates_gold_first_same_in_every_language(facts):
    cands = P.candidate_sets(facts, 4)
    for (cc, loc, rel), keys in cands.items():
        assert len(set(keys)) == len(keys) <= 4 and keys[0] == next(
            r["answer_key"] for r in facts if (r["country"], r["locale"], r["relation"]) == (cc, loc, rel))
        assert keys == cands[cc, "en", rel]


def test_build_pairs_the_mediated_prompts(facts):
    prompts, answers = P.build(facts, P.LANGUAGES, [0, 1], 4)
    df = pd.DataFrame(prompts)
    assert (df.kind == "direct").sum() == len(facts) and (df.kind == "mediated").sum() == 4 * len(facts)
    med = df[df.kind == "mediated"]
    for (f, s), g in med.groupby(["fact", "seed"]):
        assert sorted(g.name_type) == ["real", "synthetic"] and g.scenario.nunique() == 1
        assert g.text.str.replace(g.name.iloc[0], "N").nunique() == 1 or \
            g.apply(lambda r: r.text.replace(r["name"], "N"), axis=1).nunique() == 1   # only the name differs
    real = med[med.name_type == "real"]
    assert real.own.any() and (~real.own).any()
    assert ((real.origin == real.locale) == real.own).all()
    for p in prompts:                                                      # every candidate has its strings
        assert all(answers[p["locale"], p["relation"], k] for k in p["candidates"])


def test_wilson_lower_bound_by_hand():
    # k = 8 of n = 10: (0.8 + 1.96²/20 − 1.96·√(0.016 + 1.96²/400)) / (1 + 1.96²/10) = 0.4902
    assert math.isclose(experiment.wilson_lo(8, 10), 0.4902, abs_tol=1e-4)
    assert experiment.wilson_lo(0, 0) == 0.0


def _table(rows):
    return pd.DataFrame(rows)


def test_per_fact_delta_name_and_conditional_recall_by_hand():
    rows = []
    for fact, (d, syn, real) in enumerate([(1, 0, 1), (1, 1, 1), (0, 0, 0), (1, 0, 0)]):
        base = {"fact": fact, "relation": "capital", "locale": "en", "country": f"C{fact}", "chance": 0.25}
        rows.append({**base, "kind": "direct", "seed": None, "name_type": "", "own": False, "correct": bool(d)})
        rows.append({**base, "kind": "mediated", "seed": 0, "name_type": "synthetic", "own": False, "correct": bool(syn)})
        rows.append({**base, "kind": "mediated", "seed": 0, "name_type": "real", "own": fact % 2 == 0, "correct": bool(real)})
    pf = claims.per_fact(_table(rows)).sort_values("fact")
    assert pf.delta.tolist() == [0.5, 0.0, 0.0, 1.0]
    assert pf.name.tolist() == [1.0, 0.0, 0.0, 0.0]
    knows = pf[pf.D == 1]
    assert ((knows.M_syn + knows.M_real) / 2).mean() == pytest.approx(0.5)   # (0.5 + 1 + 0) / 3


def test_relation_spread_is_cross_fitted():
    rng = np.random.default_rng(0)
    rows = []
    for i, cc in enumerate(f"C{k:02d}" for k in range(40)):
        for rel, drop in (("capital", 0.6), ("continent", 0.0), ("currency", 0.3)):
            for s in (0, 1):
                rows.append({"fact": f"{cc}-{rel}", "seed": s, "country": cc, "relation": rel,
                             "delta": float(rng.random() < drop)})
    units, chosen = claims.relation_spread(pd.DataFrame(rows))
    assert chosen == {"high": "capital", "low": "continent"}
    test_half = claims.split_countries([f"C{k:02d}" for k in range(40)])[1]
    assert sum(map(len, units["minus"][0])) == 2 * len(test_half)          # only the held-out half is tested
    iv = evidence.interval(units)
    assert iv["lo"] > 0.1


def test_origin_units_pair_within_a_fact():
    pf = pd.DataFrame({"fact": [0, 0, 0, 1, 1], "seed": [0, 1, 2, 0, 1], "own": [True, False, True, True, True],
                       "M_real": [1.0, 0.0, 0.0, 1.0, 1.0]})
    assert claims.origin_units(pf) == [0.5]                                # fact 1 has no foreign name: left out


def test_families_and_the_gpu_profiles_size_pair():
    assert claims.family("HuggingFaceTB/SmolLM2-1.7B-Instruct") == claims.family("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert claims.family("google/gemma-3-270m") != claims.family("HuggingFaceTB/SmolLM2-135M-Instruct")
    params = {"SmolLM2-135M": 135e6, "gemma-3-270m": 268e6, "SmolLM2-360M": 360e6, "SmolLM2-1.7B": 1.7e9}
    gpu = {f"lm{i + 1}": {"name": n, "params": next(v for k, v in params.items() if k in n)}
           for i, n in enumerate(sizes("05_contextual_recall", "gpu").models)}
    small, large, n = claims.size_pair(gpu)
    assert (gpu[small]["name"], gpu[large]["name"], n) == (
        "HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct", 3)
    cpu = {f"lm{i + 1}": {"name": n, "params": next(v for k, v in params.items() if k in n)}
           for i, n in enumerate(sizes("05_contextual_recall", "cpu").models)}
    assert claims.size_pair(cpu)[2] == 1                                   # two families, one size each


class CharTokenizer:
    """One token per character (ids 4…63), a BOS of 1 in front of prompts: enough for the scoring path."""
    pad_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([1] if add_special_tokens else []) + [4 + ord(c) % 60 for c in text]}

    def __len__(self):
        return 64

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids)


def test_scoring_path_at_tiny_size_with_eight_candidates(facts, tmp_path, monkeypatch):
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    prompts, answers = P.build(facts, ["en", "ru"], [0], 8)
    prompts = [p for p in prompts if p["locale"] in ("en", "ru")][:40]
    m, tok = llama(), CharTokenizer()
    got, info = experiment.score_prompts(m, tok, prompts, answers, "tiny", batch_size=8, progress=False)
    again, info2 = experiment.score_prompts(m, tok, prompts, answers, "tiny", batch_size=3, progress=False)  # cached
    assert got == again and info == info2 and info["prompts_per_s"] > 0
    ids, flat, owner = experiment.encode(tok, prompts[:5], answers)
    from mlbook.text import choice

    slow = choice.score_naive(m, ids, flat, end_id=None)
    for row, own, want in zip(got[:5], owner, slow):
        best = [max(v for v, j in zip(want, own) if j == c) for c in range(max(own) + 1)]
        assert np.allclose(row, best, atol=1e-4)
    df = experiment.table(prompts, got)
    assert ((df.correct) == [s[0] > max(s[1:]) for s in got]).all()
    g = experiment.greedy_check(m, tok, prompts, answers, 4, seed=0, max_new_tokens=3)
    assert len(g) == 4 and all(isinstance(r["greedy_correct"], bool) for r in g)
