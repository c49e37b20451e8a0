"""The committed POS data of chapter 6 (data/06_alignment_vs_transfer/pos/) and its mapping tables."""
import re

import pytest

from mlbook.chapters.ch06_alignment import pos_data
from mlbook.chapters.ch06_alignment.pos_data import UPOS, load_pos

UDHR_ID = re.compile(r"a\d+\.p\d+\.s\d+")


@pytest.mark.parametrize("lang", pos_data.LANGS)
def test_rows_are_tagged_with_upos_only(lang):
    rows = load_pos(lang)
    assert rows
    for row in rows:
        assert row["lang"] == lang and row["source"]
        assert len(row["words"]) == len(row["upos"]) > 0
        assert set(row["upos"]) <= set(UPOS)


def test_upos_is_the_17_ud_tags():
    assert len(UPOS) == len(set(UPOS)) == 17


def test_english_is_large_enough():
    rows = load_pos("en")
    assert len(rows) >= 50
    assert sum(len(row["words"]) for row in rows) >= 1000


@pytest.mark.parametrize("lang", ["fr", "es", "de"])
def test_udhr_languages_share_the_english_unit_ids(lang):
    en = {row["id"] for row in load_pos("en")}
    ids = [row["id"] for row in load_pos(lang)]
    assert len(ids) == len(set(ids))
    assert all(UDHR_ID.fullmatch(i) for i in ids)
    assert len(en & set(ids)) >= len(ids) / 2


def test_turkish_gold_sample():
    rows = load_pos("tr")
    assert len(rows) == 300
    assert len({row["id"] for row in rows}) == 300


@pytest.mark.parametrize("table", [pos_data.STTS_TO_UPOS, pos_data.TWT_TO_UPOS, pos_data.TWT_FINE_TO_UPOS])
def test_mappings_map_into_upos(table):
    assert set(table.values()) <= set(UPOS)
