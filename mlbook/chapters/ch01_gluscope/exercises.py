"""Checks for chapter 1's exercises (GLUScope). Each builds fresh random inputs and compares
the reader's function with the book's own implementation in :mod:`mlbook.interp.glu`."""
from __future__ import annotations

from mlbook.core.exercises import exercise
from mlbook.interp import hooks
from mlbook.interp.glu import case_index, refactor_glu, weight_cosines
from mlbook.models.tiny_llama import tiny_llama


def _tiny_llama(seed: int):
    return tiny_llama(61, 24, 2, 2, n_kv_heads=1, d_ff=40, max_len=32, seed=seed).eval()


@exercise
def check_case_of(fn, trials: int = 20) -> str:
    """``fn(gate, in_)`` -> case per element: 0 gate+in+, 1 gate+in-, 2 gate-in+, 3 gate-in-, -1 if a sign is 0."""
    import torch

    g = torch.Generator().manual_seed(11)
    for _ in range(trials):
        shape = tuple(int(s) for s in torch.randint(1, 7, (int(torch.randint(1, 4, (1,), generator=g)),), generator=g))
        gate, in_ = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
        gate[torch.rand(shape, generator=g) < 0.1] = 0.0     # exact zeros (e.g. padding) belong to no case
        in_[torch.rand(shape, generator=g) < 0.1] = 0.0
        want, got = case_index(gate, in_), torch.as_tensor(fn(gate.clone(), in_.clone()))
        if tuple(got.shape) != shape:
            raise AssertionError(f"shape {tuple(got.shape)}, expected {shape}")
        if not torch.equal(got.long(), want):
            i = (got.long() != want).nonzero()[0].tolist()
            raise AssertionError(f"at {i}: gate={gate[tuple(i)].item():.3f}, in={in_[tuple(i)].item():.3f} "
                                 f"-> expected case {want[tuple(i)].item()}, got {got[tuple(i)].item()}")
    return "✔ four sign cases correct"


@exercise
def check_refactor(fn, trials: int = 3) -> str:
    """``fn(model)`` flips w_in and w_out of the neurons with <w_gate, w_in> < 0, in place.

    Checked: the logits do not change, every cos(w_gate, w_in) is >= 0 afterwards, and the
    weights equal the book's :func:`mlbook.gluscope.refactor_glu` (no other neuron touched).
    """
    import torch

    for t in range(trials):
        model, ref = _tiny_llama(200 + t), _tiny_llama(200 + t)
        x = torch.randint(0, 61, (2, 9), generator=torch.Generator().manual_seed(t))
        with torch.no_grad():
            before = model(x).logits
            fn(model)
            after = model(x).logits
        refactor_glu(ref)
        if not torch.allclose(before, after, atol=1e-5):
            raise AssertionError(f"the logits changed (max diff {(before - after).abs().max():.2e}): "
                                 "did you flip w_out's columns together with w_in's rows?")
        if (weight_cosines(model)["cos_gate_in"] < 0).any():
            raise AssertionError("some neuron still has cos(w_gate, w_in) < 0")
        for layer in range(hooks.n_layers(model)):
            for got, want, name in zip(hooks.mlp_weights(model, layer), hooks.mlp_weights(ref, layer),
                                       ("w_gate", "w_in", "w_out")):
                if not torch.equal(got, want):
                    raise AssertionError(f"layer {layer}: {name} differs from the reference refactoring")
    return "✔ refactoring keeps the model's outputs and aligns gate and in"


def swish_floor(act, lo: float = -10.0, hi: float = 0.0) -> tuple[float, float]:
    """The book's solution: a dense grid, then golden-section search around the best point."""
    import torch

    xs = torch.linspace(lo, hi, 20001, dtype=torch.float64)
    i = int(act(xs).argmin())
    a, b = float(xs[max(i - 1, 0)]), float(xs[min(i + 1, len(xs) - 1)])
    r = (5 ** 0.5 - 1) / 2
    f = lambda v: float(act(torch.tensor(v, dtype=torch.float64)))  # noqa: E731
    for _ in range(80):
        c, d = b - r * (b - a), a + r * (b - a)
        a, b = (a, d) if f(c) < f(d) else (c, b)
    x = (a + b) / 2
    return x, f(x)


@exercise
def check_swish_floor(fn, trials: int = 4) -> str:
    """``fn(act) -> (x_min, act(x_min))``: the minimum of an activation function on x < 0.

    Tried on SiLU, GELU-tanh and x * sigmoid(beta * x) for random beta (fresh each call).
    """
    import torch

    acts = {"SiLU": torch.nn.functional.silu,
            "GELU-tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh")}
    g = torch.Generator().manual_seed(int(torch.randint(0, 10_000, (1,))))
    for _ in range(trials):
        beta = float(torch.empty(1).uniform_(0.5, 3.0, generator=g))
        acts[f"x·sigmoid({beta:.2f}x)"] = lambda x, b=beta: x * torch.sigmoid(b * x)
    for name, act in acts.items():
        want_x, want_y = swish_floor(act)
        got_x, got_y = (float(v) for v in fn(act))
        if abs(got_x - want_x) > 2e-3 or abs(got_y - want_y) > 1e-5:
            raise AssertionError(f"{name}: expected the floor at x = {want_x:.4f}, value {want_y:.5f}; "
                                 f"got x = {got_x:.4f}, value {got_y:.5f}")
    return "✔ swish floors correct"
