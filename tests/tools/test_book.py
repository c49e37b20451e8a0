"""The rendered book: staging, and the HTML checked in headless Chromium with no network.

The browser tests serve the built HTML on 127.0.0.1 and load pages in Chromium with every
other host name unresolvable, then check the DOM after the scripts ran: MathJax typeset the
math, the figure is there, the saved widget state rendered as live controls, every
script/link/img/iframe points at the local server, and every request the page made was
answered (no missing font, no missing MathJax component).
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlbook.tools import book, subproc

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "widget_math_plot.ipynb"
SCREENSHOTS = REPO / "_build" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--no-first-run", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--virtual-time-budget=8000",
    # nothing but the local server can be reached, whatever a page asks for
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    # the page's console messages go to stderr
    "--enable-logging=stderr", "--v=0",
]


# ---------------------------------------------------------------------------------------
# helpers: a local server, Chromium, and the checks


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if exe := shutil.which(name):
            return exe
    msg = "no Chromium found; install it with: apt-get install -y chromium"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@contextmanager
def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (a free port); yield (base URL, request log)."""
    log: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            log.append((self.path, int(getattr(code, "value", code))))

        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Page:
    url: str
    dom: str
    console: str
    requests: list[tuple[str, int]] = field(default_factory=list)


def load(url: str, profile_dir: Path, log: list, screenshot: Path | None = None) -> Page:
    """The DOM of ``url`` after its scripts ran (and optionally a screenshot of it)."""
    exe = chromium()
    start = len(log)
    common = [exe, *CHROME_FLAGS, f"--user-data-dir={profile_dir}"]
    # subproc.run, not subprocess.run: Chromium's helper processes would keep a pipe open past the time-out
    proc = subproc.run([*common, "--dump-dom", url], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = subproc.run([*common, "--window-size=1280,1600", f"--screenshot={screenshot}", url],
                           timeout=120)
        assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    time.sleep(0.1)  # let the server thread log the last request
    return Page(url, proc.stdout, proc.stderr, log[start:])


class _Refs(HTMLParser):
    """Every URL a page loads by itself: src/href/srcset/data/poster of loading elements."""
    TAGS = {"script", "link", "img", "iframe", "source", "video", "audio", "embed", "object",
            "track", "input"}
    ATTRS = {"src", "href", "srcset", "data", "poster"}

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.TAGS:
            return
        for name, value in attrs:
            if name in self.ATTRS and value:
                urls = [u.strip().split()[0] for u in value.split(",")] if name == "srcset" else [value]
                self.refs += [(tag, u) for u in urls if u]


def remote_refs(dom: str) -> list[tuple[str, str]]:
    parser = _Refs()
    parser.feed(dom)
    bad = []
    for tag, url in parser.refs:
        if url.startswith(("data:", "blob:", "#", "about:")):
            continue
        parts = urlsplit(url)
        if (parts.scheme or parts.netloc) and parts.hostname not in LOCAL_HOSTS:
            bad.append((tag, url))
    return bad


def check_offline(page: Page) -> None:
    """Nothing on the page points off the machine, and every request it made succeeded."""
    assert "<html" in page.dom and "</html>" in page.dom, f"no DOM for {page.url}"
    assert not remote_refs(page.dom), f"{page.url} loads from other hosts: {remote_refs(page.dom)}"
    failed = [(p, c) for p, c in page.requests if c >= 400 and not p.startswith("/favicon")]
    assert not failed, f"{page.url}: requests that failed: {failed}"
    for sign in ("Falling back to", "ERR_NAME_NOT_RESOLVED", "Requirejs is needed",
                 "Could not load module"):
        assert sign not in page.console, f"{page.url}: console says {sign!r}:\n{page.console[-3000:]}"


def check_math(page: Page) -> None:
    assert page.dom.count("<mjx-container") >= 1, f"{page.url}: MathJax typeset nothing"
    assert 'display="true"' in page.dom, f"{page.url}: no display math typeset"
    assert "<mjx-merror" not in page.dom, f"{page.url}: MathJax reported a TeX error"


def check_figure(page: Page) -> None:
    imgs = [u for tag, u in _all_refs(page.dom) if tag == "img" and "_images/" in u]
    assert imgs, f"{page.url}: no figure (<img> from _images/)"
    served = {p.split("?")[0].rsplit("/", 1)[-1] for p, c in page.requests if c == 200}
    assert any(u.rsplit("/", 1)[-1] in served for u in imgs), f"{page.url}: figure not served"


def check_widgets(page: Page) -> None:
    dom = page.dom
    assert "jupyter-widgets" in dom and "widget-subarea" in dom, \
        f"{page.url}: the widget manager rendered no widget"
    assert "widget-slider" in dom, f"{page.url}: no slider widget rendered"
    assert "widget-state+json" in dom, f"{page.url}: no saved widget state on the page"


def _all_refs(dom: str) -> list[tuple[str, str]]:
    parser = _Refs()
    parser.feed(dom)
    return parser.refs


def execute(nb: Path, out: Path, cwd: Path) -> Path:
    import papermill as pm

    from mlbook.tools.notebooks import _ipc_kernel_manager

    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(nb), str(out), kernel_name="python3", progress_bar=False,
                        cwd=str(cwd), request_save_on_cell_execute=False,
                        kernel_manager_class=_ipc_kernel_manager())
    return out


# ---------------------------------------------------------------------------------------
# staging (no browser)


def _mini_root(tmp: Path, chapters: list[str], scorecard: bool = True) -> Path:
    root = tmp / "root"
    (root / "book").mkdir(parents=True)
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    for name in ("intro.md", "references.bib"):
        shutil.copy(REPO / "book" / name, root / "book" / name)
    entries = "\n".join(f"      - file: chapters/{c}" for c in chapters)
    back = "\n  - caption: Back matter\n    chapters:\n      - file: book/scorecard" if scorecard else ""
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nparts:\n"
                                   f"  - caption: Fixture\n    chapters:\n{entries}{back}\n")
    return root


def test_stage_names_the_missing_run(tmp_path):


    root = _mini_root(tmp_path, ["widget_math_plot"])
    with pytest.raises(book.MissingNotebooksError) as err:
        book.stage("smoke", executed_dir=tmp_path / "nothing", root=root, dest=tmp_path / "src")
    assert "mlbook run widget_math_plot --profile smoke" in str(err.value)


def test_stage_is_incremental(tmp_path, monkeypatch):


    monkeypatch.setattr(book, "_scorecard_text", lambda profile: "# Scorecard\n\nnothing yet\n")
    root = _mini_root(tmp_path, ["widget_math_plot"])
    executed = tmp_path / "executed"
    executed.mkdir()
    shutil.copy(FIXTURE, executed / "widget_math_plot.ipynb")
    (tmp_path / "src" / "stale.md").parent.mkdir(parents=True)
    (tmp_path / "src" / "stale.md").write_text("left over")
    dest = book.stage("cpu", executed_dir=executed, root=root, dest=tmp_path / "src")

    nb = dest / "chapters" / "widget_math_plot.ipynb"
    for p in (nb, dest / "book" / "intro.md", dest / "book" / "scorecard.md", dest / "_toc.yml",
              dest / book.STATIC_DIR / "offline" / "mathjax" / "tex-chtml.js",
              dest / book.STATIC_DIR / "offline" / "widgets" / "embed-amd.js",
              dest / book.STATIC_DIR / "offline" / "require.js"):
        assert p.is_file(), p
    assert not (dest / "stale.md").exists()
    assert not (dest / "_static").exists()
    mtimes = {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()}

    time.sleep(0.02)
    book.stage("cpu", executed_dir=executed, root=root, dest=dest)
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*") if p.is_file()} == mtimes

    (root / "book" / "intro.md").write_text((root / "book" / "intro.md").read_text() + "\nMore.\n")
    book.stage("cpu", executed_dir=executed, root=root, dest=dest)
    changed = {p for p in mtimes if p.stat().st_mtime_ns != mtimes[p]}
    assert changed == {dest / "book" / "intro.md"}


# ---------------------------------------------------------------------------------------
# the browser tests


@pytest.mark.browser
def test_fixture_book_renders_offline(tmp_path, monkeypatch):
    """A mini book (the real intro and config + a fixture notebook) renders with no network."""


    chromium()
    monkeypatch.setattr(book, "_scorecard_text", lambda profile: "# Scorecard\n\nA fixture page.\n")
    t0 = time.time()
    root = _mini_root(tmp_path, ["widget_math_plot"])
    executed = tmp_path / "executed"
    nb = execute(FIXTURE, executed / "widget_math_plot.ipynb", cwd=tmp_path)
    import nbformat

    state = nbformat.read(nb, as_version=4).metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert state["state"], "papermill saved no widget state"

    html = book.build("cpu", executed_dir=executed, out_dir=tmp_path / "_build", root=root,
                      strict=True, quiet=True)
    assert html == tmp_path / "_build" / "html"
    t_build = time.time() - t0

    with serve(html) as (base, log):
        chapter = load(f"{base}/chapters/widget_math_plot.html", tmp_path / "chrome", log,
                       screenshot=SCREENSHOTS / "fixture_widget_math_plot.png")
        intro = load(f"{base}/book/intro.html", tmp_path / "chrome", log)

    check_offline(chapter)
    check_math(chapter)
    check_figure(chapter)
    check_widgets(chapter)
    assert "widget-dropdown" in chapter.dom and "widget-html" in chapter.dom
    assert "captured output: layer 3, site mlp" in chapter.dom, "the Output widget is empty"
    assert "Cannot read properties of undefined" not in chapter.console, chapter.console[-3000:]
    served = [p for p, c in chapter.requests if c == 200]
    assert any("/_static/offline/widgets/embed-amd.js" in p for p in served)
    assert any("/_static/offline/mathjax/tex-chtml.js" in p for p in served)

    check_offline(intro)
    assert "Shammie" in intro.dom and "replication book" in intro.dom
    assert "2602.23826" in intro.dom, "the bibliography did not render"
    assert "widget-state+json" not in intro.dom  # no widget machinery on pages without widgets

    assert (SCREENSHOTS / "fixture_widget_math_plot.png").stat().st_size > 20_000
    print(f"build {t_build:.1f} s, total {time.time() - t0:.1f} s")


@pytest.mark.browser
def test_real_book_smoke(tmp_path, smoke_run):
    """The real book at the smoke profile: intro and chapter 0 render with no network."""
    import shutil

    from mlbook.core.catalogue import list_chapters


    chromium()
    executed = tmp_path / "executed"
    executed.mkdir()
    for stem in list_chapters():  # executed once per session, shared with tests/test_chapters.py
        shutil.copy(smoke_run(stem) / f"{stem}.ipynb", executed / f"{stem}.ipynb")

    # the book goes to a temporary _build, so that it does not replace `make book`'s
    html = book.build("smoke", executed_dir=executed, out_dir=tmp_path / "_build", quiet=True)

    with serve(html) as (base, log):
        intro = load(f"{base}/book/intro.html", tmp_path / "chrome", log)
        ch0 = load(f"{base}/chapters/00_using_this_book.html", tmp_path / "chrome", log,
                   screenshot=SCREENSHOTS / "smoke_00_using_this_book.png")

    check_offline(intro)
    assert "replication book" in intro.dom
    check_offline(ch0)
    check_math(ch0)
    check_figure(ch0)
    check_widgets(ch0)
