"""Facts about countries, localised by CLDR: the capital, the official language, the currency and the
continent of each country, named in any CLDR locale, with the aliases a scorer may accept.

    capital    CLDR's exemplar city of the capital's time zone (``capitals``), in the locale
    language   the one official language world-countries lists, named by CLDR in the locale
    currency   the one currency world-countries lists, CLDR's name in the locale; aliases: its plural forms
    continent  world-countries' region (the Americas split by subregion), CLDR's name of the UN M49 region

A relation is left out for a country where the answer is not one thing (two official languages, two
currencies) rather than guessed, and so is an answer CLDR qualifies with a bracket or a date.  ``answer_key`` identifies the answer across locales (a language code, a
currency code, an M49 code, the capital's country), so that distractors can be drawn among *other* answers.
"""
from __future__ import annotations

import json
import re
from importlib.metadata import version as _pkg_version
from pathlib import Path

from .capitals import capitals
from .tables import cached_dataset, npm_package, unknown, where

RELATIONS = ("capital", "language", "currency", "continent")
CONTINENTS = {"Europe": "150", "Africa": "002", "Asia": "142", "Oceania": "009",
              "South America": "005", "North America": "003"}
# world-countries language names that CLDR's English names spell otherwise (or a dialect where the country's
# official language is meant)
_LANGUAGE_FIXES = {"Austro-Bavarian German": "de", "Bengali": "bn", "Persian (Farsi)": "fa", "Slovene": "sl",
                   "Greenlandic": "kl"}
VERSION = 3  # part of the cache key: bump when the table's rules change


def _continent(c: dict) -> str:
    if c["region"] == "Americas":
        return CONTINENTS["South America" if c["subregion"] == "South America" else "North America"]
    return CONTINENTS.get(c["region"], "")


def _language_code(c: dict, english_names: dict) -> str:
    names = list(c["languages"].values())
    if len(names) != 1:
        return ""
    return _LANGUAGE_FIXES.get(names[0]) or english_names.get(names[0], "")


def _upper_first(s: str) -> str:
    return s[:1].upper() + s[1:]


def _aliases(answer: str, extra=(), flip_case: bool = False) -> list[str]:
    """The answer, its other CLDR forms, and (``flip_case``: languages and currencies, lower-case in some
    locales, capitalised in others) the same with the first letter's case flipped."""
    out = [answer, *extra]
    if flip_case:
        out += [_upper_first(a) if a[:1].islower() else a[:1].lower() + a[1:] for a in out]
    return list(dict.fromkeys(a for a in out if a))


def _shares_word(answer: str, name: str) -> bool:
    """Does the answer repeat a word of the country's name (Алжир → Алжир, Kuwait → Kuwait City)?  Such a
    fact can be answered by copying the name from the context."""
    words = lambda s: {w.casefold() for w in re.findall(r"\w{3,}", s)}
    return bool(words(answer) & words(name))


def _build(folder: Path, wc_path: Path, locales: list[str]) -> dict:
    from babel import Locale
    from babel.numbers import get_currency_name
    from datasets import Dataset, Features, Sequence, Value

    countries = {c["cca2"]: c for c in json.loads((wc_path / "countries.json").read_text(encoding="utf-8"))}
    caps = capitals(locales)
    english = {}
    for code, name in Locale.parse("en").languages.items():
        english.setdefault(name, code)
    rows = []
    stale = re.compile(r"[(\d]")  # CLDR names with a qualifier or a date ("Leone (1964–2022)", "Tripoli (Libye)")
    for r in caps:
        c, loc = countries.get(r["country"]), Locale.parse(r["locale"])
        if c is None or not c.get("unMember"):
            continue
        base = {"country": r["country"], "locale": r["locale"], "country_name": r["country_name"],
                "country_en": c["name"]["common"], "area": float(c.get("area") or 0)}
        rows.append({**base, "relation": "capital", "answer_key": r["country"], "answer": r["capital_name"],
                     "aliases": _aliases(r["capital_name"])})
        rows[-1]["copyable"] = _shares_word(r["capital_name"], r["country_name"])
        lang = _language_code(c, english)
        if lang and lang in loc.languages:
            rows.append({**base, "relation": "language", "answer_key": lang, "answer": loc.languages[lang],
                         "aliases": _aliases(loc.languages[lang], flip_case=True), "copyable": False})
        if len(c["currencies"]) == 1:
            code = next(iter(c["currencies"]))
            name = get_currency_name(code, locale=loc)
            if name and name != code:
                plural = [] if loc.language == "ru" else [get_currency_name(code, count=2, locale=loc)]  # ru: a case form
                rows.append({**base, "relation": "currency", "answer_key": code, "answer": name,
                             "aliases": _aliases(name, plural, flip_case=True),
                             "copyable": _shares_word(name, r["country_name"])})
        m49 = _continent(c)
        if m49 and m49 in loc.territories:
            rows.append({**base, "relation": "continent", "answer_key": m49, "answer": loc.territories[m49],
                         "aliases": _aliases(loc.territories[m49]), "copyable": False})
    features = Features({"country": Value("string"), "locale": Value("string"), "country_name": Value("string"),
                         "country_en": Value("string"), "area": Value("float64"), "relation": Value("string"),
                         "answer_key": Value("string"), "answer": Value("string"), "aliases": Sequence(Value("string")),
                         "copyable": Value("bool")})
    rows = [r for r in rows if not stale.search(r["answer"])]
    Dataset.from_list(rows, features=features).save_to_disk(str(folder / "table"))
    return {"rows": len(rows)}


def country_facts(locales: list[str], relations=RELATIONS, complete: bool = True):
    """Facts of UN member states named in each of ``locales`` (babel ids: ``en``, ``de``, ``ru`` …).

    Columns: country (ISO alpha-2), locale, country_name (in the locale), country_en, area (km², for a
    size-ordered sample), relation, answer_key, answer, aliases, copyable (the answer repeats a word of the
    country's name in this locale).  ``complete``: keep only the (country,
    relation) pairs that have an answer in *every* locale asked for, so that languages compare the same facts.
    """
    bad = [r for r in relations if r not in RELATIONS]
    if bad:
        raise unknown("relation", bad[0], RELATIONS)
    locales = [locales] if isinstance(locales, str) else list(locales)
    wc_path, wc_ver = npm_package("world-countries")
    sources = {"babel": _pkg_version("babel"), "world-countries": wc_ver, "locales": sorted(locales), "v": VERSION}
    ds = cached_dataset("country-facts", sources, lambda f: _build(f, wc_path, sorted(locales)))
    ds = where(ds, relation=set(relations))
    if complete:
        seen: dict = {}
        for cc, rel in zip(ds["country"], ds["relation"]):
            seen[cc, rel] = seen.get((cc, rel), 0) + 1
        keep = [i for i, k in enumerate(zip(ds["country"], ds["relation"])) if seen[k] == len(set(locales))]
        ds = ds.select(keep, keep_in_memory=True)
    return ds
