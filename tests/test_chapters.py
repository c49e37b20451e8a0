"""Every chapter of _toc.yml, executed through papermill.

Default run: the ``smoke`` profile; every metric the chapter's card declares must exist and
lie in its sane range, and every claim's numbers must be recorded.
``-m replication``: the ``cpu`` profile; every claim must hold, except those the card marks as
an expected failure (with the reason), which must *not* hold — a claim that starts holding is
reported so that the card is corrected.
"""
from __future__ import annotations

import json
import math

import pytest

from mlbook.core.catalogue import chapter_card, chapters_dir, list_chapters
from mlbook.tools.notebooks import notebook_parameters, run_chapter

from . import regression

CHAPTERS = list_chapters()


def _check_metrics(stem: str, metrics: dict) -> None:
    card = chapter_card(stem)
    problems = []
    for name, rng in card["metrics"].items():
        if name not in metrics:
            problems.append(f"{name}: not recorded")
            continue
        v = metrics[name]
        if isinstance(v, bool):
            v = int(v)
        if not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            problems.append(f"{name}: {v!r} is not a finite number")
            continue
        lo, hi = (rng or [None, None])
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            problems.append(f"{name}: {v} outside its sane range [{lo}, {hi}]")
    for c in card["claims"]:
        for key in ("ours", "spread", "holds"):
            names = c.get(key) or []
            for name in names if isinstance(names, list) else [names]:
                if name not in metrics:
                    problems.append(f"claim {c['id']}: its {key} metric {name!r} was not recorded")
    assert not problems, f"{stem}:\n  " + "\n  ".join(problems)


def test_every_chapter_has_a_card_and_a_parameters_cell():
    assert CHAPTERS, "no chapter listed in _toc.yml"
    for stem in CHAPTERS:
        params = notebook_parameters(chapters_dir() / f"{stem}.ipynb")
        for name in ("profile", "seed", "device", "out_dir"):
            assert name in params, f"{stem}: the parameters cell lacks {name!r}"
        assert params["profile"] == "cpu", f"{stem}: the book's default profile is cpu"
        card = chapter_card(stem)
        assert set(card["sizes"]) >= {"smoke", "cpu", "gpu"}, f"{stem}: the card lacks a profile's sizes"
        assert card["metrics"], f"{stem}: the card declares no metrics"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_smoke(stem, smoke_run):
    out = smoke_run(stem)
    metrics = json.loads((out / "metrics.json").read_text())
    _check_metrics(stem, metrics)
    env = json.loads((out / "environment.json").read_text())
    assert env["profile"] == "smoke" and env["chapter"] == stem
    changed = regression.diff(stem, out / f"{stem}.ipynb")
    assert not changed, f"deterministic outputs of {stem} changed (update tests/regression if intended):\n{changed}"


@pytest.mark.replication
@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_replication(stem, tmp_path):
    run_chapter(stem, "cpu", {}, out=tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    _check_metrics(stem, metrics)
    failures, expected = [], []
    for c in chapter_card(stem)["claims"]:
        held = bool(metrics[c["holds"]])
        if c.get("expected_failure"):
            if held:
                failures.append(f"{c['id']} now HOLDS although the card expects it to fail "
                                f"({c['expected_failure']}): update the card")
            else:
                expected.append(f"{c['id']}: {c['expected_failure']}")
        elif not held:
            failures.append(f"{c['id']} does not hold: {c.get('claim')} (ours: {metrics.get(c.get('ours'))})")
    assert not failures, "\n".join(failures)
    if expected:
        pytest.xfail("claims that do not hold at our scale: " + "; ".join(expected))
