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

Reported per row: wall time (best of ``--rounds``), peak resident memory of the process (``ru_maxrss``), and
the floor for a memory-bound job — the bytes read + written over this machine's measured memory bandwidth
(a large numpy copy) — with the ratio time / floor. The card's targets: time ≤ 2 × the floor of reading and
writing the bytes, peak memory ≤ 2 × one model. The TIES outputs of both tools are compared tensor by tensor.
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

MLBOOK_MERGE = """
import sys, time
from mlbook.merging import folders as merging
base, models_, out, method, into = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4], sys.argv[5]
kw = {"density": 0.5} if method == "ties" else {}
t0 = time.perf_counter()
merging.merge_folders(base, models_, out, method, into=None if into == "none" else int(into), **kw)
print(time.perf_counter() - t0)
"""

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


def timed(cmd: list[str], env=None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of a child process."""
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: a chatty child cannot fill it and block
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], env=env, stdout=log, stderr=log, text=True)
        wall = time.perf_counter() - t0
        log.seek(0)
        err = log.read()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{err[-2000:]}")
    peak_kb = [line.split()[1] for line in err.splitlines() if line.startswith("PEAK_RSS_KB")][-1]
    return wall, int(peak_kb) / 1024  # ru_maxrss is in kB on Linux


def folder_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in Path(d).glob("*.safetensors"))


def lm_only(v_dir: Path, base_dir: Path, out: Path) -> Path:
    """V's language model as a plain causal-LM folder (B's config and tokenizer)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlavaForConditionalGeneration

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


def compare(a: Path, b: Path) -> float:
    """Largest |difference| over the tensors two merged folders share."""
    from safetensors import safe_open

    from mlbook.merging.folders import weight_files

    wa, wb = weight_files(a), weight_files(b)
    worst = 0.0
    for name in sorted(set(wa) & set(wb)):
        with safe_open(str(wa[name]), "pt") as fa, safe_open(str(wb[name]), "pt") as fb:
            worst = max(worst, float((fa.get_tensor(name).float() - fb.get_tensor(name).float()).abs().max()))
    return worst


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
    rows = {}
    jobs = {
        "mergekit_ties": lambda out: [mergekit, str(work / "ties.yml"), str(out), "--copy-tokenizer", "--lazy-unpickle"],
        "mlbook_ties": lambda out: [sys.executable, "-c", MLBOOK_MERGE, str(base), f"{v_lm},{m_dir}", str(out), "ties", "none"],
        "mlbook_dim3": lambda out: [sys.executable, "-c", MLBOOK_MERGE, str(base), f"{v_lm},{m_dir}", str(out), "dim3", "none"],
        "mlbook_dim3_vlm": lambda out: [sys.executable, "-c", MLBOOK_MERGE, str(base), f"{v_dir},{m_dir}", str(out), "dim3", "0"],
    }
    (work / "ties.yml").write_text(MERGEKIT_YAML.format(base=base, v=v_lm, m=m_dir))
    have_mergekit = Path(mergekit).exists()
    for r in range(args.rounds):  # rounds interleave the tools, so a busy machine slows all alike
        for name, cmd in jobs.items():
            if name.startswith("mergekit") and not have_mergekit:
                rows[name] = {"error": "mergekit is not installed: .venv/bin/pip install -e '.[bench]'"}
                continue
            out = work / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            wall, rss = timed(cmd(out))
            moved = folder_bytes(base) + folder_bytes(v_lm if "vlm" not in name else v_dir) + folder_bytes(m_dir) \
                + folder_bytes(out)
            best = min(wall, rows.get(name, {}).get("seconds", float("inf")))
            rows[name] = {"seconds": round(best, 2), "peak_rss_mb": round(max(rss, rows.get(name, {}).get("peak_rss_mb", 0)), 0),
                          "bytes_moved_mb": round(moved / 2**20), "floor_seconds": round(moved / (gbs * 1e9), 3),
                          "x_floor": round(best / (moved / (gbs * 1e9)), 1),
                          "peak_rss_over_model": round(max(rss, rows.get(name, {}).get("peak_rss_mb", 0)) * 2**20 / model_bytes, 2)}
    if have_mergekit:
        rows["mlbook_ties"]["max_abs_diff_vs_mergekit"] = compare(work / "out-mlbook_ties", work / "out-mergekit_ties")
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "copy_bandwidth_gb_s": round(gbs, 2)},
              "model_mb": round(model_bytes / 2**20), "rows": rows}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
