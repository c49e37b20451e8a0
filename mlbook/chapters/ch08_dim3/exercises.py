"""Checks for chapter 8's exercises (DiM3). Each draws fresh random matrices and compares the reader's
function with the book's own implementation in :mod:`mlbook.merging`."""
from __future__ import annotations

from mlbook.core.exercises import exercise
from mlbook.merging.methods import column_changes, dim3_weights


def _three(g, out: int, n: int, scale: float = 0.3):
    import torch

    B = torch.randn(out, n, generator=g)
    return B, [B + scale * torch.randn(out, n, generator=g) * torch.rand(1, n, generator=g) for _ in range(2)]


@exercise
def check_direction_change(fn, trials: int = 10) -> str:
    """``fn(W_B, W_k)`` → the direction change per column, ΔD_j = 1 − cos(W_k[:, j], W_B[:, j]), shape (in,)."""
    import torch

    g = torch.Generator().manual_seed(81)
    for _ in range(trials):
        out, n = (int(x) for x in torch.randint(2, 30, (2,), generator=g))
        B, (Wk, _) = _three(g, out, n)
        want = column_changes(B, [Wk])[1][0]
        got = torch.as_tensor(fn(B.clone(), Wk.clone())).float()
        if tuple(got.shape) != (n,):
            raise AssertionError(f"shape {tuple(got.shape)}, expected ({n},): one value per column (input dimension)")
        if not torch.allclose(got, want, atol=1e-5):
            j = int((got - want).abs().argmax())
            raise AssertionError(f"column {j}: got {got[j]:.6f}, expected {want[j]:.6f} (did you compare rows instead "
                                 f"of columns?)")
    return "✔ direction change per column correct"


@exercise
def check_not_overridden(fn, trials: int = 10) -> str:
    """``fn(W_B, W_list)`` → boolean mask (in,) of the columns in which DiM3 with t = 0, c = 1 does NOT equal
    task arithmetic with λ = 1 (some model's weight there is a softmax score, not the override c = 1)."""
    import torch

    g = torch.Generator().manual_seed(82)
    for _ in range(trials):
        out, n = int(torch.randint(3, 12, (1,), generator=g)), int(torch.randint(5, 60, (1,), generator=g))
        B, Ws = _three(g, out, n)
        want = (dim3_weights(B, Ws, t=0.0, c=1.0) != 1.0).any(0)
        got = torch.as_tensor(fn(B.clone(), [w.clone() for w in Ws])).bool()
        if tuple(got.shape) != (n,):
            raise AssertionError(f"shape {tuple(got.shape)}, expected ({n},)")
        if not torch.equal(got, want):
            raise AssertionError(f"expected {int(want.sum())} such column(s) at {want.nonzero()[:, 0].tolist()}, got "
                                 f"{got.nonzero()[:, 0].tolist()}")
    return "✔ you found the columns that t = 0 does not override"


@exercise
def check_token_weights(fn, trials: int = 5) -> str:
    """``fn(E_B, E_list)`` → DiM3's merge weights of a token-embedding matrix (vocab × hidden), one per model
    and TOKEN: shape (K, vocab), with t = c = 1."""
    import torch

    g = torch.Generator().manual_seed(83)
    for _ in range(trials):
        vocab, hidden = int(torch.randint(20, 80, (1,), generator=g)), int(torch.randint(3, 10, (1,), generator=g))
        E, Es = _three(g, hidden, vocab)
        E, Es = E.T.contiguous(), [e.T.contiguous() for e in Es]  # vocab × hidden
        want = dim3_weights(E.T, [e.T for e in Es])
        got = torch.as_tensor(fn(E.clone(), [e.clone() for e in Es])).float()
        if tuple(got.shape) != (2, vocab):
            raise AssertionError(f"shape {tuple(got.shape)}, expected (2, {vocab}): one weight per model and token")
        if not torch.allclose(got, want, atol=1e-6):
            raise AssertionError("weights differ from DiM3's: a token is a row of the embedding matrix")
    return "✔ one weight per token"
