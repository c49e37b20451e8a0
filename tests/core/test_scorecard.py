"""mlbook.core.scorecard and mlbook.core.summary: verdicts with intervals from recorded units, predictions, and
stale results."""
from __future__ import annotations

import json

import numpy as np

from mlbook.core import catalogue, context, provenance, scorecard, summary


def _record_units(folder, stem, value: float, n: int = 200):
    """Record every claim statistic of the card with units around ``value`` (a planted effect)."""
    rng = np.random.default_rng(0)
    m = {}
    for c in catalogue.chapter_card(stem)["claims"]:
        for t in c["tests"]:
            units = (t["threshold"] + value + rng.normal(0, 0.05, n)).tolist()
            m[t["statistic"]], m[t["statistic"] + "__units"] = float(np.mean(units)), units
    context.record(folder, **m)


def test_scorecard_shows_intervals_verdicts_and_predictions(tmp_path):
    stem = "00_using_this_book"
    res = tmp_path / "results"
    _record_units(res / "cpu" / stem, stem, +0.2)
    rows = [r for r in scorecard.table(results=res) if r["chapter"] == stem]
    assert rows[0]["verdict (cpu)"].startswith("holds") and rows[0]["verdict (gpu)"] == "—"
    assert "[" in rows[0]["ours (cpu)"] and rows[0]["predicted (cpu)"] == "holds"
    assert rows[0]["state (cpu)"] == "unknown"           # no inputs.json: nobody can tell which code produced it
    page = scorecard.markdown(results=res)
    assert "# Scorecard" in page and "Reproducibility summary" in page and "holds" in page


def test_a_reversed_result_gets_a_note_and_the_summary_flags_the_missed_prediction(tmp_path):
    stem = "00_using_this_book"
    res = tmp_path / "results"
    _record_units(res / "cpu" / stem, stem, -0.2)
    row = next(r for r in scorecard.table(results=res) if r["chapter"] == stem)
    assert row["verdict (cpu)"].startswith("does not hold") and "cpu: does not hold" in row["note"]
    metrics = json.loads((res / "cpu" / stem / "metrics.json").read_text())
    text = summary.reproducibility(stem, "cpu", metrics, {"seeds": [0]})
    assert "**does not hold** — predicted *holds*" in text and "Scope" in text and "What was difficult" in text


def test_a_revised_prediction_keeps_the_first_one_in_view(monkeypatch):
    """A prediction that a run missed is revised in the card's ``revised`` entry: the first prediction, its
    mechanism and what the run showed stay on the scorecard and in the summary; the test asserts the new one."""
    import pytest

    from mlbook.core import evidence

    claim = {"id": "claim1", "claim": "x", "tests": [{"statistic": "s", "direction": "greater", "threshold": 0}],
             "predict": {"cpu": "holds"}, "mechanism": {"cpu": "the new mechanism"},
             "revised": {"cpu": {"predicted": "inconclusive", "mechanism": "the first mechanism",
                                 "why": "what the run showed"}}}
    assert scorecard.prediction(claim, "cpu") == "holds (revised; first: inconclusive)"
    assert scorecard.prediction(claim, "gpu") == "—"
    card = {"claims": [claim], "sizes": {}}
    monkeypatch.setattr(summary, "chapter_card", lambda stem: card)
    text = summary.reproducibility("x", "cpu", {"s": 0.5, "s__units": [0.4, 0.5, 0.6, 0.5, 0.45]})
    assert "Predicted before the first run: *inconclusive* — the first mechanism" in text
    assert "did not bear it out: what the run showed" in text and "Revised prediction" in text
    with pytest.raises(ValueError, match="revised.cpu needs"):
        evidence.revision({"id": "c", "revised": {"cpu": {"predicted": "maybe"}}}, "cpu")


def test_stale_results_are_marked(tmp_path, monkeypatch):
    stem = "00_using_this_book"
    res = tmp_path / "results"
    folder = res / "cpu" / stem
    _record_units(folder, stem, +0.2)
    provenance.write_inputs(folder, stem, "cpu", {"profile": "cpu", "out_dir": "/somewhere"}, ["mlbook", "mlbook.core"])
    assert provenance.freshness(stem, "cpu", res) == "fresh"
    rec = json.loads((folder / provenance.INPUTS).read_text())
    rec["digest"] = "0" * 64                               # as if produced by other code
    (folder / provenance.INPUTS).write_text(json.dumps(rec))
    assert provenance.freshness(stem, "cpu", res) == "stale"
    row = next(r for r in scorecard.table(results=res) if r["chapter"] == stem)
    assert row["verdict (cpu)"].endswith("(stale)")
    assert provenance.freshness(stem, "gpu", res) == "missing"


def test_the_digest_ignores_where_a_result_goes():
    stem = "00_using_this_book"
    a = provenance.inputs_digest(stem, "cpu", {"profile": "cpu", "out_dir": "/a"}, ["mlbook"])
    assert a == provenance.inputs_digest(stem, "cpu", {"profile": "cpu", "out_dir": "/b"}, ["mlbook"])
    assert a != provenance.inputs_digest(stem, "cpu", {"profile": "cpu", "seed": 1}, ["mlbook"])


def test_the_digest_includes_the_chapter_data_folder(tmp_path, monkeypatch):
    """A chapter's data (``data/<stem>/``, e.g. chapter 7's templates) is an input of its result."""
    monkeypatch.setenv("MLBOOK_ROOT", str(tmp_path))
    (tmp_path / "chapters").mkdir()
    for ext in ("ipynb", "yml"):
        (tmp_path / "chapters" / f"99_x.{ext}").write_text("{}")
    digest = lambda: provenance.inputs_digest("99_x", "cpu", {}, ["mlbook"])  # noqa: E731
    before = digest()
    (tmp_path / "data" / "99_x" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "99_x" / "sub" / "templates.yaml").write_text("apples")
    with_data = digest()
    assert with_data != before
    (tmp_path / "data" / "99_x" / "sub" / "templates.yaml").write_text("oranges")
    assert digest() not in (before, with_data)
    (tmp_path / "data" / "98_other").mkdir()
    (tmp_path / "data" / "98_other" / "f").write_text("x")                 # another chapter's data: no effect
    assert digest() == provenance.inputs_digest("99_x", "cpu", {}, ["mlbook"])
