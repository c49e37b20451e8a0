"""Throughput of GLUScope's statistics pass, side by side on the same model and batches.

    .venv/bin/python bench/bench_gluscope.py                 # SmolLM2, 3 rounds of 4 batches of 8 x 128 tokens
    .venv/bin/python bench/bench_gluscope.py --model gemma3-270m --eager --rounds 3 --json out.json

Methods (each processes the same windows; rounds interleave them so that a busy machine
slows all of them alike):

- ``forward``        the decoder stack alone (what the statistics pass runs), no hooks;
- ``forward_lm``     the whole causal LM, LM head included (for reference);
- ``stats``          ``mlbook.interp.glu.collect``: hooks + the compiled on-the-fly reducer;
- ``cache_reduce``   ``glu.collect_cached``: cache gate/in/post of every layer with
                     ``mlbook.interp.hooks.run_with_cache``, then reduce (same compiled reducer);
- ``stats_eager`` / ``cache_reduce_eager`` (``--eager``): the same with the eager reducer.

Each rate is the best round (noise on a shared machine only adds time; the median is reported
too), per wall-clock second and per CPU second of this process.  The target: ``stats`` at
>= 75 % of ``forward``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--eager", action="store_true", help="also time the eager (uncompiled) reducer")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args(argv)

    import torch

    from mlbook.chapters.ch01_gluscope.corpus import corpus
    from mlbook.interp import glu
    from mlbook.models.layout import decoder
    from mlbook.models.loading import load_causal_lm

    model, tok = load_causal_lm(args.model, device=args.device)
    windows = corpus(tok, args.batches * args.batch_size * args.seq_len * 2, seed=0, seq_len=args.seq_len)
    windows = windows.filter(lambda w: len(w["input_ids"]) == args.seq_len)      # full windows: no padding
    windows = windows.select(range(min(len(windows), args.batches * args.batch_size)))
    n_positions = sum(len(x) for x in windows["input_ids"])
    bs = args.batch_size

    def forward(w, lm_head: bool):
        with torch.inference_mode():
            for _, x, mask, _ in glu.windows_batches(w, bs, 0):
                (model if lm_head else decoder(model))(input_ids=x.to(model.device),
                                                                 attention_mask=mask.to(model.device))

    methods = {
        "forward": lambda w: forward(w, False),
        "forward_lm": lambda w: forward(w, True),
        "stats": lambda w: glu.collect(model, w, bs, compile=True, progress=False),
        "cache_reduce": lambda w: glu.collect_cached(model, w, bs, compile=True),
    }
    if args.eager:
        methods["stats_eager"] = lambda w: glu.collect(model, w, bs, compile=False, progress=False)
        methods["cache_reduce_eager"] = lambda w: glu.collect_cached(model, w, bs, compile=False)

    t0 = time.perf_counter()
    glu.collect(model, windows.select(range(1)), 1, compile=True, progress=False)  # compile outside the clock
    compile_s = time.perf_counter() - t0
    for m in methods:  # one untimed batch each: first-call allocations and lazy initialisation
        methods[m](windows.select(range(min(bs, 2))))
    wall = {m: [] for m in methods}
    cpu = {m: [] for m in methods}
    names = list(methods)
    for r in range(args.rounds):
        for m in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            methods[m](windows)
            wall[m].append(time.perf_counter() - t)
            cpu[m].append(time.process_time() - c)
            print(f"round {r}: {m:20s} {wall[m][-1]:7.2f} s wall {cpu[m][-1]:7.2f} s cpu", flush=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    tps = {m: n_positions / min(v) for m, v in wall.items()}       # every position runs through the model
    tps_median = {m: n_positions / med(v) for m, v in wall.items()}
    tpc = {m: n_positions / min(v) for m, v in cpu.items()}
    out = {"model": args.model, "device": args.device, "threads": torch.get_num_threads(),
           "platform": platform.platform(), "batch": [bs, args.seq_len], "batches": len(windows) // bs,
           "tokens_per_pass": n_positions, "rounds": args.rounds, "compile_seconds": compile_s,
           "tokens_per_s": tps, "tokens_per_s_median": tps_median, "tokens_per_cpu_s": tpc,
           "stats_over_forward": tps["stats"] / tps["forward"],
           "stats_over_forward_cpu": tpc["stats"] / tpc["forward"],
           "stats_over_cache_reduce": tps["stats"] / tps["cache_reduce"],
           "stats_over_cache_reduce_cpu": tpc["stats"] / tpc["cache_reduce"],
           "wall_seconds": wall, "cpu_seconds": cpu}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
