"""Chapter 3's own code: the benchmark (labels from the word lists, the split, the items), the scores
against hand-worked values, batched scoring and ablation against single unbatched runs, the circuit and
neuron steps on a tiny Llama with SmolLM2's tokenizer, and the gpu profile's sizes."""
import numpy as np
import pytest
import torch

from mlbook.chapters.ch03_gknow import benchmark as B
from mlbook.chapters.ch03_gknow import experiment as E
from mlbook.chapters.ch03_gknow import scores as sc
from mlbook.interp import circuits, hooks

RULE = {"female_share": {"female": 70, "male": 30, "neutral": [40, 60]}, "rating": {"female": -0.3, "male": 0.3, "neutral": 0.1}}


def test_stereotype_rule_by_hand():
    share, rating = {"nurse": 90.0, "carpenter": 2.0, "baker": 50.0, "cashier": 65.0}, {"nurse": 0.9, "poet": -0.5,
                                                                                         "boss": 0.4, "clerk": 0.05, "chef": 0.2}
    got = {w: B.stereotype(w, share, rating, RULE) for w in ["nurse", "carpenter", "baker", "cashier", "poet", "boss", "clerk", "chef", "x"]}
    # the labour share decides where it is known (the nurse's rating is ignored); the rating otherwise
    assert got == {"nurse": "f", "carpenter": "m", "baker": "neutral", "cashier": None, "poet": "f", "boss": "m",
                   "clerk": "neutral", "chef": None, "x": None}


def test_triggers_balanced_and_labelled_from_the_lists():
    trig = B.triggers()
    words = [t["word"] for t in trig]
    assert len(words) == len(set(words))
    st = [t for t in trig if t["cls"] == "stereotypical"]
    assert sum(t["gender"] == "m" for t in st) == sum(t["gender"] == "f" for t in st) >= 15
    by = {t["word"]: t for t in trig}
    assert by["king"]["gender"] == "m" and by["queen"]["counterparts"] == ["king"]
    assert by["nurse"]["cls"] == "stereotypical" and by["nurse"]["gender"] == "f"
    assert all(c in by and by[c]["gender"] not in (None, t["gender"]) for t in trig for c in t["counterparts"])
    assert all(t["gender"] is None and not t["counterparts"] for t in trig if t["cls"] == "neutral")


def test_split_by_trigger_stratified_and_seeded():
    trig = B.triggers()
    a, b = B.split_of(trig, 0), B.split_of(trig, 1)
    assert a == B.split_of(trig, 0) and a != b
    for cls in B.CLASSES:
        for g in ("m", "f", None):
            ws = [t["word"] for t in trig if t["cls"] == cls and t["gender"] == g]
            if ws:
                assert abs(sum(a[w] == "test" for w in ws) - len(ws) / 2) <= 1
    ds = B.items(0)
    train = {w for w, s in zip(ds["trigger"], ds["split"]) if s == "train"}
    test = {w for w, s in zip(ds["trigger"], ds["split"]) if s == "test"}
    assert not train & test


def test_items_fill_the_templates_and_their_twins():
    ds = B.items(0)
    n_templates = sum(len(v) for v in B.templates()["templates"].values())
    assert len(ds) == len(B.triggers()) * n_templates
    row = ds[[i for i, p in enumerate(ds["prompt"]) if p == "The king said that"][0]]
    assert (row["cls"], row["gender"], row["male"], row["female"]) == ("factual", "m", " he", " she")
    assert row["counterparts"] == ["The queen said that"]
    obj = ds[[i for i, p in enumerate(ds["prompt"]) if p == "I saw the nurse and waved at"][0]]
    assert obj["type"] == "object" and (obj["male"], obj["female"]) == (" him", " her") and obj["gender"] == "f"
    assert all(c.replace(o, "") != p for p, cs, o in zip(ds["prompt"], ds["counterparts"], ds["trigger"]) for c in cs)


def test_scores_by_hand():
    m, f, u = np.array([2.0, 0.0, 1.0, -1.0]), np.array([1.0, 3.0, 0.5, 0.0]), np.array([0.0, 1.0, 2.0, -2.0])
    g = np.array(["m", "m", "f", "f"])
    # stereotyped token wins on items 0 (m>f) and 3 (f>m): SS 50
    assert sc.ss(m, f, g) == 50.0
    # options beating u: item0 both, item1 f only, item2 neither, item3 both → 5 of 8
    assert sc.lms(m, f, u) == 100 * 5 / 8
    assert sc.icat(80.0, 60.0) == 80.0 * 40 / 50 and sc.icat(100.0, 50.0) == 100.0
    assert np.allclose(sc.gap(m, f), np.abs(1 / (1 + np.exp(-(m - f))) - 1 / (1 + np.exp(-(f - m)))))
    spec = sc.gap(m, f).mean()
    neu = 1 - sc.gap(u, f).mean()
    assert np.isclose(sc.gis(m, f, u, f), 2 * spec * neu / (spec + neu))
    assert np.array_equal(sc.toward(m, f, g), [1.0, -3.0, -0.5, 1.0])


@pytest.fixture(scope="module")
def tiny(tiny_lm_dir):
    from mlbook.models import loading

    lm, tok = loading.load_causal_lm(str(tiny_lm_dir))
    ds = B.items(0)
    return lm, tok, ds, E.encode(tok, ds, B.templates()["unrelated"], seed=0)


def test_encode_twins_have_the_clean_length_and_swap_the_trigger(tiny):
    _, tok, ds, enc = tiny
    assert enc["tokens"].shape == (len(ds), 3)
    n = 0
    for i in range(0, len(ds), 7):
        tw = enc["corrupt"][i]
        if tw is None:
            assert ds["cls"][i] == "neutral" or not any(len(tok(c, add_special_tokens=False)["input_ids"]) == len(enc["ids"][i])
                                                        for c in ds["counterparts"][i])
            continue
        n += 1
        assert len(tw) == len(enc["ids"][i]) and tok.decode(tw).strip() in [c.strip() for c in ds["counterparts"][i]]
    assert n > 50


def test_last_logits_batched_and_ablated_equal_single_runs(tiny):
    lm, _, ds, enc = tiny
    rows = [0, 5, 11, 400, 401, 900, 1500]
    neurons = {1: [3, 7], 2: [0]}
    got, got_abl = E.last_logits(lm, enc, rows, batch_size=2), E.last_logits(lm, enc, rows, neurons, batch_size=2)
    for k, r in enumerate(rows):
        x = torch.tensor([enc["ids"][r]])
        with torch.no_grad():
            want = lm(input_ids=x).logits[0, -1, enc["tokens"][r]].numpy()

            handles = []
            for layer, idx in neurons.items():
                down = hooks.layers(lm)[layer].mlp.down_proj

                def pre(mod, args, idx=idx):
                    a = args[0].clone()
                    a[..., idx] = 0
                    return (a,)
                handles.append(down.register_forward_pre_hook(pre))
            want_abl = lm(input_ids=x).logits[0, -1, enc["tokens"][r]].numpy()
            for h in handles:
                h.remove()
        assert np.allclose(got[k], want, atol=1e-5) and np.allclose(got_abl[k], want_abl, atol=1e-5)
    assert not np.allclose(got, got_abl)


def test_circuit_steps_on_a_tiny_model(tiny):
    lm, _, ds, enc = tiny
    G = circuits.Graph.of(lm)
    genders = list(ds["gender"])
    rows = E.sample(E._pairs(enc, E.where(ds, cls="factual", type="pronoun", split="train")), 6, 0)
    scores, n = E.circuit_scores(lm, G, enc, rows, genders, steps=2)
    assert n == 6 and scores.shape == (G.n_senders, G.n_receivers)
    # the item-weighted mean over length groups: each group's EAP-IG, weighted by its items
    want = 0
    for _, grp in E.by_length(rows, enc["ids"]).items():
        clean, corr = torch.tensor([enc["ids"][r] for r in grp]), torch.tensor([enc["corrupt"][r] for r in grp])
        want = want + len(grp) * circuits.eap_ig(lm, clean, corr, E._diff_metric(*E._targets(enc, grp, genders)), steps=2, graph=G)
    assert torch.allclose(scores, want / 6, atol=1e-6)
    # the full circuit is the clean run, the empty one the corrupted run
    v = E.circuit_value(lm, G, enc, rows, genders, [G.valid(), torch.zeros_like(G.valid())])
    clean_m = corr_m = 0.0
    for r in rows:
        right, wrong = E._targets(enc, [r], genders)
        with torch.no_grad():
            lc, lk = lm(input_ids=torch.tensor([enc["ids"][r]])).logits, lm(input_ids=torch.tensor([enc["corrupt"][r]])).logits
        clean_m += float(lc[0, -1, right] - lc[0, -1, wrong]) / len(rows)
        corr_m += float(lk[0, -1, right] - lk[0, -1, wrong]) / len(rows)
    assert np.allclose([v["full"], v["empty"]], [clean_m, corr_m], atol=1e-4)
    assert np.allclose(v["faithfulness"], [1.0, 0.0], atol=1e-4)
    C = E.find_circuits(lm, G, enc, ds, 0, 3, 1)
    assert set(C) == {(c, t) for c in ("factual", "stereotypical") for t in B.TYPES}
    assert len(E.ig_layers(G, C, 2)) == 2


def test_neuron_steps_on_a_tiny_model(tiny):
    lm, _, ds, enc = tiny
    rows = E.sample(E.where(ds, cls="stereotypical", split="train"), 5, 0)
    A = E.neuron_attributions(lm, enc, rows, list(ds["gender"]), [0, 2], steps=64)
    assert A[0].shape == (64,) and A[2].shape == (64,) and A["completeness"] < 0.05
    top = E.top_neurons(A, 5)
    flat = sorted([(v, l_, i) for l_ in (0, 2) for i, v in enumerate(A[l_])], key=lambda x: (-x[0], x[1], x[2]))[:5]
    assert {(l_, i) for _, l_, i in flat} == {(l_, i) for l_, v in top.items() for i in v}
    r = E.random_neurons([0, 2], 64, 10, seed=3)
    assert sum(map(len, r.values())) == 10 and r == E.random_neurons([0, 2], 64, 10, seed=3)
    assert E.overlap({0: [1, 2], 2: [5]}, {0: [2], 2: [5, 6], 1: [1]}) == 2


def test_bias_scores_are_the_scores_of_their_rows():
    ds = B.items(0)
    rng = np.random.default_rng(0)
    lg = rng.normal(size=(len(ds), 3))
    fact, st, ne = E.where(ds, cls="factual"), E.where(ds, cls="stereotypical"), E.where(ds, cls="neutral")
    got = E.bias_scores(lg, ds, fact, st, ne)
    g = np.array(ds["gender"])
    assert got["SS"] == sc.ss(lg[st, 0], lg[st, 1], g[st])
    assert got["accuracy"] == sc.correct(lg[fact, 0], lg[fact, 1], g[fact]).mean()
    assert got["GIS"] == sc.gis(lg[fact, 0], lg[fact, 1], lg[st + ne, 0], lg[st + ne, 1])


def test_gpu_sizes_fit_the_benchmark():
    """The gpu profile's sizes, checked on the CPU: its circuits and rankings have the training items they ask for."""
    from mlbook.core.context import sizes

    g = sizes("03_gknow", "gpu")
    ds = B.items(0)
    for cls in ("factual", "stereotypical"):
        for typ in B.TYPES:
            assert len(E.where(ds, cls=cls, type=typ, split="train")) >= g.n_circuit * 0.5   # a twin for most of them
        assert len(E.where(ds, cls=cls, split="train")) >= g.ig_items
    assert g.k_main <= g.ig_layers * 1536 and len(g.seeds) >= 3 and g.n_edges > 0 and g.eap_steps >= 1


def test_per_trigger_units_average_templates_then_seeds():
    ds = {"trigger": ["a", "a", "b", "b", "c"]}
    units = E.per_trigger(ds, {0: [0, 1, 2], 1: [1, 3, 4]}, {0: [1.0, 0.0, 4.0], 1: [2.0, 6.0, 9.0]})
    # a: seed 0 mean 0.5, seed 1 mean 2 → 1.25;  b: seed 0 4, seed 1 6 → 5;  c: 9
    assert units == [1.25, 5.0, 9.0]
    with pytest.raises(ValueError, match="rows"):
        E.per_trigger(ds, {0: [0, 1]}, {0: [1.0]})
