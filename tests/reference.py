"""Each chapter's smoke metrics against a committed reference (``tests/reference/smoke/<stem>.json``).

A smoke run is deterministic on one machine, so every number is compared — to ``REL`` of its size (float32
forward passes on another CPU's kernels move numbers in their 6th-7th digit: a reference made on one machine
must hold on the next; a regression seldom moves a number by as little), or within the card's ``smoke_tolerance``,
an absolute tolerance for a metric (or a ``prefix*`` of metrics): numbers that pass through sampling or
training can move between two CPUs of the same kind, and their tolerance is one that a real regression breaks.
Timings and other volatile numbers (the card's ``volatile``, and every
``*seconds``, ``*_per_s``, ``*speedup`` metric) are left out, and so is the verdict of a claim that a timing
helps decide (chapter 2's "at under half the wall time" at smoke sizes is two pairs' timings).  A missing reference is a failure.

Update the references after an intended change with:
    .venv/bin/python -m tests.reference STEM METRICS.json
"""
from __future__ import annotations

import fnmatch
import json
import math
import sys
from pathlib import Path

from mlbook.core.catalogue import chapter_card

REF_DIR = Path(__file__).parent / "reference" / "smoke"
VOLATILE = ("*seconds*", "*_per_s", "*speedup*", "*_load_s")
REL = 1e-5   # relative tolerance of every number: another CPU's float32 kernels


def _volatile(stem: str, name: str) -> bool:
    """A timing or other volatile number, or the verdict of a claim that one of them decides (a claim whose
    tests include a timing: its other tests' numbers are still compared)."""
    card = chapter_card(stem)
    pats = list(VOLATILE) + list(card.get("volatile") or [])
    if any(fnmatch.fnmatch(name, p) for p in pats):
        return True
    claim = next((c for c in card.get("claims") or [] if name == f"{c.get('id')}_verdict"), None)
    return claim is not None and any(_volatile(stem, t["statistic"]) for t in claim.get("tests") or [])


def comparable(stem: str, metrics: dict) -> dict:
    """The metrics that a reference holds: all but the volatile ones."""
    return {k: v for k, v in sorted(metrics.items()) if not _volatile(stem, k)}


def tolerance(stem: str, name: str) -> float:
    tol = chapter_card(stem).get("smoke_tolerance") or {}
    hits = [v for pat, v in tol.items() if fnmatch.fnmatch(name, pat)]
    return float(max(hits)) if hits else 0.0


def _close(a, b, tol: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):      # units of a two-sample test: {"minus": [A, B]}
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol + REL * max(abs(a), abs(b))


def diff(stem: str, metrics: dict) -> list[str]:
    """What differs from the committed reference (an empty list when nothing does)."""
    path = REF_DIR / f"{stem}.json"
    if not path.exists():
        return [f"no smoke reference {path}: create it with python -m tests.reference {stem} METRICS.json"]
    ref, new = json.loads(path.read_text()), comparable(stem, metrics)
    out = [f"{k}: missing (reference {ref[k]!r})" for k in ref if k not in new]
    out += [f"{k}: new metric {new[k]!r} (not in the reference)" for k in new if k not in ref]
    for k in ref:
        if k in new and not _close(ref[k], new[k], tolerance(stem, k)):
            show = lambda v: v if not isinstance(v, list) else f"list of {len(v)}"  # noqa: E731
            out.append(f"{k}: {show(new[k])} vs reference {show(ref[k])} (tolerance {tolerance(stem, k):g})")
    return out


if __name__ == "__main__":
    stem, metrics_file = sys.argv[1], Path(sys.argv[2])
    REF_DIR.mkdir(parents=True, exist_ok=True)
    out = REF_DIR / f"{stem}.json"
    out.write_text(json.dumps(comparable(stem, json.loads(metrics_file.read_text())), indent=1, sort_keys=True) + "\n")
    print("updated", out)
