"""Rendering GlotOCR images in its two profiles, from a layout (``mlbook.ocr.typeset``).

    layout(text, font)            shape + wrap once: the glyphs of every line and their positions
    draw(layout, PLAIN, seed)     ink the glyphs, rotate ±1°                        → PIL 'L' image
    draw(layout, OLD_DOCUMENT, s) jittered inking on paper + the card's degradations → PIL 'L' image

Both profiles start from the same Layout, so they share the font and the line breaks. Every random
choice comes from ``numpy.random.default_rng(seed)``: same seed, same image. Only numpy and PIL are used
for the degradations (torchvision breaks beside the CPU torch wheel; OpenCV is not needed).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .typeset import Layout, ink, layout


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


def render(text: str, font: str, prof=PLAIN, seed: int = 0, **layout_kw):
    """layout + draw in one call."""
    return draw(layout(text, font, **layout_kw), prof, seed)


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
