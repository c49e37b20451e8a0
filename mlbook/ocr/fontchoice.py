"""The font for a script, as GlotOCR chooses it: cmap coverage of a sample text, then a glyph check
(HarfBuzz shaping + FreeType rasterising: no .notdef, no blank cluster)."""
from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

from mlbook.text.scripts import dominant_script

from .fonts import CJK_FACE, FONT_DIRS, countable, font_cmap, font_file, installed_fonts
from .typeset import glyph_bitmap, shape_text


def glyph_check(text: str, font: str, size: int = 32) -> dict:
    """The font check: shape the characters of text that the font's cmap covers with HarfBuzz and
    rasterise every glyph with FreeType. Fails on a .notdef glyph (id 0) after shaping, or on a
    cluster of visible characters (letters, marks, digits, punctuation, symbols) whose glyphs hold no
    ink. Returns {'ok', 'n_notdef', 'n_blank', 'blank' (the characters of the blank clusters)}."""
    cmap = font_cmap(font)
    covered = "".join(c for c in text if ord(c) in cmap and countable(c))
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
    need = {ord(c) for c in text if countable(c)}
    fonts = installed_fonts(tuple(font_dirs), style)
    if not fonts:
        raise FileNotFoundError(f"no *-{style} fonts under {font_dirs} (apt-get install fonts-noto-core fonts-noto-cjk)")
    script = script or dominant_script(text)

    def key(font: str):
        path, idx = font_file(font)
        n = Path(path).name
        face_pref = 0 if not path.endswith(".ttc") else (idx != CJK_FACE.get(script, 2))
        return (-len(need & font_cmap(font)), not n.startswith("NotoSans"), "Serif" in n, face_pref, len(n), n, idx)
    ranked = sorted(fonts, key=key)
    for font in ranked[:max_tries if check else 1]:
        if not need & font_cmap(font):
            return None
        if not check or glyph_check(text, font)["ok"]:
            return font
    return None
