"""Shared fixtures. ``smoke_run(stem)`` executes a chapter at the smoke profile once per test
session (also across pytest-xdist workers, under a file lock) into a temporary folder, so that
the chapter tests and the rendered-book test share one execution."""
from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

# Under pytest-xdist every worker (and every kernel it starts) shares the 2 cores with the others:
# two OpenMP threads per process then spend most of their time waiting for each other at barriers
# (a 15×640 @ 640×2048 matmul: 16 ms with 2 threads vs 0.7 ms with 1 on a loaded 2-core machine).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest


@pytest.fixture(scope="session")
def smoke_runs_dir(tmp_path_factory, worker_id) -> Path:
    base = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # every xdist worker has its own basetemp under one shared parent
        base = base.parent
    d = base / "smoke-runs"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def smoke_run(smoke_runs_dir):
    from .smoke import run_smoke

    def get(stem: str) -> Path:
        out = smoke_runs_dir / stem
        with open(smoke_runs_dir / f"{stem}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = out / "DONE"
            if not done.exists():
                run_smoke(stem, out)
                done.write_text(json.dumps({"stem": stem}))
        return out

    return get


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """A tiny Llama with SmolLM2's tokenizer, as a local checkpoint folder (what `model` may name)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mlbook.models import resolve

    tok = AutoTokenizer.from_pretrained(resolve.resolve("smollm2", "causal_lm"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    d = tmp_path_factory.mktemp("tiny-lm")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d

