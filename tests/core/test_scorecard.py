"""mlbook.run, mlbook.cache, mlbook.cli and mlbook.scorecard: the harness itself."""
from __future__ import annotations

import pytest

from mlbook.core import catalogue, context, scorecard


# ---------------------------------------------------------------- scorecard
def test_scorecard_is_built_from_metrics(tmp_path, monkeypatch):
    stem = next((s for s in catalogue.list_chapters() if catalogue.chapter_card(s)["claims"]), None)
    if stem is None:
        pytest.skip("no chapter declares claims yet")
    claim = catalogue.chapter_card(stem)["claims"][0]
    res = tmp_path / "results"
    ours = claim["ours"] if isinstance(claim["ours"], list) else [claim["ours"]]
    context.record(res / "cpu" / stem, **{ours[0]: 0.123456, claim["holds"]: False})
    rows = [r for r in scorecard.table(results=res) if r["chapter"] == stem and r["id"] == claim["id"]]
    assert rows[0]["ours (cpu)"].startswith("0.123") and rows[0]["holds (cpu)"] == "no"
    assert rows[0]["holds (gpu)"] == "—"
    page = scorecard.markdown(results=res)
    assert "0.123" in page and "# Scorecard" in page
