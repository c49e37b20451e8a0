"""Chapter 6's data: UDHR units in English and the evaluation languages, their topics, and the split.

- **Units.** A unit is a sentence of a UDHR paragraph (:func:`split_sentences`); its id is
  ``(article, paragraph, sentence)``. Parallel units come from :func:`udhr_pairs`.
- **Topic** (the sentence-level task, like SIB-200's topic classification): each of the 31 sections of the
  declaration (0 = the preamble) belongs to one of six themes, written for the book (:data:`TOPICS`).
- **Split.** Per seed, half of the paragraphs (by (article, paragraph)) are *train* and half *test*: the task
  trains on the English sentences of train paragraphs, alignment uses the parallel sentences of train
  paragraphs, and every measurement (task transfer, distances) reads test paragraphs only, so nothing the
  encoder was aligned or trained on is measured.
"""
from __future__ import annotations

import random
import re

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


_SENTENCE_END = re.compile(r"(?<=[.!?;։।؟۔።。！？])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph: split after ``. ! ? ;`` and their Armenian, Devanagari, Arabic, Urdu,
    Ethiopic and CJK forms when whitespace follows (a paragraph of a CJK text splits only where it has spaces)."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def _paragraphs(lang: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for row in udhr.udhr([lang]):
        out.setdefault(row["article"], []).append(row["text"])
    return out


def udhr_pairs(src: str, tgt: str, sentences: bool = True) -> list[dict]:
    """Parallel units of two translations: ``{"article", "paragraph", "sentence", "src", "tgt"}``.

    An article is used only where both translations have the same number of paragraphs in it (paragraph
    k is then paragraph k's translation); with ``sentences`` a paragraph pair is split further where both
    sides split into the same number of sentences (``sentence`` is 0 for an unsplit paragraph)."""
    pa_all, pb_all = _paragraphs(src), _paragraphs(tgt)
    out = []
    for art in sorted(set(pa_all) & set(pb_all)):
        pa, pb = pa_all[art], pb_all[art]
        if len(pa) != len(pb):
            continue
        for k, (x, y) in enumerate(zip(pa, pb), start=1):
            sx, sy = (split_sentences(x), split_sentences(y)) if sentences else ([x], [y])
            if len(sx) > 1 and len(sx) == len(sy):
                out += [{"article": art, "paragraph": k, "sentence": i, "src": a, "tgt": b}
                        for i, (a, b) in enumerate(zip(sx, sy), start=1)]
            else:
                out.append({"article": art, "paragraph": k, "sentence": 0, "src": x, "tgt": y})
    return out


def _paragraphs_per_article(lang: str) -> dict[int, int]:
    return {art: len(paras) for art, paras in _paragraphs(lang).items()}


def sentences(lang: str) -> list[dict]:
    """The sentences of one translation: ``{"article", "paragraph", "sentence", "text", "topic"}``, from the
    sections that have as many paragraphs as in English (there paragraph k is English paragraph k's translation)."""
    same = _paragraphs_per_article(lang).items() & _paragraphs_per_article("eng").items()
    keep = {art for art, _ in same}
    out = []
    for row in udhr.udhr([lang]):
        if row["article"] not in keep:
            continue
        for i, s in enumerate(split_sentences(row["text"]), start=1):
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
    """English–``lang`` parallel sentences (:func:`udhr_pairs`) of the ``part`` ("train" / "test") paragraphs."""
    if part not in ("train", "test"):
        raise ValueError(f"part is 'train' or 'test', not {part!r}")
    return [u for u in udhr_pairs("eng", lang) if ((u["article"], u["paragraph"]) in test) == (part == "test")]
