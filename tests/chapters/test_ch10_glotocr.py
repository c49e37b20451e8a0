"""mlbook.ocr_bench: line cutting (lengths, cluster boundaries), seeded line sampling, train/test text
disjointness, the cached benchmark Dataset, evaluation with a fake engine, scores and the claims'
arithmetic on a hand-made table."""
import numpy as np
import pandas as pd
import pytest

from mlbook.chapters.ch10_glotocr import benchmark, crnn_training, evaluation
from mlbook.ocr import fonts, metrics
from mlbook.ocr.engines import Engine
from mlbook.text import scripts
from tests.apt_needs import needs_fonts, needs_udhr

NOTO = fonts.NOTO_DIR


def test_cut_lines():
    rng = np.random.default_rng(0)
    text = ("Everyone has the right to freedom of thought, conscience and religion; this right includes "
            "freedom to change his religion or belief, and freedom, either alone or in community with others. ") * 3
    lines = benchmark.cut_lines(text, rng)
    assert lines and all(30 <= len(ln) <= 100 for ln in lines)
    assert all(not ln.startswith(" ") and not ln.endswith(" ") for ln in lines)
    joined = " ".join(lines)
    assert joined in " ".join(text.split())                                  # consecutive pieces, cut at spaces
    # no spaces (Thai-like): cut anywhere but never before a combining mark or after a virama
    deva = "क्षत्रियाणां" * 20
    for ln in benchmark.cut_lines(deva, np.random.default_rng(1)):
        assert ln[0] not in "्ािीुूेैोौंः" and 30 <= len(ln) <= 100
    assert benchmark.cut_lines("short", rng) == []


def test_disjoint_and_claim_arithmetic():
    train = ["abcdefghij klmnopqrstuvwxyz 0123456789"]
    assert crnn_training.disjoint(train, ["xx abcdefghijklmnopqrstuvwxyz 01234 xx", "a totally different text, long enough"]) == 1
    assert crnn_training.disjoint(train, ["xx abcdefghijklmnopqrstuvwxyz 01234 xx"], k=40) == 0   # no 40-character overlap
    assert crnn_training.disjoint([], ["anything"]) == 0
    rows = []
    # two engines; "A" trained on Latn only; lines of 3 tiers in both profiles
    for eng, trained_scripts in (("A", {"Latn"}), ("B", {"Latn", "Deva"})):
        for script, tier in (("Latn", "High"), ("Deva", "Mid"), ("Ethi", "Low")):
            for profile in ("PLAIN", "OLD_DOCUMENT"):
                trained = script in trained_scripts
                c = (0.0 if trained else 0.9) + (0.2 if profile == "OLD_DOCUMENT" else 0.0)
                out_script = script if trained else "Latn"
                rows.append({"engine": eng, "script": script, "tier": tier, "profile": profile, "cer": c,
                             "trained": trained, "output_script": out_script, "output_known": True,
                             "hclass": metrics.hallucination_class("x" if not trained else "", script, c)})
    df = pd.DataFrame(rows)
    m = evaluation.claims(df, pretrained=("A", "B"))
    assert m["tier_cer_high"] == 0 and m["tier_cer_mid"] == pytest.approx(0.45) and m["tier_cer_low"] == pytest.approx(0.9)
    assert m["A_coverage_gap"] == pytest.approx(0.9) and m["B_coverage_gap"] == pytest.approx(0.9)
    assert m["A_untrained_wrong_script"] == 1.0 and m["A_untrained_known_script"] == 1.0
    assert m["trained_cer_old_document_high"] == pytest.approx(0.2) and np.isnan(m["trained_cer_plain_low"])
    assert m["degradation_cer_high"] == pytest.approx(0.2) and m["degradation_acc5_high"] == 1.0
    df["id"] = df["script"]                       # one line per script, read in both profiles
    u = evaluation.claim_units([df], ["A", "B"], pretrained=("A", "B"))   # one seed: one stratum per sample
    assert u["tier_mid_minus_high__units"] == {"minus": [[[0.45]], [[0.0]]]}            # the line's mean over A and B
    assert u["A_coverage_gap__units"]["minus"] == [[[0.9, 0.9]], [[0.0]]]
    assert u["A_untrained_known_script__units"] == [[1.0, 1.0]] and u["B_untrained_correct__units"] == [[0.0]]
    assert u["degradation_cer_high__units"] == [[pytest.approx(0.2), pytest.approx(0.2)]]   # (engine, line) pairs
    assert u["degradation_cer_low__units"] == [[float("nan")]] or np.isnan(u["degradation_cer_low__units"][0][0])
    s = evaluation.scores(df[df.profile == "PLAIN"], by=("engine", "tier"))
    assert s.loc[("A", "High"), "acc@0"] == 1.0 and s.loc[("A", "Low"), "acc@10"] == 0.0 and s.loc[("B", "Mid"), "n"] == 1


@needs_fonts
@needs_udhr
def test_seed_lines_and_train_test_disjoint():
    a = benchmark.seed_lines("Cyrl", 4, seed=3)
    assert a == benchmark.seed_lines("Cyrl", 4, seed=3) and a != benchmark.seed_lines("Cyrl", 4, seed=4)
    assert len({lang for lang, _ in a}) == 4                                 # round robin over languages
    assert all(30 <= len(line) <= 100 and scripts.dominant_script(line) == "Cyrl" for _, line in a)
    test = [t for _, t in benchmark.seed_lines("Latn", 30, 0)]
    train = [t for _, t in benchmark.seed_lines("Latn", 200, 0, split="train")]
    assert crnn_training.disjoint(train, test) == 0
    with pytest.raises(ValueError, match="no test text for script 'Zzzz'"):
        benchmark.seed_lines("Zzzz", 1, 0)
    phrases = crnn_training.crnn_phrases(["Latn", "Geor"], 20, seed=0)
    assert len(phrases) == 40 and all(2 <= len(p) <= 24 for _, p in phrases)
    assert scripts.dominant_script("".join(p for _, p in phrases[20:])) == "Geor"
    geor_test = [t for _, t in benchmark.seed_lines("Geor", 10, 0)]
    assert crnn_training.disjoint(crnn_training.training_texts(["Latn", "Geor"]), test + geor_test) == 0     # CRNN never sees test text


@needs_fonts
@needs_udhr
def test_benchmark_dataset_and_evaluate(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    ds = benchmark.benchmark(["Latn", "Deva"], {"High": 2, "Mid": 1, "Low": 1}, seed=0, progress=False)
    assert set(ds.column_names) >= {"image", "text", "script", "language", "profile", "tier", "font"}
    assert len(ds) == 2 * (2 + 1)                                            # lines x profiles
    assert sorted(set(ds["profile"])) == ["OLD_DOCUMENT", "PLAIN"] and ds[0]["image"].mode == "L"
    ids = ds["id"]
    assert all(ids.count(i) == 2 for i in ids)                               # every line in both profiles
    again = benchmark.benchmark(["Latn", "Deva"], {"High": 2, "Mid": 1, "Low": 1}, seed=0, progress=False)
    assert again["text"] == ds["text"]                                       # the cached copy

    class Echo(Engine):                                                      # reads the ground truth back
        name, trained = "echo", frozenset({"Latn"})

        def read(self, images, scripts=None):
            return [t if s == "Latn" else "nonsense" for t, s in zip(ds["text"], scripts)]
    df = evaluation.evaluate(ds, [Echo()], progress=False)
    assert len(df) == len(ds)
    assert (df[df.script == "Latn"].cer == 0).all() and (df[df.script == "Latn"].hclass == "correct").all()
    assert (df[df.script == "Deva"].hclass == "wrong_script").all() and df[df.script == "Deva"].output_known.all()
