"""Chapter 2's own code: prompts and pairs, next-token scoring under interventions (against unpadded
single runs), the Improve experiment on a tiny model, and the gpu profile's sizes."""
import random

import numpy as np
import pytest
import torch

from mlbook.chapters.ch02_locate_steer import experiment as E
from mlbook.chapters.ch02_locate_steer import prompts as P
from mlbook.interp import hooks
from tests import tiny


class CharTok:
    """One token per character but spaces (ids 3…), enough for the prompts' code paths."""
    pad_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + (ord(ch) % 38) for ch in text if ch != " "]}

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


ROWS = [("Aland", "Xa", "Europe"), ("Bolt", "Yb", "Asia"), ("Cora", "Zc", "Africa"), ("Dune", "Wd", "Asia"),
        ("Elm", "Ve", "Europe"), ("Fig", "Uf", "Africa"), ("Gor", "Tg", "Asia"), ("Hox", "Sh", "Europe")]


def test_countries_are_un_members_with_capital_and_continent():
    rows = P.countries()
    assert 180 <= len(rows) <= 200
    assert ("France", "Paris", "Europe") in rows and ("Japan", "Tokyo", "Asia") in rows
    assert len({r[0] for r in rows}) == len(rows)


def test_few_shot_prompt_and_its_guard():
    demos = [("Japan", "Tokyo", "Asia"), ("Italy", "Rome", "Europe")]
    assert P.few_shot("France", demos) == "Japan: Tokyo\nItaly: Rome\nFrance:"
    with pytest.raises(ValueError, match="own demonstrations"):
        P.few_shot("Japan", demos)
    d = P.draw_demos(ROWS, "Aland", 3, random.Random(0))
    assert len(d) == 3 and all(r[0] != "Aland" for r in d)


def test_pairs_have_equal_length_and_different_answers():
    tok = CharTok()
    prs = P.pairs(tok, ROWS, 10, seed=0)
    assert prs
    used = [p["clean"] for p in prs] + [p["corrupt"] for p in prs]
    assert len(used) == len(set(used))
    for p in prs:
        assert len(p["clean_ids"]) == len(p["corrupt_ids"]) and p["right_id"] != p["wrong_id"]


def test_last_logprobs_equal_single_unpadded_runs_also_when_steered():
    model = tiny.causal_lm()
    seqs, targets = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]], [5, 6, 7]
    a = hooks.addr(1, "resid_post")
    v = torch.randn(32, generator=torch.Generator().manual_seed(0))
    for steer in (None, {a: v}):
        lp, ok = E.last_logprobs(model, seqs, targets, pad_id=0, steer=steer, alpha=0.5, batch_size=2)
        for s, t, got, hit in zip(seqs, targets, lp, ok):
            with torch.no_grad(), hooks.add(model, {a: 0.5 * v} if steer else {}):
                lg = model(input_ids=torch.tensor([s])).logits[0, -1]
            assert got == pytest.approx(float(lg.log_softmax(-1)[t]), abs=1e-4)
            assert hit == (int(lg.argmax()) == t)


def test_replace_last_sets_each_rows_last_state():
    model = tiny.causal_lm()
    seqs, targets = [[3, 4, 5], [6, 7, 8, 9]], [5, 6]
    a = hooks.addr(0, "resid_post")
    states = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))
    lp, _ = E.last_logprobs(model, seqs, targets, replace_last={a: states})
    for i, s in enumerate(seqs):
        with torch.no_grad(), hooks.patch(model, {a: states[i]}, positions=[-1]):
            want = model(input_ids=torch.tensor([s])).logits[0, -1].log_softmax(-1)[targets[i]]
        assert lp[i] == pytest.approx(float(want), abs=1e-4)


def test_recall_seed_runs_both_folds_on_a_tiny_model(monkeypatch):
    model = tiny.causal_lm()
    # make every country "known": the few-shot pass reports all correct
    real = E.last_logprobs
    calls = {"n": 0}

    def fake(*args, **kw):
        lp, ok = real(*args, **kw)
        calls["n"] += 1
        return lp, (np.ones_like(ok) if calls["n"] == 1 else ok)
    monkeypatch.setattr(E, "last_logprobs", fake)
    r = E.recall_seed(model, CharTok(), ROWS, seed=0, k_demos=2)
    assert len(r["known"]) == len(ROWS) and len(r["eval"]) == 2
    for f, ev in enumerate(r["eval"]):
        assert ev["logp"].shape == (hooks.n_layers(model) + 1, len(ev["countries"]))
        assert 0 <= r["located"][f] < hooks.n_layers(model)
    assert sorted(r["eval"][0]["countries"] + r["eval"][1]["countries"]) == sorted(c for c, *_ in ROWS)


def test_random_layer_is_never_the_located_one():
    for seed in range(5):
        for located in range(4):
            assert E.random_layer(4, located, seed, 0) != located


def test_side_cost_is_zero_for_a_zero_vector():
    model = tiny.causal_lm()
    d = E.side_cost(model, [[3, 4, 5, 6], [7, 8, 9]], hooks.addr(1, "resid_post"), torch.zeros(32))
    assert np.allclose(d, 0, atol=1e-6)


def test_gpu_sizes_fit_the_data():
    """The gpu profile's sizes, checked on the CPU: its pairs fit the countries, its probe stride and seeds are valid."""
    from mlbook.core.context import sizes

    g = sizes("02_locate_steer_improve", "gpu")
    rows = P.countries()
    assert g.n_countries is None or g.n_countries <= len(rows)
    assert 2 * g.n_pairs <= len(rows)  # a country is clean or corrupted in one pair at most
    assert g.probe_stride >= 1 and len(g.seeds) >= 3 and g.k_demos < len(rows)
