"""Log-likelihoods of answers to prompts, three ways, on the same requests and the same token ids:

    .venv/bin/python bench/bench_recall_scoring.py                       # both offline models, 800 requests
    .venv/bin/python bench/bench_recall_scoring.py --quick               # 128 requests, SmolLM2 only
    .venv/bin/python bench/bench_recall_scoring.py --models google/gemma-3-270m --rounds 3 --json out.json

Requests are chapter 5's kind: a capital-of-country prompt in one of five languages (CLDR names), and as
continuations the gold capital and three distractor capitals — several continuations per prompt, the
case that a KV cache (ours) and lm-evaluation-harness's logits cache are built for.

- ``ours``     ``mlbook.text.choice.score(end_id=None)``: each prompt once, then its candidates from the
               prompt's KV cache (a one-token candidate costs nothing beyond the prompt's last position);
- ``lm_eval``  lm-evaluation-harness 0.4.13, ``HFLM(pretrained=<the loaded model>)`` and ``loglikelihood``
               instances (its defaults: requests sorted by length, the logits cache on);
- ``plain``    every (prompt + answer) sequence as one row of a right-padded batch, one forward pass.

The token ids are lm-eval's own split (``HFLM._encode_pair``), so the three compute the same numbers: the
largest difference to ours must be ≤ 1e-4 nats (asserted).  The table also counts the requests where that split
differs from ``tok(context) + tok(continuation, add_special_tokens=False)`` (expected: none — the continuations
start with a space and the contexts do not end with one).  Before the clock, each method runs once on its first
``--warmup`` requests (first-call allocations, lazy initialisation).  Each method runs in its own subprocess, so that
its peak resident memory (``ru_maxrss``) is its own; the time is the best of ``--rounds`` (a busy machine
only adds time).  The machine's load average is printed with the table, and each method's CPU seconds per
wall second (about ``BENCH_THREADS`` when it had its cores to itself): say "idle" or "contended".
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

TEMPLATES = {"en": "The capital of {} is", "de": "Die Hauptstadt des Landes {} ist", "fr": "La capitale du pays appelé {} est",
             "es": "La capital de {} es", "ru": "Столица страны {} —"}
METHODS = ("ours", "lm_eval", "plain")


def requests(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(context, continuation) pairs: prompts of CLDR facts, four continuations each (gold first)."""
    import random

    from mlbook.corpora.capitals import capitals

    rows = [r for r in capitals(list(TEMPLATES)) if r["source"] == "cldr"]
    by_loc: dict = {}
    for r in rows:
        by_loc.setdefault(r["locale"], []).append(r)
    rng, out = random.Random(seed), []
    while len(out) < n:
        loc = rng.choice(sorted(by_loc))
        r = rng.choice(by_loc[loc])
        others = rng.sample([x["capital_name"] for x in by_loc[loc] if x["country"] != r["country"]], 3)
        for cap in [r["capital_name"], *others]:
            out.append((TEMPLATES[loc].format(r["country_name"]), " " + cap))
    return out[:n]


def child(method: str, model_name: str, n: int, batch_size: int, rounds: int, warmup: int = 8) -> dict:
    import torch

    from mlbook.models.loading import load_causal_lm

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model, tok = load_causal_lm(model_name)
    reqs = requests(n)
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device="cpu")
    pairs = [lm._encode_pair(c, x) for c, x in reqs]  # the token ids all three score
    naive = [(tok(c)["input_ids"], tok(x, add_special_tokens=False)["input_ids"]) for c, x in reqs]
    split_differs = sum((list(a), list(b)) != (c, d) for (a, b), (c, d) in zip(pairs, naive))

    def ours(pairs, reqs):
        from mlbook.text.choice import score

        prompts, index, cands = [], {}, []
        for ctx, cont in pairs:
            key = tuple(ctx)
            if key not in index:
                index[key] = len(prompts)
                prompts.append(list(ctx))
                cands.append([])
            cands[index[key]].append(list(cont))
        got = score(model, prompts, cands, end_id=None, pad_id=tok.pad_token_id or 0, batch_size=batch_size)
        pos, out = {}, []
        for ctx, _ in pairs:
            k = index[tuple(ctx)]
            pos[k] = pos.get(k, -1) + 1
            out.append(got[k][pos[k]])
        return out

    def lm_eval(pairs, reqs):
        inst = [Instance(request_type="loglikelihood", doc={}, arguments=(c, x), idx=i) for i, (c, x) in enumerate(reqs)]
        return [ll for ll, _ in lm.loglikelihood(inst, disable_tqdm=True)]

    def plain(pairs, reqs):
        from mlbook.text.batching import right_pad

        out = []
        for s in range(0, len(pairs), batch_size):
            chunk = pairs[s:s + batch_size]
            ids, mask = right_pad([list(c) + list(x) for c, x in chunk], tok.pad_token_id or 0)
            with torch.inference_mode():
                logp = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
            for r, (c, x) in enumerate(chunk):
                t = torch.arange(len(c), len(c) + len(x))
                out.append(float(logp[r, t - 1, ids[r, t]].sum()))
        return out

    fn = {"ours": ours, "lm_eval": lm_eval, "plain": plain}[method]
    with torch.inference_mode():
        t0 = time.perf_counter()
        fn(pairs[:warmup], reqs[:warmup])  # untimed
        warmup_s = time.perf_counter() - t0
        times, cpu, values = [], [], None
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            values = fn(pairs, reqs)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return {"seconds": min(times), "seconds_all": times, "cpu_seconds_all": cpu, "warmup_seconds": warmup_s, "values": values,
            "n": len(reqs), "prompts": len({tuple(c) for c, _ in pairs}),
            "tokens": sum(len(c) + len(x) for c, x in pairs), "split_differs": split_differs,
            "threads": torch.get_num_threads(), "cpu_per_wall": cpu[times.index(min(times))] / min(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["HuggingFaceTB/SmolLM2-135M-Instruct", "google/gemma-3-270m"])
    p.add_argument("--n-requests", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2, help="timed runs per method; the best counts")
    p.add_argument("--warmup", type=int, default=8, help="requests of the untimed first call")
    p.add_argument("--quick", action="store_true", help="128 requests, the first model only, one round")
    p.add_argument("--json", default=None, help="write the results here too")
    p.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n_requests, args.models, args.rounds = 128, args.models[:1], 1
    if args.child:
        print("RESULT " + json.dumps(child(args.child[0], args.child[1], args.n_requests, args.batch_size, args.rounds,
                                                 args.warmup)))
        return {}

    out = {"load_before": os.getloadavg(), "n_requests": args.n_requests, "batch_size": args.batch_size,
           "rounds": args.rounds, "threads": int(os.environ.get("BENCH_THREADS", "2")), "platform": platform.platform(),
           "models": {}}
    for model in args.models:
        res = {}
        for method in METHODS:
            cmd = [sys.executable, __file__, "--child", method, model, "--n-requests", str(args.n_requests),
                   "--batch-size", str(args.batch_size), "--rounds", str(args.rounds), "--warmup", str(args.warmup)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(f"{method} on {model} failed:\n{proc.stderr[-3000:]}")
            res[method] = json.loads(line[len("RESULT "):])
        ref = res["ours"]["values"]
        for method in METHODS:
            r = res[method]
            r["max_abs_diff_vs_ours"] = max(abs(a - b) for a, b in zip(r["values"], ref))
            r["requests_per_s"] = r["n"] / r["seconds"]
        print(f"\n{model}: {res['ours']['n']} requests, {res['ours']['prompts']} distinct prompts, "
              f"{res['ours']['tokens']} tokens of prompt + answer; lm-eval's split differs from the naive one "
              f"in {res['ours']['split_differs']}")
        print(f"{'method':8s} {'seconds':>8s} {'req/s':>8s} {'vs ours':>8s} {'peak RSS':>9s} {'max |Δ| vs ours':>16s} "
              f"{'cpu/wall':>8s}")
        for method in METHODS:
            r = res[method]
            print(f"{method:8s} {r['seconds']:8.2f} {r['requests_per_s']:8.1f} {r['seconds'] / res['ours']['seconds']:7.2f}× "
                  f"{r['peak_rss_mb']:7.0f} MB {r['max_abs_diff_vs_ours']:16.2e} {r['cpu_per_wall']:8.2f}")
        for method in METHODS:
            assert res[method]["max_abs_diff_vs_ours"] <= 1e-4, f"{method} differs from ours on {model}"
            del res[method]["values"]
        out["models"][model] = res
    out["load_after"] = os.getloadavg()
    print(f"\nload average before {out['load_before'][0]:.2f}, after {out['load_after'][0]:.2f} (1-minute; before "
          f"above ~0.5: contended; the bench itself adds ~{out['threads']}).  cpu/wall near {out['threads']}: the timed "
          "runs had their cores")
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
