"""The dominant script of a text — one implementation for the book (OCR's output script, a corpus's
script label)."""
from __future__ import annotations

import unicodedata


def dominant_script(s: str) -> str | None:
    """Dominant ISO 15924 script among the letters (category L*) of s; None if there are none.
    Japanese (kana present next to Han) is reported as 'Jpan'; Hangul as 'Hang'."""
    from collections import Counter

    from fontTools import unicodedata as fu  # fontTools comes with matplotlib
    counts = Counter(fu.script(c) for c in s if unicodedata.category(c).startswith("L"))
    for common in ("Zyyy", "Zinh", "Zzzz"):
        counts.pop(common, None)
    if not counts:
        return None
    if (counts.get("Hira", 0) or counts.get("Kana", 0)) and sum(
            counts.get(k, 0) for k in ("Hira", "Kana", "Hani")) >= max(counts.values()):
        return "Jpan"
    return counts.most_common(1)[0][0]
