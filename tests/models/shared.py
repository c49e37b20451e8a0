"""Data the model tests share."""
from __future__ import annotations

import json

from mlbook.core import cache as C

MULTILINGUAL = {  # the same sentence in five languages / four scripts
    "en": "The cat sleeps on the warm windowsill.",
    "de": "Die Katze schläft auf der warmen Fensterbank.",
    "hi": "बिल्ली गर्म खिड़की की चौखट पर सोती है।",
    "ja": "猫は暖かい窓辺で眠っています。",
    "sw": "Paka analala kwenye dirisha lenye joto.",
}


def manifest_meta(folder):
    """The ``meta`` of a cache folder's manifest (what a converter measured)."""
    return json.loads((folder / C.MANIFEST).read_text())["meta"]
