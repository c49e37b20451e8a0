"""Checks for chapter 0's exercises. Each builds fresh random inputs and compares the
reader's function with the book's own implementation."""
from __future__ import annotations

from mlbook.core.exercises import exercise
from mlbook.interp import hooks
from mlbook.interp.lens import LensResult
from mlbook.models.tiny_llama import tiny_llama


def _tiny_llama(seed: int):
    import torch

    model = tiny_llama(97, 32, 2, 4, n_kv_heads=2, d_ff=64, max_len=64, seed=seed).eval()
    with torch.no_grad():  # a non-trivial final norm, so that forgetting it is caught
        model.model.norm.weight.uniform_(0.5, 1.5)
    return model


@exercise
def check_logit_lens(fn, trials: int = 3) -> str:
    """``fn(model, resid) -> logits`` must equal ``mlbook.hooks.logit_lens`` on random residuals."""
    import torch

    for t in range(trials):
        model = _tiny_llama(1000 + t)
        resid = torch.randn(5, model.config.hidden_size) * (1 + 3 * t)
        with torch.no_grad():
            want = hooks.logit_lens(model, resid)
            got = fn(model, resid)
        if tuple(got.shape) != tuple(want.shape):
            raise AssertionError(f"shape {tuple(got.shape)}, expected {tuple(want.shape)} (positions × vocab)")
        if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
            raise AssertionError("values differ from the reference: did you apply the final norm before W_U?")
    return "✔ logit lens correct"


@exercise
def check_first_stable_top1(fn, trials: int = 50) -> str:
    """``fn(ranks)`` with ranks (prompts × layers) → per prompt the first layer from which rank stays 0, or -1."""
    import torch

    g = torch.Generator().manual_seed(7)
    for _ in range(trials):
        p, l = int(torch.randint(1, 6, (1,), generator=g)), int(torch.randint(1, 12, (1,), generator=g))
        ranks = torch.randint(0, 3, (p, l), generator=g) * torch.randint(0, 2, (p, l), generator=g)
        want = LensResult(ranks=ranks, probs=None, top_tokens=[], answer_ids=[]).first_top1_layer()
        got = torch.as_tensor(fn(ranks.clone()))
        if got.tolist() != want.tolist():
            raise AssertionError(f"for ranks\n{ranks}\nexpected {want.tolist()}, got {got.tolist()}")
    return "✔ first stable top-1 layer correct"
