"""mlbook.run, mlbook.cache, mlbook.cli and mlbook.scorecard: the harness itself."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlbook.core import cache


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


def test_source_digest_follows_module_source_and_repository_files(tmp_path, monkeypatch):
    monkeypatch.setenv("MLBOOK_ROOT", str(tmp_path))
    (tmp_path / "data" / "07_x").mkdir(parents=True)
    (tmp_path / "data" / "07_x" / "templates.yaml").write_text("apples")
    a = cache.source_digest("mlbook.core.cache", "data/07_x")
    assert a == cache.source_digest("data/07_x", "mlbook.core.cache") and len(a) == 12      # order-free
    assert a != cache.source_digest("mlbook.core.cache")
    (tmp_path / "data" / "07_x" / "templates.yaml").write_text("oranges")                  # data changed
    assert cache.source_digest("mlbook.core.cache", "data/07_x") != a
    one = cache.source_digest("data/07_x/templates.yaml")                                  # a single file
    (tmp_path / "data" / "07_x" / "templates.yaml").write_text("pears")
    assert cache.source_digest("data/07_x/templates.yaml") != one
    with pytest.raises(FileNotFoundError, match="no file or folder"):
        cache.source_digest("data/no_such")
    with pytest.raises(ModuleNotFoundError):
        cache.source_digest("mlbook.no_such_module")


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
