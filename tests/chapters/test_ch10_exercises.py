"""The chapter 10 exercise checks accept the book's solutions, reject the typical mistakes and answer a stub
with a reminder (so that the untouched notebook runs)."""
import unicodedata

import pytest

from mlbook.chapters.ch10_glotocr import exercises as ex
from mlbook.ocr import fonts, metrics


def test_check_cer():
    assert ex.check_cer(metrics.cer).startswith("✔")

    def stripped_divisor(pred, gt, rtl=False):  # the mistake: divide by the whitespace-free length
        ws = "".join(gt.split())
        return metrics.cer(pred, gt, rtl) * len(gt) / len(ws) if ws else metrics.cer(pred, gt, rtl)
    with pytest.raises(AssertionError):
        ex.check_cer(lambda p, g, r: min(1.0, stripped_divisor(p, g, r)))
    with pytest.raises(AssertionError):                                     # forgets the RTL variants
        ex.check_cer(lambda p, g, r: metrics.cer(p, g, False))


def test_check_clean():
    assert ex.check_clean(fonts.clean_text).startswith("✔")
    with pytest.raises(AssertionError):                                     # keeps the minority direction
        ex.check_clean(lambda t, cmap, rtl: fonts.clean_text(t, cmap, False))
    with pytest.raises(AssertionError):                                     # deletes format characters too
        ex.check_clean(lambda t, cmap, rtl: fonts.clean_text("".join(c for c in t if unicodedata.category(c) != "Cf"), cmap, rtl))


def test_check_greedy_decode():
    def merge_then_drop(path, alphabet):
        out, prev = [], 0
        for k in path:
            if k != prev and k != 0:
                out.append(alphabet[k - 1])
            prev = k
        return "".join(out)

    def drop_then_merge(path, alphabet):  # the mistake: "a-a" becomes one letter
        kept = [k for k in path if k != 0]
        return "".join(alphabet[k - 1] for i, k in enumerate(kept) if i == 0 or k != kept[i - 1])
    assert ex.check_greedy_decode(merge_then_drop).startswith("✔")
    with pytest.raises(AssertionError):
        ex.check_greedy_decode(drop_then_merge)
    with pytest.raises(AssertionError):                                     # drops the blanks but never merges
        ex.check_greedy_decode(lambda path, alphabet: "".join(alphabet[k - 1] for k in path if k != 0))


def stub(*args):
    raise NotImplementedError


def test_stubs_are_reminded_not_failed():
    for check in (ex.check_cer, ex.check_clean, ex.check_greedy_decode):
        assert check(stub).startswith("not implemented yet — fill in stub above")
