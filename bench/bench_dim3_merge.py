"""Merging three SmolLM2-sized checkpoints from disk: mlbook's streamed merge vs mergekit, side by side.

    .venv/bin/pip install -e '.[bench]'            # mergekit (once)
    .venv/bin/python bench/bench_dim3_merge.py      # B, V's LM and M of chapter 8 (smoke-sized training, cached)
    .venv/bin/python bench/bench_dim3_merge.py --v DIR --m DIR --rounds 3 --json out.json

The three checkpoints are chapter 8's: B (SmolLM2-135M-Instruct), the language model of V (the LLaVA model,
saved as a plain causal LM so that mergekit can read it) and M. Every row runs in a fresh process and reads
the three safetensors folders and writes one:

- ``mergekit_ties``   ``mergekit-yaml`` with ``merge_method: ties`` (density 0.5, weight 1, float32, CPU);
- ``mlbook_ties``     ``mlbook.merging.folders.merge_folders(B, [V_lm, M], out, "ties", density=0.5)``, the same merge;
- ``mlbook_dim3``     the same call with DiM3;
- ``mlbook_dim3_vlm`` DiM3 into a copy of the whole LLaVA model V (``into=0``: vision tower copied) — the
                      chapter's artefact.

Two more rows set the scale:

- ``interpreter``     a process that only imports torch, numpy and ``mlbook.merging.folders``: the baseline
                      that every row's peak memory is measured above;
- ``io_floor``        the streamed merge's own reading and writing and nothing else: every tensor of B, V's LM
                      and M read with :mod:`mlbook.merging.tensorfile` into the merge's reused buffers
                      (``tensorfile.Buffers``), B's written out (no arithmetic).

Reported per row: wall time of the process and, for mlbook's rows, the seconds of the merge itself inside it
(best of ``--rounds``); peak resident memory (``ru_maxrss``) and that peak above the interpreter's, also as a
multiple of one model's size; two floors for the bytes the merge reads and writes — ``memcpy_floor`` (the bytes
over this machine's copy bandwidth, a large numpy copy: no file job reaches it) and ``io_floor`` (the measured
row above) — and the merge seconds over each. The TIES outputs of both tools are compared tensor by tensor.
Where they differ (2026-12: chapter 8's cpu V and M, 246 of 134.5 M entries, at most 0.006; the default
smoke-sized parents, whose few Adam steps give many entries the same |τ|, 583,052, at most 0.0004), each entry
is one of two documented choices, and ``why_they_differ`` counts which (cpu pair: 200 and 46; smoke-sized pair:
430,821 and 152,231; none unexplained in either): a tie at the top-k boundary (several entries share the k-th largest |τ|: mlbook
keeps the earlier ones, as a stable sort does; mergekit's ``argsort`` is not stable), or τ_V = −τ_M exactly
(the sum is 0: TIES's sign(0) = 0 elects nothing, mergekit's "sum ≥ 0" elects +).

Chapter 8's targets (issue 15): peak above the interpreter ≤ 1.5 × one model; mlbook's TIES ≥ 5 × faster than
mergekit's (wall against wall: both pay for starting Python and importing torch); DiM3 within 10 × of the
read-and-write floor.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm.auto import tqdm

MLBOOK_MERGE = """
import sys, time
from mlbook.merging import folders as merging
base, models_, out, method, into = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4], sys.argv[5]
kw = {"density": 0.5} if method == "ties" else {}
t0 = time.perf_counter()
merging.merge_folders(base, models_, out, method, into=None if into == "none" else int(into), **kw)
print("MERGE_SECONDS", time.perf_counter() - t0)
"""

# the floor of a streamed merge: its reads and its write, tensor by tensor, with the merge's own reader and writer
IO_FLOOR = """
import sys, time
from pathlib import Path
from mlbook.merging import folders, tensorfile
base, models_, out = sys.argv[1], sys.argv[2].split(","), Path(sys.argv[3])
t0 = time.perf_counter()
bw = folders.weight_files(base)
mws = [folders.weight_files(d) for d in models_]
own = [{folders.lm_name(n, set(bw)): n for n in mw} for mw in mws]
out.mkdir(parents=True, exist_ok=True)
readers = {}
def reader(where, name):  # one open reader per file, as merge_folders keeps them
    f = where[name]
    if f not in readers:
        readers[f] = tensorfile.Reader(f)
    return readers[f]
specs = [(n, *reader(bw, n).spec(n)) for n in bw]
buffers = tensorfile.Buffers.for_specs(specs)  # the merge's reused read memory
with tensorfile.Writer(out / "model.safetensors", specs) as w:
    for n in bw:
        ins = [reader(bw, n).get(n, buffers)]
        for mw, o in zip(mws, own):
            if n in o:
                ins.append(reader(mw, o[n]).get(o[n], buffers))
        w.write(n, ins[0])
        buffers.give(*ins)
for r in readers.values():
    r.close()
print("MERGE_SECONDS", time.perf_counter() - t0)
"""

INTERPRETER = "import torch, numpy, mlbook.merging.folders"

MERGEKIT_YAML = """merge_method: ties
base_model: {base}
models:
  - model: {v}
    parameters: {{density: 0.5, weight: 1.0}}
  - model: {m}
    parameters: {{density: 0.5, weight: 1.0}}
parameters: {{normalize: true}}
dtype: float32
"""


def bandwidth_gbs(n_bytes: int = 1 << 30, rounds: int = 3) -> float:
    """Copy bandwidth (read + write bytes per second) of a large numpy array, best of ``rounds``."""
    import numpy as np

    a = np.ones(n_bytes // 8)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * n_bytes / best / 1e9


# A child forked from this (large) process would count our pages in its peak RSS until it execs; so each job
# runs under a small launcher, whose own child starts from a few MB, and that child's peak is read.
LAUNCHER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(r.returncode)")


def timed(cmd: list[str], env=None) -> tuple[float, float, float | None]:
    """(wall seconds, peak RSS in MB, the seconds the child printed as ``MERGE_SECONDS`` or None)."""
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a chatty child cannot fill it and block
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], env=env, stdout=log, stderr=log, text=True)
        wall = time.perf_counter() - t0
        log.seek(0)
        err = log.read()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{err[-2000:]}")
    peak_kb = [line.split()[1] for line in err.splitlines() if line.startswith("PEAK_RSS_KB")][-1]
    inner = [float(line.split()[1]) for line in err.splitlines() if line.startswith("MERGE_SECONDS")]
    return wall, int(peak_kb) / 1024, (inner[-1] if inner else None)  # ru_maxrss is in kB on Linux


def folder_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in Path(d).glob("*.safetensors"))


def lm_only(v_dir: Path, base_dir: Path, out: Path) -> Path:
    """V's language model as a plain causal-LM folder (B's config and tokenizer)."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        LlavaForConditionalGeneration,
    )

    from mlbook.merging import folders as merging

    if (out / "model.safetensors").exists():
        return out
    v = LlavaForConditionalGeneration.from_pretrained(v_dir)
    lm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    lm.load_state_dict(merging.lm_state_dict(v.state_dict(), set(lm.state_dict())), strict=False)
    lm.tie_weights()
    lm.save_pretrained(out)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    return out


def compare(a: Path, b: Path, base: Path, v_lm: Path, m: Path, density: float = 0.5) -> dict:
    """Largest |difference| over the tensors two TIES-merged folders share, how many entries differ at all, and
    why: each differing entry is counted as ``boundary_tie`` (|τ_V| or |τ_M| there equals that task vector's
    k-th largest |τ|, k = int(density·n): the trim's choice among tied entries decides it), else ``zero_sum``
    (τ_V = −τ_M: the elected sign of a zero sum), else ``unexplained``."""
    import torch
    from safetensors import safe_open

    from mlbook.merging.folders import weight_files

    def tensor(files, name):
        with safe_open(str(files[name]), "pt") as f:
            return f.get_tensor(name).float()

    wa, wb, wB, wV, wM = (weight_files(d) for d in (a, b, base, v_lm, m))
    worst, n, why = 0.0, 0, {"entries_differing": 0, "boundary_tie": 0, "zero_sum": 0, "unexplained": 0}
    for name in sorted(set(wa) & set(wb)):
        d = (tensor(wa, name) - tensor(wb, name)).abs()
        worst, n = max(worst, float(d.max())), n + d.numel()
        differ = d != 0
        nd = int(torch.count_nonzero(differ))
        if nd == 0:
            continue
        why["entries_differing"] += nd
        B = tensor(wB, name)
        taus = [tensor(w, name) - B for w in (wV, wM) if name in w]
        k = int(density * B.numel())
        tie = torch.zeros_like(differ)
        for t in taus:
            kth = t.abs().reshape(-1).kthvalue(t.numel() - k + 1).values  # the k-th largest |τ|
            tie |= t.abs() == kth
        zero = (taus[0] + taus[1] == 0) & (taus[0] != 0) if len(taus) == 2 else torch.zeros_like(differ)
        why["boundary_tie"] += int(torch.count_nonzero(differ & tie))
        why["zero_sum"] += int(torch.count_nonzero(differ & ~tie & zero))
        why["unexplained"] += int(torch.count_nonzero(differ & ~tie & ~zero))
    return {"max_abs_diff": worst, "entries": n, **why}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--v", default=None, help="V's folder (default: chapter 8's smoke-sized V, trained once and cached)")
    p.add_argument("--m", default=None, help="M's folder (default: chapter 8's smoke-sized M)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from mlbook.chapters.ch08_dim3 import training as dim3
    from mlbook.models.resolve import resolve

    base = resolve(args.base, "causal_lm")
    if args.v is None or args.m is None:
        from types import SimpleNamespace

        from mlbook.core.context import sizes

        S = SimpleNamespace(**vars(sizes("08_dim3", "smoke")))
        v_dir = Path(args.v) if args.v else dim3.train_vision_model(
            args.base, 0, n_images=S.n_images, vision_steps=S.vision_steps, align_steps=S.align_steps,
            vqa_scenes=S.vqa_scenes,
            vqa_steps=S.train_steps, batch_size=S.batch_size, lr_projector=S.lr_projector, lr_lm=S.lr_lm)
        m_dir = Path(args.m) if args.m else dim3.train_multilingual_model(
            args.base, S.langs, 0, text_scenes=S.text_scenes, steps=S.train_steps, batch_size=S.batch_size,
            udhr_per_batch=S.udhr_per_batch, lr_lm=S.lr_lm)
    else:
        v_dir, m_dir = Path(args.v), Path(args.m)
    work = Path(tempfile.mkdtemp(prefix="bench-dim3-"))
    v_lm = lm_only(v_dir, base, work / "v_lm")
    gbs = bandwidth_gbs()
    model_bytes = folder_bytes(base)
    mergekit = shutil.which("mergekit-yaml") or str(Path(sys.executable).parent / "mergekit-yaml")
    rows: dict = {}
    py = sys.executable
    jobs = {
        "interpreter": lambda out: [py, "-c", INTERPRETER],
        "io_floor": lambda out: [py, "-c", IO_FLOOR, str(base), f"{v_lm},{m_dir}", str(out)],
        "mergekit_ties": lambda out: [mergekit, str(work / "ties.yml"), str(out), "--copy-tokenizer", "--lazy-unpickle"],
        "mlbook_ties": lambda out: [py, "-c", MLBOOK_MERGE, str(base), f"{v_lm},{m_dir}", str(out), "ties", "none"],
        "mlbook_dim3": lambda out: [py, "-c", MLBOOK_MERGE, str(base), f"{v_lm},{m_dir}", str(out), "dim3", "none"],
        "mlbook_dim3_vlm": lambda out: [py, "-c", MLBOOK_MERGE, str(base), f"{v_dir},{m_dir}", str(out), "dim3", "0"],
    }
    (work / "ties.yml").write_text(MERGEKIT_YAML.format(base=base, v=v_lm, m=m_dir))
    have_mergekit = Path(mergekit).exists()
    best: dict = {}   # name -> (wall, peak MB, merge seconds): the best of the rounds
    for _ in tqdm(range(args.rounds), desc="rounds"):  # rounds interleave the tools: a busy machine slows all alike
        for name, cmd in jobs.items():
            if name.startswith("mergekit") and not have_mergekit:
                continue
            out = work / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            wall, rss, inner = timed(cmd(out))
            w0, r0, i0 = best.get(name, (float("inf"), 0.0, None))
            inners = [x for x in (inner, i0) if x is not None]
            best[name] = (min(wall, w0), max(rss, r0), min(inners) if inners else None)
    base_wall, base_rss, _ = best["interpreter"]
    io_inner = best["io_floor"][2]
    for name, (wall, rss, inner) in best.items():
        row = {"seconds": round(wall, 2), "peak_rss_mb": round(rss)}
        if name != "interpreter":
            row["merge_seconds"] = None if inner is None else round(inner, 2)
            row["peak_above_interpreter_mb"] = round(rss - base_rss)
            row["peak_above_interpreter_over_model"] = round((rss - base_rss) * 2**20 / model_bytes, 2)
            moved = folder_bytes(base) + folder_bytes(v_lm if "vlm" not in name else v_dir) + folder_bytes(m_dir) \
                + folder_bytes(work / f"out-{name}")
            row["bytes_moved_mb"] = round(moved / 2**20)
            row["memcpy_floor_seconds"] = round(moved / (gbs * 1e9), 3)
            t = inner if inner is not None else wall - base_wall   # the merge alone (mergekit: wall − start-up)
            row["x_memcpy_floor"] = round(t / (moved / (gbs * 1e9)), 1)
            row["x_io_floor"] = round(t / io_inner, 1)
        rows[name] = row
    if have_mergekit:
        c = compare(work / "out-mlbook_ties", work / "out-mergekit_ties", base, v_lm, m_dir)
        rows["mlbook_ties"].update(max_abs_diff_vs_mergekit=c["max_abs_diff"],
                                   entries_differing_from_mergekit=f"{c['entries_differing']} of {c['entries']}",
                                   why_they_differ={k: c[k] for k in ("boundary_tie", "zero_sum", "unexplained")})
        rows["mlbook_ties"]["speedup_vs_mergekit"] = round(rows["mergekit_ties"]["seconds"] / rows["mlbook_ties"]["seconds"], 2)
    else:
        rows["mergekit_ties"] = {"error": "mergekit is not installed: .venv/bin/pip install -e '.[bench]'"}
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "copy_bandwidth_gb_s": round(gbs, 2)},
              "model_mb": round(model_bytes / 2**20), "rows": rows}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
