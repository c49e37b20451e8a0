"""Every chapter of _toc.yml, executed through papermill, and the committed results of the book.

Default run:
- the ``smoke`` profile: every metric the card declares exists and lies in its range for that profile, every
  claim's statistics and units are recorded and its verdict computed, the metrics equal the committed smoke
  reference (``tests/reference``), and the deterministic cells equal theirs (``tests/regression``);
- chapters that train or sample: two smoke runs with empty chapter caches give the same metrics;
- the committed ``results/cpu/<chapter>/``: present, fresh (produced by today's notebook, card and modules),
  inside the cpu ranges, and each claim's verdict equals the card's prediction.
``-m replication``: the ``cpu`` profile is run again and its verdicts must equal the card's predictions.
"""
from __future__ import annotations

import json
import math

import pytest

from mlbook.core import evidence
from mlbook.core.cache import cache_dir
from mlbook.core.catalogue import chapter_card, chapters_dir, list_chapters, repo_root
from mlbook.core.provenance import freshness
from mlbook.models.registry import BUNDLED, missing_packages
from mlbook.models.resolve import cache_name
from mlbook.tools.notebooks import notebook_parameters, run_chapter

from . import reference, regression
from .smoke import run_smoke

CHAPTERS = list_chapters()
RESULTS = repo_root() / "results"


def metric_range(spec, profile: str):
    """A card's range of one metric at ``profile``: ``[lo, hi]`` for every profile, or per profile
    ``{smoke: [..], cpu: [..], gpu: [..], all: [..]}`` (a profile's own range wins over ``all``)."""
    if isinstance(spec, dict):
        spec = spec.get(profile, spec.get("all"))
    return (spec or [None, None])[0], (spec or [None, None])[1]


def check_metrics(stem: str, metrics: dict, profile: str) -> None:
    card = chapter_card(stem)
    problems = []
    for name, spec in card["metrics"].items():
        if name not in metrics:
            problems.append(f"{name}: not recorded")
            continue
        v = metrics[name]
        if isinstance(v, bool):
            v = int(v)
        if not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            problems.append(f"{name}: {v!r} is not a finite number")
            continue
        lo, hi = metric_range(spec, profile)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            problems.append(f"{name}: {v} outside its {profile} range [{lo}, {hi}]")
    for c in card["claims"]:
        for t in evidence.claim_tests(c):
            for name in (t.statistic, f"{t.statistic}__units"):
                if name not in metrics:
                    problems.append(f"claim {c['id']}: {name!r} was not recorded")
        if f"{c['id']}_verdict" not in metrics:
            problems.append(f"claim {c['id']}: no verdict recorded (the chapter must call run.claims_table())")
    assert not problems, f"{stem} ({profile}):\n  " + "\n  ".join(problems)


def verdict_mismatches(stem: str, metrics: dict, profile: str) -> list[str]:
    out, claims = [], chapter_card(stem)["claims"]
    results = evidence.evaluate_claims(claims, metrics)
    for c in claims:
        predicted = (c.get("predict") or {}).get(profile)
        got = results[c["id"]]["verdict"]
        if predicted is None:
            out.append(f"{c['id']}: the card predicts no verdict at {profile}")
        elif got != predicted:
            tests = "; ".join(f"{t['statistic']} {evidence.fmt_interval(t)}" for t in results[c["id"]]["tests"])
            out.append(f"{c['id']}: {got}, predicted {predicted} ({tests})")
    return out


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
        for c in card["claims"]:
            evidence.claim_tests(c)                                       # statistic, direction, threshold
            assert all((c.get("predict") or {}).get(p) in evidence.VERDICTS for p in ("cpu", "gpu")), \
                f"{stem} {c['id']}: predict a verdict (holds / does not hold / inconclusive) for cpu and gpu"
            assert (c.get("mechanism") or {}).get("cpu"), f"{stem} {c['id']}: give the mechanism of the cpu prediction"
            for p in ("cpu", "gpu"):
                rev = evidence.revision(c, p)                             # a missed prediction stays in view
                assert rev is None or (rev["predicted"], rev.get("mechanism")) != (c["predict"][p], c["mechanism"].get(p)), \
                    f"{stem} {c['id']}: revised.{p} repeats the current prediction and mechanism"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_smoke(stem, smoke_run):
    out = smoke_run(stem)
    metrics = json.loads((out / "metrics.json").read_text())
    check_metrics(stem, metrics, "smoke")
    env = json.loads((out / "environment.json").read_text())
    assert env["profile"] == "smoke" and env["chapter"] == stem
    changed = reference.diff(stem, metrics)
    assert not changed, f"smoke metrics of {stem} differ from tests/reference/smoke/{stem}.json:\n  " + "\n  ".join(changed)
    changed = regression.diff(stem, out / f"{stem}.ipynb")
    assert not changed, f"deterministic outputs of {stem} changed (update tests/regression if intended):\n{changed}"


def _fresh_cache(tmp_path):
    """An empty chapter cache that shares only the converted bundled models (not built by any chapter)."""
    fresh = tmp_path / "cache"
    (fresh / "models").mkdir(parents=True)
    for hub_id in BUNDLED:
        if not missing_packages(hub_id):
            src = cache_dir() / cache_name(hub_id)
            if src.exists():
                (fresh / cache_name(hub_id)).symlink_to(src, target_is_directory=True)
    return fresh


@pytest.mark.parametrize("stem", [s for s in CHAPTERS if chapter_card(s).get("trains_or_samples")])
def test_smoke_is_deterministic_from_empty_caches(stem, tmp_path, monkeypatch):
    """Trained artefacts come from their code and inputs, not from whatever a cache held: two smoke runs,
    each from its own empty chapter cache, give the same metrics (timings aside)."""
    runs = []
    for i in range(2):
        monkeypatch.setenv("MLBOOK_CACHE", str(_fresh_cache(tmp_path / f"run{i}")))
        run_smoke(stem, tmp_path / f"out{i}")
        runs.append(reference.comparable(stem, json.loads((tmp_path / f"out{i}" / "metrics.json").read_text())))
    assert runs[0] == runs[1], sorted(k for k in runs[0] if runs[0].get(k) != runs[1].get(k))


@pytest.mark.parametrize("stem", CHAPTERS)
def test_committed_cpu_results_are_fresh_and_as_predicted(stem):
    state = freshness(stem, "cpu")
    assert state == "fresh", (f"results/cpu/{stem} is {state}: run `mlbook run {stem} --profile cpu` with today's "
                              f"code and commit results/cpu/{stem}/")
    metrics = json.loads((RESULTS / "cpu" / stem / "metrics.json").read_text())
    check_metrics(stem, metrics, "cpu")
    wrong = verdict_mismatches(stem, metrics, "cpu")
    assert not wrong, f"{stem}: verdicts of the committed cpu result differ from the card's predictions:\n  " + \
        "\n  ".join(wrong)


@pytest.mark.replication
@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_replication(stem, tmp_path):
    run_chapter(stem, "cpu", {}, out=tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    check_metrics(stem, metrics, "cpu")
    wrong = verdict_mismatches(stem, metrics, "cpu")
    assert not wrong, "\n".join(wrong)
