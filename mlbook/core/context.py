"""A chapter's run: profiles, sizes, seeding, device choice and the record of its numbers.

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

from . import evidence
from .cache import atomic_write_text
from .catalogue import chapter_card, repo_root, resolve_chapter
from .scorecard import claims_rows
from .summary import reproducibility

PROFILES = ("smoke", "cpu", "gpu")

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
    lock = repo_root() / "requirements.lock"
    if lock.exists():  # which pinned environment this is (make setup installs requirements.lock)
        import hashlib

        env["lock_sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest()
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
        atomic_write_text(self.out_dir / "environment.json", json.dumps(_jsonable(env), indent=1))
        return env

    def verdicts(self) -> dict:
        """Each claim's verdict from the units the chapter recorded (``mlbook.core.evidence``): records
        ``<claim>_verdict`` and, per test, ``<statistic>_lo/_hi/_mde/_n``; returns them."""
        metrics = json.loads((self.out_dir / "metrics.json").read_text())
        out = {}
        for cid, r in evidence.evaluate_claims(chapter_card(self.chapter)["claims"], metrics, seed=self.seed).items():
            out.update(evidence.flat(cid, r))
        self.record(**out)
        return out

    def claims_table(self):
        """The replication check: each claim, the paper's number, ours with its 95 % interval, the verdict, the
        verdict the card predicted for this profile and the minimal detectable effect (a pandas Styler)."""
        import pandas as pd

        self.verdicts()
        metrics = json.loads((self.out_dir / "metrics.json").read_text())
        rows = claims_rows(self.chapter, metrics, self.profile, env={"seeds": self.seeds})
        return pd.DataFrame(rows).style.hide(axis="index")

    def summary(self):
        """This run's reproducibility summary (``mlbook.core.summary``), as Markdown."""
        from IPython.display import Markdown

        metrics = json.loads((self.out_dir / "metrics.json").read_text())
        env = {"seeds": self.seeds, "device": self.device, "sizes": vars(self.sizes)}
        return Markdown(reproducibility(self.chapter, self.profile, metrics, env, heading_level=3))


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
