"""Chapter 6: the top-layer runner against the full encoder, the relative distance against its
formula, the split and themes, the alignment and task losses on real states, the exercise checks, and
one seed of the study at the gpu profile's shapes (k = 4, 128 tokens) at tiny sizes."""
from __future__ import annotations

import pytest
import torch

from mlbook.chapters.ch06_alignment import data as D
from mlbook.chapters.ch06_alignment import exercises as ex
from mlbook.chapters.ch06_alignment import experiment as X
from mlbook.chapters.ch06_alignment.encoder import TopLayers, encode, mean_pool


@pytest.fixture(scope="module")
def e5():
    from mlbook.models.loading import load_encoder

    return load_encoder("intfloat/multilingual-e5-small")


TEXTS = [["Everyone", "has", "the", "right", "to", "life", "."],
         ["Jeder", "hat", "das", "Recht", "auf", "Leben", ",", "Freiheit", "und", "Sicherheit", "der", "Person", "."],
         ["Каждый", "человек", "имеет", "право", "на", "жизнь", "."]]


@pytest.mark.parametrize("k", [1, 3])
def test_top_layers_on_cached_states_equal_the_full_model(e5, k):
    model, tok = e5
    st = encode(model, tok, TEXTS, k)
    enc = tok(TEXTS, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        full = model(**enc).last_hidden_state
        top = TopLayers(model, k).eval()(st.h, st.att)
    for r in range(len(TEXTS)):   # rows come back in the input order, whatever order they were encoded in
        n = int(enc["attention_mask"][r].sum())
        assert int(st.att[r].sum()) == n
        assert torch.allclose(top[r, :n], full[r, :n], atol=1e-5)
    assert torch.allclose(mean_pool(top, st.att), st.pooled[:, -1], atol=1e-5)
    assert [w for w in st.word_ids[0] if w is not None] == [i for i in range(7) for _ in
                                                            range(sum(1 for x in enc.word_ids(0) if x == i))]


def test_relative_distance_is_the_formula():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(5, 5, 3, generator=g)
    rel = X.relative_distance(d)
    for i in range(5):
        for layer in range(3):
            others = [float(d[i, j, layer]) for j in range(5) if j != i]
            assert float(rel[i, layer]) == pytest.approx(float(d[i, i, layer]) / (sum(others) / 4))


def test_pair_distances_of_a_text_with_itself_are_zero(e5):
    model, tok = e5
    st = encode(model, tok, TEXTS, 1)
    d = X.pair_distances(None, st, st)
    assert torch.allclose(d["raw"], torch.zeros_like(d["raw"]), atol=1e-5)
    assert torch.allclose(d["relative"], torch.zeros_like(d["relative"]), atol=1e-4)


def test_split_draws_every_theme_and_leaves_train_paragraphs():
    test = D.split(0)
    assert test == D.split(0) and test != D.split(1)
    paras = {(r["article"], r["paragraph"]) for r in D.sentences("eng")}
    assert test < paras
    for arts in D.TOPICS.values():
        assert any(p[0] in arts for p in test) and any(p[0] in arts and p not in test for p in paras)
    assert sorted(D.TOPIC_OF) == list(range(31))
    train, held = D.parallel("rus", test, "train"), D.parallel("rus", test, "test")
    assert train and held and not {(u["article"], u["paragraph"]) for u in train} & test
    with pytest.raises(ValueError, match="'train' or 'test'"):
        D.parallel("rus", test, "dev")


def test_one_alignment_step_lowers_its_loss_and_leaves_the_base(e5):
    model, tok = e5
    src, tgt = encode(model, tok, TEXTS, 1), encode(model, tok, TEXTS[::-1], 1)
    base = TopLayers(model, 1).eval()
    before = {n: p.clone() for n, p in base.named_parameters()}
    with torch.no_grad():
        l0 = float(X.align_loss(base, src, tgt, "sentence", [0, 1, 2]))
    top = X.align(base, src, tgt, "sentence", steps=5, lr=1e-3, batch=3, seed=0)
    with torch.no_grad():
        l1 = float(X.align_loss(top, src, tgt, "sentence", [0, 1, 2]))
    assert l1 < l0
    assert all(torch.equal(p, before[n]) for n, p in base.named_parameters())
    with pytest.raises(ValueError, match="'sentence' or 'token'"):
        X.align_loss(base, src, tgt, "word", [0, 1])


def test_gradient_cosines_share_the_task_gradients_without_coupling_the_alignments(e5):
    """Asking for several alignments at once gives each the numbers it gets alone (the task's gradients are
    computed once, every alignment gradient starts from the same dropout state), and the null is one batch of
    the task against a disjoint one."""
    model, tok = e5
    words = [w for t in TEXTS for w in t]
    english = encode(model, tok, [words[i : i + 5] for i in range(0, 40, 2)], 1)          # 20 English "sentences"
    labels = [i % 3 for i in range(len(english))]
    src, tgt = encode(model, tok, TEXTS * 2, 1), encode(model, tok, (TEXTS[::-1]) * 2, 1)
    top, head = X.fine_tune(TopLayers(model, 1).eval(), "topic", english, labels, 3, steps=2, lr=1e-3, head_lr=1e-2,
                            batch=4, seed=0)
    links = [[(0, 0), (1, 1)] for _ in range(len(src))]
    both = X.gradient_cosines(top, head, english, labels, {"s": (src, tgt, "sentence", None), "t": (src, tgt, "token", links)},
                              n_batches=2, batch=4, seed=3)
    alone = X.gradient_cosines(top, head, english, labels, {"t": (src, tgt, "token", links)}, n_batches=2, batch=4, seed=3)
    assert both["t"] == alone["t"]
    assert both["s"][0]["task_task"] == both["t"][0]["task_task"] and both["s"][0]["align_task"] != both["t"][0]["align_task"]
    assert -1 <= both["s"][1]["align_task"]["global"]["cos"] <= 1
    with pytest.raises(ValueError, match="two disjoint"):
        X.gradient_cosines(top, head, english.subset([0, 1, 2]), labels[:3], {"s": (src, tgt, "sentence", None)},
                           n_batches=1, batch=4, seed=0)


@pytest.mark.parametrize("check, wrong", [
    (ex.check_block_cosine, [lambda g1, g2, names: sum(float(torch.nn.functional.cosine_similarity(
                                 g1[n].flatten(), g2[n].flatten(), dim=0)) for n in names) / len(names),
                             lambda g1, g2, names: float(torch.cat([g1[n].flatten() for n in g1]) @
                                                         torch.cat([g2[n].flatten() for n in g2]))]),
    (ex.check_null_scale, [lambda d: 1 / d, lambda d: 0.0]),
    (ex.check_relative_distance, [lambda d: [d[i][i] / (sum(d[i]) / len(d)) for i in range(len(d))],
                                  lambda d: [d[i][i] for i in range(len(d))]]),
])
def test_exercise_checks_reject_wrong_answers(check, wrong):
    for fn in wrong:
        with pytest.raises(AssertionError):
            check(fn)


def test_exercise_checks_accept_right_answers():
    def block_cosine(g1, g2, names):
        a, b = (torch.cat([g[n].flatten().double() for n in names]) for g in (g1, g2))
        return float(a @ b / (a.norm() * b.norm()))

    def relative(d):
        n = len(d)
        return [d[i][i] / (sum(d[i][j] for j in range(n) if j != i) / (n - 1)) for i in range(n)]

    assert ex.check_block_cosine(block_cosine).startswith("✔")
    assert ex.check_null_scale(lambda d: d ** -0.5).startswith("✔")
    assert ex.check_relative_distance(relative).startswith("✔")


def test_split_sentences_by_script():
    assert D.split_sentences("One. Two? Three! Four; five") == ["One.", "Two?", "Three!", "Four;", "five"]
    assert D.split_sentences("पहला । दूसरा।  तीसरा") == ["पहला ।", "दूसरा।", "तीसरा"]
    assert D.split_sentences("أولا؟ ثانيا.") == ["أولا؟", "ثانيا."]
    assert D.split_sentences("e.g.x 3.5 end.") == ["e.g.x 3.5 end."]      # no whitespace after the dot: one


def test_udhr_pairs_are_translations_unit_by_unit():
    from mlbook.corpora import udhr

    pairs = D.udhr_pairs("eng", "deu_1996")
    whole = D.udhr_pairs("eng", "deu_1996", sentences=False)
    assert len(pairs) > len(whole) >= 40
    n_en = {a: sum(1 for r in udhr.udhr(["eng"]) if r["article"] == a) for a in range(31)}
    n_de = {a: sum(1 for r in udhr.udhr(["deu_1996"]) if r["article"] == a) for a in range(31)}
    assert {r["article"] for r in whole} == {a for a in range(31) if n_en[a] == n_de[a]}   # only matching articles
    assert [r for r in whole if r["article"] == 3] == [
        {"article": 3, "paragraph": 1, "sentence": 0, "src": "Everyone has the right to life, liberty and the security of person.",
         "tgt": "Jeder hat das Recht auf Leben, Freiheit und Sicherheit der Person."}]
    split = [r for r in pairs if r["sentence"] > 0]
    assert split and all(D.split_sentences(r["src"]) == [r["src"]] for r in split)
    by_para = {}
    for r in split:
        by_para.setdefault((r["article"], r["paragraph"]), []).append(r["sentence"])
    assert all(v == list(range(1, len(v) + 1)) for v in by_para.values())


def test_one_seed_at_the_gpu_profiles_shapes(e5):
    """The gpu profile's code path on CPU: its k (several trained blocks) and max_length, every pair × loss,
    the placebo and the geometry, at two steps and one pair (xlm-roberta-base itself is not offline)."""
    from mlbook.chapters.ch06_alignment import study
    from mlbook.core.context import sizes

    model, tok = e5
    S = sizes("06_alignment_vs_transfer", "gpu", align_steps=2, task_steps=2, grad_batches=1, pairs=["rus"],
              eval_langs=["rus", "fra"], pos_test=["fr"])
    assert (S.k, S.max_length) == (4, 128)
    texts = study.prepare(model, tok, S.k, langs=S.eval_langs, pairs=S.pairs, max_length=S.max_length, progress=False)
    out = study.run_seed(model, texts, 0, S)
    assert out["encoders"] == ["base", ("rus", "sentence"), ("rus", "token"), "placebo"]
    n_layers = model.config.num_hidden_layers
    for (name, lang), d in out["distance"].items():
        assert d.shape[1] == n_layers + 1 and d.device.type == "cpu"
        assert torch.equal(d[:, : n_layers - S.k + 1], out["distance"][("base", lang)][:, : n_layers - S.k + 1])  # frozen below
    for (name, task, lang), scores in out["score"].items():
        assert scores and all(0.0 <= x <= 1.0 for x in scores)
    assert set(out["geometry"]) == {(t, "rus", kind) for t in ("topic", "pos") for kind in study.LOSSES}
    blocks = out["geometry"][("topic", "rus", "token")][0]["align_task"]
    assert len([b for b in blocks if b != "global"]) == S.k     # one block per trained layer
