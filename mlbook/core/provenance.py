"""Which inputs produced a result: the digest of a chapter's notebook, card, data folder (``data/<stem>/``),
parameters and the mlbook modules its run imported, written next to the result (``inputs.json``) and compared with the tree as it is
now — a committed result whose inputs changed is *stale*.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .cache import atomic_write_text
from .catalogue import chapters_dir, repo_root

INPUTS = "inputs.json"
_PATH_PARAMETERS = ("out_dir",)  # where a result goes does not change it


def package_dir() -> Path:
    """The mlbook package folder."""
    return Path(__file__).resolve().parents[1]


def inputs_digest(stem: str, profile: str, params: dict, modules: list[str] | None, package: Path | None = None) -> str:
    """What a chapter's result depends on: notebook, card, the files of ``data/<stem>/``, parameters, and the mlbook modules
    its last run imported (recorded by ``Run.finish``: dotted names such as ``mlbook.interp.lens``, each
    a module file or a package's ``__init__.py`` under ``package``, the mlbook folder by default); all
    of mlbook when that is unknown.  File names enter relative to the repository, so the digest is the
    same in every clone."""
    h = hashlib.sha256()
    pkg = Path(package) if package is not None else package_dir()
    files = [chapters_dir() / f"{stem}.ipynb", chapters_dir() / f"{stem}.yml"]
    data = chapters_dir().parent / "data" / stem
    files += sorted(f for f in data.rglob("*") if f.is_file()) if data.is_dir() else []
    if modules is None:
        files += sorted(pkg.rglob("*.py"))
    else:
        for m in modules:
            parts = m.split(".")[1:]
            if not parts:
                files.append(pkg / "__init__.py")
                continue
            rel = Path(*parts)
            files += [f for f in (pkg / rel.with_suffix(".py"), pkg / rel / "__init__.py") if f.exists()]
    for f in files:
        if f.exists():
            base = pkg.parent if f.is_relative_to(pkg.parent) else chapters_dir().parent
            h.update(f.relative_to(base).as_posix().encode())
            h.update(f.read_bytes())
    clean = {k: v for k, v in params.items() if k not in _PATH_PARAMETERS}
    h.update(json.dumps([profile, clean], sort_keys=True, default=str).encode())
    return h.hexdigest()


def write_inputs(folder: str | Path, stem: str, profile: str, params: dict, modules: list[str] | None) -> dict:
    """Write ``folder/inputs.json``: the chapter, profile, parameters, modules and their digest."""
    clean = {k: v for k, v in params.items() if k not in _PATH_PARAMETERS}
    rec = {"chapter": stem, "profile": profile, "params": clean, "modules": modules,
           "digest": inputs_digest(stem, profile, clean, modules)}
    atomic_write_text(Path(folder) / INPUTS, json.dumps(rec, indent=1, sort_keys=True))
    return rec


def load_result(stem: str, profile: str, results: Path | None = None) -> tuple[dict, dict]:
    """``(metrics, environment)`` of a chapter's result at ``profile``; empty dicts when it has not run."""
    folder = (results or repo_root() / "results") / profile / stem
    out = []
    for name in ("metrics.json", "environment.json"):
        p = folder / name
        out.append(json.loads(p.read_text()) if p.exists() else {})
    return out[0], out[1]


def read_inputs(folder: str | Path) -> dict | None:
    try:
        return json.loads((Path(folder) / INPUTS).read_text())
    except (OSError, ValueError):
        return None


def freshness(stem: str, profile: str, results: Path | None = None) -> str:
    """``"fresh"`` (the result's inputs are today's), ``"stale"`` (they changed since), ``"unknown"``
    (a result without ``inputs.json``) or ``"missing"`` (no result)."""
    folder = (results or repo_root() / "results") / profile / stem
    if not (folder / "metrics.json").exists():
        return "missing"
    rec = read_inputs(folder)
    if rec is None or "digest" not in rec:
        return "unknown"
    now = inputs_digest(stem, profile, rec.get("params", {}), rec.get("modules"))
    return "fresh" if now == rec["digest"] else "stale"
