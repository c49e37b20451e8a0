"""Chapter 6's data: UDHR units in English and the evaluation languages, their topics, and the split.

- **Units.** A unit is a sentence of a UDHR paragraph (``udhr.split_sentences``); its id is
  ``(article, paragraph, sentence)``. Parallel units come from ``udhr.udhr_pairs``.
- **Topic** (the sentence-level task, like SIB-200's topic classification): each of the 31 sections of the
  declaration (0 = the preamble) belongs to one of six themes, written for the book (:data:`TOPICS`).
- **Split.** Per seed, half of the paragraphs (by (article, paragraph)) are *train* and half *test*: the task
  trains on the English sentences of train paragraphs, alignment uses the parallel sentences of train
  paragraphs, and every measurement (task transfer, distances) reads test paragraphs only, so nothing the
  encoder was aligned or trained on is measured.
"""
from __future__ import annotations

import random

from mlbook.corpora import udhr

PAIRS = ("deu_1996", "rus", "hin", "arb")            # the aligned pairs: English with each, four scripts
EVAL = ("deu_1996", "rus", "hin", "arb", "fra", "spa", "tur", "pol", "ell_monotonic", "heb", "pes_1", "ind", "vie",
        "cmn_hans")
NAMES = {"eng": "English", "deu_1996": "German", "rus": "Russian", "hin": "Hindi", "arb": "Arabic", "fra": "French",
         "spa": "Spanish", "tur": "Turkish", "pol": "Polish", "ell_monotonic": "Greek", "heb": "Hebrew", "pes_1": "Persian",
         "ind": "Indonesian", "vie": "Vietnamese", "cmn_hans": "Chinese"}
SHORT = {"eng": "en", "deu_1996": "de", "rus": "ru", "hin": "hi", "arb": "ar", "fra": "fr", "spa": "es", "tur": "tr",
         "pol": "pl", "ell_monotonic": "el", "heb": "he", "pes_1": "fa", "ind": "id", "vie": "vi", "cmn_hans": "zh"}

TOPICS = {  # theme: the sections of the declaration it holds
    "dignity and equality": (0, 1, 2, 7),
    "life, liberty and justice": (3, 4, 5, 6, 8, 9, 10, 11),
    "privacy, movement and nationality": (12, 13, 14, 15),
    "family, property, thought and assembly": (16, 17, 18, 19, 20),
    "work, welfare and political rights": (21, 22, 23, 24, 25),
    "education, culture and duties": (26, 27, 28, 29, 30),
}
TOPIC_OF = {art: i for i, arts in enumerate(TOPICS.values()) for art in arts}


def _paragraphs_per_article(lang: str) -> dict[int, int]:
    n: dict[int, int] = {}
    for row in udhr.udhr([lang]):
        n[row["article"]] = n.get(row["article"], 0) + 1
    return n


def sentences(lang: str) -> list[dict]:
    """The sentences of one translation: ``{"article", "paragraph", "sentence", "text", "topic"}``, from the
    sections that have as many paragraphs as in English (there paragraph k is English paragraph k's translation)."""
    same = _paragraphs_per_article(lang).items() & _paragraphs_per_article("eng").items()
    keep = {art for art, _ in same}
    out = []
    for row in udhr.udhr([lang]):
        if row["article"] not in keep:
            continue
        for i, s in enumerate(udhr.split_sentences(row["text"]), start=1):
            out.append({"article": row["article"], "paragraph": row["paragraph"], "sentence": i, "text": s,
                        "topic": TOPIC_OF[row["article"]]})
    return out


def split(seed: int, share_test: float = 0.5) -> set[tuple[int, int]]:
    """The test paragraphs of a seed, as (article, paragraph): a share of English's paragraphs, drawn per topic
    so that every theme is tested."""
    rng = random.Random(seed)
    paras = sorted({(r["article"], r["paragraph"]) for r in udhr.udhr(["eng"])})
    test = set()
    for arts in TOPICS.values():
        mine = [p for p in paras if p[0] in arts]
        test |= set(rng.sample(mine, max(1, round(share_test * len(mine)))))
    return test


def parallel(lang: str, test: set, part: str) -> list[dict]:
    """English–``lang`` parallel sentences (``udhr.udhr_pairs``) of the ``part`` ("train" / "test") paragraphs."""
    if part not in ("train", "test"):
        raise ValueError(f"part is 'train' or 'test', not {part!r}")
    return [u for u in udhr.udhr_pairs("eng", lang) if ((u["article"], u["paragraph"]) in test) == (part == "test")]
