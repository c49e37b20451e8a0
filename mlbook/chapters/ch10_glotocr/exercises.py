"""Checks for chapter 10's exercises (GlotOCR). Each draws fresh random inputs and compares the reader's
function with the book's own implementation (mlbook.ocr, mlbook.crnn)."""
from __future__ import annotations

import random

from mlbook.core.exercises import exercise
from mlbook.models.crnn import greedy_decode
from mlbook.ocr.fonts import clean_text
from mlbook.ocr.metrics import cer

_LATIN = "abcdeé ABCDÉ"
_ARABIC = "سلامعليك"
_MIXED = _LATIN + _ARABIC + "0123١٢٣ \u200d,."


def _rand(rng: random.Random, alphabet: str, lo: int = 0, hi: int = 12) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


@exercise
def check_cer(fn, trials: int = 300) -> str:
    """``fn(pred, gt, rtl) -> float``: GlotOCR's CER (six variants, whitespace out of the distance but
    in the divisor, capped at 1), on random pairs of Latin and Arabic strings and the edge cases."""
    rng = random.Random(random.randrange(10 ** 6))
    cases = [("", "", False), ("a", "", False), ("", "a b", False), ("ba", "ab", True), ("CAFÉ", "cafe", False),
             ("cafe", "café", False), ("xxxxxxxx", "ab", False), ("a b c", "abc", False)]
    for _ in range(trials):
        alphabet = rng.choice([_LATIN, _ARABIC + " "])
        gt = _rand(rng, alphabet)
        pred = gt[::-1] if rng.random() < 0.2 else _rand(rng, alphabet)
        if rng.random() < 0.3:
            pred = pred.upper()
        cases.append((pred, gt, rng.random() < 0.5))
    for pred, gt, rtl in cases:
        want, got = cer(pred, gt, rtl), float(fn(pred, gt, rtl))
        if abs(want - got) > 1e-9:
            raise AssertionError(f"cer({pred!r}, {gt!r}, rtl={rtl}): expected {want:.4f}, got {got:.4f}")
    return "✔ CER correct on every pair"


@exercise
def check_clean(fn, trials: int = 300) -> str:
    """``fn(text, cmap, rtl) -> str``: the ground-truth cleaning for a font covering the code points in
    cmap (a set of ints): NFC, delete uncovered characters except Cf/Zs, in RTL text delete bidi-L
    characters and European digits, collapse whitespace."""
    rng = random.Random(random.randrange(10 ** 6))
    for _ in range(trials):
        text = _rand(rng, _MIXED, 0, 20)
        covered = {ord(c) for c in _MIXED if rng.random() < 0.7}
        rtl = rng.random() < 0.5
        want, got = clean_text(text, covered, rtl), fn(text, frozenset(covered), rtl)
        if want != got:
            missing = "".join(sorted(set(_MIXED) - {chr(c) for c in covered}))
            raise AssertionError(f"text {text!r}, rtl={rtl}, not covered {missing!r}: expected {want!r}, got {got!r}")
    return "✔ ground-truth cleaning correct"


@exercise
def check_greedy_decode(fn, trials: int = 300) -> str:
    """``fn(path, alphabet) -> str``: best-path CTC decoding of per-step class ids (0 = blank, class i
    is alphabet[i - 1]): merge repeats, then drop blanks."""
    import torch

    rng = random.Random(random.randrange(10 ** 6))
    alphabet = "abcxyz"
    for _ in range(trials):
        path = [rng.choice([0, 0, 1, 1, 2, 3, 4, 5, 6]) for _ in range(rng.randint(0, 15))]
        scores = torch.full((1, max(1, len(path)), 7), -1.0)
        for t, k in enumerate(path):
            scores[0, t, k] = 1.0
        want = greedy_decode(scores, alphabet, lengths=[len(path)])[0]
        got = fn(list(path), alphabet)
        if want != got:
            raise AssertionError(f"path {path}: expected {want!r}, got {got!r}")
    return "✔ greedy CTC decoding correct"
