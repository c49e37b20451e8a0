"""Rendering GlotOCR images: HarfBuzz shaping, greedy wrapping at cluster boundaries, FreeType
rasterising at 48 px on a 1000 px canvas with 40 px margins, and the two profiles.

    layout(text, font)            shape + wrap once: the glyphs of every line and their positions
    draw(layout, PLAIN, seed)     ink the glyphs, rotate ±1°                        → PIL 'L' image
    draw(layout, OLD_DOCUMENT, s) jittered inking on paper + the card's degradations → PIL 'L' image

Both profiles start from the same Layout, so they share the font and the line breaks. Every random
choice comes from ``numpy.random.default_rng(seed)``: same seed, same image. Rasterised glyphs are
cached per (font, size, glyph id) — the "shaped-glyph cache" (``glyph_cache=False`` rasterises every
glyph afresh, for the benchmark and the test that both paths agree). Only numpy and PIL are used
for the degradations (torchvision breaks beside the CPU torch wheel; OpenCV is not needed).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import lru_cache

from .ocr import font_file, is_rtl

SIZE, WIDTH, MARGIN = 48, 1000, 40  # px per em, canvas width, margin (the card's values)

# ------------------------------------------------------------------------------------------ shaping


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


def _wrap(text: str, font: str, rtl: bool, avail_px: float, size: int) -> list[str]:
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
    for line in _wrap(text, font, rtl, width - 2 * margin, size):
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


# ------------------------------------------------------------------------------------- rasterising


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
    import numpy as np

    import freetype
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


# ------------------------------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class Plain:
    """PLAIN: black on white, rotated uniformly in ±rotation_deg."""
    rotation_deg: float = 1.0
    name: str = "PLAIN"


@dataclass(frozen=True)
class OldDocument:
    """OLD_DOCUMENT, the card's parameters (ranges are uniform draws per image; baseline_amp_px and
    baseline_period are ours, the card gives no numbers for the curved baseline)."""
    rotation_deg: float = 2.0
    baseline_amp_px: tuple = (2.0, 6.0)
    baseline_period: tuple = (0.8, 2.0)      # sine period, in canvas widths
    spacing_jitter_px: tuple = (-2, 4)       # integer px after each cluster
    line_jitter_px: float = 3.0
    p_dilate: float = 0.4
    p_erode: float = 0.25
    elastic_blur: int = 17                   # Gaussian kernel size of the displacement field
    elastic_amp: float = 8.0                 # px per unit of the blurred uniform(-1, 1) field
    perspective: float = 0.10                # corner shift ≤ 10 % of the side
    dropout_boxes: tuple = (10, 30)
    dropout_box_px: tuple = (3, 12)          # box side (ours)
    ink_fade: tuple = (0.5, 0.85)            # ink opacity
    noise_sigma: float = 8.0
    downscale: tuple = (0.4, 0.7)
    jpeg_quality: tuple = (30, 80)
    name: str = "OLD_DOCUMENT"

    def scaled(self, s: float) -> "OldDocument":
        """The profile at strength s (0 = no degradation at all, 1 = the card's): every amplitude,
        probability and count times s; fade, downscale and JPEG quality move from 1 / 100 toward
        the card's range."""
        s = float(s)
        lin = lambda v: tuple(x * s for x in v) if isinstance(v, tuple) else v * s  # noqa: E731
        toward = lambda v, one: tuple(one - s * (one - x) for x in v)  # noqa: E731
        return replace(self, rotation_deg=self.rotation_deg * s, baseline_amp_px=lin(self.baseline_amp_px),
                       spacing_jitter_px=tuple(int(round(x * s)) for x in self.spacing_jitter_px),
                       line_jitter_px=self.line_jitter_px * s, p_dilate=min(1.0, self.p_dilate * s),
                       p_erode=min(1.0, self.p_erode * s), elastic_amp=self.elastic_amp * s,
                       perspective=self.perspective * s,
                       dropout_boxes=tuple(int(round(x * s)) for x in self.dropout_boxes),
                       ink_fade=toward(self.ink_fade, 1.0), noise_sigma=self.noise_sigma * s,
                       downscale=toward(self.downscale, 1.0),
                       jpeg_quality=tuple(int(round(x)) for x in toward(self.jpeg_quality, 100.0)))


PLAIN, OLD_DOCUMENT = Plain(), OldDocument()


def profile(name: str, **params):
    """'PLAIN' or 'OLD_DOCUMENT' (any case), with parameters overridden (lists become tuples)."""
    base = {"PLAIN": PLAIN, "OLD_DOCUMENT": OLD_DOCUMENT}.get(str(name).upper())
    if base is None:
        raise ValueError(f"unknown profile {name!r}; choose PLAIN or OLD_DOCUMENT")
    known = {f.name for f in fields(base)} - {"name"}
    bad = set(params) - known
    if bad:
        raise ValueError(f"unknown {base.name} parameters {sorted(bad)}; they are {sorted(known)}")
    return replace(base, **{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def draw(lay: Layout, prof=PLAIN, seed: int = 0, glyph_cache: bool = True):
    """Rasterise a layout in a profile (Plain or OldDocument); a PIL 'L' image."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    if isinstance(prof, Plain):
        angle = float(rng.uniform(-prof.rotation_deg, prof.rotation_deg))
        img = Image.fromarray(255 - ink(lay, glyph_cache), mode="L")
        return img.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=255)
    if isinstance(prof, OldDocument):
        return _old_document(lay, prof, rng, glyph_cache)
    raise TypeError(f"not a profile: {prof!r}")


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


def render(text: str, font: str, prof=PLAIN, seed: int = 0, **layout_kw):
    """layout + draw in one call."""
    return draw(layout(text, font, **layout_kw), prof, seed)


# ------------------------------------------------------------------------------------- degradations


def _old_document(lay: Layout, p: OldDocument, rng, glyph_cache: bool):
    import numpy as np
    from PIL import Image, ImageFilter

    # 1. jittered inking: spacing after each cluster, a sine baseline, a shift per line
    lo, hi = p.spacing_jitter_px
    spacing = [rng.integers(lo, hi + 1, size=max(ln.cluster, default=-1) + 1).astype(float) for ln in lay.lines]
    extra = max([0] + [int(np.ceil(ln.width + s.sum() - (lay.width - 2 * lay.margin))) for ln, s in
                       zip(lay.lines, spacing)])
    amp, period = rng.uniform(*p.baseline_amp_px), rng.uniform(*p.baseline_period) * lay.width
    phase = rng.uniform(0, 2 * np.pi)
    shifts = rng.uniform(-p.line_jitter_px, p.line_jitter_px, size=len(lay.lines))
    alpha = Image.fromarray(ink(lay, glyph_cache, spacing, lambda x: amp * np.sin(2 * np.pi * x / period + phase),
                                shifts, extra_width=extra))
    # 2. stroke weight: dilation (p 0.4) and/or erosion (p 0.25) of the ink, 3x3
    if rng.random() < p.p_dilate:
        alpha = alpha.filter(ImageFilter.MaxFilter(3))
    if rng.random() < p.p_erode:
        alpha = alpha.filter(ImageFilter.MinFilter(3))
    a = np.asarray(alpha, dtype=np.float32) / 255.0
    # 3. faded ink on paper: opacity f in [0.5, 0.85] over a paper texture
    paper = paper_texture(a.shape, rng)
    ink_level = rng.uniform(10, 50)
    fade = rng.uniform(*p.ink_fade)
    img = paper * (1 - fade * a) + ink_level * fade * a
    # 4. elastic warp, rotation, perspective (geometry; new pixels are paper-coloured)
    img = elastic(img, rng, p.elastic_blur, p.elastic_amp)
    fill = float(np.median(paper))
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L")
    pil = pil.rotate(float(rng.uniform(-p.rotation_deg, p.rotation_deg)), resample=Image.BICUBIC, expand=True,
                     fillcolor=int(fill))
    pil = perspective(pil, rng, p.perspective, fill)
    img = np.asarray(pil, dtype=np.float32).copy()
    # 5. dropout boxes (paper-coloured), Gaussian noise, down- and up-sampling, JPEG
    h, w = img.shape
    for _ in range(int(rng.integers(p.dropout_boxes[0], p.dropout_boxes[1] + 1)) if p.dropout_boxes[1] > 0 else 0):
        bw, bh = rng.integers(p.dropout_box_px[0], p.dropout_box_px[1] + 1, size=2)
        x0, y0 = int(rng.integers(0, max(1, w - bw))), int(rng.integers(0, max(1, h - bh)))
        img[y0:y0 + bh, x0:x0 + bw] = fill
    img = img + rng.normal(0, p.noise_sigma, img.shape) if p.noise_sigma > 0 else img
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L")
    f = rng.uniform(*p.downscale)
    if f < 1:
        pil = pil.resize((max(1, int(w * f)), max(1, int(h * f))), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    return jpeg(pil, int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1)))


def paper_texture(shape, rng):
    """Paper: a base tone in [215, 245], low-frequency blotches (±12) and fine grain (σ 3), float32."""
    import numpy as np
    from PIL import Image

    h, w = shape
    small = rng.normal(0, 1, (max(2, h // 60), max(2, w // 60))).astype(np.float32)
    blotch = np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.BICUBIC))
    blotch = 12 * blotch / (np.abs(blotch).max() + 1e-6)
    return (rng.uniform(215, 245) + blotch + rng.normal(0, 3, (h, w))).astype(np.float32)


def gaussian_kernel(ksize: int):
    """1-D Gaussian of ksize taps with OpenCV's default σ = 0.3·((ksize − 1)/2 − 1) + 0.8."""
    import numpy as np
    sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    x = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-x ** 2 / (2 * sigma ** 2))
    return k / k.sum()


def blur(a, ksize: int):
    """Separable Gaussian blur of a 2-D float array (reflect padding)."""
    import numpy as np
    k = gaussian_kernel(ksize).astype(np.float32)
    r = ksize // 2
    a = np.asarray(a, dtype=np.float32)
    for axis in (0, 1):
        ap = np.moveaxis(np.pad(a, [(r, r) if ax == axis else (0, 0) for ax in (0, 1)], mode="reflect"), axis, 0)
        n = a.shape[axis]
        out = k[0] * ap[0:n]
        for i in range(1, ksize):
            out += k[i] * ap[i:i + n]
        a = np.moveaxis(out, 0, axis)
    return a


def remap(img, dx, dy):
    """Bilinear resampling: out[y, x] = img[y + dy, x + dx] (edges clamped)."""
    import numpy as np
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sx, sy = np.clip(xx + dx, 0, w - 1), np.clip(yy + dy, 0, h - 1)
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = sx - x0, sy - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def elastic(img, rng, ksize: int = 17, amp: float = 8.0):
    """Elastic warp (Simard et al.): displacement fields of uniform(−1, 1) noise, Gaussian-blurred
    with a ksize kernel, times amp px."""
    if amp <= 0:
        return img
    dx = blur(rng.uniform(-1, 1, img.shape), ksize) * amp
    dy = blur(rng.uniform(-1, 1, img.shape), ksize) * amp
    return remap(img, dx, dy)


def perspective(pil, rng, max_frac: float, fill: float):
    """A random perspective warp: each corner moves by up to max_frac of the side, in x and in y."""
    import numpy as np
    from PIL import Image

    if max_frac <= 0:
        return pil
    w, h = pil.size
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float)
    src = dst + rng.uniform(-max_frac, max_frac, (4, 2)) * [w, h]
    # PIL maps each output pixel (x, y) to the input (ax+by+c, dx+ey+f)/(gx+hy+1): solve for a..h
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows), np.array(rhs))
    return pil.transform((w, h), Image.PERSPECTIVE, tuple(coeffs), resample=Image.BICUBIC, fillcolor=int(fill))


def jpeg(pil, quality: int):
    """Encode as JPEG at quality and decode again."""
    import io

    from PIL import Image
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("L")
