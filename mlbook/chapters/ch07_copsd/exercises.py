"""Checks for chapter 7's exercises (COPSD vs GRPO).  Each builds fresh random inputs and compares
the reader's function with the book's own implementation in :mod:`mlbook.distill` / :mod:`mlbook.rl`."""
from __future__ import annotations

from mlbook.core.exercises import exercise
from mlbook.training.copsd import copsd_loss_reference, copsd_terms
from mlbook.training.grpo import group_advantages


@exercise
def check_copsd_loss(fn, trials: int = 20) -> str:
    """``fn(student_logits, teacher_logits, mask, temperature, clip)`` → the COPSD loss (a scalar tensor).

    Checked on random shapes, temperatures, clips and masks: the value and the gradient with respect
    to the student's logits equal :func:`mlbook.distill.copsd_loss_reference`; the teacher gets no gradient.
    """
    import torch

    g = torch.Generator().manual_seed(70)
    for _ in range(trials):
        B, L, V = (int(x) for x in torch.randint(1, 6, (3,), generator=g))
        V += 2
        T = float(torch.empty(1).uniform_(0.5, 2.0, generator=g))
        c = float(torch.empty(1).uniform_(0.01, 0.5, generator=g))
        s = (torch.randn(B, L, V, generator=g) * 2).requires_grad_(True)
        t = (torch.randn(B, L, V, generator=g) * 2).requires_grad_(True)
        mask = (torch.rand(B, L, generator=g) < 0.7).long()
        mask[0, 0] = 1
        want = copsd_loss_reference(s, t.detach(), mask, T, c)
        (gw,) = torch.autograd.grad(want, s)
        got = fn(s, t, mask, T, c)
        if not torch.is_tensor(got) or got.numel() != 1:
            raise AssertionError("return a scalar tensor")
        if not torch.allclose(got.detach().float(), want.detach(), atol=1e-5, rtol=1e-4):
            raise AssertionError(f"loss {float(got.detach()):.6f}, expected {float(want.detach()):.6f} (B={B}, L={L}, V={V}, T={T:.2f}, "
                                 f"clip={c:.3f}): divide logits by T, clip each vocabulary entry, average over real tokens")
        gs, gt = torch.autograd.grad(got, (s, t), allow_unused=True)
        if gs is None or not torch.allclose(gs, gw, atol=1e-6):
            raise AssertionError("the gradient w.r.t. the student's logits differs: is an entry at the clip still "
                                 "passing gradient (use clamp(max=c), not a soft clip)?")
        if gt is not None and gt.abs().max() > 0:
            raise AssertionError("the teacher's logits receive a gradient: the teacher is frozen (detach it)")
    return "✔ COPSD loss: values and gradients match"


def clip_gradient(student_logits, teacher_logits, temperature: float, clip: float):
    """The book's solution to exercise 2: d/dz of one token's loss Σ_v min(c, p_T(v)(log p_T(v) − log p_S(v)))."""
    ps = (student_logits / temperature).softmax(-1)
    pt = (teacher_logits / temperature).softmax(-1)
    free = (pt * (pt.log() - ps.log()) < clip).to(ps.dtype)          # entries below the clip pass gradient
    return (ps * (pt * free).sum(-1, keepdim=True) - pt * free) / temperature


@exercise
def check_clip_gradient(fn, trials: int = 20) -> str:
    """``fn(student_logits (V,), teacher_logits (V,), temperature, clip)`` → the gradient (V,) of one token's
    loss with respect to the student's logits, in closed form (no autograd).  Compared with autograd."""
    import torch

    g = torch.Generator().manual_seed(71)
    for _ in range(trials):
        V = int(torch.randint(3, 40, (1,), generator=g))
        T = float(torch.empty(1).uniform_(0.5, 2.0, generator=g))
        c = float(torch.empty(1).uniform_(0.01, 0.3, generator=g))
        s = (torch.randn(V, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
        t = torch.randn(V, generator=g, dtype=torch.float64) * 3
        (want,) = torch.autograd.grad(copsd_terms(s, t, T, c).sum(), s)
        got = torch.as_tensor(fn(s.detach().clone(), t.clone(), T, c), dtype=torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-8):
            raise AssertionError(f"gradient differs from autograd (V={V}, T={T:.2f}, clip={c:.3f}); max |diff| = "
                                 f"{(got - want).abs().max() if got.shape == want.shape else 'shape ' + str(tuple(got.shape))}")
    return "✔ the clipped gradient in closed form matches autograd"


@exercise
def check_group_advantages(fn, trials: int = 30) -> str:
    """``fn(rewards (B,), group_size)`` → GRPO advantages (B,), compared with :func:`mlbook.rl.group_advantages`
    — including groups whose rewards are all equal, which must get exactly zero."""
    import torch

    g = torch.Generator().manual_seed(72)
    for trial in range(trials):
        G = int(torch.randint(2, 9, (1,), generator=g))
        n = int(torch.randint(1, 6, (1,), generator=g))
        r = (torch.rand(n * G, generator=g) < float(torch.rand(1, generator=g))).float()
        if trial % 3 == 0:
            r[:G] = float(trial % 2)                                   # an all-equal group
        want = group_advantages(r, G)
        got = torch.as_tensor(fn(r.clone(), G)).float()
        if got.shape != want.shape or not torch.allclose(got, want, atol=1e-4):
            raise AssertionError(f"rewards {r.tolist()} (group size {G}): expected {want.tolist()}, got {got.tolist()}")
        if trial % 3 == 0 and not torch.all(got[:G] == 0):
            raise AssertionError("a group with equal rewards must get advantage exactly 0")
    return "✔ group-normalised advantages correct (equal rewards → no signal)"


@exercise
def check_identical_probability(fn, trials: int = 30) -> str:
    """``fn(p, group_size)`` → the probability that ``group_size`` independent samples with accuracy ``p``
    all get the same binary reward.  Compared with the closed form and with a simulation."""
    import numpy as np

    rng = np.random.default_rng(73)
    for _ in range(trials):
        p, G = float(rng.uniform(0, 1)), int(rng.integers(2, 17))
        want = p ** G + (1 - p) ** G
        got = float(fn(p, G))
        if abs(got - want) > 1e-9:
            sims = rng.random((20000, G)) < p
            sim = float(np.mean(sims.all(1) | (~sims).all(1)))
            raise AssertionError(f"p={p:.3f}, G={G}: got {got:.4f}; a simulation gives {sim:.4f}")
    return "✔ share of identical-reward groups correct"
