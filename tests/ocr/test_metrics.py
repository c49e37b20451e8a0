"""mlbook.ocr: CER and its summaries worked by hand, scripts and tiers, the font choice (coverage + the
HarfBuzz/FreeType glyph check, on a font built here with a blank glyph) and the ground-truth cleaning."""
import random

import numpy as np
import pytest

from mlbook.ocr import fontchoice, fonts, metrics, scripts
from mlbook.text import scripts as text_scripts
from tests.apt_needs import needs_cjk, needs_fonts

NOTO = fonts.NOTO_DIR
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
    assert metrics.levenshtein("kitten", "sitting") == 3  # k→s, e→i, +g
    assert metrics.levenshtein("flaw", "lawn") == 2       # -f, +n
    assert metrics.levenshtein("", "abc") == 3 and metrics.levenshtein("abc", "") == 3
    assert metrics.levenshtein("नमस्ते", "नमस्ते") == 0
    rng = random.Random(0)
    for _ in range(200):
        a = "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 9)))
        b = "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 9)))
        assert metrics.levenshtein(a, b) == metrics.levenshtein(b, a) == _lev_reference(a, b)


def test_cer_hand_worked():
    assert metrics.cer("car", "cat") == pytest.approx(1 / 3)     # one substitution / 3
    assert metrics.cer("caat", "cat") == pytest.approx(1 / 3)    # one insertion / 3
    assert metrics.cer("ct", "cat") == pytest.approx(1 / 3)      # one deletion / 3
    assert metrics.cer("HELLO", "hello") == 0                    # lowercased variant
    assert metrics.cer("café", "cafe") == 0                      # prediction accent-stripped: é→e
    # only the prediction is stripped: GT "café" keeps its accent, "cafe" is one substitution off
    assert metrics.cer("cafe", "café") == pytest.approx(1 / 4)
    assert metrics.cer("CAFÉ", "cafe") == 0                      # lowercased + accent-stripped
    # whitespace: removed before the distance ("a b c" → "abc"), so a split word costs nothing ...
    assert metrics.cer("a b c", "abc") == 0
    # ... but kept in the divisor: "xb" vs "a b" → "xb" vs "ab" = 1 edit, / len("a b") = 3, not 2
    assert metrics.cer("xb", "a b") == pytest.approx(1 / 3)
    assert metrics.cer("", "a b") == pytest.approx(2 / 3)        # 2 deletions / 3
    # RTL: an engine that emits visual order; "ba" vs "ab" is 2 edits (2/2) unless GT is reversed
    assert metrics.cer("ba", "ab") == 1.0
    assert metrics.cer("ba", "ab", rtl=True) == 0
    assert metrics.cer("BA", "ab", rtl=True) == 0                # lowercased + reversed
    assert metrics.cer("مالس", "سلام", rtl=True) == 0
    assert metrics.cer("xxxxxxxx", "ab") == 1.0                  # 8 edits / 2 = 4 → capped at 1
    assert metrics.cer("", "") == 0 and metrics.cer(" \n", "") == 0  # empty GT, empty prediction
    assert metrics.cer("a", "") == 1.0                           # empty GT, something predicted
    assert metrics.cer("", "abc") == 1.0                         # 3 deletions / 3


def test_acc_at():
    cers = [0.0, 0.01, 0.03, 0.07, 0.5]
    got = [metrics.acc_at(cers, t) for t in metrics.ACC_THRESHOLDS]  # t = 0, .02, .05, .10
    assert got == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert metrics.acc_at([0.1], 0.10) == 1.0                    # ≤ t, inclusive
    assert np.isnan(metrics.acc_at([], 0.05))


def test_text_script_and_accuracy():
    assert text_scripts.dominant_script("Hello, world!") == "Latn"
    assert text_scripts.dominant_script("Привет, мир") == "Cyrl"
    assert text_scripts.dominant_script("سلام عليكم") == "Arab"
    assert text_scripts.dominant_script("नमस्ते दुनिया") == "Deva"
    assert text_scripts.dominant_script("你好世界") == "Hani"
    assert text_scripts.dominant_script("こんにちは世界") == "Jpan"
    assert text_scripts.dominant_script("Hello мир мир") == "Cyrl"        # 6 Cyrillic letters beat 5 Latin
    assert text_scripts.dominant_script("123 !?") is None and text_scripts.dominant_script("") is None
    preds = ["Hello", "Привет", "abc", "你好", ""]
    assert scripts.script_accuracy(preds, ["Latn", "Cyrl", "Deva", "Hans", "Latn"]) == pytest.approx(3 / 5)


def test_tiers_and_overall():
    assert scripts.tier_of("Latn") == "High"
    assert all(scripts.tier_of(s) == "Mid" for s in ["Arab", "Cyrl", "Deva", "Hani", "Hans", "Jpan",
                                                 "Kore", "Hang", "Grek", "Hebr", "Thai"])
    assert scripts.tier_of("Ethi") == "Low" and scripts.tier_of("Tibt") == "Low" and scripts.tier_of(None) == "Low"
    assert scripts.overall({"High": 0.9, "Mid": 0.6, "Low": 0.0}) == pytest.approx(0.5)
    assert scripts.overall({"High": 0.9, "Mid": float("nan")}) == pytest.approx(0.9)


def test_hallucination_class():
    assert metrics.hallucination_class("नमस्ते", "Deva", 0.0) == "correct"
    assert metrics.hallucination_class("नमस्त", "Deva", 0.10) == "correct"  # threshold inclusive
    assert metrics.hallucination_class("", "Deva", 1.0) == "empty"
    assert metrics.hallucination_class("  \n", "Deva", 1.0) == "empty"
    assert metrics.hallucination_class("nanaste", "Deva", 1.0) == "wrong_script"  # Latin on Devanagari
    assert metrics.hallucination_class("| ~ 1l", "Deva", 1.0) == "wrong_script"   # 'l' is a Latin letter
    assert metrics.hallucination_class("| ~ 11", "Deva", 1.0) == "artefact"       # no letters at all
    assert metrics.hallucination_class("दुन", "Deva", 0.6) == "artefact"          # right script, wrong text


@needs_fonts
def test_font_choice_and_ground_truth():
    assert "Devanagari" in fontchoice.font_for_script("नमस्ते दुनिया")
    assert "Arabic" in fontchoice.font_for_script("سلام عليكم")
    assert fontchoice.font_for_script("Hello world").endswith("NotoSans-Regular.ttf")
    # NotoSans (Latin/Greek/Cyrillic) has no Devanagari or Arabic: those letters go; ZWJ (Cf) stays
    assert fonts.clean_ground_truth("Hello नमस्ते world", SANS) == "Hello world"
    assert fonts.clean_ground_truth("a\u200db", SANS) == "a\u200db"
    # RTL: Latin letters and European digits (minority direction) are removed; Arabic-Indic and
    # Persian (Extended Arabic-Indic, bidi EN) digits are kept
    assert fonts.clean_ground_truth("سلام abc 123 ١٢٣ ۱۲۳ عليكم", ARABIC) == "سلام ١٢٣ ۱۲۳ عليكم"
    assert fonts.deleted_characters("سلام abc 123 عليكم", ARABIC) == "abc123"
    assert fonts.clean_ground_truth("abc 123", SANS, rtl=False) == "abc 123"
    assert fonts.clean_ground_truth("Café  x", SANS) == "Café x"  # NFC, whitespace collapsed


@needs_cjk
def test_cjk_faces():
    assert fontchoice.font_for_script("人人生而自由，在尊严和权利上一律平等。").endswith("NotoSansCJK-Regular.ttc#2")   # SC
    assert fontchoice.font_for_script("人人生而自由", script="Hant").endswith("#3")                                  # TC
    assert fontchoice.font_for_script("すべての人間は、生まれながらにして自由").endswith("#0")                         # JP
    assert fontchoice.font_for_script("모든 인간은 태어날 때부터 자유로우며").endswith("#1")                             # KR


def _tiny_font(path, blank="a", boxes="b\ue000"):
    """A TrueType font whose cmap covers blank (an empty glyph: no contours) and boxes (a square each)."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def box():
        pen = TTGlyphPen(None)
        pen.moveTo((50, 0)); pen.lineTo((50, 600)); pen.lineTo((450, 600)); pen.lineTo((450, 0)); pen.closePath()
        return pen.glyph()
    names = [".notdef", "space"] + [f"g{ord(c):04X}" for c in blank + boxes]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({0x20: "space", **{ord(c): f"g{ord(c):04X}" for c in blank + boxes}})
    glyphs = {n: TTGlyphPen(None).glyph() for n in names}
    glyphs[".notdef"] = box()
    glyphs.update({f"g{ord(c):04X}": box() for c in boxes})
    fb.setupGlyf(glyphs)
    fb.setupHorizontalMetrics({n: (500, 0) for n in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "Tiny", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    fb.setupPost()
    fb.save(str(path))
    return str(path)


@needs_fonts
def test_glyph_check_and_font_choice(tmp_path):
    tiny = _tiny_font(tmp_path / "Tiny-Regular.ttf")
    # 'a' is in the cmap but its glyph holds no ink: the FreeType check catches it; 'b' and a space pass
    assert fontchoice.glyph_check("ab", tiny) == {"ok": False, "n_notdef": 0, "n_blank": 1, "blank": ["a"]}
    assert fontchoice.glyph_check("b b", tiny)["ok"]
    assert fontchoice.glyph_check("Hello, world", SANS)["ok"]
    assert fontchoice.glyph_check("नमस्ते", str(NOTO / "NotoSansDevanagari-Regular.ttf"))["ok"]
    # "ab\ue000": Tiny covers 3 characters, NotoSans only 2; by coverage alone Tiny wins ...
    dirs = (str(tmp_path), str(NOTO))
    assert fontchoice.font_for_script("ab\ue000", font_dirs=dirs, check=False) == tiny
    # ... the glyph check rejects it and the next font by coverage is taken
    assert fontchoice.font_for_script("ab\ue000", font_dirs=dirs).endswith("NotoSans-Regular.ttf")
    assert fontchoice.font_for_script("ab", font_dirs=(str(tmp_path),)) is None        # only Tiny, and it fails
    assert fontchoice.font_for_script("\u4e00", font_dirs=(str(tmp_path),)) is None    # nothing covers it


