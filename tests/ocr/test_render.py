"""mlbook.render: shaping and rasterising complex scripts checked against their glyph counts and their
connected strokes, wrapping by cluster, the glyph cache (same pixels either way), the minimal bidi of
numbers in RTL text, and the two profiles (seeded, parameters, degradation pieces vs references)."""
from collections import deque

import numpy as np
import pytest

from mlbook.ocr import fonts as ocr
from mlbook.ocr import render, typeset
from tests.apt_needs import needs_fonts

NOTO = ocr.NOTO_DIR
pytestmark = [needs_fonts, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
SANS = str(NOTO / "NotoSans-Regular.ttf")
ARABIC = str(NOTO / "NotoSansArabic-Regular.ttf")
DEVA = str(NOTO / "NotoSansDevanagari-Regular.ttf")


def components(mask) -> int:
    """Number of 8-connected components of a boolean image (breadth-first search)."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    n = 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        n += 1
        seen[y0, x0] = True
        q = deque([(y0, x0)])
        while q:
            y, x = q.popleft()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and mask[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True
                        q.append((yy, xx))
    return n


def ink_mask(lay, **kw):
    return typeset.ink(lay, **kw) > 100


def test_devanagari_glyph_counts():
    # conjunct: क + ् + ष (3 code points) is one glyph, क्ष
    assert len(typeset.shape_text("क्ष", DEVA)["glyphs"]) == 1
    # the vowel sign ि is written before its consonant: it comes first in visual order, same cluster
    sh = typeset.shape_text("कि", DEVA)
    assert len(sh["glyphs"]) == 2 and sh["clusters"] == [0, 0]
    assert sh["glyphs"][1] == typeset.shape_text("क", DEVA)["glyphs"][0]       # क second: ि's glyph is first
    text = "नमस्ते दुनिया"  # 13 code points; स्त is one conjunct glyph
    lay = typeset.layout(text, DEVA)
    assert lay.n_glyphs == len(typeset.shape_text(text, DEVA)["glyphs"]) < len(text)
    assert lay.direction == "ltr" and lay.script == "Deva"
    # drawn: each word's head line (shirorekha) joins its letters into one stroke, 2 words → 2 components
    m = ink_mask(lay)
    assert components(m[:, :m.shape[1] // 2]) <= 3 and m.sum() > 500


def test_arabic_glyph_counts_and_joining():
    # سلام: seen, lam-alef ligature, meem = 3 glyphs for 4 letters, in RTL visual order
    joined = typeset.shape_text("سلام", ARABIC)
    assert joined["direction"] == "rtl" and len(joined["glyphs"]) == 3 and joined["clusters"] == [3, 1, 0]
    isolated = {g for ch in "سلام" for g in typeset.shape_text(ch, ARABIC)["glyphs"]}
    assert set(joined["glyphs"]) - isolated                                  # contextual forms
    # drawn: seen joins lam-alef (one stroke), meem stands apart: 2 components; spaced letters: 4
    assert components(ink_mask(typeset.layout("سلام", ARABIC))) == 2
    assert components(ink_mask(typeset.layout("س ل ا م", ARABIC))) == 4
    img = render.draw(typeset.layout("سلام عليكم", ARABIC), render.PLAIN, seed=3)
    a = np.asarray(img) < 128
    half = a.shape[1] // 2
    assert a[:, half:].sum() > 10 * a[:, :half].sum()                       # right-aligned


def test_numbers_in_rtl_read_left_to_right():
    lay = typeset.layout("سلام ١٢٣", ARABIC)
    digits = [typeset.shape_text(d, ARABIC)["glyphs"][0] for d in "١٢٣"]
    g = list(lay.lines[0].glyphs)
    assert [g.index(d) for d in digits] == sorted(g.index(d) for d in digits)  # ١ left of ٢ left of ٣
    assert g.index(digits[0]) < len(g) // 2                                  # the number is on the left
    assert typeset._runs("ab", rtl=False) == [(0, 2, False)]
    # runs in visual order: "ص " | "1,000" (LTR, the comma between digits joins it) | "س "
    assert typeset._runs("س 1,000 ص", rtl=True) == [(7, 9, True), (2, 7, False), (0, 2, True)]


def test_wrap_by_cluster():
    text = "The quick brown fox jumps over the lazy dog. " * 3
    lay = typeset.layout(text, SANS)
    assert len(lay.lines) >= 3
    assert "".join("".join(ln.text for ln in lay.lines).split()) == "".join(text.split())  # nothing lost
    for ln in lay.lines:
        assert ln.width <= typeset.WIDTH - 2 * typeset.MARGIN + 1
    img = render.draw(lay)
    assert img.mode == "L" and img.size[0] >= typeset.WIDTH
    # a Devanagari cluster (conjunct + vowel sign) is never split across lines
    deva = "स्त्री " * 40
    for ln in typeset.layout(deva, DEVA).lines:
        assert ln.text.startswith("स") and not ln.text[-1] in "्"


def test_glyph_cache_gives_the_same_pixels():
    lay = typeset.layout("Alle Menschen sind frei und gleich an Würde und Rechten geboren.", SANS)
    typeset.clear_glyph_cache()
    cold = np.asarray(render.draw(lay, render.PLAIN, seed=5, glyph_cache=False))
    warm = np.asarray(render.draw(lay, render.PLAIN, seed=5, glyph_cache=True))
    warm2 = np.asarray(render.draw(lay, render.PLAIN, seed=5, glyph_cache=True))
    assert np.array_equal(cold, warm) and np.array_equal(warm, warm2)
    old1 = np.asarray(render.draw(lay, render.OLD_DOCUMENT, seed=5, glyph_cache=False))
    old2 = np.asarray(render.draw(lay, render.OLD_DOCUMENT, seed=5))
    assert np.array_equal(old1, old2)


def test_plain_profile_seeded_rotation():
    lay = typeset.layout("Hello world", SANS)
    a, b = np.asarray(render.draw(lay, render.PLAIN, 1)), np.asarray(render.draw(lay, render.PLAIN, 1))
    assert np.array_equal(a, b)
    flat = np.asarray(render.draw(lay, render.profile("plain", rotation_deg=0.0), 1))
    assert flat.shape == (typeset.ink(lay).shape[0], typeset.WIDTH)              # no rotation: canvas as laid out
    assert np.array_equal(flat, 255 - typeset.ink(lay))


def test_old_document_profile():
    lay = typeset.layout("Alle Menschen sind frei und gleich an Würde und Rechten geboren.", SANS)
    plain = np.asarray(render.draw(lay, render.PLAIN, 0), dtype=float)
    old = np.asarray(render.draw(lay, render.OLD_DOCUMENT, 0), dtype=float)
    assert np.array_equal(old, np.asarray(render.draw(lay, render.OLD_DOCUMENT, 0), dtype=float))  # seeded
    assert not np.array_equal(old, np.asarray(render.draw(lay, render.OLD_DOCUMENT, 1), dtype=float))
    # paper is not white and ink is faded: the page is darker on average, its darkest ink lighter
    assert np.median(old) < 250 and np.percentile(old, 0.5) > np.percentile(plain, 0.5)
    p = render.OLD_DOCUMENT
    assert (p.rotation_deg, p.spacing_jitter_px, p.line_jitter_px, p.p_dilate, p.p_erode, p.elastic_blur,
            p.elastic_amp, p.perspective, p.dropout_boxes, p.ink_fade, p.noise_sigma, p.downscale,
            p.jpeg_quality) == (2.0, (-2, 4), 3.0, 0.4, 0.25, 17, 8.0, 0.10, (10, 30), (0.5, 0.85), 8.0,
                                (0.4, 0.7), (30, 80))                         # the card's parameters
    zero = p.scaled(0.0)
    assert zero.rotation_deg == 0 and zero.ink_fade == (1.0, 1.0) and zero.jpeg_quality == (100, 100)
    assert zero.dropout_boxes == (0, 0) and zero.downscale == (1.0, 1.0) and p.scaled(1.0) == p
    with pytest.raises(ValueError, match="unknown OLD_DOCUMENT parameters"):
        render.profile("OLD_DOCUMENT", blur=3)
    with pytest.raises(ValueError, match="choose PLAIN or OLD_DOCUMENT"):
        render.profile("sepia")
    assert render.profile("old_document", noise_sigma=0, downscale=[0.5, 0.6]).downscale == (0.5, 0.6)


def test_degradation_pieces():
    k = render.gaussian_kernel(17)
    sigma = 0.3 * ((17 - 1) * 0.5 - 1) + 0.8                                # OpenCV's rule: 2.9
    x = np.arange(17) - 8
    assert k.sum() == pytest.approx(1) and k == pytest.approx(np.exp(-x ** 2 / (2 * sigma ** 2)) / np.exp(-x ** 2 / (2 * sigma ** 2)).sum())
    delta = np.zeros((41, 41))
    delta[20, 20] = 1
    assert render.blur(delta, 17)[12:29, 12:29] == pytest.approx(np.outer(k, k), abs=1e-7)  # separable
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (30, 40))
    assert render.remap(img, np.zeros_like(img), np.zeros_like(img)) == pytest.approx(img)
    shifted = render.remap(img, np.ones_like(img), np.zeros_like(img))        # out[y, x] = img[y, x + 1]
    assert shifted[:, :-1] == pytest.approx(img[:, 1:])
    from PIL import Image
    pil = Image.fromarray(img.astype(np.uint8))
    assert np.array_equal(np.asarray(render.perspective(pil, rng, 0.0, 255)), np.asarray(pil))
    j = render.jpeg(pil, 50)
    assert j.size == pil.size and j.mode == "L"


def test_same_pixels_as_pil_raqm():
    """The reference: PIL's own text drawing with libraqm (HarfBuzz shaping + FriBiDi ordering) of the
    same lines in the same font and size, at the same baseline. Ink masks must agree up to sub-pixel
    positioning and anti-aliasing: ≥ 99 % of either's ink pixels lie within 1 px of the other's ink."""
    from PIL import Image, ImageFont, features
    if not features.check("raqm"):
        pytest.skip("PIL built without libraqm")
    for text, font in (("Everyone has the right to life, liberty and security of person.", SANS),
                       ("سلام عليكم، يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق", ARABIC),
                       ("सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता", DEVA)):
        lay = typeset.layout(text, font)
        ours = np.asarray(render.draw(lay, render.profile("PLAIN", rotation_deg=0.0))) < 128
        pil_font = ImageFont.truetype(font, lay.size, layout_engine=ImageFont.Layout.RAQM)
        ref = np.asarray(typeset.draw_with_pil(lay, pil_font, size=(ours.shape[1], ours.shape[0]))) < 128

        def near(mask):  # the mask grown by 1 px in every direction (3x3 maximum filter)
            from PIL import ImageFilter
            return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(3))) > 0
        assert ours.sum() > 1000 and ref.sum() > 1000
        assert (ours & near(ref)).sum() / ours.sum() >= 0.99, text
        assert (ref & near(ours)).sum() / ref.sum() >= 0.99, text
