"""Chapter 6's word alignments: the word split, the scores, the hand-made gold set, SimAlign on it, the cache."""
from __future__ import annotations

import re

import pytest

from mlbook.chapters.ch06_alignment import word_alignment as wa
from mlbook.chapters.ch06_alignment.data import udhr_pairs

GOLD = {"en-de": "deu_1996", "en-ru": "rus"}


@pytest.fixture(scope="module")
def aligner():
    """Loads the encoder once, from the real mlbook cache (a test's temporary cache has no converted e5)."""
    return wa._aligner(8, "itermax")


def test_words_in_four_scripts():
    assert wa.words("Everyone has the right to life, liberty and security of person.") == [
        "Everyone", "has", "the", "right", "to", "life", ",", "liberty", "and", "security", "of", "person", "."]
    assert wa.words("Gedanken‐, Gewissens‐ und Religionsfreiheit;") == [
        "Gedanken", "‐", ",", "Gewissens", "‐", "und", "Religionsfreiheit", ";"]   # a hyphen ending a word: split off
    assert wa.words("вступать в какую-либо ассоциацию.") == ["вступать", "в", "какую-либо", "ассоциацию", "."]
    hindi = "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता प्राप्त है ।"
    assert wa.words(hindi)[:3] == ["सभी", "मनुष्यों", "को"] and wa.words(hindi)[-2:] == ["है", "।"]
    assert len(wa.words(hindi)) == len(hindi.split())
    assert re.findall(r"\w+", "मनुष्यों") == ["मन", "ष", "य"]   # why \w is not enough: it drops the vowel signs
    assert wa.words("يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق.")[3:] == [
        "أحرارًا", "متساوين", "في", "الكرامة", "والحقوق", "."]   # the tanwin (a combining mark) stays in its word
    assert wa.words("الحرية، والعدل") == ["الحرية", "،", "والعدل"]


def test_score_by_hand():
    gold_links = [[(0, 0), (1, 1)], [(0, 0)]]            # 3 sure links over two sentence pairs
    pred = [[(0, 0), (1, 2)], [(0, 0), (1, 1)]]           # 4 links, 2 of them sure
    s = wa.score(pred, gold_links)
    assert s["precision"] == pytest.approx(2 / 4) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))   # = 4/7
    assert s["aer"] == pytest.approx(1 - (2 + 2) / (4 + 3))                      # Och & Ney with P = S: 3/7
    assert wa.score([[(0, 0), (1, 1)]], [[[1, 1], [0, 0]]])["aer"] == 0       # lists or tuples, any order
    with pytest.raises(ValueError):
        wa.score(pred, gold_links[:1])


@pytest.mark.parametrize("name", sorted(GOLD))
def test_gold_files_are_well_formed(name):
    rows = wa.load_gold(name)
    units = {(u["article"], u["paragraph"], u["sentence"]): u for u in udhr_pairs("eng", GOLD[name])}
    assert len(rows) == 15
    for r in rows:
        u = units[r["article"], r["paragraph"], r["sentence"]]
        assert (r["src"], r["tgt"]) == (wa.words(u["src"]), wa.words(u["tgt"]))
        assert 8 <= len(r["src"]) <= 25 and 8 <= len(r["tgt"]) <= 25
        links = [tuple(x) for x in r["sure"]]
        assert len(links) == len(set(links)) and links == sorted(links)
        assert all(0 <= i < len(r["src"]) and 0 <= j < len(r["tgt"]) for i, j in links)


def test_simalign_itermax_on_the_en_de_gold(aligner):
    rows = wa.load_gold("en-de")
    s = wa.score(wa.align([(r["src"], r["tgt"]) for r in rows]), [r["sure"] for r in rows])
    assert s["f1"] >= 0.85   # measured: F1 0.869 (P 0.836, R 0.904) at layer 8


def test_cached_alignments_are_built_once(aligner, tmp_path, monkeypatch):
    wanted = {(r["article"], r["paragraph"], r["sentence"]) for r in wa.load_gold("en-de")[:3]}
    units = [u for u in udhr_pairs("eng", "deu_1996") if (u["article"], u["paragraph"], u["sentence"]) in wanted]
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    calls = []
    real = wa.align
    monkeypatch.setattr(wa, "align", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = wa.cached_alignments("eng", "deu_1996", units)
    second = wa.cached_alignments("eng", "deu_1996", units)
    assert len(calls) == 1 and first == second                     # the second call read the cache
    assert first == real([(wa.words(u["src"]), wa.words(u["tgt"])) for u in units])
    assert list((tmp_path / "ch06").glob("word-alignments-*/alignments.json"))
