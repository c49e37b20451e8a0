"""What GlotOCR measures and what it renders from: the six-variant CER, Acc@t, the script of a text,
script accuracy, tiers, hallucination classes; the per-script font choice (cmap coverage + a
HarfBuzz/FreeType glyph check) and the ground-truth cleaning. Rendering lives in mlbook.render, the
engines in mlbook.ocr_engines, the benchmark in mlbook.ocr_bench. Heavy imports (fontTools,
uharfbuzz, freetype) live inside the functions that need them."""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path


NOTO_DIR = Path("/usr/share/fonts/truetype/noto")          # Debian fonts-noto-core
NOTO_CJK_DIR = Path("/usr/share/fonts/opentype/noto")      # Debian fonts-noto-cjk
FONT_DIRS = (str(NOTO_DIR), str(NOTO_CJK_DIR))
ACC_THRESHOLDS = (0.0, 0.02, 0.05, 0.10)
CORRECT_CER = 0.10  # hallucination_class: a reading with CER <= 10 % (the loosest Acc@t) is "correct"

# ----------------------------------------------------------------------------------------- metrics


def levenshtein(a: str, b: str) -> int:
    """Edit distance (unit-cost insert/delete/substitute) over code points, one numpy row at a time."""
    import numpy as np

    if len(a) < len(b):
        a, b = b, a  # loop over the shorter string; the row runs over the longer one
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    ar = np.arange(len(b) + 1)
    prev = ar.copy()  # distance from "" to b[:j]
    for i, ca in enumerate(np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32), start=1):
        cand = np.empty_like(prev)
        cand[0] = i
        # deletion (prev[j] + 1) or substitution/match (prev[j-1] + cost), then insertions along the row:
        # row[j] = min_k<=j cand[k] + (j - k), i.e. a running minimum of cand - j shifted back by j.
        cand[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bb != ca))
        prev = np.minimum.accumulate(cand - ar) + ar
    return int(prev[-1])


def strip_accents(s: str) -> str:
    """NFD, drop the non-spacing marks (category Mn), recompose (NFC)."""
    return unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", s)
                                                if unicodedata.category(c) != "Mn"))


def _no_ws(s: str) -> str:
    return "".join(s.split())


def cer(pred: str, gt: str, rtl: bool = False) -> float:
    """GlotOCR character error rate: the minimum over up to six (prediction, GT) variants of
    Levenshtein(variant without whitespace) / len(raw GT, whitespace included), capped at 1.
    Empty GT: 0 if the prediction is empty (after whitespace removal), else 1."""
    if len(gt) == 0:
        return 0.0 if not _no_ws(pred) else 1.0
    pl, gl = pred.lower(), gt.lower()
    variants = [(pred, gt),                     # 1. as-is
                (pl, gl),                       # 3. both lowercased
                (strip_accents(pred), gt),      # 5. prediction accent-stripped (NFD, drop Mn)
                (strip_accents(pl), gl)]        # 6. lowercased + prediction accent-stripped
    if rtl:
        variants += [(pred, gt[::-1]),          # 2. GT reversed (engine emitted visual order)
                     (pl, gl[::-1])]            # 4. lowercased + GT reversed
    # whitespace is removed before the distance but NOT from the divisor (raw GT length)
    best = min(levenshtein(_no_ws(p), _no_ws(g)) for p, g in variants)
    return min(1.0, best / len(gt))


def acc_at(cers, t: float) -> float:
    """Acc@t: share of lines with CER <= t (t in ACC_THRESHOLDS in the paper). NaN for no lines."""
    import numpy as np

    c = np.asarray(list(cers), dtype=float)
    return float(np.mean(c <= t + 1e-12)) if c.size else float("nan")


# ----------------------------------------------------------------------------------------- scripts

TIERS = {
    "High": frozenset({"Latn"}),
    "Mid": frozenset({"Arab", "Cyrl", "Deva", "Hani", "Hans", "Hant", "Jpan", "Hira", "Kana",
                      "Kore", "Hang", "Grek", "Hebr", "Thai"}),
}  # "Low" = every other script
# Codes that denote the same writing system for script accuracy (Japanese text is mostly Han).
_FAMILY = {"Hans": "Hani", "Hant": "Hani", "Jpan": "Hani", "Hira": "Hani", "Kana": "Hani",
           "Kore": "Hang"}


def tier_of(script: str | None) -> str:
    """'High', 'Mid' or 'Low' for an ISO 15924 code."""
    for name, members in TIERS.items():
        if script in members:
            return name
    return "Low"


def overall(scores_by_tier: dict) -> float:
    """Overall = unweighted mean of the per-tier scores (NaN tiers, e.g. no lines, are skipped)."""
    import numpy as np

    v = [float(x) for x in scores_by_tier.values() if x == x]
    return float(np.mean(v)) if v else float("nan")


def text_script(s: str) -> str | None:
    """Dominant ISO 15924 script among the letters (category L*) of s; None if there are none.
    Japanese (kana present next to Han) is reported as 'Jpan'; Hangul as 'Hang'."""
    from collections import Counter

    from fontTools import unicodedata as fu
    counts = Counter(fu.script(c) for c in s if unicodedata.category(c).startswith("L"))
    for common in ("Zyyy", "Zinh", "Zzzz"):
        counts.pop(common, None)
    if not counts:
        return None
    if (counts.get("Hira", 0) or counts.get("Kana", 0)) and sum(
            counts.get(k, 0) for k in ("Hira", "Kana", "Hani")) >= max(counts.values()):
        return "Jpan"
    return counts.most_common(1)[0][0]


def same_script(a: str | None, b: str | None) -> bool:
    """Equal ISO 15924 codes up to the aliases in _FAMILY (Hans/Hant/Jpan ~ Hani, Kore ~ Hang)."""
    return a is not None and b is not None and _FAMILY.get(a, a) == _FAMILY.get(b, b)


def script_accuracy(preds, scripts) -> float:
    """Share of predictions whose dominant script matches the expected script."""
    import numpy as np

    hits = [same_script(text_script(p), s) for p, s in zip(preds, scripts, strict=True)]
    return float(np.mean(hits)) if hits else float("nan")


def hallucination_class(pred: str, gt_script: str | None, cer_value: float,
                        threshold: float = CORRECT_CER) -> str:
    """'correct' (CER <= threshold), else 'empty' (no non-space output), 'wrong_script' (letters
    dominated by another script than the GT's: the engine hallucinates a script it knows), else
    'artefact' (right script or no letters at all, but wrong text: noise, punctuation, digits)."""
    if cer_value <= threshold:
        return "correct"
    if not _no_ws(pred):
        return "empty"
    s = text_script(pred)
    if s is not None and not same_script(s, gt_script):
        return "wrong_script"
    return "artefact"


# ------------------------------------------------------------------------------ fonts and ground truth
#
# A font is named by a string: the file's path, with "#N" appended for face N of a collection
# (.ttc), e.g. ".../NotoSansCJK-Regular.ttc#2" (Noto Sans CJK SC).

# Noto's CJK collection holds one face per region; the face decides regional glyph forms.
_CJK_FACE = {"Hans": 2, "Hani": 2, "Hant": 3, "Jpan": 0, "Hira": 0, "Kana": 0, "Kore": 1, "Hang": 1}


def font_file(font: str) -> tuple[str, int]:
    """'path#N' → (path, N); a plain path is face 0."""
    path, _, idx = str(font).partition("#")
    return path, int(idx or 0)


@lru_cache(maxsize=None)
def _cmap(font: str) -> frozenset:
    from fontTools.ttLib import TTFont
    path, idx = font_file(font)
    with TTFont(path, lazy=True, fontNumber=idx) as f:
        return frozenset(f.getBestCmap() or {})


def _countable(c: str) -> bool:
    return unicodedata.category(c) not in ("Cf", "Zs", "Cc")


@lru_cache(maxsize=16)
def installed_fonts(font_dirs: tuple = FONT_DIRS, style: str = "Regular") -> tuple[str, ...]:
    """Every face of the '*-{style}' fonts under font_dirs ('path#N' for the faces of a .ttc;
    monospaced faces of a collection are skipped)."""
    from fontTools.ttLib import TTCollection
    out = []
    for d in font_dirs:
        for ext in ("ttf", "otf", "ttc"):
            for p in sorted(Path(d).glob(f"*-{style}.{ext}")):
                if ext != "ttc":
                    out.append(str(p))
                    continue
                with TTCollection(str(p), lazy=True) as c:
                    out += [f"{p}#{i}" for i, f in enumerate(c.fonts) if "Mono" not in f["name"].getDebugName(4)]
    return tuple(out)


def coverage(text: str, font: str) -> float:
    """Share of the distinct characters of text (Cf/Zs/Cc not counted) in the font's cmap."""
    need = {ord(c) for c in text if _countable(c)}
    return len(need & _cmap(font)) / len(need) if need else 1.0


def glyph_check(text: str, font: str, size: int = 32) -> dict:
    """The font check: shape the characters of text that the font's cmap covers with HarfBuzz and
    rasterise every glyph with FreeType. Fails on a .notdef glyph (id 0) after shaping, or on a
    cluster of visible characters (letters, marks, digits, punctuation, symbols) whose glyphs hold no
    ink. Returns {'ok', 'n_notdef', 'n_blank', 'blank' (the characters of the blank clusters)}."""
    from .render import glyph_bitmap, shape_text
    cmap = _cmap(font)
    covered = "".join(c for c in text if ord(c) in cmap and _countable(c))
    sh = shape_text(covered, font) if covered else {"glyphs": [], "clusters": []}
    ink = {}  # cluster start -> any ink among its glyphs
    for gid, cl in zip(sh["glyphs"], sh["clusters"]):
        arr = glyph_bitmap(font, size, gid)[0]
        ink[cl] = ink.get(cl, False) or bool(arr.size and arr.max() > 0)
    starts = sorted(ink)
    blank = []
    for i, cl in enumerate(starts):
        chars = covered[cl:starts[i + 1] if i + 1 < len(starts) else len(covered)]
        if not ink[cl] and any(unicodedata.category(c)[0] in "LMNPS" for c in chars):
            blank.append(chars)
    n_notdef = sum(g == 0 for g in sh["glyphs"])
    return {"ok": n_notdef == 0 and not blank, "n_notdef": n_notdef, "n_blank": len(blank), "blank": blank}


@lru_cache(maxsize=1024)
def font_for_script(text: str, script: str | None = None, font_dirs: tuple = FONT_DIRS,
                    style: str = "Regular", check: bool = True, max_tries: int = 5) -> str | None:
    """The font for a script, as GlotOCR chooses it: among the installed '*-{style}' faces, the one
    whose cmap covers the most distinct characters of the sample text (Cf/Zs/Cc not counted) and
    that passes glyph_check (with check=True; up to max_tries candidates in coverage order).
    Ties: NotoSans* first, then non-Serif, then the shortest name; in Noto's CJK collection the
    face of the script (SC for Hans/Hani, TC for Hant, JP for Jpan, KR for Hang/Kore; script
    defaults to the text's own). None when no font covers any character or none passes."""
    need = {ord(c) for c in text if _countable(c)}
    fonts = installed_fonts(tuple(font_dirs), style)
    if not fonts:
        raise FileNotFoundError(f"no *-{style} fonts under {font_dirs} (apt-get install fonts-noto-core fonts-noto-cjk)")
    script = script or text_script(text)

    def key(font: str):
        path, idx = font_file(font)
        n = Path(path).name
        face_pref = 0 if not path.endswith(".ttc") else (idx != _CJK_FACE.get(script, 2))
        return (-len(need & _cmap(font)), not n.startswith("NotoSans"), "Serif" in n, face_pref, len(n), n, idx)
    ranked = sorted(fonts, key=key)
    for font in ranked[:max_tries if check else 1]:
        if not need & _cmap(font):
            return None
        if not check or glyph_check(text, font)["ok"]:
            return font
    return None


def is_rtl(text: str) -> bool:
    """True when right-to-left strong characters (bidi R/AL) outnumber left-to-right ones (L)."""
    bidi = [unicodedata.bidirectional(c) for c in text]
    return sum(b in ("R", "AL") for b in bidi) > sum(b == "L" for b in bidi)


def _minority_in_rtl(c: str) -> bool:
    b = unicodedata.bidirectional(c)
    arabic = 0x0600 <= ord(c) <= 0x08FF  # Arabic, Syriac, Thaana, NKo, ... blocks: their digits are theirs
    return b == "L" or (b == "EN" and not arabic)


def clean_text(text: str, cmap, rtl: bool | None = None) -> str:
    """clean_ground_truth for a set of covered code points (a font's cmap)."""
    text = unicodedata.normalize("NFC", text)
    rtl = is_rtl(text) if rtl is None else rtl
    keep = [c for c in text if ord(c) in cmap or unicodedata.category(c) in ("Cf", "Zs")]
    if rtl:
        keep = [c for c in keep if not _minority_in_rtl(c)]
    return " ".join("".join(keep).split())


def clean_ground_truth(text: str, font: str, rtl: bool | None = None) -> str:
    """GlotOCR's ground-truth cleaning: NFC; delete characters the font has no glyph for (Cf and Zs
    are kept); for RTL text also the minority-direction characters (bidi L, e.g. Latin letters, and the
    European digits: bidi EN outside the Arabic blocks, so Persian digits stay); then collapse
    whitespace runs to one space and strip the ends."""
    return clean_text(text, _cmap(font), rtl)


def deleted_characters(text: str, font: str, rtl: bool | None = None) -> str:
    """The characters clean_ground_truth removed (whitespace changes aside), in order."""
    from collections import Counter
    text = unicodedata.normalize("NFC", text)
    left = Counter(clean_ground_truth(text, font, rtl))
    out = []
    for c in text:
        if c.isspace():
            continue
        if left[c] > 0:
            left[c] -= 1
        else:
            out.append(c)
    return "".join(out)
