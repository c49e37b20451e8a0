"""Executing a chapter at the smoke profile for a test, with each cell bounded.

No smoke cell takes a minute (the longest, chapter 4's edits, 63 s under xdist), but a kernel
sometimes never sends a cell's reply: papermill and the kernel then both wait on epoll, for ever
(seen twice: chapter 4 once in about ten runs, chapter 3 in a CI run, where it cost the 900 s
per-test limit of two tests). A stalled run says nothing about the chapter's numbers, so it is
executed once more, with a warning; a second stall, or a cell that is slow each time, fails.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from mlbook.tools.notebooks import CellTimeout, run_chapter

CELL_TIMEOUT = 240   # seconds; about 4 × the slowest smoke cell under xdist


def run_smoke(stem: str, out: Path, cell_timeout: int = CELL_TIMEOUT) -> Path:
    try:
        return run_chapter(stem, "smoke", {}, out=out, progress=False, cell_timeout=cell_timeout)
    except CellTimeout as e:
        warnings.warn(f"{e}; executing {stem} once more", stacklevel=2)
        return run_chapter(stem, "smoke", {}, out=out, progress=False, cell_timeout=cell_timeout)
