"""The mlbook cache: where converted models, built data and trained checkpoints live.

Every entry is a folder named by a key derived from its inputs.  A folder is built
in a temporary sibling and renamed into place only when complete, with a
``MANIFEST.json`` listing the sha256 of every file; reading an entry re-checks the
manifest, so a half-written or corrupted entry is detected and rebuilt, never used.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .catalogue import repo_root

MANIFEST = "MANIFEST.json"


def cache_dir() -> Path:
    """Root of the cache: ``$MLBOOK_CACHE`` or the user's cache dir (``~/.cache/mlbook``)."""
    root = os.environ.get("MLBOOK_CACHE")
    if root:
        p = Path(root).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        p = Path(base) / "mlbook"
    p.mkdir(parents=True, exist_ok=True)
    return p


def key_of(*parts) -> str:
    """A short stable hash of the inputs (anything json-serialisable)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(folder: Path, meta: dict | None = None) -> dict:
    files = {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"files": files, "meta": meta or {}}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


_VERIFIED: dict = {}  # (path, digest) -> the file's (inode, size, mtime) when this process last hashed it


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def verify(folder: str | Path) -> bool:
    """True if ``folder`` has a manifest and every listed file has the listed sha256.

    A file is hashed once per process: a later call re-hashes it only if its inode, size or modification
    time changed since (only files last written over 2 s before they were hashed are remembered, so that a
    rewrite is visible even with a coarse file-system clock; a 540 MB checkpoint costs ≈3 s to hash, and a chapter resolves it many times)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        for rel, digest in manifest["files"].items():
            path = folder / rel
            memo = (str(path.resolve()), digest)
            if _VERIFIED.get(memo) == _stat_key(path):
                continue
            before = _stat_key(path)
            if sha256_file(path) != digest:
                return False
            if time.time() - before[2] / 1e9 > 2.0:  # a later write would show a newer mtime even on a coarse clock
                _VERIFIED[memo] = before
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _readable(folder: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def cached_folder(name: str, builder: Callable[[Path], dict | None], *, verify_on_read: bool = True) -> Path:
    """Return ``cache_dir()/name``, building it with ``builder(tmp_folder)`` if missing or corrupt.

    ``builder`` fills the folder it is given and may return metadata for the manifest.
    The folder appears under its final name only once it is complete.
    """
    final = cache_dir() / name
    if final.exists():
        if not verify_on_read or verify(final):
            return final
        shutil.rmtree(final, ignore_errors=True)  # corrupt or half-written: rebuild
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        meta = builder(tmp)
        write_manifest(tmp, meta)
        _readable(tmp)  # mkdtemp/mkstemp create private (0700/0600) entries: let other users read the cache
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first
            if verify(final):
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def source_digest(*modules: str) -> str:
    """A short hash of the source files of the named modules (a package: every ``.py`` below it), so that a
    cache key changes when the code that builds an entry changes, not only its parameters.  A name with a
    ``/`` is a file or folder of the repository (``data/07_copsd``): every file in it enters the hash."""
    import importlib.util

    h = hashlib.sha256()
    for name in sorted(set(modules)):
        if "/" in name:
            root = repo_root() / name
            if not root.exists():
                raise FileNotFoundError(f"source_digest: no file or folder {name!r} in {repo_root()}")
            root, files = (root, sorted(f for f in root.rglob("*") if f.is_file())) if root.is_dir() \
                else (root.parent, [root])
        else:
            spec = importlib.util.find_spec(name)
            if spec is None:
                raise ModuleNotFoundError(f"source_digest: no module {name!r}")
            if spec.submodule_search_locations:
                root = Path(list(spec.submodule_search_locations)[0])
                files = sorted(root.rglob("*.py"))
            else:
                root, files = Path(spec.origin).parent, [Path(spec.origin)]
        for f in files:
            h.update(f"{name}:{f.relative_to(root).as_posix()}".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]
