"""The on-policy losses average over the optimizer step's tokens — on every process and over every
accumulated micro-batch — as TRL's ``dapo`` loss does (``token_mean``), not as a mean of
per-micro-batch means.  Reference: the gradient of one token mean over all the step's tokens at once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from mlbook.training import fit as train
from mlbook.training import grpo, onpolicy
from mlbook.training.token_mean import token_mean

V, D = 5, 4
# tokens per micro-batch: [process][micro-batch]; unequal, so a mean of means weighs tokens unequally
LENGTHS = [[3, 9], [5, 1]]


class RecordingAccelerator(Accelerator):
    """Keeps the gradients ``fit`` clips: the step's final gradients, after accumulation and the processes' sync."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.grads = []

    def clip_grad_norm_(self, parameters, max_norm, norm_type=2):
        parameters = list(parameters)
        self.grads.append([p.grad.detach().clone() for p in parameters])
        return super().clip_grad_norm_(parameters, max_norm, norm_type)


def micro_batch(process: int, j: int) -> dict:
    g = torch.Generator().manual_seed(100 * process + j)
    n = LENGTHS[process][j]
    return {"x": torch.randn(n, D, generator=g), "targets": torch.randint(0, V, (n,), generator=g),
            "advantages": torch.randn(n, generator=g), "comp_mask": torch.ones(1, n)}


def policy() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(D, V)


def loss_fn(model, batch):
    logp = model(batch["x"]).log_softmax(-1).gather(-1, batch["targets"][:, None]).squeeze(-1)
    return grpo.grpo_loss(logp, logp.detach(), batch["advantages"], num_items=batch.get("num_items_in_batch"))


def reference_grads(processes: int) -> list[torch.Tensor]:
    """∇ of the token mean over every micro-batch of every process, in one pass."""
    model = policy()
    parts = [micro_batch(p, j) for p in range(processes) for j in range(2)]
    whole = {k: torch.cat([b[k] for b in parts], dim=-1 if k == "comp_mask" else 0) for k in parts[0]}
    loss_fn(model, whole).backward()
    return [p.grad for p in model.parameters()]


def step_grads(count, process: int = 0, accelerator=None) -> list[torch.Tensor]:
    acc = accelerator or RecordingAccelerator(cpu=True)
    loss, batches = loss_fn, lambda i: micro_batch(process, i % 2)
    if count is not None:
        loss, batches = token_mean(loss, batches, count=count, grad_accum=2, accelerator=acc)
    train.fit(policy(), loss, batches, steps=1, lr=1e-3, grad_clip=1e9, grad_accum=2, progress=False, accelerator=acc)
    return acc.grads[0]


def test_token_mean_needs_a_callable_and_a_positive_accumulation():
    with pytest.raises(TypeError, match="callable"):
        token_mean(loss_fn, [micro_batch(0, 0)], count=len, grad_accum=1, accelerator=Accelerator(cpu=True))
    with pytest.raises(ValueError, match="grad_accum"):
        token_mean(loss_fn, micro_batch, count=len, grad_accum=0, accelerator=Accelerator(cpu=True))


def test_grpo_loss_with_num_items_is_the_sum_over_the_steps_count():
    logp, adv = torch.randn(6), torch.randn(6)
    assert torch.allclose(grpo.grpo_loss(logp, logp, adv, num_items=10), grpo.grpo_loss(logp, logp, adv) * 6 / 10)


def test_count_gives_the_token_mean_over_the_accumulated_step():
    want = reference_grads(1)
    got = step_grads(onpolicy.completion_tokens)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-6)
    # without count: the mean of the two micro-batches' means, which weighs the 3 tokens' as much as the 9's
    plain = step_grads(None)
    assert not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(plain, want))


def _two_process_worker(out_path):
    acc = RecordingAccelerator(cpu=True)
    assert acc.num_processes == 2
    grads = step_grads(onpolicy.completion_tokens, process=acc.process_index, accelerator=acc)
    if acc.is_main_process:
        torch.save(grads, out_path)


@pytest.mark.timeout(180)
def test_two_processes_normalise_over_the_global_token_count(tmp_path):
    """Two CPU processes (gloo), two micro-batches each.  Launched from a fresh interpreter: forking
    this test process, whose torch thread pool has run, deadlocks the children."""
    out = tmp_path / "grads.pt"
    here = Path(__file__).parent
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from accelerate import debug_launcher; "
            "from test_token_normalisation import _two_process_worker as w; "
            "debug_launcher(w, args=(sys.argv[2],), num_processes=2)")
    subprocess.run([sys.executable, "-c", code, str(here), str(out)], check=True, timeout=150)
    got = torch.load(out)
    for a, b in zip(got, reference_grads(2)):
        assert torch.allclose(a, b, atol=1e-6)
