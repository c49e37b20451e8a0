"""mlbook.ocr: CER and its summaries worked by hand, scripts and tiers, font choice, ground-truth
cleaning, HarfBuzz/FreeType rendering of complex scripts, and a Tesseract round trip."""
import random
import shutil

import numpy as np
import pytest

from mlbook import ocr

NOTO = ocr.NOTO_DIR
needs_fonts = pytest.mark.skipif(not (NOTO / "NotoSans-Regular.ttf").exists(),
                                 reason="fonts-noto-core not installed")
SANS = str(NOTO / "NotoSans-Regular.ttf")
ARABIC = str(NOTO / "NotoSansArabic-Regular.ttf")


def _lev_reference(a, b):
    """Textbook full-matrix DP, to check the vectorised rows against."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_levenshtein():
    assert ocr.levenshtein("kitten", "sitting") == 3  # k→s, e→i, +g
    assert ocr.levenshtein("flaw", "lawn") == 2       # -f, +n
    assert ocr.levenshtein("", "abc") == 3 and ocr.levenshtein("abc", "") == 3
    assert ocr.levenshtein("नमस्ते", "नमस्ते") == 0
    rng = random.Random(0)
    for _ in range(200):
        a = "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 9)))
        b = "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 9)))
        assert ocr.levenshtein(a, b) == ocr.levenshtein(b, a) == _lev_reference(a, b)


def test_cer_hand_worked():
    assert ocr.cer("car", "cat") == pytest.approx(1 / 3)     # one substitution / 3
    assert ocr.cer("caat", "cat") == pytest.approx(1 / 3)    # one insertion / 3
    assert ocr.cer("ct", "cat") == pytest.approx(1 / 3)      # one deletion / 3
    assert ocr.cer("HELLO", "hello") == 0                    # lowercased variant
    assert ocr.cer("café", "cafe") == 0                      # prediction accent-stripped: é→e
    # only the prediction is stripped: GT "café" keeps its accent, "cafe" is one substitution off
    assert ocr.cer("cafe", "café") == pytest.approx(1 / 4)
    assert ocr.cer("CAFÉ", "cafe") == 0                      # lowercased + accent-stripped
    # whitespace: removed before the distance ("a b c" → "abc"), so a split word costs nothing ...
    assert ocr.cer("a b c", "abc") == 0
    # ... but kept in the divisor: "xb" vs "a b" → "xb" vs "ab" = 1 edit, / len("a b") = 3, not 2
    assert ocr.cer("xb", "a b") == pytest.approx(1 / 3)
    assert ocr.cer("", "a b") == pytest.approx(2 / 3)        # 2 deletions / 3
    # RTL: an engine that emits visual order; "ba" vs "ab" is 2 edits (2/2) unless GT is reversed
    assert ocr.cer("ba", "ab") == 1.0
    assert ocr.cer("ba", "ab", rtl=True) == 0
    assert ocr.cer("BA", "ab", rtl=True) == 0                # lowercased + reversed
    assert ocr.cer("مالس", "سلام", rtl=True) == 0
    assert ocr.cer("xxxxxxxx", "ab") == 1.0                  # 8 edits / 2 = 4 → capped at 1
    assert ocr.cer("", "") == 0 and ocr.cer(" \n", "") == 0  # empty GT, empty prediction
    assert ocr.cer("a", "") == 1.0                           # empty GT, something predicted
    assert ocr.cer("", "abc") == 1.0                         # 3 deletions / 3


def test_acc_at():
    cers = [0.0, 0.01, 0.03, 0.07, 0.5]
    got = [ocr.acc_at(cers, t) for t in ocr.ACC_THRESHOLDS]  # t = 0, .02, .05, .10
    assert got == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert ocr.acc_at([0.1], 0.10) == 1.0                    # ≤ t, inclusive
    assert np.isnan(ocr.acc_at([], 0.05))


def test_text_script_and_accuracy():
    assert ocr.text_script("Hello, world!") == "Latn"
    assert ocr.text_script("Привет, мир") == "Cyrl"
    assert ocr.text_script("سلام عليكم") == "Arab"
    assert ocr.text_script("नमस्ते दुनिया") == "Deva"
    assert ocr.text_script("你好世界") == "Hani"
    assert ocr.text_script("こんにちは世界") == "Jpan"
    assert ocr.text_script("Hello мир мир") == "Cyrl"        # 6 Cyrillic letters beat 5 Latin
    assert ocr.text_script("123 !?") is None and ocr.text_script("") is None
    preds = ["Hello", "Привет", "abc", "你好", ""]
    assert ocr.script_accuracy(preds, ["Latn", "Cyrl", "Deva", "Hans", "Latn"]) == pytest.approx(3 / 5)


def test_tiers_and_overall():
    assert ocr.tier_of("Latn") == "High"
    assert all(ocr.tier_of(s) == "Mid" for s in ["Arab", "Cyrl", "Deva", "Hani", "Hans", "Jpan",
                                                 "Kore", "Hang", "Grek", "Hebr", "Thai"])
    assert ocr.tier_of("Ethi") == "Low" and ocr.tier_of("Tibt") == "Low" and ocr.tier_of(None) == "Low"
    assert ocr.overall({"High": 0.9, "Mid": 0.6, "Low": 0.0}) == pytest.approx(0.5)
    assert ocr.overall({"High": 0.9, "Mid": float("nan")}) == pytest.approx(0.9)


def test_hallucination_class():
    assert ocr.hallucination_class("नमस्ते", "Deva", 0.0) == "correct"
    assert ocr.hallucination_class("नमस्त", "Deva", 0.10) == "correct"  # threshold inclusive
    assert ocr.hallucination_class("", "Deva", 1.0) == "empty"
    assert ocr.hallucination_class("  \n", "Deva", 1.0) == "empty"
    assert ocr.hallucination_class("nanaste", "Deva", 1.0) == "wrong_script"  # Latin on Devanagari
    assert ocr.hallucination_class("| ~ 1l", "Deva", 1.0) == "wrong_script"   # 'l' is a Latin letter
    assert ocr.hallucination_class("| ~ 11", "Deva", 1.0) == "artefact"       # no letters at all
    assert ocr.hallucination_class("दुन", "Deva", 0.6) == "artefact"          # right script, wrong text


@needs_fonts
def test_font_choice_and_ground_truth():
    assert "Devanagari" in ocr.font_for_script("नमस्ते दुनिया")
    assert "Arabic" in ocr.font_for_script("سلام عليكم")
    assert ocr.font_for_script("Hello world").endswith("NotoSans-Regular.ttf")
    # NotoSans (Latin/Greek/Cyrillic) has no Devanagari or Arabic: those letters go; ZWJ (Cf) stays
    assert ocr.clean_ground_truth("Hello नमस्ते world", SANS) == "Hello world"
    assert ocr.clean_ground_truth("a\u200db", SANS) == "a\u200db"
    # RTL: Latin letters and European digits (minority direction) are removed; Arabic-Indic kept
    assert ocr.clean_ground_truth("سلام abc 123 ١٢٣ عليكم", ARABIC) == "سلام ١٢٣ عليكم"
    assert ocr.clean_ground_truth("abc 123", SANS, rtl=False) == "abc 123"


@needs_fonts
def test_render_devanagari_conjuncts():
    pytest.importorskip("uharfbuzz")
    pytest.importorskip("freetype")
    text = "नमस्ते दुनिया"  # 13 code points; स्त is one conjunct glyph, ि is reordered
    img, info = ocr.render_line(text, ocr.font_for_script(text), return_info=True)
    assert img.mode == "L" and img.size[0] >= 1000
    assert info["n_glyphs"] < len(text) == 13
    assert info["direction"] == "ltr" and info["script"] == "Deva" and abs(info["angle"]) <= 1
    a = np.asarray(img)
    assert (a < 128).sum() > 500                              # there is ink
    again = np.asarray(ocr.render_line(text, ocr.font_for_script(text)))
    assert np.array_equal(a, again)                           # seeded: same image


@needs_fonts
def test_render_arabic_joined_rtl():
    pytest.importorskip("uharfbuzz")
    word = "سلام"
    isolated = {g for ch in word for g in ocr.shape_text(ch, ARABIC)["glyphs"]}
    joined = ocr.shape_text(word, ARABIC)
    assert joined["direction"] == "rtl"
    assert set(joined["glyphs"]) - isolated                   # contextual forms, not isolated ones
    assert len(joined["glyphs"]) < len(word)                  # lam + alef ligature
    img, info = ocr.render_line("سلام عليكم", ARABIC, seed=3, return_info=True)
    a = np.asarray(img) < 128
    half = a.shape[1] // 2
    assert info["direction"] == "rtl" and a[:, half:].sum() > 10 * a[:, :half].sum()  # right-aligned


@needs_fonts
def test_wrap_by_cluster():
    text = "The quick brown fox jumps over the lazy dog. " * 3
    img, info = ocr.render_line(text, SANS, return_info=True)
    assert len(info["lines"]) >= 3
    assert "".join("".join(info["lines"]).split()) == "".join(text.split())  # nothing lost


@needs_fonts
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")
def test_tesseract_round_trip():
    pytest.importorskip("pytesseract")
    gt = "The quick brown fox jumps over the lazy dog."
    img = ocr.render_line(gt, SANS, seed=1)
    pred = ocr.tesseract_read(img, lang="eng")
    assert ocr.cer(pred, gt) <= 0.05, pred
    with pytest.raises(RuntimeError, match="apt-get install tesseract-ocr-xyz"):
        ocr.tesseract_read(img, lang="xyz")
