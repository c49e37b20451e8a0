"""mlbook.run, mlbook.cache, mlbook.cli and mlbook.scorecard: the harness itself."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlbook.core import catalogue, provenance
from mlbook.tools import notebooks


# ---------------------------------------------------------------- cli
def test_cli_rejects_bad_input_clearly():
    stem = catalogue.list_chapters()[0]
    with pytest.raises(ValueError, match="did you mean 'seed'"):
        notebooks.validate_parameters(stem, {"sed": 1})
    assert notebooks.parse_value("3") == 3 and notebooks.parse_value("[0, 1]") == [0, 1] and notebooks.parse_value("x") == "x"
    for args, msg in ([["run", "77"], "unknown chapter"], [["run", stem, "--profile", "tpu"], "unknown profile"],
                      [["run", stem, "-p", "sed", "1"], "unknown parameter"]):
        r = subprocess.run([sys.executable, "-m", "mlbook.tools.cli", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_notebook_parameters_reads_literals(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("profile = 'cpu'\nseed = 0\nsizes = [1, 2]\nout_dir = None")
    c.metadata["tags"] = ["parameters"]
    nb.cells.append(c)
    p = tmp_path / "n.ipynb"
    nbformat.write(nb, p)
    assert notebooks.notebook_parameters(p) == {"profile": "cpu", "seed": 0, "sizes": [1, 2], "out_dir": None}


def test_stamp_tracks_only_the_modules_a_chapter_used(tmp_path):
    stem = catalogue.list_chapters()[0]
    used = ["mlbook", "mlbook.core.context", "mlbook.interp.lens"]
    d = provenance.inputs_digest(stem, "smoke", {"seed": 0}, used)
    assert d == provenance.inputs_digest(stem, "smoke", {"seed": 0}, used)
    assert d != provenance.inputs_digest(stem, "smoke", {"seed": 1}, used)          # parameters count
    assert d != provenance.inputs_digest(stem, "cpu", {"seed": 0}, used)            # so does the profile
    assert d != provenance.inputs_digest(stem, "smoke", {"seed": 0}, used + ["mlbook.interp.hooks"])
    stamp = tmp_path / "x.stamp"
    stamp.write_text(json.dumps({"modules": used, "digest": d}))
    assert notebooks._up_to_date(stamp, stem, "smoke", {"seed": 0})
    assert not notebooks._up_to_date(stamp, stem, "smoke", {"seed": 2})
    stamp.write_text("garbage")
    assert not notebooks._up_to_date(stamp, stem, "smoke", {"seed": 0})


def test_digest_follows_the_modules_a_chapter_imported_and_no_others(tmp_path):
    """`mlbook run --all` re-executes a chapter when a module it imported changes (a module file or a
    package's __init__, at any depth of the new layout), and not when another module changes."""
    pkg = tmp_path / "mlbook"
    files = {"__init__.py": "", "core/__init__.py": "", "core/context.py": "A = 1\n", "interp/__init__.py": "",
             "interp/lens.py": "B = 1\n", "interp/hooks.py": "C = 1\n", "chapters/ch01_x/experiment.py": "D = 1\n"}
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    stem = catalogue.list_chapters()[0]
    used = ["mlbook", "mlbook.core", "mlbook.core.context", "mlbook.interp", "mlbook.interp.lens",
            "mlbook.chapters.ch01_x.experiment"]
    digest = lambda: provenance.inputs_digest(stem, "smoke", {}, used, package=pkg)  # noqa: E731
    before = digest()
    (pkg / "interp/hooks.py").write_text("C = 2\n")                     # not imported by the chapter
    assert digest() == before
    for rel in ("interp/lens.py", "core/__init__.py", "chapters/ch01_x/experiment.py"):
        old = (pkg / rel).read_text()
        (pkg / rel).write_text(old + "# changed\n")                      # imported: the chapter re-runs
        assert digest() != before, rel
        (pkg / rel).write_text(old)
        assert digest() == before, rel

