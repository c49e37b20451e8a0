"""Countries and their capitals, localised by CLDR (``babel``), with English capitals from npm
``world-countries``."""
from __future__ import annotations

import json
import re
import unicodedata
from importlib.metadata import version as _pkg_version
from pathlib import Path

from .tables import cached_dataset, npm_package, unknown, where

# English spellings in world-countries that differ from the CLDR/tz city name.
_CAPITAL_ALIASES = {"Tirana": "Tirane", "Ulan Bator": "Ulaanbaatar"}


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
    wc_path, wc_ver = npm_package("world-countries")
    sources = {"babel": _pkg_version("babel"), "world-countries": wc_ver}
    ds = cached_dataset("capitals", sources, lambda f: _build_capitals(f, wc_path))
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
            raise unknown("locale", want, known)
        wanted.add(lid)
    return where(ds, locale=wanted)
