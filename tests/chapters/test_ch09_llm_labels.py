"""Chapter 9's pieces at tiny sizes: the annotator's three interfaces (against their
definitions, on a tiny random model with the real SmolLM2 tokenizer), the label statistics and their units, the
cross-fitted topic concentration, the pool split and the loader of a user's CSV."""
import numpy as np
import pytest

from mlbook.chapters.ch09_llm_labels import annotate, claims, data, experiment
from mlbook.core import evidence
from mlbook.text import choice
from tests.tiny import causal_lm


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from mlbook.models.resolve import resolve

    return AutoTokenizer.from_pretrained(resolve("HuggingFaceTB/SmolLM2-135M-Instruct", "causal_lm"), local_files_only=True)


@pytest.fixture(scope="module")
def lm(tok):
    return causal_lm("llama", seed=3, vocab=len(tok))


EMAILS = ["Subject: Cheap meds\n\nBuy now, limited offer! Click here to order.",
          "Subject: Re: build failure\n\nThe nightly build broke again after the merge; I'll look at it tomorrow.",
          "Subject: hi\n\nok"]


def test_chat_interfaces_equal_their_definition(lm, tok):
    yes, no = annotate.answer_ids(tok)
    for qs in annotate.QUESTIONS.values():
        lo, tokens = annotate.chat_log_odds(lm, tok, EMAILS, qs, batch_size=2)
        prompts = [annotate.chat_prompt(tok, e, q) for e in EMAILS for q in qs]
        ref = [a - b for a, b in choice.score_naive(lm, prompts, [[[yes], [no]]] * len(prompts), end_id=None)]
        np.testing.assert_allclose(lo.ravel(), ref, atol=1e-4)
        assert tokens.tolist() == [sum(len(annotate.chat_prompt(tok, e, q)) for q in qs) for e in EMAILS]


def test_likelihood_interface_equals_its_definition(lm, tok):
    import torch

    s, _ = annotate.likelihood_scores(lm, tok, EMAILS, batch_size=2)
    for e, got in zip(EMAILS, s):
        ll = []
        for d in annotate.DESCRIPTIONS:
            head, body = tok(d, add_special_tokens=False)["input_ids"], tok(e, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([head + body])
            with torch.no_grad():
                logp = lm(input_ids=ids).logits[0].float().log_softmax(-1)
            ll.append(float(logp[len(head) - 1:-1].gather(1, ids[0, len(head):, None]).sum()))
        assert abs(got - (ll[0] - ll[1])) < 1e-3


def test_labels_and_truncation(tok):
    scores = {"holistic": np.array([[0.5], [-0.1]]), "two_question": np.array([[0.2, -0.3], [0.1, 0.4]]),
              "likelihood": np.array([-2.0, 3.0])}
    lab = annotate.labels_of(scores)
    assert lab["holistic"].tolist() == [1, 0] and lab["two_question"].tolist() == [0, 1]
    assert lab["likelihood"].tolist() == [0, 1]
    cut = annotate.truncate(tok, EMAILS, 5)
    assert all(len(tok(c, add_special_tokens=False)["input_ids"]) <= 6 for c in cut)
    assert cut[2] == EMAILS[2] or len(tok(EMAILS[2], add_special_tokens=False)["input_ids"]) > 5


def test_annotate_is_cached_and_deterministic(lm, tok, tmp_path, monkeypatch):
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    a = annotate.annotate(lm, tok, EMAILS, ["a", "b", "c"], "tiny", 16, batch_size=2, progress=False)
    b = annotate.annotate(lm, tok, EMAILS, ["a", "b", "c"], "tiny", 16, batch_size=3, progress=False)
    assert a["info"] == b["info"]  # the second call read the cache
    for k in annotate.INTERFACES:
        np.testing.assert_array_equal(a["scores"][k], b["scores"][k])
    assert a["tokens_out"] == {"holistic": 1, "two_question": 2, "likelihood": 0}


def test_balanced_accuracy_and_its_units_by_hand():
    gold = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    pred = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 1])  # TPR 1/3, TNR 5/7
    want = 0.5 * (1 / 3) + 0.5 * (5 / 7)
    assert claims.bal_acc(pred, gold) == pytest.approx(want)
    assert evidence.mean_of_means(claims.bal_units(pred, gold, 0.5)) == pytest.approx(want - 0.5)
    other = np.zeros(10, int)  # all ham: balanced accuracy ½
    assert claims.bal_acc(other, gold) == 0.5
    assert evidence.mean_of_means(claims.paired_bal_units(pred, other, gold)) == pytest.approx(want - 0.5)
    q = claims.label_quality(pred, gold)
    assert q["precision"] == pytest.approx(1 / 3) and q["recall"] == pytest.approx(1 / 3)
    assert claims.fp_share(pred, gold) == pytest.approx(2 / 4)


def test_topic_lift_is_cross_fitted():
    rng = np.random.default_rng(0)
    topics = rng.integers(0, 5, size=2000)
    boot = np.arange(2000)
    noise = rng.random(2000) < 0.2  # errors that do not depend on the topic
    lifts = [claims.topic_lift(noise, topics, boot, s, 5) for s in range(40)]
    assert abs(np.mean(lifts)) < 0.01  # no concentration → no lift on average (in-sample it would be > 0)
    planted = noise | ((topics == 3) & (rng.random(2000) < 0.5))
    assert min(claims.topic_lift(planted, topics, boot, s, 5) for s in range(10)) > 0.2


def test_gain_units_and_budgets():
    import pandas as pd

    rows = [{"encoder": "e", "oracle": "h", "strategy": st, "seed": s, "n_labels": n, "f1": f}
            for s in (0, 1) for n in (10, 20, 30)
            for st, f in (("random", 0.5 + n / 100), ("entropy", 0.5 + n / 100 + 0.1 * s))]
    df = pd.DataFrame(rows)
    assert claims.gain_units(df, "e", "h", "entropy", 20) == pytest.approx([0.0, 0.1])
    assert claims.at_budget(df, "e", "h", "random", 20).tolist() == pytest.approx([0.7, 0.7])
    assert claims.nearest_budget([10, 20, 30, 120, 130], 123.2) == 120
    assert claims.nearest_budget([10, 20], 15) == 10


def test_split_first_labels_and_bootstrap():
    pool, test = experiment.split(100, 30, 40, seed=0)
    assert len(set(pool) | set(test)) == 70 and not set(pool) & set(test)
    with pytest.raises(ValueError, match="corpus has 100"):
        experiment.split(100, 80, 40)
    gold = np.array([0] * 95 + [1] * 5)
    for s in range(5):
        assert len(set(gold[experiment.first_labels(gold, 10, s)])) == 2
    np.testing.assert_array_equal(experiment.test_bootstrap(50, 3), experiment.test_bootstrap(50, 3))
    assert not np.array_equal(experiment.test_bootstrap(50, 3), experiment.test_bootstrap(50, 4))


def test_full_labelling_with_one_class_is_a_constant():
    X = np.random.default_rng(0).normal(size=(20, 3))
    rows, pred = experiment.full(X, X, np.r_[np.zeros(10), np.ones(10)].astype(int), np.zeros(20, int), "minilm", [0, 1])
    assert (pred == 0).all() and all(r["positive_rate"] == 0 for r in rows)


def test_prices():
    p = experiment.Prices(human_usd_per_label=0.1, llm_usd_per_mtok_in=2.0, llm_usd_per_mtok_out=8.0)
    assert p.human(30) == pytest.approx(3.0)
    assert p.llm([500_000, 500_000], [1, 1]) == pytest.approx(2.0 + 16e-6)


def test_csv_loader(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("comment,hostile\nfoo,1\nbar,0\n")
    ds = data.load_corpus(str(f), text_column="comment", label_column="hostile")
    assert ds["text"] == ["foo", "bar"] and ds["label"] == [1, 0]
    with pytest.raises(ValueError, match="no column 'text'"):
        data.load_corpus(str(f))
    f.write_text("text,label\nfoo,yes\n")
    with pytest.raises(ValueError, match="0/1"):
        data.load_corpus(str(f))
    with pytest.raises(FileNotFoundError):
        data.load_corpus(str(tmp_path / "missing.csv"))


def test_gpu_sizes_fit_the_corpus_and_the_loop():
    """The gpu profile's sizes, exercised on the CPU: its pool and test set fit the corpus, its AL budget fits
    its pool, and the loop runs its rounds × batch on a pool of its size (cheap features)."""
    from mlbook.core.context import sizes
    from mlbook.corpora.spamassassin import spamassassin
    from mlbook.training import active

    g = sizes("09_llm_labels_active_learning", "gpu")
    pool, test = experiment.split(len(spamassassin()), g.n_pool, g.n_test, seed=g.split_seed)
    assert len(pool) == g.n_pool and len(test) == g.n_test
    rng = np.random.default_rng(0)
    y = (rng.random(g.n_pool) < 0.3).astype(int)
    X = rng.normal(size=(g.n_pool, 4)) + y[:, None]
    c = active.run(X, y, lambda: experiment.make_model("tfidf"), "entropy", n_init=g.n_init, batch=g.batch,
                   rounds=g.rounds, seed=0, X_test=X[:300], y_test=y[:300], metric=experiment.f1_macro,
                   init=experiment.first_labels(y, g.n_init, 0))
    assert c.n_labels[-1] == g.n_init + g.batch * (g.rounds - 1) <= g.n_pool
    n_h = claims.nearest_budget(c.n_labels, experiment.PAPER_HUMAN_TO_LLM_LABELS * g.n_pool)
    assert n_h in c.n_labels and g.annotator in annotate.INTERFACES and set(g.encoders) <= set(experiment.ENCODERS)
