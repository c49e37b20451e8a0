"""Profiles, seeding, device choice and the record of a chapter's numbers.

A chapter declares itself in ``chapters/<stem>.yml`` (its *card*): the sizes each
profile uses, the metrics it records with their sane ranges, and the paper's claims
as falsifiable comparisons.  A notebook starts with ``run = mlbook.start(stem, ...)``
and ends with ``run.record(...)``; tests and the scorecard read what it recorded.
"""
from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

PROFILES = ("smoke", "cpu", "gpu")


def repo_root() -> Path:
    """The book's root folder (the one holding ``_toc.yml``)."""
    env = os.environ.get("MLBOOK_ROOT")
    if env:
        return Path(env)
    for p in [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parent.parent]:
        if (p / "_toc.yml").exists() and (p / "chapters").is_dir():
            return p
    return Path(__file__).resolve().parent.parent


def chapters_dir() -> Path:
    return repo_root() / "chapters"


def toc_files(root: Path | None = None) -> list[str]:
    """Every ``root``/``file`` entry of the book's ``_toc.yml``, in book order."""
    import yaml

    toc = yaml.safe_load(((root or repo_root()) / "_toc.yml").read_text())
    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return list(dict.fromkeys(out))


def list_chapters(root: Path | None = None) -> list[str]:
    """Chapter stems in book order, as listed in ``_toc.yml``."""
    return [Path(f).stem for f in toc_files(root) if f.startswith("chapters/")]


def node_modules(package: str) -> Path:
    """The ``node_modules`` folder that holds the npm ``package`` (data or the book's JavaScript).

    ``$MLBOOK_NODE_MODULES``, else ``<repo root>/node_modules``, else ``npm root -g``.
    """
    import shutil
    import subprocess

    def candidates():
        if os.environ.get("MLBOOK_NODE_MODULES"):
            yield Path(os.environ["MLBOOK_NODE_MODULES"]).expanduser()
        yield repo_root() / "node_modules"
        if shutil.which("npm"):  # asked only when the others lack it: npm takes a while to answer
            try:
                out = subprocess.run(["npm", "root", "-g"], capture_output=True, text=True, timeout=20)
                if out.returncode == 0 and out.stdout.strip():
                    yield Path(out.stdout.strip())
            except (OSError, subprocess.SubprocessError):
                pass

    looked = []
    for folder in candidates():
        if (folder / package / "package.json").exists():
            return folder
        looked.append(str(folder))
    raise FileNotFoundError(f"the npm package {package!r} is not installed (looked in {', '.join(looked)}); "
                            f"run `npm install` in {repo_root()} (or `make setup`)")


def resolve_chapter(name: str) -> str:
    """``"01"``, ``"1"``, ``"01_gluscope"`` or a path → the chapter stem; clear error otherwise."""
    stem = Path(str(name)).stem
    known = sorted(p.stem for p in chapters_dir().glob("[0-9][0-9]_*.ipynb"))
    if stem in known:
        return stem
    if stem.isdigit():
        hits = [k for k in known if k.startswith(f"{int(stem):02d}_")]
        if len(hits) == 1:
            return hits[0]
    raise ValueError(f"unknown chapter {name!r}; the chapters are: {', '.join(known) or '(none)'}")


def chapter_card(stem: str) -> dict:
    """The chapter's card (``chapters/<stem>.yml``): sizes, metrics, claims."""
    import yaml

    path = chapters_dir() / f"{stem}.yml"
    if not path.exists():
        raise FileNotFoundError(f"chapter {stem!r} has no card at {path}")
    card = yaml.safe_load(path.read_text()) or {}
    card.setdefault("sizes", {})
    card.setdefault("metrics", {})
    card.setdefault("claims", [])
    return card


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return profile


def sizes(stem: str, profile: str, **overrides) -> SimpleNamespace:
    """The sizes of ``profile`` from the chapter card; explicit (non-None) overrides win."""
    check_profile(profile)
    card = chapter_card(stem)
    table = dict(card["sizes"].get("common", {}))
    table.update(card["sizes"].get(profile, {}))
    for k, v in overrides.items():
        if k not in table:
            raise ValueError(f"{k!r} is not a size of chapter {stem}; its sizes are {sorted(table)}")
        if v is not None:
            table[k] = v
    return SimpleNamespace(**table)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (if installed) and ask torch for deterministic kernels."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:
        pass
    if _has("torch"):
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)


def _has(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def pick_device(device: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when a GPU is visible, else ``"cpu"``; anything else is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no GPU (torch {torch.__version__})")
    return device


def default_out_dir(stem: str, profile: str) -> Path:
    return repo_root() / "results" / profile / stem


def environment() -> dict:
    """Versions and machine facts, recorded next to the metrics."""
    from importlib.metadata import PackageNotFoundError, version

    pkgs = {}
    for name in ("torch", "transformers", "datasets", "numpy", "papermill", "mlbook"):
        try:
            pkgs[name] = version(name)
        except PackageNotFoundError:
            pass
    env = {"python": platform.python_version(), "platform": platform.platform(), "packages": pkgs,
           "cpu_count": os.cpu_count()}
    if "torch" in sys.modules:
        import torch

        env["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            env["gpu"] = torch.cuda.get_device_name(0)
    return env


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item) and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, float) and v != v:  # NaN is not JSON
        return None
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    raise TypeError(f"cannot record {type(v).__name__} value {v!r}: record numbers, strings, bools or lists")


def record(out_dir: str | Path | None, **metrics) -> dict:
    """Merge ``metrics`` into ``out_dir/metrics.json`` (atomically) and glue each for the book."""
    from .cache import atomic_write_text

    clean = {k: _jsonable(v) for k, v in metrics.items()}
    if out_dir is not None:
        path = Path(out_dir) / "metrics.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update(clean)
        atomic_write_text(path, json.dumps(old, indent=1, sort_keys=True))
    _glue(clean)
    return clean


def _glue(metrics: dict) -> None:
    """Make each number available to the book's ``{glue:text}`` role, when running in a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None or "myst_nb" not in sys.modules and not _has("myst_nb"):
        return
    from myst_nb import glue

    for k, v in metrics.items():
        if isinstance(v, (int, float, str, bool)):
            glue(k, round(v, 4) if isinstance(v, float) else v, display=False)


@dataclass
class Run:
    """What a chapter knows about its run: profile, sizes, seeds, device and where results go."""

    chapter: str
    profile: str
    sizes: SimpleNamespace
    seed: int
    seeds: list[int]
    device: str
    out_dir: Path
    started: float = field(default_factory=time.time)

    def record(self, **metrics) -> dict:
        return record(self.out_dir, **metrics)

    def finish(self) -> dict:
        """Record the environment and wall time; call in the chapter's last cell."""
        env = environment()
        env.update(chapter=self.chapter, profile=self.profile, seed=self.seed, seeds=self.seeds,
                   device=self.device, seconds=round(time.time() - self.started, 2),
                   sizes=vars(self.sizes),
                   # which parts of mlbook this chapter used: `mlbook run --all` re-executes it when they change
                   mlbook_modules=sorted(m for m in sys.modules if m == "mlbook" or m.startswith("mlbook.")))
        from .cache import atomic_write_text

        atomic_write_text(self.out_dir / "environment.json", json.dumps(_jsonable(env), indent=1))
        return env

    def claims_table(self):
        """The chapter's claims with the recorded numbers (a pandas Styler: full text, no index)."""
        from .scorecard import claims_rows

        import pandas as pd

        metrics = json.loads((self.out_dir / "metrics.json").read_text())
        rows = claims_rows(self.chapter, metrics, env={"seeds": self.seeds})
        return pd.DataFrame(rows).style.hide(axis="index")


def start(chapter: str, profile: str = "cpu", seed: int = 0, seeds: list[int] | None = None,
          device: str = "auto", out_dir: str | Path | None = None, **overrides) -> Run:
    """Set up a chapter run: validate the profile, resolve sizes, seed, choose the device.

    ``overrides`` are sizes set explicitly in the parameters cell (``None`` = take the profile's).
    """
    stem = resolve_chapter(chapter)
    check_profile(profile)
    sz = sizes(stem, profile, **overrides)
    if seeds is None:
        seeds = list(getattr(sz, "seeds", [seed]))
    seed_everything(seed)
    out = Path(out_dir) if out_dir else default_out_dir(stem, profile)
    out.mkdir(parents=True, exist_ok=True)
    # a fresh run replaces the old metrics rather than merging into them
    (out / "metrics.json").unlink(missing_ok=True)
    run = Run(chapter=stem, profile=profile, sizes=sz, seed=seed, seeds=list(seeds),
              device=pick_device(device), out_dir=out)
    return run
