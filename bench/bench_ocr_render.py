"""Rendering throughput of the GlotOCR pipeline (PLAIN profile), side by side on the same lines and fonts.

    .venv/bin/python bench/bench_ocr_render.py                       # 12 scripts x 8 lines, 3 rounds
    .venv/bin/python bench/bench_ocr_render.py --lines 20 --rounds 5 --json out.json

Methods (each renders the same lines in the same fonts; rounds interleave them so that a busy machine
slows all of them alike):

- ``cached``      mlbook.ocr (typeset + render): HarfBuzz layout + drawing from the glyph cache (warm: every glyph was
                  rasterised once before the clock starts) — what the benchmark build uses;
- ``uncached``    the same with ``glyph_cache=False``: FreeType rasterises every glyph of every image;
- ``layout_only`` shaping and wrapping alone (no pixels), to see where the time goes;
- ``old_document`` the OLD_DOCUMENT profile (cached glyphs), for scale;
- ``pil_raqm``    the peer: PIL's own text drawing (ImageDraw.text with the raqm layout engine, which
                  shapes with HarfBuzz and orders with FriBiDi) of the same wrapped lines in the same
                  fonts, plus the same ±1° rotation. PIL does no GlotOCR wrapping, so it draws the
                  lines our layout produced.

Each rate is the best round in images per wall-clock second (noise on a shared machine only adds
time; the median is reported too) and per CPU second of this process.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

SCRIPTS = ["Latn", "Cyrl", "Grek", "Arab", "Hebr", "Deva", "Beng", "Taml", "Thai", "Hans", "Ethi", "Geor"]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scripts", nargs="*", default=SCRIPTS)
    p.add_argument("--lines", type=int, default=8, help="lines per script")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args(argv)

    import numpy as np
    from PIL import Image, ImageFont, features

    from mlbook.chapters.ch10_glotocr import benchmark as ocr_bench
    from mlbook.ocr import fonts as ocr
    from mlbook.ocr import render, typeset

    jobs = []  # (text, font) of every image
    for s in args.scripts:
        font = ocr_bench.script_font(s)
        if font is None:
            print(f"skip {s}: no font")
            continue
        for _, line in ocr_bench.seed_lines(s, args.lines, args.seed):
            jobs.append((ocr.clean_ground_truth(line, font), font))
    layouts = [typeset.layout(t, f) for t, f in jobs]
    n = len(jobs)

    raqm = features.check("raqm")
    pil_fonts = {}

    def pil_draw(lay, seed):
        path, idx = ocr.font_file(lay.font)
        key = (path, idx, lay.size)
        if key not in pil_fonts:
            pil_fonts[key] = ImageFont.truetype(path, lay.size, index=idx,
                                                layout_engine=ImageFont.Layout.RAQM if raqm else ImageFont.Layout.BASIC)
        img = typeset.draw_with_pil(lay, pil_fonts[key])
        angle = float(np.random.default_rng(seed).uniform(-1, 1))
        return img.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=255)

    methods = {
        "cached": lambda: [render.draw(typeset.layout(t, f), render.PLAIN, i) for i, (t, f) in enumerate(jobs)],
        "uncached": lambda: [render.draw(typeset.layout(t, f), render.PLAIN, i, glyph_cache=False)
                             for i, (t, f) in enumerate(jobs)],
        "layout_only": lambda: [typeset.layout(t, f) for t, f in jobs],
        "old_document": lambda: [render.draw(lay, render.OLD_DOCUMENT, i) for i, lay in enumerate(layouts)],
        "pil_raqm": lambda: [pil_draw(lay, i) for i, lay in enumerate(layouts)],
    }
    methods["cached"]()  # warm the glyph cache, the font objects and PIL's fonts outside the clock
    methods["pil_raqm"]()
    wall = {m: [] for m in methods}
    cpu = {m: [] for m in methods}
    names = list(methods)
    for r in range(args.rounds):
        for m in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            methods[m]()
            wall[m].append(time.perf_counter() - t)
            cpu[m].append(time.process_time() - c)
            print(f"round {r}: {m:13s} {wall[m][-1]:7.3f} s wall {cpu[m][-1]:7.3f} s cpu", flush=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    ips = {m: n / min(v) for m, v in wall.items()}
    out = {"images": n, "scripts": args.scripts, "lines_per_script": args.lines, "rounds": args.rounds,
           "platform": platform.platform(), "pil_layout_engine": "raqm" if raqm else "basic",
           "images_per_s": ips, "images_per_s_median": {m: n / med(v) for m, v in wall.items()},
           "images_per_cpu_s": {m: n / min(v) for m, v in cpu.items()},
           "glyph_cache_speedup": ips["cached"] / ips["uncached"],
           "cached_over_pil_raqm": ips["cached"] / ips["pil_raqm"],
           "wall_seconds": wall, "cpu_seconds": cpu}
    print(json.dumps({k: v for k, v in out.items() if k not in ("wall_seconds", "cpu_seconds")}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
