"""Build the rendered (HTML) book from the executed chapters.

The chapters in ``chapters/`` are committed with their outputs stripped; ``mlbook run``
executes them into ``_build/executed/<profile>/``.  :func:`build` stages a source tree in
``_build/src/<profile>/`` (the config, the table of contents, ``book/``, the executed
notebooks, the generated scorecard page and the vendored JavaScript), then runs
``jupyter-book build`` on it with execution off.  The HTML lands in ``_build/html``.

Staging is incremental: a file is (re)written only when its bytes changed, so Sphinx
re-reads only the pages that changed.  The rendered pages work with no network: MathJax,
require.js and the Jupyter widget manager come from ``node_modules/`` (``npm install``)
and are served from ``_static/offline/``.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from mlbook.core import catalogue, scorecard
from mlbook.core.context import check_profile

from . import subproc

# The staged folder named by `html_static_path` in _config.yml; it holds only the vendored
# JavaScript, and its content lands in _build/html/_static/ (so: _static/offline/...).
STATIC_DIR = "_offline"
# Sphinx on every chapter at cpu takes a few minutes; one that runs for an hour is stuck, not slow.
BUILD_TIMEOUT_S = 3600
VENDOR_PREFIX = "offline"

# Run after require.js and before the widget bundle (see nb_ipywidgets_js in _config.yml).
# The bundle's modules are named defines ("@jupyter-widgets/base", ...); require.js gives
# each the URL baseUrl + name, and the bundle loads its icon fonts relative to that URL.
# With baseUrl = _static/offline/widgets/ the fonts are found there, and a widget module
# outside ipywidgets' own is looked up locally too (the bundle's "CDN" is "./", relative
# to baseUrl): nothing is requested from the web.
#
# The controls typeset their labels with MathJax 2's `MathJax.Hub.Queue`; the book loads
# MathJax 3, which has no `Hub`, so every labelled control would throw.  The shim below
# (installed once the deferred MathJax has run, before the widgets render on `load`)
# forwards such calls to MathJax 3's `typesetPromise`.
WIDGETS_CONFIG_JS = """\
// Written by mlbook.book: keep the Jupyter widget manager on local files.
(function () {
  var script = document.currentScript;
  var base = new URL("widgets/", script ? script.src : document.baseURI).href;
  window.requirejs.config({ baseUrl: base });

  document.addEventListener("DOMContentLoaded", function () {
    var mj = window.MathJax;
    if (!mj || !mj.version || mj.version.charAt(0) === "2" || mj.Hub) { return; }
    mj.Hub = {
      Queue: function (job) {
        var el = job && job[2];
        if (!el) { return; }
        var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
        ready.then(function () { return mj.typesetPromise([el]); })
             .catch(function (err) { console.warn("MathJax typeset of a widget failed", err); });
      }
    };
  });
})();
"""

# MathJax 3: the combined TeX + CommonHTML file and the folders it loads components and
# fonts from (the other combined files, e.g. tex-svg-full.js, are not needed).
_MATHJAX_KEEP = ("tex-chtml.js", "input", "output/chtml", "a11y", "ui", "sre", "adaptors")
# Image files that a chapter's markdown may reference next to its notebook.
_ASSET_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
_WARNING_RE = re.compile(r"\b(WARNING|ERROR|CRITICAL|SEVERE)\b[:\]]")


class BookBuildError(RuntimeError):
    """The book could not be staged or built."""


class MissingNotebooksError(BookBuildError, FileNotFoundError):
    """A chapter listed in ``_toc.yml`` has no executed notebook (run ``mlbook run`` first)."""


# ---------------------------------------------------------------------------------------
# The public entry point


def build(profile: str = "cpu", executed_dir: str | Path | None = None,
          out_dir: str | Path | None = None, root: str | Path | None = None,
          *, strict: bool = False, quiet: bool = False) -> Path:
    """Stage the book of ``profile`` and build its HTML; return the ``html`` folder.

    ``root``: the book's root (``_config.yml``, ``_toc.yml``, ``book/``); default the repo.
    ``executed_dir``: the executed chapters, default ``<root>/_build/executed/<profile>``.
    ``out_dir``: Jupyter Book's ``_build`` folder (it must be named ``_build``), default
    ``<root>/_build``; the HTML goes to ``out_dir/html``, the staged tree to
    ``out_dir/src/<profile>``.  Sphinx warnings are printed; ``strict=True`` raises
    :class:`BookBuildError` if there are any.
    """
    check_profile(profile)
    root = Path(root).resolve() if root else catalogue.repo_root().resolve()
    out_dir = Path(out_dir).resolve() if out_dir else root / "_build"
    if out_dir.name != "_build":
        raise ValueError(f"out_dir must be a folder named _build (Jupyter Book writes into "
                         f"<path-output>/_build/html), got {out_dir}")
    executed_dir = Path(executed_dir) if executed_dir else root / "_build" / "executed" / profile

    staged = stage(profile, executed_dir=executed_dir, root=root,
                   dest=out_dir / "src" / profile)
    log = _jupyter_book(staged, out_dir.parent, quiet=quiet)
    warnings = _warnings(log)
    if warnings:
        print(f"mlbook.book: {len(warnings)} warning(s) in the {profile} book build:",
              *(f"  {w}" for w in warnings), sep="\n", file=sys.stderr)
        if strict:
            raise BookBuildError(f"the book build gave {len(warnings)} warning(s):\n"
                                 + "\n".join(warnings))
    html = out_dir / "html"
    if not (html / "index.html").exists():
        raise BookBuildError(f"jupyter-book finished but {html / 'index.html'} is missing")
    # Sphinx copies html_static_path only when it writes a page; make sure the vendored
    # files in _static/ are the staged ones even when no page was out of date.
    for src in sorted((staged / STATIC_DIR).rglob("*")):
        if src.is_file():
            _sync_file(src, html / "_static" / src.relative_to(staged / STATIC_DIR))
    return html


# ---------------------------------------------------------------------------------------
# Staging


def stage(profile: str, executed_dir: Path, root: Path, dest: Path) -> Path:
    """Fill ``dest`` with the source tree of the book; touch only files whose bytes change."""

    root, dest = Path(root), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    keep: set[Path] = set()

    def put_file(src: Path, rel: str | Path) -> None:
        keep.add(Path(rel))
        _sync_file(src, dest / rel)

    def put_text(text: str, rel: str | Path) -> None:
        keep.add(Path(rel))
        _sync_bytes(text.encode("utf-8"), dest / rel)

    for name in ("_config.yml", "_toc.yml"):
        if not (root / name).exists():
            raise BookBuildError(f"{root / name} is missing")
        put_file(root / name, name)
    # Nothing is staged at _static/: Jupyter Book would then add every .js/.css file of the
    # static paths (MathJax's hundreds of components included) to every page.

    toc_files = catalogue.toc_files(root)
    scorecard = "book/scorecard"

    # book/: front and back matter, copied as it is (the scorecard is generated below)
    book = root / "book"
    if book.is_dir():
        for src in sorted(book.rglob("*")):
            rel = src.relative_to(root)
            if src.is_file() and not _ignored(rel) and rel.with_suffix("").as_posix() != scorecard:
                put_file(src, rel)

    # chapters: the executed notebooks, plus any images next to the sources
    missing = []
    for entry in toc_files:
        if entry.startswith("chapters/"):
            stem = Path(entry).stem
            nb = Path(executed_dir) / f"{stem}.ipynb"
            if nb.exists():
                put_file(nb, f"{Path(entry).with_suffix('').as_posix()}.ipynb")
            else:
                missing.append(stem)
        elif entry == scorecard:
            put_text(_scorecard_text(profile), f"{scorecard}.md")
        elif not any(Path(entry).with_suffix("").as_posix() == p.with_suffix("").as_posix()
                     for p in keep):
            found = [root / f"{entry}{s}" for s in ("", ".md", ".ipynb")
                     if (root / f"{entry}{s}").is_file()]
            if not found:
                raise BookBuildError(f"_toc.yml lists {entry!r}, which is not in {root}")
            put_file(found[0], found[0].relative_to(root))
    if missing:
        runs = "\n".join(f"    mlbook run {stem} --profile {profile}" for stem in missing)
        raise MissingNotebooksError(f"no executed notebook in {executed_dir} for "
                             f"{', '.join(missing)}; run first:\n{runs}\n"
                             f"(or all at once: mlbook run --all --profile {profile})")
    chapters = root / "chapters"
    if chapters.is_dir():
        for src in sorted(chapters.rglob("*")):
            rel = src.relative_to(root)
            if src.is_file() and src.suffix.lower() in _ASSET_SUFFIXES and not _ignored(rel):
                put_file(src, rel)

    # the vendored JavaScript
    vendor = Path(STATIC_DIR) / VENDOR_PREFIX
    for src, rel in _vendor_files():
        put_file(src, vendor / rel)
    put_text(WIDGETS_CONFIG_JS, vendor / "widgets-config.js")

    _prune(dest, keep)
    return dest


def _scorecard_text(profile: str) -> str:
    """The scorecard page, generated from the recorded metrics by ``mlbook.scorecard``."""
    with tempfile.TemporaryDirectory() as tmp:
        return scorecard.write_page(Path(tmp) / "scorecard.md", profile=profile).read_text(encoding="utf-8")


def node_modules() -> Path:
    """The ``node_modules`` folder that holds the book's JavaScript (``npm install``)."""
    try:
        return catalogue.node_modules("mathjax")
    except FileNotFoundError as e:
        raise BookBuildError(f"the book's JavaScript (mathjax, requirejs, @jupyter-widgets/html-manager) is missing: {e}") from None


def _vendor_files() -> list[tuple[Path, Path]]:
    """(source, path under _static/offline/) of every vendored file."""
    nm = node_modules()
    files: list[tuple[Path, Path]] = []
    es5 = nm / "mathjax" / "es5"
    for part in _MATHJAX_KEEP:
        p = es5 / part
        items = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
        files += [(q, Path("mathjax") / q.relative_to(es5)) for q in items]
    files.append((nm / "requirejs" / "require.js", Path("require.js")))
    dist = nm / "@jupyter-widgets" / "html-manager" / "dist"
    embed = dist / "embed-amd.js"
    if not embed.exists():
        raise BookBuildError(f"{embed} is missing; run `npm install` in the repository root")
    files.append((embed, Path("widgets") / "embed-amd.js"))
    # The icon fonts (Font Awesome) the bundle's CSS asks for, next to the module URLs of
    # "@jupyter-widgets/html-manager" and "@jupyter-widgets/html-manager/dist/libembed-amd".
    for font in sorted(dist.glob("*")):
        if font.suffix in {".woff2", ".woff", ".ttf"}:
            for sub in ("@jupyter-widgets", "@jupyter-widgets/html-manager/dist"):
                files.append((font, Path("widgets") / sub / font.name))
    return files


def _ignored(rel: Path) -> bool:
    return any(part in {"__pycache__", ".ipynb_checkpoints", "_build"} or part.startswith(".")
               for part in rel.parts)


def _sync_bytes(data: bytes, dst: Path) -> None:
    if dst.is_file() and dst.stat().st_size == len(data) and dst.read_bytes() == data:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dst)


def _sync_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` unless ``dst`` already has the same bytes.

    A copied file gets a fresh modification time (no ``copy2``): Sphinx re-reads a page
    whose source is newer than its last read, and an older notebook copied in must count.
    """
    src = Path(src)
    if dst.is_file() and dst.stat().st_size == src.stat().st_size and _same_bytes(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _same_bytes(a: Path, b: Path, chunk: int = 1 << 20) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


def _prune(dest: Path, keep: set[Path]) -> None:
    """Remove staged files that are no longer part of the book (and empty folders)."""
    for p in sorted(dest.rglob("*"), key=lambda q: len(q.parts), reverse=True):
        rel = p.relative_to(dest)
        if p.is_file() or p.is_symlink():
            if rel not in keep:
                p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()


# ---------------------------------------------------------------------------------------
# Running Jupyter Book


def _jupyter_book(staged: Path, path_output: Path, quiet: bool = False) -> str:
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book"),
           "build", str(staged), "--path-output", str(path_output), "--builder", "html"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        proc = subproc.run(cmd, BUILD_TIMEOUT_S, env=env, merge_stderr=True)
    except subproc.TimedOut as e:
        raise BookBuildError(f"jupyter-book build did not finish: {e}") from None
    if not quiet:
        tail = [ln for ln in proc.stdout.splitlines() if ln.strip()][-3:]
        print("\n".join(tail))
    if proc.returncode != 0:
        raise BookBuildError(f"jupyter-book build failed (exit {proc.returncode}):\n"
                             + "\n".join(proc.stdout.splitlines()[-60:]))
    return proc.stdout


def _warnings(log: str) -> list[str]:
    """The warning and error lines of a Sphinx log (without the colour codes)."""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
    return [ln.strip() for ln in clean.splitlines() if _WARNING_RE.search(ln)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlbook.book", description=build.__doc__)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--executed-dir", default=None)
    ap.add_argument("--out-dir", default=None, help="Jupyter Book's _build folder")
    ap.add_argument("--strict", action="store_true", help="fail on any Sphinx warning")
    args = ap.parse_args(argv)
    try:
        html = build(args.profile, args.executed_dir, args.out_dir, strict=args.strict)
    except BookBuildError as exc:
        print(f"mlbook.book: {exc}", file=sys.stderr)
        return 1
    print(f"The book is in {html}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
