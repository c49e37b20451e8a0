"""The installed fonts, their cmaps, and GlotOCR's ground-truth cleaning (delete what the font has no
glyph for; in right-to-left text also the minority-direction characters)."""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

from .scripts import is_rtl, minority_in_rtl

NOTO_DIR = Path("/usr/share/fonts/truetype/noto")          # Debian fonts-noto-core

NOTO_CJK_DIR = Path("/usr/share/fonts/opentype/noto")      # Debian fonts-noto-cjk

FONT_DIRS = (str(NOTO_DIR), str(NOTO_CJK_DIR))

# Noto's CJK collection holds one face per region; the face decides regional glyph forms.
CJK_FACE = {"Hans": 2, "Hani": 2, "Hant": 3, "Jpan": 0, "Hira": 0, "Kana": 0, "Kore": 1, "Hang": 1}


def font_file(font: str) -> tuple[str, int]:
    """'path#N' → (path, N); a plain path is face 0."""
    path, _, idx = str(font).partition("#")
    return path, int(idx or 0)


@lru_cache(maxsize=None)
def font_cmap(font: str) -> frozenset:
    from fontTools.ttLib import TTFont
    path, idx = font_file(font)
    with TTFont(path, lazy=True, fontNumber=idx) as f:
        return frozenset(f.getBestCmap() or {})


def countable(c: str) -> bool:
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
    need = {ord(c) for c in text if countable(c)}
    return len(need & font_cmap(font)) / len(need) if need else 1.0


def clean_text(text: str, cmap, rtl: bool | None = None) -> str:
    """clean_ground_truth for a set of covered code points (a font's cmap)."""
    text = unicodedata.normalize("NFC", text)
    rtl = is_rtl(text) if rtl is None else rtl
    keep = [c for c in text if ord(c) in cmap or unicodedata.category(c) in ("Cf", "Zs")]
    if rtl:
        keep = [c for c in keep if not minority_in_rtl(c)]
    return " ".join("".join(keep).split())


def clean_ground_truth(text: str, font: str, rtl: bool | None = None) -> str:
    """GlotOCR's ground-truth cleaning: NFC; delete characters the font has no glyph for (Cf and Zs
    are kept); for RTL text also the minority-direction characters (bidi L, e.g. Latin letters, and the
    European digits: bidi EN outside the Arabic blocks, so Persian digits stay); then collapse
    whitespace runs to one space and strip the ends."""
    return clean_text(text, font_cmap(font), rtl)


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
