"""Typesetting a GlotOCR line: HarfBuzz shaping, greedy wrapping at cluster boundaries, FreeType
rasterising at 48 px on a 1000 px canvas with 40 px margins.

    layout(text, font)   shape + wrap once: the glyphs of every line and their positions
    ink(layout)          the glyphs rasterised onto a canvas (numpy)

Rasterised glyphs are cached per (font, size, glyph id) — the "shaped-glyph cache" (``glyph_cache=False``
rasterises every glyph afresh, for the benchmark and the test that both paths agree).  ``draw_with_pil``
is the reference drawing by PIL/raqm that the tests and the benchmark compare with.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .fonts import font_file
from .scripts import is_rtl

SIZE, WIDTH, MARGIN = 48, 1000, 40  # px per em, canvas width, margin (the card's values)

@lru_cache(maxsize=256)
def _hb_font(font: str):
    import uharfbuzz as hb
    path, idx = font_file(font)
    return hb.Font(hb.Face(hb.Blob.from_file_path(path), idx))


def shape_text(text: str, font: str, rtl: bool | None = None) -> dict:
    """Shape text with HarfBuzz (script/language guessed; direction forced when rtl is given).
    Returns glyph ids and clusters (code point indices) in visual order, positions in font units,
    the direction, the script and the font's units per em."""
    import uharfbuzz as hb
    hbf = _hb_font(font)
    buf = hb.Buffer()
    buf.add_str(text)
    buf.guess_segment_properties()
    if rtl is not None:
        buf.direction = "rtl" if rtl else "ltr"
    hb.shape(hbf, buf, {})
    pos = buf.glyph_positions
    return {"glyphs": [g.codepoint for g in buf.glyph_infos],
            "clusters": [g.cluster for g in buf.glyph_infos],
            "x_advance": [p.x_advance for p in pos], "x_offset": [p.x_offset for p in pos],
            "y_offset": [p.y_offset for p in pos], "direction": buf.direction,
            "script": buf.script, "upem": hbf.face.upem}


def wrap(text: str, font: str, rtl: bool, avail_px: float, size: int) -> list[str]:
    """Greedy line breaks at HarfBuzz cluster (≈ grapheme cluster) boundaries so that each line's
    advance fits avail_px; a cluster wider than the line goes alone on its line. Breaks fall
    anywhere between clusters, inside words too (as GlotOCR does; CER ignores whitespace)."""
    sh = shape_text(text, font, rtl)
    scale = size / sh["upem"]
    width = {}  # cluster start -> advance in px
    for c, adv in zip(sh["clusters"], sh["x_advance"]):
        width[c] = width.get(c, 0.0) + adv * scale
    lines, begin, used = [], 0, 0.0
    for c in sorted(width):  # logical order, whatever the direction
        if used + width[c] > avail_px and c > begin:
            lines.append(text[begin:c])
            begin, used = c, 0.0
        used += width[c]
    lines.append(text[begin:])
    return [ln.strip() for ln in lines if ln.strip()]


@dataclass(frozen=True)
class Line:
    text: str
    glyphs: tuple      # glyph ids, visual order (left to right)
    x: tuple           # pen x of each glyph (px from the line's left end, x_offset included)
    y: tuple           # y offset of each glyph (px, up positive)
    cluster: tuple     # index of each glyph's cluster in visual order (0, 1, ...): jitter moves clusters
    width: float       # advance of the whole line (px)


@dataclass(frozen=True)
class Layout:
    """What both profiles share: the font, the line breaks and every shaped glyph's position."""
    text: str
    font: str
    size: int
    width: int
    margin: int
    rtl: bool
    direction: str
    script: str
    lines: tuple
    ascender: float    # px
    line_height: float  # px

    @property
    def n_glyphs(self) -> int:
        return sum(len(ln.glyphs) for ln in self.lines)


def _runs(line: str, rtl: bool) -> list[tuple[int, int, bool]]:
    """Directional runs of a line in visual order, as (start, end, rtl). A minimal bidi: in an RTL
    line, numbers (digits of bidi class EN/AN, with separators CS/ES/ET between digits) are LTR runs
    and the run order is reversed; an LTR line is one run."""
    import unicodedata
    if not rtl:
        return [(0, len(line), False)]
    cls = [unicodedata.bidirectional(c) for c in line]
    num = [b in ("EN", "AN") for b in cls]
    for i in range(1, len(line) - 1):  # 1,000 or 3.5: a separator between two digits joins the number
        if cls[i] in ("CS", "ES", "ET") and num[i - 1] and cls[i + 1] in ("EN", "AN"):
            num[i] = True
    runs, start = [], 0
    for i in range(1, len(line) + 1):
        if i == len(line) or num[i] != num[start]:
            runs.append((start, i, not num[start]))
            start = i
    return runs[::-1]


def layout(text: str, font: str, size: int = SIZE, width: int = WIDTH, margin: int = MARGIN,
           rtl: bool | None = None) -> Layout:
    """Shape text, wrap it to width - 2*margin at cluster boundaries, and reshape each line run by
    run (so that joining and reordering are right at the line ends, and numbers in RTL text read
    left to right)."""
    rtl = is_rtl(text) if rtl is None else rtl
    out, script = [], None
    for line in wrap(text, font, rtl, width - 2 * margin, size):
        pen, gl, xs, ys, cl, last, n_cluster = 0.0, [], [], [], [], None, -1
        for a, b, run_rtl in _runs(line, rtl):
            sh = shape_text(line[a:b], font, run_rtl)
            scale = size / sh["upem"]
            for g, c, adv, xo, yo in zip(sh["glyphs"], sh["clusters"], sh["x_advance"], sh["x_offset"], sh["y_offset"]):
                n_cluster += (a + c) != last
                last = a + c
                gl.append(g)
                xs.append(pen + xo * scale)
                ys.append(yo * scale)
                cl.append(n_cluster)
                pen += adv * scale
            script = sh["script"] if run_rtl == rtl else script
        out.append(Line(line, tuple(gl), tuple(xs), tuple(ys), tuple(cl), pen))
    m = _ft_face(font, size).size
    return Layout(text, font, size, width, margin, rtl, "rtl" if rtl else "ltr", script, tuple(out),
                  m.ascender / 64, (m.ascender - m.descender) / 64)


@lru_cache(maxsize=256)
def _ft_face(font: str, size: int):
    import freetype
    path, idx = font_file(font)
    face = freetype.Face(path, idx)
    face.set_pixel_sizes(0, size)
    return face


_GLYPHS: dict = {}  # (font, size, gid) -> (bitmap uint8 (rows, width), left, top): the glyph cache


def glyph_bitmap(font: str, size: int, gid: int, cache: bool = True):
    """FreeType's 8-bit coverage bitmap of one glyph and its bearing: (array, left, top)."""
    import freetype
    import numpy as np
    key = (font, size, gid)
    if cache and key in _GLYPHS:
        return _GLYPHS[key]
    face = _ft_face(font, size)
    face.load_glyph(gid, freetype.FT_LOAD_DEFAULT | freetype.FT_LOAD_RENDER)
    g = face.glyph
    bm = g.bitmap
    arr = np.array(bm.buffer, dtype=np.uint8).reshape(bm.rows, bm.pitch)[:, :bm.width] \
        if bm.rows and bm.width else np.zeros((0, 0), np.uint8)
    out = (arr, g.bitmap_left, g.bitmap_top)
    if cache:
        _GLYPHS[key] = out
    return out


def clear_glyph_cache() -> None:
    _GLYPHS.clear()


def ink(lay: Layout, glyph_cache: bool = True, spacing=None, baseline=None, line_shift=None,
        extra_width: int = 0):
    """Ink coverage (uint8, 255 = full ink) of a layout on a canvas of lay.width (+ extra_width) px.
    Optional jitter (OLD_DOCUMENT): spacing[i][k] px added after visual cluster k of line i,
    baseline(x) px moving the baseline up, line_shift[i] px moving line i down."""
    import numpy as np

    width = lay.width + extra_width
    height = int(np.ceil(2 * lay.margin + lay.line_height * max(1, len(lay.lines))))
    canvas = np.zeros((height, width), dtype=np.uint8)
    for li, line in enumerate(lay.lines):
        shift = np.zeros(len(line.glyphs)) if spacing is None else \
            np.concatenate([[0.0], np.cumsum(spacing[li])])[list(line.cluster)]
        total = line.width + (0.0 if spacing is None else float(np.sum(spacing[li])))
        left = (width - lay.margin - total) if lay.direction == "rtl" else lay.margin
        base = lay.margin + li * lay.line_height + lay.ascender + (0 if line_shift is None else line_shift[li])
        for gid, x, y, dx in zip(line.glyphs, line.x, line.y, shift):
            arr, bl, bt = glyph_bitmap(lay.font, lay.size, gid, glyph_cache)
            if not arr.size:
                continue
            gx = left + x + dx
            x0 = int(round(gx)) + bl
            y0 = int(round(base - y - (0.0 if baseline is None else baseline(gx)))) - bt
            ys, xs = max(0, y0), max(0, x0)  # clip to the canvas, then max-composite (marks add ink)
            ye, xe = min(height, y0 + arr.shape[0]), min(width, x0 + arr.shape[1])
            if ye > ys and xe > xs:
                np.maximum(canvas[ys:ye, xs:xe], arr[ys - y0:ye - y0, xs - x0:xe - x0], out=canvas[ys:ye, xs:xe])
    return canvas


def draw_with_pil(lay: Layout, pil_font, size: tuple[int, int] | None = None):
    """``lay``'s lines drawn by PIL's own text engine with ``pil_font`` (an ``ImageFont``) at our line
    positions, black on white ("L"): the reference our renderer is checked against and the peer it is
    timed against. ``size``: (width, height); default the layout's page."""
    import math

    from PIL import Image, ImageDraw

    if size is None:
        size = (lay.width, int(math.ceil(2 * lay.margin + lay.line_height * max(1, len(lay.lines)))))
    img = Image.new("L", size, 255)
    d = ImageDraw.Draw(img)
    for i, ln in enumerate(lay.lines):
        y = lay.margin + i * lay.line_height + lay.ascender
        if lay.direction == "rtl":
            d.text((lay.width - lay.margin, y), ln.text, font=pil_font, fill=0, anchor="rs", direction="rtl")
        else:
            d.text((lay.margin, y), ln.text, font=pil_font, fill=0, anchor="ls")
    return img
