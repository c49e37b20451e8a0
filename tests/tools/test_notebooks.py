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
