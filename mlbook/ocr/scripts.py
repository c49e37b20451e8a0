"""Scripts as GlotOCR groups them: resource tiers, script families (Hans/Hant/Jpan ~ Hani), script
accuracy of readings, and the direction of a text."""
from __future__ import annotations

import unicodedata

from mlbook.text.scripts import dominant_script

TIERS = {
    "High": frozenset({"Latn"}),
    "Mid": frozenset({"Arab", "Cyrl", "Deva", "Hani", "Hans", "Hant", "Jpan", "Hira", "Kana",
                      "Kore", "Hang", "Grek", "Hebr", "Thai"}),
}  # "Low" = every other script

# Codes that denote the same writing system for script accuracy (Japanese text is mostly Han).
_FAMILY = {"Hans": "Hani", "Hant": "Hani", "Jpan": "Hani", "Hira": "Hani", "Kana": "Hani",
           "Kore": "Hang"}


def tier_of(script: str | None) -> str:
    """'High', 'Mid' or 'Low' for an ISO 15924 code."""
    for name, members in TIERS.items():
        if script in members:
            return name
    return "Low"


def overall(scores_by_tier: dict) -> float:
    """Overall = unweighted mean of the per-tier scores (NaN tiers, e.g. no lines, are skipped)."""
    import numpy as np

    v = [float(x) for x in scores_by_tier.values() if x == x]
    return float(np.mean(v)) if v else float("nan")


def same_script(a: str | None, b: str | None) -> bool:
    """Equal ISO 15924 codes up to the aliases in _FAMILY (Hans/Hant/Jpan ~ Hani, Kore ~ Hang)."""
    return a is not None and b is not None and _FAMILY.get(a, a) == _FAMILY.get(b, b)


def script_accuracy(preds, scripts) -> float:
    """Share of predictions whose dominant script matches the expected script."""
    import numpy as np

    hits = [same_script(dominant_script(p), s) for p, s in zip(preds, scripts, strict=True)]
    return float(np.mean(hits)) if hits else float("nan")


def is_rtl(text: str) -> bool:
    """True when right-to-left strong characters (bidi R/AL) outnumber left-to-right ones (L)."""
    bidi = [unicodedata.bidirectional(c) for c in text]
    return sum(b in ("R", "AL") for b in bidi) > sum(b == "L" for b in bidi)


def minority_in_rtl(c: str) -> bool:
    b = unicodedata.bidirectional(c)
    arabic = 0x0600 <= ord(c) <= 0x08FF  # Arabic, Syriac, Thaana, NKo, ... blocks: their digits are theirs
    return b == "L" or (b == "EN" and not arabic)
