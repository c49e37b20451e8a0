"""What GlotOCR measures: the six-variant CER, Acc@t and the hallucination classes of a reading."""
from __future__ import annotations

import unicodedata

from mlbook.text.scripts import dominant_script

from .scripts import same_script

ACC_THRESHOLDS = (0.0, 0.02, 0.05, 0.10)

CORRECT_CER = 0.10  # hallucination_class: a reading with CER <= 10 % (the loosest Acc@t) is "correct"


def levenshtein(a: str, b: str) -> int:
    """Edit distance (unit-cost insert/delete/substitute) over code points, one numpy row at a time."""
    import numpy as np

    if len(a) < len(b):
        a, b = b, a  # loop over the shorter string; the row runs over the longer one
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    ar = np.arange(len(b) + 1)
    prev = ar.copy()  # distance from "" to b[:j]
    for i, ca in enumerate(np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32), start=1):
        cand = np.empty_like(prev)
        cand[0] = i
        # deletion (prev[j] + 1) or substitution/match (prev[j-1] + cost), then insertions along the row:
        # row[j] = min_k<=j cand[k] + (j - k), i.e. a running minimum of cand - j shifted back by j.
        cand[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bb != ca))
        prev = np.minimum.accumulate(cand - ar) + ar
    return int(prev[-1])


def strip_accents(s: str) -> str:
    """NFD, drop the non-spacing marks (category Mn), recompose (NFC)."""
    return unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", s)
                                                if unicodedata.category(c) != "Mn"))


def _no_ws(s: str) -> str:
    return "".join(s.split())


def cer(pred: str, gt: str, rtl: bool = False) -> float:
    """GlotOCR character error rate: the minimum over up to six (prediction, GT) variants of
    Levenshtein(variant without whitespace) / len(raw GT, whitespace included), capped at 1.
    Empty GT: 0 if the prediction is empty (after whitespace removal), else 1."""
    if len(gt) == 0:
        return 0.0 if not _no_ws(pred) else 1.0
    pl, gl = pred.lower(), gt.lower()
    variants = [(pred, gt),                     # 1. as-is
                (pl, gl),                       # 3. both lowercased
                (strip_accents(pred), gt),      # 5. prediction accent-stripped (NFD, drop Mn)
                (strip_accents(pl), gl)]        # 6. lowercased + prediction accent-stripped
    if rtl:
        variants += [(pred, gt[::-1]),          # 2. GT reversed (engine emitted visual order)
                     (pl, gl[::-1])]            # 4. lowercased + GT reversed
    # whitespace is removed before the distance but NOT from the divisor (raw GT length)
    best = min(levenshtein(_no_ws(p), _no_ws(g)) for p, g in variants)
    return min(1.0, best / len(gt))


def acc_at(cers, t: float) -> float:
    """Acc@t: share of lines with CER <= t (t in ACC_THRESHOLDS in the paper). NaN for no lines."""
    import numpy as np

    c = np.asarray(list(cers), dtype=float)
    return float(np.mean(c <= t + 1e-12)) if c.size else float("nan")


def hallucination_class(pred: str, gt_script: str | None, cer_value: float,
                        threshold: float = CORRECT_CER) -> str:
    """'correct' (CER <= threshold), else 'empty' (no non-space output), 'wrong_script' (letters
    dominated by another script than the GT's: the engine hallucinates a script it knows), else
    'artefact' (right script or no letters at all, but wrong text: noise, punctuation, digits)."""
    if cer_value <= threshold:
        return "correct"
    if not _no_ws(pred):
        return "empty"
    s = dominant_script(pred)
    if s is not None and not same_script(s, gt_script):
        return "wrong_script"
    return "artefact"
