"""The book's catalogue: where its root is, which chapters ``_toc.yml`` lists, each chapter's card,
and where the npm packages it reads (data, the book's JavaScript) are installed."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The book's root folder (the one holding ``_toc.yml``)."""
    env = os.environ.get("MLBOOK_ROOT")
    if env:
        return Path(env)
    for p in [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]]:
        if (p / "_toc.yml").exists() and (p / "chapters").is_dir():
            return p
    return Path(__file__).resolve().parents[2]


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
