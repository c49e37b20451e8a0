"""OCR benchmark helpers for the GlotOCR chapter: CER and its summaries, script detection and tiers,
Noto font choice, ground-truth cleaning, PLAIN-profile line rendering (uharfbuzz + freetype-py) and a
Tesseract reader. Heavy imports (uharfbuzz, freetype, fontTools, PIL, pytesseract) live inside the
functions that need them."""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path


NOTO_DIR = Path("/usr/share/fonts/truetype/noto")
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


@lru_cache(maxsize=None)
def _cmap(font_path: str) -> frozenset:
    from fontTools.ttLib import TTFont
    with TTFont(font_path, lazy=True, fontNumber=0) as f:
        return frozenset(f.getBestCmap() or {})


def _countable(c: str) -> bool:
    return unicodedata.category(c) not in ("Cf", "Zs", "Cc")


@lru_cache(maxsize=1024)
def font_for_script(text: str, font_dir: str = str(NOTO_DIR), style: str = "Regular") -> str | None:
    """Path of the font under font_dir (files '*-{style}.[ot]t[fc]') covering the most distinct
    characters of the sample text (cmap only; Cf/Zs/Cc not counted). Ties: NotoSans* first, then
    non-Serif, non-Mono, then the shortest name. None when no font covers any character (e.g. Han
    with fonts-noto-core alone: install fonts-noto-cjk). Cached per (text, font_dir, style)."""
    need = {ord(c) for c in text if _countable(c)}
    paths = [p for ext in ("ttf", "otf", "ttc") for p in Path(font_dir).glob(f"*-{style}.{ext}")]
    if not paths:
        raise FileNotFoundError(f"no *-{style} fonts under {font_dir} (apt-get install fonts-noto-core)")

    def key(p: Path):
        n = p.name
        return (-len(need & _cmap(str(p))), not n.startswith("NotoSans"), "Serif" in n, "Mono" in n,
                len(n), n)
    best = min(paths, key=key)
    return str(best) if need & _cmap(str(best)) else None


def is_rtl(text: str) -> bool:
    """True when right-to-left strong characters (bidi R/AL) outnumber left-to-right ones (L)."""
    bidi = [unicodedata.bidirectional(c) for c in text]
    return sum(b in ("R", "AL") for b in bidi) > sum(b == "L" for b in bidi)


def clean_ground_truth(text: str, font_path: str, rtl: bool | None = None) -> str:
    """Delete characters the font has no glyph for (Cf and Zs are kept) and, for RTL text, the
    minority-direction characters (bidi L, e.g. Latin letters, and EN, European digits); then
    collapse whitespace runs to one space and strip the ends."""
    cmap = _cmap(font_path)
    rtl = is_rtl(text) if rtl is None else rtl
    keep = [c for c in text if ord(c) in cmap or unicodedata.category(c) in ("Cf", "Zs")]
    if rtl:
        keep = [c for c in keep if unicodedata.bidirectional(c) not in ("L", "EN")]
    return " ".join("".join(keep).split())


# ------------------------------------------------------------------------------------------ rendering


@lru_cache(maxsize=64)
def _hb_font(font_path: str):
    import uharfbuzz as hb
    return hb.Font(hb.Face(hb.Blob.from_file_path(font_path)))


def shape_text(text: str, font_path: str, rtl: bool | None = None) -> dict:
    """Shape text with HarfBuzz (script/language guessed; direction forced when rtl is given).
    Returns glyph ids and clusters (code point indices) in visual order, positions in font units,
    the direction, the script and the font's units per em."""
    import uharfbuzz as hb
    font = _hb_font(font_path)
    buf = hb.Buffer()
    buf.add_str(text)
    buf.guess_segment_properties()
    if rtl is not None:
        buf.direction = "rtl" if rtl else "ltr"
    hb.shape(font, buf, {})
    pos = buf.glyph_positions
    return {"glyphs": [g.codepoint for g in buf.glyph_infos],
            "clusters": [g.cluster for g in buf.glyph_infos],
            "x_advance": [p.x_advance for p in pos], "x_offset": [p.x_offset for p in pos],
            "y_offset": [p.y_offset for p in pos], "direction": buf.direction,
            "script": buf.script, "upem": font.face.upem}


def _wrap(text: str, font_path: str, rtl, avail_px: float, size: int) -> list[str]:
    """Greedy line breaks at HarfBuzz cluster (≈ grapheme cluster) boundaries so that each line's
    advance fits avail_px; a cluster wider than the line goes alone on its line."""
    sh = shape_text(text, font_path, rtl)
    scale = size / sh["upem"]
    width = {}  # cluster start -> advance in px
    for c, adv in zip(sh["clusters"], sh["x_advance"]):
        width[c] = width.get(c, 0.0) + adv * scale
    starts = sorted(width)
    lines, begin, used = [], 0, 0.0
    for c in starts:
        if used + width[c] > avail_px and c > begin:
            lines.append(text[begin:c])
            begin, used = c, 0.0
        used += width[c]
    lines.append(text[begin:])
    return [ln.strip() for ln in lines if ln.strip()]


@lru_cache(maxsize=64)
def _ft_face(font_path: str, size: int):
    import freetype
    face = freetype.Face(font_path)
    face.set_pixel_sizes(0, size)
    return face


def render_line(text: str, font_path: str, size: int = 48, width: int = 1000, margin: int = 40,
                rtl: bool | None = None, seed: int = 0, return_info: bool = False):
    """Render text in the PLAIN profile: HarfBuzz shaping, FreeType rasterisation (size px per em)
    at the shaped positions, wrapping at cluster boundaries to width - 2*margin, black on white,
    RTL lines right-aligned, then a seeded rotation uniform in [-1°, +1°] (canvas expanded, white
    fill). Returns a PIL 'L' image, or (image, info) with info = {'n_glyphs', 'glyphs' (ids per
    line), 'lines', 'direction', 'script', 'angle'}."""
    import numpy as np

    import freetype
    from PIL import Image
    rtl = is_rtl(text) if rtl is None else rtl
    lines = _wrap(text, font_path, rtl, width - 2 * margin, size)
    face = _ft_face(font_path, size)
    m = face.size
    ascender, line_h = m.ascender / 64, (m.ascender - m.descender) / 64
    height = int(np.ceil(2 * margin + line_h * max(1, len(lines))))
    ink = np.zeros((height, width), dtype=np.uint8)
    info = {"lines": lines, "glyphs": [], "n_glyphs": 0, "direction": None, "script": None}
    for li, line in enumerate(lines):
        sh = shape_text(line, font_path, rtl)
        scale = size / sh["upem"]
        info["glyphs"].append(sh["glyphs"])
        info["n_glyphs"] += len(sh["glyphs"])
        info["direction"], info["script"] = sh["direction"], sh["script"]
        total = sum(sh["x_advance"]) * scale
        pen = (width - margin - total) if sh["direction"] == "rtl" else margin
        baseline = margin + li * line_h + ascender
        for gid, adv, xo, yo in zip(sh["glyphs"], sh["x_advance"], sh["x_offset"], sh["y_offset"]):
            face.load_glyph(gid, freetype.FT_LOAD_DEFAULT | freetype.FT_LOAD_RENDER)
            g = face.glyph
            bm = g.bitmap
            if bm.rows and bm.width:
                arr = np.array(bm.buffer, dtype=np.uint8).reshape(bm.rows, bm.pitch)[:, :bm.width]
                x0 = int(round(pen + xo * scale)) + g.bitmap_left
                y0 = int(round(baseline - yo * scale)) - g.bitmap_top
                # clip the glyph box to the canvas, then max-composite (overlapping marks add ink)
                ys, xs = max(0, y0), max(0, x0)
                ye, xe = min(height, y0 + bm.rows), min(width, x0 + bm.width)
                if ye > ys and xe > xs:
                    sub = arr[ys - y0:ye - y0, xs - x0:xe - x0]
                    ink[ys:ye, xs:xe] = np.maximum(ink[ys:ye, xs:xe], sub)
            pen += adv * scale
    angle = float(np.random.default_rng(seed).uniform(-1.0, 1.0))  # PLAIN profile: rotation ±1°
    img = Image.fromarray(255 - ink, mode="L").rotate(angle, resample=Image.BICUBIC, expand=True,
                                                      fillcolor=255)
    info["angle"] = angle
    return (img, info) if return_info else img


# ------------------------------------------------------------------------------------------ engines


def tesseract_read(image, lang: str = "eng", psm: int = 6) -> str:
    """Read an image with Tesseract via pytesseract (page segmentation mode psm; 6 = one block).
    Raises RuntimeError naming the apt package when a language's traineddata is missing."""
    import pytesseract
    try:
        have = set(pytesseract.get_languages(config=""))
    except pytesseract.TesseractNotFoundError as e:
        raise RuntimeError("tesseract not found: apt-get install tesseract-ocr") from e
    missing = [code for code in lang.split("+") if code not in have]
    if missing:
        pkgs = " ".join(f"tesseract-ocr-{c.lower().replace('_', '-')}" for c in missing)
        raise RuntimeError(f"Tesseract traineddata missing for {missing}: apt-get install {pkgs}")
    return pytesseract.image_to_string(image, lang=lang, config=f"--psm {psm}").strip()
