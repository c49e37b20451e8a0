"""The dominant script of a text — one implementation for the book (OCR's output script, a corpus's
script label)."""
from __future__ import annotations

import unicodedata


def char_script(ch: str) -> str:
    """The ISO 15924 script of one character (``Zyyy`` common, ``Zinh`` inherited), as Unicode assigns it."""
    from fontTools.unicodedata import script  # fontTools comes with matplotlib

    return script(ch)


def dominant_script(s: str) -> str | None:
    """Dominant ISO 15924 script among the letters (category L*) of s; None if there are none.
    Japanese (kana present next to Han) is reported as 'Jpan'; Hangul as 'Hang'."""
    from collections import Counter

    counts = Counter(char_script(c) for c in s if unicodedata.category(c).startswith("L"))
    for common in ("Zyyy", "Zinh", "Zzzz"):
        counts.pop(common, None)
    if not counts:
        return None
    if (counts.get("Hira", 0) or counts.get("Kana", 0)) and sum(
            counts.get(k, 0) for k in ("Hira", "Kana", "Hani")) >= max(counts.values()):
        return "Jpan"
    return counts.most_common(1)[0][0]
