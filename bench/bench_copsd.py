"""Training-step throughput and peak memory of our COPSD and GRPO steps against TRL's trainers,
side by side on the same model, prompts and batch.

    .venv/bin/python bench/bench_copsd.py                       # SmolLM2-135M-Instruct, CPU, 8 completions per step
    .venv/bin/python bench/bench_copsd.py --device cuda --completions 64 --max-new-tokens 128 --json out.json

Methods (each in its own subprocess, so that peak memory is its own):

- ``ours_copsd``  ``mlbook.training.copsd``: on-policy rollout (KV cache) + student forward/backward + frozen-teacher
                  forward with the privileged prompt, chunked clipped-KL loss;
- ``ours_grpo``   ``mlbook.training.grpo``: rollout of ``completions/8`` prompts × 8 + binary \\boxed{} reward + clipped surrogate;
- ``trl_distill`` TRL ``DistillationTrainer`` (on-policy: TRL 1.16 always samples from the student), forward KL (``beta=0``), teacher = a frozen
                  copy of the model (TRL's teacher reads the same prompt as the student: no privileged context);
- ``trl_grpo``    TRL ``GRPOTrainer`` with the same binary reward, ``num_generations=8``.

Ours runs as chapter 7's ``gpu`` profile trains (its card's ``grad_checkpointing`` and ``fused_adamw``): activation
checkpointing of the decoder layers (``mlbook.training.activation_checkpointing``) and torch's fused AdamW — what
TRL 1.16's trainers do by default (``gradient_checkpointing=True`` in TRL's base config; transformers' default
optimizer ``adamw_torch_fused`` on torch ≥ 2.8).  ``--plain`` turns both off for ours, to see what they buy.

All use the same sampling settings (T = 1.1, top-k 20, top-p 0.95), completions of at most
``--max-new-tokens`` tokens, full fine-tuning with AdamW, and the same prompts (German word problems in the
student's format).  A step's *tokens* are its prompt + completion tokens, counted from what was actually
generated; ``tokens/s`` = tokens of the timed steps / their wall time (first ``--warmup`` steps not timed).
Peak memory: CUDA's ``max_memory_allocated`` on a GPU, the process's peak resident set (ru_maxrss) on CPU.
TRL is an optional extra: ``pip install -e '.[bench]'``.
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

METHODS = ("ours_copsd", "ours_grpo", "trl_distill", "trl_grpo")
T, TOP_K, TOP_P, GROUP = 1.1, 20, 0.95, 8


def _problems(n: int):
    from mlbook.chapters.ch07_copsd import wordproblems as wp

    return [(sk, "de") for sk in wp.problem_set(n, seed=123)]


def _peak_bytes(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024      # Linux: KiB


def run_ours(method: str, args) -> dict:
    import copy

    import torch

    from mlbook.chapters.ch07_copsd import task
    from mlbook.core.context import sizes
    from mlbook.models.loading import load_causal_lm
    from mlbook.training import copsd, grpo
    from mlbook.training.activation_checkpointing import recompute_layers
    from mlbook.training.fit import fit
    from accelerate import Accelerator

    gpu = sizes("07_copsd", "gpu")                    # the settings the chapter's gpu profile trains with
    checkpointing, fused = (False, False) if args.plain else (gpu.grad_checkpointing, gpu.fused_adamw)
    torch.manual_seed(0)
    model, tok = load_causal_lm(args.model, device=args.device)
    if checkpointing:
        recompute_layers(model)
    acc = Accelerator(cpu=args.device == "cpu")
    pool = _problems(args.completions * (args.steps + args.warmup))
    counted: list[int] = []
    if method == "ours_copsd":
        teacher = copy.deepcopy(model).eval().requires_grad_(False)
        make = task.copsd_batches(model, tok, pool, n_prompts=args.completions, max_new_tokens=args.max_new_tokens)
        loss_fn = copsd.copsd_loss_fn(teacher)
    else:
        make = task.grpo_batches(model, tok, pool, n_prompts=args.completions // GROUP, group_size=GROUP,
                               max_new_tokens=args.max_new_tokens)
        loss_fn = grpo.grpo_loss_fn()
    stamps: list[float] = []                  # the clock at each batch request = the start of each step

    def batches(i):
        stamps.append(time.perf_counter())
        b = make(i)
        counted.append(int(b["student"][1].sum()) + (int(b["teacher"][1].sum()) if "teacher" in b else 0))
        return b

    fit(model, loss_fn, batches, steps=args.steps + args.warmup, lr=1e-6, grad_clip=1.0, progress=False,
        accelerator=acc, fused=fused)
    stamps.append(time.perf_counter())
    per_step = [b - a for a, b in zip(stamps, stamps[1:])]
    timed = per_step[args.warmup:]
    tokens = sum(counted[args.warmup:])
    return {"seconds_per_step": sum(timed) / len(timed), "tokens_per_s": tokens / sum(timed),
            "tokens_per_step": tokens / len(timed), "peak_memory_mb": _peak_bytes(args.device) / 2**20,
            "grad_checkpointing": checkpointing, "fused_adamw": fused}


def run_trl(method: str, args) -> dict:
    import copy

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from mlbook.chapters.ch07_copsd import task
    from mlbook.chapters.ch07_copsd import wordproblems as wp
    from mlbook.models.loading import load_causal_lm

    torch.manual_seed(0)
    model, tok = load_causal_lm(args.model, device=args.device)
    model.train()
    n_prompts = args.completions if method == "trl_distill" else args.completions // GROUP
    rows = []
    for sk, lang in _problems(n_prompts * (args.steps + args.warmup)):
        pl = wp.render(sk, lang)
        rows.append({"prompt": [{"role": "user", "content": task.student_message(pl)}], "answer": sk.answer})
    data = Dataset.from_list(rows)
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            stamps.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            stamps.append(time.perf_counter())

    common = dict(output_dir=os.path.join(args.tmp, method), max_steps=args.steps + args.warmup, learning_rate=1e-6,
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=args.device == "cpu", seed=0,
                  temperature=T, top_p=TOP_P, top_k=TOP_K, max_completion_length=args.max_new_tokens,
                  gradient_accumulation_steps=1, bf16=False, dataloader_num_workers=0)
    if method == "trl_grpo":
        from trl import GRPOConfig, GRPOTrainer

        def reward(completions, answer, **kw):
            texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
            return [task.reward(t, a) for t, a in zip(texts, answer)]

        cfg = GRPOConfig(per_device_train_batch_size=args.completions, num_generations=GROUP, beta=0.0, **common)
        trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=data, processing_class=tok,
                              callbacks=[Clock()])
    else:
        from trl import DistillationConfig, DistillationTrainer

        teacher = copy.deepcopy(model).eval()
        cfg = DistillationConfig(per_device_train_batch_size=args.completions, beta=0.0, **common)  # always on-policy
        trainer = DistillationTrainer(model=model, teacher_model=teacher, args=cfg, train_dataset=data,
                                      processing_class=tok, callbacks=[Clock()])
    trainer.train()
    per_step = [b - a for a, b in zip(stamps[::2], stamps[1::2])]
    timed = per_step[args.warmup:]
    lens = [h.get("completions/mean_length") for h in trainer.state.log_history if "completions/mean_length" in h]
    prompt_len = sum(len(tok(tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False),
                             add_special_tokens=False)["input_ids"]) for r in rows) / len(rows)
    mean_len = (sum(lens[args.warmup:]) / len(lens[args.warmup:])) if len(lens) > args.warmup else float("nan")
    per_step_tokens = args.completions * (prompt_len + mean_len) * (2 if method == "trl_distill" else 1)
    return {"seconds_per_step": sum(timed) / len(timed), "tokens_per_s": per_step_tokens / (sum(timed) / len(timed)),
            "tokens_per_step": per_step_tokens, "peak_memory_mb": _peak_bytes(args.device) / 2**20,
            "mean_completion_tokens": mean_len}


def child(method: str, args) -> dict:
    try:
        out = run_ours(method, args) if method.startswith("ours") else run_trl(method, args)
        out["ok"] = True
    except Exception as e:  # noqa: BLE001  (report, don't hide: the table says why a method has no number)
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500]}
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--device", default="cpu")
    p.add_argument("--completions", type=int, default=8, help="sampled completions per step (a multiple of 8)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--steps", type=int, default=3, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--plain", action="store_true", help="ours without activation checkpointing and fused AdamW")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tmp", default="/tmp/bench_copsd")
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args(argv)
    if args.completions % GROUP:
        p.error(f"--completions must be a multiple of {GROUP}")
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)))
        return {}
    results = {}
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, "--child", method, *(argv if argv is not None else sys.argv[1:])]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        results[method] = json.loads(line[7:]) if line else {"ok": False, "error": proc.stderr[-500:]}
        results[method]["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"{method:12s} " + (f"{results[method]['seconds_per_step']:7.2f} s/step  "
                                  f"{results[method]['tokens_per_s']:8.1f} tokens/s  "
                                  f"peak {results[method]['peak_memory_mb']:7.0f} MB"
                                  if results[method]["ok"] else "failed: " + results[method]["error"]), flush=True)
    out = {"model": args.model, "device": args.device, "completions_per_step": args.completions,
           "max_new_tokens": args.max_new_tokens, "timed_steps": args.steps, "machine": platform.platform(),
           "cpu_count": os.cpu_count(), "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
