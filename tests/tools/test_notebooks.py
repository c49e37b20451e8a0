"""Notebook hygiene of every chapter: committed with outputs stripped, a tagged parameters cell
that holds plain literals only, the python3 kernel, valid nbformat."""
from __future__ import annotations

import ast

import nbformat
import pytest
from pytest_notebook.notebook import load_notebook

from mlbook.core.catalogue import chapters_dir, list_chapters


@pytest.mark.parametrize("stem", list_chapters())
def test_notebook_hygiene(stem):
    path = chapters_dir() / f"{stem}.ipynb"
    nb = load_notebook(str(path))
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernel spec must be python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert not dirty, f"code cells {dirty} carry outputs: strip them (jupyter nbconvert --clear-output --inplace)"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one code cell must be tagged 'parameters'"
    for node in ast.parse(params[0].source).body:
        assert isinstance(node, ast.Assign), f"parameters cell: only assignments, got {ast.unparse(node)!r}"
        ast.literal_eval(node.value)  # raises if a value is not a plain literal
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a chapter opens with its title"


def test_a_cell_past_cell_timeout_stops_the_run_with_a_clear_error(tmp_path):
    from mlbook.tools.notebooks import CellTimeout, run_chapter

    with pytest.raises(ValueError, match="whole seconds"):
        run_chapter("00", "smoke", {}, out=tmp_path, cell_timeout=0.5)
    # its first cell imports torch and the book's library: more than a second
    with pytest.raises(CellTimeout, match=r"00_using_this_book \(smoke\): a cell gave no reply within 1 s"):
        run_chapter("00", "smoke", {}, out=tmp_path, progress=False, cell_timeout=1)
    assert not (tmp_path / "00_using_this_book.ipynb").exists()   # no executed notebook passes for a result


def test_a_stalled_smoke_run_is_executed_once_more_and_a_second_stall_fails(tmp_path, monkeypatch):
    from mlbook.tools.notebooks import CellTimeout

    from .. import smoke

    calls = []

    def stalls(n):
        def fake(stem, profile, params, out, progress, cell_timeout):
            calls.append(cell_timeout)
            if len(calls) <= n:
                raise CellTimeout(f"{stem}: stalled")
            return out
        return fake

    monkeypatch.setattr(smoke, "run_chapter", stalls(1))
    with pytest.warns(UserWarning, match="executing 03_gknow once more"):
        assert smoke.run_smoke("03_gknow", tmp_path) == tmp_path
    assert calls == [smoke.CELL_TIMEOUT] * 2
    calls.clear()
    monkeypatch.setattr(smoke, "run_chapter", stalls(2))
    with pytest.warns(UserWarning), pytest.raises(CellTimeout):
        smoke.run_smoke("03_gknow", tmp_path)
    assert len(calls) == 2
