"""Regression of a chapter's deterministic outputs (cells tagged ``regression``), compared with
pytest-notebook's differ against a reference executed at the smoke profile.

Update a reference after an intended change with:
    .venv/bin/python -m tests.regression STEM EXECUTED.ipynb
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

REF_DIR = Path(__file__).parent / "regression"


def regression_cells(nb) -> "nbformat.NotebookNode":
    """A notebook holding only the cells tagged ``regression``, with volatile fields dropped."""
    out = nbformat.v4.new_notebook()
    k = 0
    for c in nb.cells:
        if c.cell_type == "code" and "regression" in c.metadata.get("tags", []):
            keep = nbformat.v4.new_code_cell(c.source)
            keep.id = f"regression-{k}"    # the k-th regression cell: other cells may come and go around it
            k += 1
            keep.outputs = [o for o in c.outputs if o.get("output_type") in ("execute_result", "display_data", "stream")
                            and "application/vnd.jupyter.widget-view+json" not in o.get("data", {})  # progress bars
                            and o.get("name") != "stderr"]
            for o in keep.outputs:
                o.pop("execution_count", None)
                o.get("data", {}).pop("text/html", None)  # pandas' HTML carries random ids; text/plain is compared
            out.cells.append(keep)
    return out


def has_regression_cells(executed: Path) -> bool:
    return bool(regression_cells(nbformat.read(executed, as_version=4)).cells)


def diff(stem: str, executed: Path) -> str:
    """'' when the regression cells match the reference, else a readable diff.  A chapter with cells tagged
    ``regression`` must have a reference (a missing one is reported as a difference)."""
    from pytest_notebook.diffing import diff_notebooks, diff_to_string

    ref_path = REF_DIR / f"{stem}.smoke.ipynb"
    new = regression_cells(nbformat.read(executed, as_version=4))
    if not ref_path.exists():
        return (f"{stem} has {len(new.cells)} cells tagged 'regression' but no reference {ref_path}; create it with "
                f"python -m tests.regression {stem} EXECUTED.ipynb") if new.cells else ""
    ref = nbformat.read(ref_path, as_version=4)
    d = diff_notebooks(ref, new)
    return diff_to_string(ref, d, use_color=False) if d else ""


if __name__ == "__main__":
    stem, executed = sys.argv[1], Path(sys.argv[2])
    REF_DIR.mkdir(exist_ok=True)
    nbformat.write(regression_cells(nbformat.read(executed, as_version=4)), REF_DIR / f"{stem}.smoke.ipynb")
    print("updated", REF_DIR / f"{stem}.smoke.ipynb")
