"""mlbook.run, mlbook.cache, mlbook.cli and mlbook.scorecard: the harness itself."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlbook.core import cache, catalogue, context, scorecard
from mlbook.tools import notebooks as cli


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---------------------------------------------------------------- cache
def test_sha256_matches_hashlib_reference(tmp_path):
    import hashlib

    p = tmp_path / "x.bin"
    p.write_bytes(b"abc")
    assert cache.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert cache.sha256_file(p) == hashlib.sha256(b"abc").hexdigest()


def test_key_of_is_stable_and_input_sensitive():
    assert cache.key_of("m", 1, {"a": 2}) == cache.key_of("m", 1, {"a": 2})
    assert cache.key_of("m", 1) != cache.key_of("m", 2)


def test_cached_folder_builds_once_and_rebuilds_when_corrupt(tmp_cache):
    calls = []

    def builder(folder: Path):
        calls.append(1)
        (folder / "data.txt").write_text("payload")
        return {"v": 1}

    p1 = cache.cached_folder("entry", builder)
    p2 = cache.cached_folder("entry", builder)
    assert p1 == p2 and len(calls) == 1 and (p1 / "data.txt").read_text() == "payload"
    assert cache.verify(p1)
    (p1 / "data.txt").write_text("tampered")          # same length, different bytes
    assert not cache.verify(p1)
    p3 = cache.cached_folder("entry", builder)
    assert len(calls) == 2 and (p3 / "data.txt").read_text() == "payload"


def test_interrupted_build_leaves_nothing_behind(tmp_cache):
    def builder(folder: Path):
        (folder / "half.bin").write_bytes(b"x" * 10)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached_folder("broken", builder)
    assert not (tmp_cache / "broken").exists()
    assert list(tmp_cache.iterdir()) == []


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "m.json"
    cache.atomic_write_text(p, "old")

    class Boom:
        def __str__(self):
            raise RuntimeError

    with pytest.raises(TypeError):
        cache.atomic_write_text(p, Boom())
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["m.json"]


# ---------------------------------------------------------------- run
def test_record_merges_atomically_and_refuses_objects(tmp_path):
    context.record(tmp_path, a=1, b=0.5)
    context.record(tmp_path, b=0.25, c=True)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1, "b": 0.25, "c": True}
    with pytest.raises(TypeError):
        context.record(tmp_path, bad=object())
    assert json.loads((tmp_path / "metrics.json").read_text())["b"] == 0.25


def test_record_converts_numpy_and_torch_scalars(tmp_path):
    import numpy as np
    import torch

    out = context.record(tmp_path, x=np.float32(0.5), y=torch.tensor(3), z=np.array(2.0))
    assert out == {"x": 0.5, "y": 3, "z": 2.0}


def test_profiles_and_sizes():
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        context.check_profile("laptop")
    stem = catalogue.list_chapters()[0]
    s = context.sizes(stem, "smoke")
    c = context.sizes(stem, "cpu")
    assert vars(s).keys() == vars(c).keys()
    key = next(iter(vars(s)))
    assert getattr(context.sizes(stem, "smoke", **{key: 123}), key) == 123
    with pytest.raises(ValueError, match="is not a size"):
        context.sizes(stem, "smoke", no_such_size=1)


def test_resolve_chapter_by_number_and_name():
    stem = catalogue.list_chapters()[0]
    assert catalogue.resolve_chapter(stem) == stem
    assert catalogue.resolve_chapter(stem[:2]) == stem
    assert catalogue.resolve_chapter(str(int(stem[:2]))) == stem
    with pytest.raises(ValueError, match="unknown chapter"):
        catalogue.resolve_chapter("99_nope")


def test_seed_everything_is_deterministic():
    import numpy as np
    import torch

    context.seed_everything(3)
    a = (np.random.rand(), torch.rand(1).item())
    context.seed_everything(3)
    assert (np.random.rand(), torch.rand(1).item()) == a


def test_pick_device():
    assert context.pick_device("cpu") == "cpu"
    import torch

    assert context.pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            context.pick_device("cuda")


# ---------------------------------------------------------------- cli
def test_cli_rejects_bad_input_clearly():
    stem = catalogue.list_chapters()[0]
    with pytest.raises(ValueError, match="did you mean 'seed'"):
        cli.validate_parameters(stem, {"sed": 1})
    assert cli.parse_value("3") == 3 and cli.parse_value("[0, 1]") == [0, 1] and cli.parse_value("x") == "x"
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
    assert cli.notebook_parameters(p) == {"profile": "cpu", "seed": 0, "sizes": [1, 2], "out_dir": None}


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


def test_stamp_tracks_only_the_modules_a_chapter_used(tmp_path):
    stem = catalogue.list_chapters()[0]
    used = ["mlbook", "mlbook.core.context", "mlbook.interp.lens"]
    d = cli._inputs_digest(stem, "smoke", {"seed": 0}, used)
    assert d == cli._inputs_digest(stem, "smoke", {"seed": 0}, used)
    assert d != cli._inputs_digest(stem, "smoke", {"seed": 1}, used)          # parameters count
    assert d != cli._inputs_digest(stem, "cpu", {"seed": 0}, used)            # so does the profile
    assert d != cli._inputs_digest(stem, "smoke", {"seed": 0}, used + ["mlbook.interp.hooks"])
    stamp = tmp_path / "x.stamp"
    stamp.write_text(json.dumps({"modules": used, "digest": d}))
    assert cli._up_to_date(stamp, stem, "smoke", {"seed": 0})
    assert not cli._up_to_date(stamp, stem, "smoke", {"seed": 2})
    stamp.write_text("garbage")
    assert not cli._up_to_date(stamp, stem, "smoke", {"seed": 0})


def test_verify_hashes_a_file_once_per_process_but_sees_a_rewrite(tmp_cache, monkeypatch):
    import os
    import time



    def build(folder):
        (folder / "w.bin").write_bytes(b"a" * 1000)

    folder = cache.cached_folder("memo", build)
    f = folder / "w.bin"
    old = time.time() - 60
    os.utime(f, (old, old))  # written a minute ago: eligible for the in-process memo
    assert cache.verify(folder)
    calls = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p, *a: calls.append(p) or real(p, *a))
    assert cache.verify(folder) and calls == []  # unchanged: not hashed again
    os.chmod(f, 0o644)
    f.write_bytes(b"b" * 1000)  # same size, new content, new mtime
    assert not cache.verify(folder) and len(calls) == 1
