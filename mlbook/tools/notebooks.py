"""Executing a chapter: its ``parameters`` cell, papermill on a kernel that talks over unix sockets,
and the digest of what a result depends on (so ``mlbook run --all`` re-executes only what changed).

    run_chapter("01", "smoke", {"seed": 1}, out="/tmp/ch01")
"""
from __future__ import annotations

import ast
import functools
import json
import time
from pathlib import Path

from mlbook.core.catalogue import chapters_dir, repo_root, resolve_chapter
from mlbook.core.context import check_profile
from mlbook.core.provenance import inputs_digest, write_inputs


def notebook_parameters(nb_path: Path) -> dict:
    """Names and default values of the notebook's ``parameters`` cell (plain literals)."""
    nb = json.loads(Path(nb_path).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"])
            out = {}
            for node in ast.parse(src).body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            try:
                                out[t.id] = ast.literal_eval(node.value)
                            except ValueError:
                                out[t.id] = ast.unparse(node.value)
            return out
    raise ValueError(f"{nb_path} has no code cell tagged 'parameters'")


def parse_value(text: str):
    """``-p key value``: the value is read as YAML (``3`` → int, ``[0,1]`` → list, ``null`` → None)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def validate_parameters(stem: str, params: dict) -> None:
    """Papermill would silently accept a misspelt parameter; we refuse it, with the valid names."""
    known = notebook_parameters(chapters_dir() / f"{stem}.ipynb")
    bad = [k for k in params if k not in known]
    if bad:
        import difflib

        hints = [f"{b!r} (did you mean {difflib.get_close_matches(b, known, 1)[0]!r}?)"
                 if difflib.get_close_matches(b, known, 1) else repr(b) for b in bad]
        raise ValueError(f"unknown parameter {', '.join(hints)} for chapter {stem}; "
                         f"its parameters are: {', '.join(known)}")


@functools.cache
def _ipc_kernel_manager():
    """A kernel manager whose kernel talks over unix sockets instead of TCP ports.

    Several chapters executing at once (pytest-xdist, two users) otherwise pick their five
    ports each from the free ones at the same moment and can collide, and a client whose
    messages go to another kernel waits for ever.  The sockets live in one private temporary
    folder per process, removed when the process exits.
    """
    import atexit
    import shutil
    import tempfile

    from jupyter_client.manager import AsyncKernelManager

    socket_dir = tempfile.mkdtemp(prefix="mlbook-kernels-")
    atexit.register(shutil.rmtree, socket_dir, True)

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.transport = "ipc"
            self.ip = tempfile.mktemp(dir=socket_dir, prefix="k")  # a path prefix, not a file

    return IPCKernelManager


def _up_to_date(stamp: Path, stem: str, profile: str, params: dict) -> bool:
    try:
        saved = json.loads(stamp.read_text())
        return saved["digest"] == inputs_digest(stem, profile, params, saved["modules"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


class CellTimeout(RuntimeError):
    """A cell gave no reply within ``run_chapter``'s ``cell_timeout``: a stalled kernel or a cell far
    slower than it should be (the kernel is shut down; the partial notebook is kept)."""


def run_chapter(chapter: str, profile: str = "cpu", params: dict | None = None, out: str | Path | None = None,
                force: bool = True, progress: bool = True, cell_timeout: int | None = None) -> Path:
    """Execute one chapter with papermill; returns the folder with the executed notebook and metrics.json.

    Without ``out`` the executed notebook goes to ``_build/executed/<profile>/`` and the metrics to
    ``results/<profile>/<chapter>/`` (where the book build and the scorecard find them).
    ``cell_timeout`` (whole seconds, default none) bounds each cell: past it, :class:`CellTimeout`.
    """
    import papermill as pm

    stem = resolve_chapter(chapter)
    check_profile(profile)
    if cell_timeout is not None and (not isinstance(cell_timeout, int) or cell_timeout < 1):
        raise ValueError(f"cell_timeout is whole seconds, at least 1 (or None for no bound), not {cell_timeout!r}")
    params = dict(params or {})
    validate_parameters(stem, params)
    root = repo_root()
    if out is not None:
        out = Path(out).resolve()
        nb_out, metrics_dir = out / f"{stem}.ipynb", out
    else:
        nb_out = root / "_build" / "executed" / profile / f"{stem}.ipynb"
        metrics_dir = root / "results" / profile / stem
    params.setdefault("out_dir", str(metrics_dir))
    params["profile"] = profile
    stamp = nb_out.with_suffix(".stamp")
    if not force and nb_out.exists() and (metrics_dir / "metrics.json").exists() \
            and _up_to_date(stamp, stem, profile, params):
        print(f"{stem}: up to date ({profile}), not re-executed")
        return metrics_dir
    nb_out.parent.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    t0 = time.time()
    print(f"{stem}: executing at profile {profile!r} …", flush=True)
    tmp_nb = nb_out.with_name(f".{nb_out.stem}.partial.ipynb")
    try:
        pm.execute_notebook(str(chapters_dir() / f"{stem}.ipynb"), str(tmp_nb), parameters=params,
                            cwd=str(chapters_dir()), kernel_name="python3", progress_bar=progress,
                            request_save_on_cell_execute=False, kernel_manager_class=_ipc_kernel_manager(),
                            execution_timeout=cell_timeout)
    except pm.PapermillExecutionError as e:
        raise SystemExit(f"{stem} failed in cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                         f"the executed notebook is at {tmp_nb}") from None
    except TimeoutError as e:  # nbclient's CellTimeoutError
        raise CellTimeout(f"{stem} ({profile}): a cell gave no reply within {cell_timeout} s, "
                          f"{time.time() - t0:.0f} s into the run") from e
    _hide_injected_parameters(tmp_nb)
    tmp_nb.replace(nb_out)
    env_file = metrics_dir / "environment.json"
    modules = json.loads(env_file.read_text()).get("mlbook_modules") if env_file.exists() else None
    stamp.write_text(json.dumps({"modules": modules, "digest": inputs_digest(stem, profile, params, modules)}))
    write_inputs(metrics_dir, stem, profile, params, modules)   # what produced this result, next to it
    print(f"{stem}: done in {time.time() - t0:.0f} s → {nb_out}; metrics in {metrics_dir}")
    return metrics_dir


def _hide_injected_parameters(path: Path) -> None:
    """Fold papermill's injected-parameters cell in the rendered book (it shows local paths)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        tags = c.metadata.get("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            c.metadata["tags"] = [*tags, "hide-cell"]
    nbformat.write(nb, path)
