"""The ``mlbook`` command line: run chapters (papermill), the scorecard, the doctor, the book.

    mlbook run 01 --profile smoke -p seed 1 --out /tmp/ch01
    mlbook run --all --profile cpu
    mlbook scorecard
    mlbook doctor
"""
from __future__ import annotations

import argparse
import sys

from mlbook.core import scorecard
from mlbook.core.catalogue import list_chapters
from mlbook.core.context import PROFILES, check_profile

from . import book
from .doctor import doctor
from .notebooks import parse_value, run_chapter


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mlbook", description="Run and score the Shammie book's chapters.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute chapters with papermill")
    r.add_argument("chapter", nargs="?", help="notebook stem (01_gluscope) or number (01)")
    r.add_argument("--all", action="store_true", help="every chapter of _toc.yml (skips those up to date)")
    r.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)} (default cpu)")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    r.add_argument("--out", help="folder for the executed notebook and metrics.json")
    r.add_argument("--force", action="store_true", help="with --all: re-execute even if up to date")
    s = sub.add_parser("scorecard", help="print the scorecard (or write the page)")
    s.add_argument("--write", help="write the MyST page to this path")
    sub.add_parser("doctor", help="what is installed, cached and missing")
    b = sub.add_parser("book", help="build the HTML book from executed chapters")
    b.add_argument("--profile", default="cpu")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "run":
            check_profile(args.profile)
            params = {k: parse_value(v) for k, v in args.parameter}
            if args.all == bool(args.chapter):
                ap.error("give a chapter or --all (not both)")
            if args.all:
                for stem in list_chapters():
                    run_chapter(stem, args.profile, params, None, force=args.force)
            else:
                run_chapter(args.chapter, args.profile, params, args.out, force=True)
        elif args.cmd == "scorecard":
            if args.write:
                print(f"wrote {scorecard.write_page(args.write)}")
            else:
                print(scorecard.markdown())
        elif args.cmd == "doctor":
            return doctor()
        elif args.cmd == "book":
            html = book.build(profile=check_profile(args.profile))
            print(f"the book is at {html}/index.html")
    except (ValueError, FileNotFoundError) as e:
        print(f"mlbook: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # e.g. mlbook.book.BookBuildError: Sphinx reported errors
        print(f"mlbook: the book build failed: {e}", file=sys.stderr)
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main())
