"""Text lines of a page image, for a line recogniser: deskew (Otsu threshold + the angle that makes the
ink's row profile sharpest), split into lines, crop, resize to ``HEIGHT`` × ``SQUEEZE`` of the
aspect-preserving width.  ``samples_from_pages`` pairs crops with their texts for training."""
from __future__ import annotations

HEIGHT = 24    # px: every line crop is resized to this height (the model's input height) ...

SQUEEZE = 0.8  # ... and its width to SQUEEZE x the aspect-preserving width: 20 % fewer steps, still ≥ 2 per character


def _otsu(a) -> float:
    """Otsu's threshold of a uint8-valued array."""
    import numpy as np
    hist = np.bincount(a.astype(np.uint8).ravel(), minlength=256).astype(float)
    p = hist / hist.sum()
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(256))
    between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega) + 1e-12)
    return float(np.argmax(between))


def deskew_angle(mask, max_deg: float = 3.0) -> float:
    """The rotation (degrees, counter-clockwise as PIL's Image.rotate) that makes the text rows of an
    ink mask horizontal: the angle whose row profile is most peaked (largest sum of squared row
    counts), searched coarse (0.5°) then fine (0.1°). The profile of a rotation is a histogram of the
    rotated y coordinates of the ink pixels (y' = −x sin θ + y cos θ), no image is rotated."""
    import numpy as np

    ys, xs = np.nonzero(mask[::2, ::2])  # every second row and column: plenty for a profile
    if len(ys) == 0:
        return 0.0
    ys, xs = ys - ys.mean(), xs - xs.mean()

    def score(deg):
        t = np.deg2rad(deg)
        yr = np.round(-xs * np.sin(t) + ys * np.cos(t)).astype(int)
        counts = np.bincount(yr - yr.min())
        return float((counts.astype(float) ** 2).sum())
    coarse = max(np.arange(-max_deg, max_deg + 1e-9, 0.5), key=score)
    return float(max(np.arange(coarse - 0.4, coarse + 0.41, 0.1), key=score))


def line_crops(image, height: int = HEIGHT, squeeze: float = SQUEEZE, max_width: int = 1024, return_boxes: bool = False):
    """Text lines of a page image as ink arrays (float32 in [0, 1], 1 = ink) of the given height.
    Steps: Otsu binarisation, deskew (±3°), row profile of the ink, runs of inked rows = lines (runs
    thinner than a third of the tallest, e.g. a row of accents, join their nearest neighbour), crop
    each line to its ink columns with a small pad, resize to the height (width: the aspect-preserving
    width times squeeze)."""
    import numpy as np
    from PIL import Image

    g = np.asarray(image.convert("L"), dtype=np.float32)
    t = _otsu(g)
    if g.max() - g.min() < 40:  # a blank page: no lines
        return ([], []) if return_boxes else []
    angle = deskew_angle(g < t)
    bg = float(np.median(g))
    g = np.asarray(Image.fromarray(g.astype(np.uint8)).rotate(angle, resample=Image.BILINEAR, expand=True,
                                                              fillcolor=int(bg)), dtype=np.float32)
    ink = np.clip((bg - g) / max(bg - min(t, bg - 1), 1.0), 0, 1)  # 0 on paper, 1 at the threshold and darker
    mask = g < t
    rows = mask.sum(1) > max(2, 0.002 * mask.shape[1])
    runs, start = [], None
    for y, on in enumerate(list(rows) + [False]):
        if on and start is None:
            start = y
        elif not on and start is not None:
            runs.append([start, y])
            start = None
    if not runs:
        return ([], []) if return_boxes else []
    tallest = max(b - a for a, b in runs)
    merged = True
    while merged and len(runs) > 1:  # join thin runs (accents, dots, descender fragments) to a neighbour
        merged = False
        for i, (a, b) in enumerate(runs):
            if b - a < tallest / 3:
                gaps = [(a - runs[i - 1][1], i - 1) if i > 0 else (1e9, -1),
                        (runs[i + 1][0] - b, i + 1) if i + 1 < len(runs) else (1e9, -1)]
                _, j = min(gaps)
                lo, hi = min(i, j), max(i, j)
                runs[lo] = [runs[lo][0], runs[hi][1]]
                del runs[hi]
                merged = True
                break
    crops, boxes = [], []
    for a, b in runs:
        pad = max(2, (b - a) // 8)
        y0, y1 = max(0, a - pad), min(g.shape[0], b + pad)
        cols = np.flatnonzero(mask[y0:y1].any(0))
        x0, x1 = max(0, cols[0] - pad), min(g.shape[1], cols[-1] + 1 + pad)
        crop = ink[y0:y1, x0:x1]
        w = int(min(max_width, max(height, round(crop.shape[1] * height / crop.shape[0] * squeeze))))
        crops.append(np.asarray(Image.fromarray(crop, mode="F").resize((w, height), Image.BILINEAR), dtype=np.float32))
        boxes.append((x0, y0, x1, y1))
    return (crops, boxes) if return_boxes else crops


def samples_from_pages(pages, height: int = HEIGHT, squeeze: float = SQUEEZE) -> list:
    """(crop, text) pairs from (image, line texts) pages: a page is kept when line_crops finds as
    many lines as were rendered (so that each crop gets its own text)."""
    out = []
    for image, lines in pages:
        crops = line_crops(image, height, squeeze)
        if len(crops) == len(lines):
            out += list(zip(crops, lines))
    return out


def read_pages(model, images) -> list[str]:
    """Read page images with a CRNN (``mlbook.models.crnn``): per page, its lines top to bottom joined by
    newlines.  The lines of all pages are read as one batch of crops."""
    from mlbook.models.crnn import (
        read_crops,  # torch + transformers: imported only when a CRNN reads
    )

    crops = [line_crops(img, model.config.height, model.config.squeeze) for img in images]
    flat = read_crops(model, [c for cs in crops for c in cs])
    out, k = [], 0
    for cs in crops:
        out.append("\n".join(flat[k:k + len(cs)]))
        k += len(cs)
    return out
