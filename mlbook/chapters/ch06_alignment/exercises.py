"""Chapter 6's exercises, checked on fresh inputs (the reader's function never sees the reference's output).

1. ``block_cosine(g1, g2, names)``: the cosine of two gradients restricted to one block of parameters.
2. ``null_scale(d)``: how far from 0 the cosine of two *unrelated* directions in d dimensions typically is.
3. ``relative_distance(d)``: a translation's distance over the mean distance to the other sentences.
"""
from __future__ import annotations

import math
import random

import torch

from mlbook.core.exercises import exercise


def _ref_block_cosine(g1, g2, names) -> float:
    a = torch.cat([g1[n].flatten().double() for n in names])
    b = torch.cat([g2[n].flatten().double() for n in names])
    return float(a @ b / (a.norm() * b.norm()))


@exercise
def check_block_cosine(fn) -> str:
    """``fn(g1, g2, names)``: two dicts name → gradient tensor; the cosine of the two gradients flattened over
    the parameters ``names`` only (a block), as a float."""
    gen = torch.Generator().manual_seed(random.randrange(10 ** 6))
    shapes = {"layer.0.w": (4, 3), "layer.0.b": (4,), "layer.1.w": (3, 5), "layer.1.b": (3,), "head.w": (2, 3)}
    g1 = {n: torch.randn(s, generator=gen) for n, s in shapes.items()}
    g2 = {n: torch.randn(s, generator=gen) + 0.5 * g1[n] for n, s in shapes.items()}
    for names in (["layer.0.w", "layer.0.b"], ["layer.1.w", "layer.1.b"], list(shapes)):
        got, want = float(fn(g1, g2, names)), _ref_block_cosine(g1, g2, names)
        assert abs(got - want) < 1e-6, (
            f"block {names}: expected {want:.4f}, got {got:.4f} — concatenate the block's tensors into one vector "
            "per gradient first, then one dot product over the two norms (not a mean of per-tensor cosines)")
    one = {n: torch.ones(s) for n, s in shapes.items()}
    scaled = {n: 7.0 * v for n, v in one.items()}
    assert abs(float(fn(one, scaled, list(shapes))) - 1) < 1e-6, "a cosine does not depend on the gradients' sizes"
    return "✔ block cosine: right on fresh gradients, for one block and for all of them"


@exercise
def check_null_scale(fn) -> str:
    """``fn(d)``: the standard deviation of cos(u, v) for two independent random Gaussian vectors in d dimensions."""
    rng = torch.Generator().manual_seed(random.randrange(10 ** 6))
    for d in (16, 384, 4096):
        got = float(fn(d))
        u, v = torch.randn(2000, d, generator=rng), torch.randn(2000, d, generator=rng)
        sim = float(torch.nn.functional.cosine_similarity(u, v).std())
        assert abs(got - sim) < 0.1 * sim, (
            f"d = {d}: two random directions have cosines with a standard deviation of about {sim:.4f} "
            f"(2,000 draws), got {got:.4f} — think of cos as a sum of d small independent terms")
    return ("✔ null scale: 1/√d — for 3.5 million parameters of two layers, about 0.0005: a cosine of 0.01 between "
            "two gradients is twenty 'random' standard deviations, and still tells little unless the same loss's "
            "own batches agree much more")


def _ref_relative(d) -> list[float]:
    n = len(d)
    return [d[i][i] / (sum(d[i][j] for j in range(n) if j != i) / (n - 1)) for i in range(n)]


@exercise
def check_relative_distance(fn) -> str:
    """``fn(d)``: ``d[i][j]`` = 1 − cos(source i, target j) as an n × n list of lists; per i, d[i][i] over the
    mean of d[i][j] for j ≠ i, as a list of n floats."""
    rng = random.Random(random.randrange(10 ** 6))
    for n in (2, 5, 9):
        d = [[rng.uniform(0.2, 1.2) for _ in range(n)] for _ in range(n)]
        got, want = [float(x) for x in fn(d)], _ref_relative(d)
        assert len(got) == n, f"one value per pair: expected {n}, got {len(got)}"
        worst = max(abs(a - b) for a, b in zip(got, want))
        assert worst < 1e-9, (f"n = {n}: off by {worst:.4f} — divide by the mean over the row's *other* targets "
                              "(j ≠ i), not by the whole row's mean")
    d = [[0.1 * (1 + i + j) for j in range(4)] for i in range(4)]
    assert math.isclose(float(fn(d)[0]), _ref_relative(d)[0]), "row i is source i against every target j"
    return "✔ relative distance: right on fresh matrices; 1 means no closer than a non-translation"
