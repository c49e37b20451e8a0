"""The geometry of two losses' gradients on shared parameters: do they pull the same way?

For losses L_1, L_2 and the shared parameters θ (flattened, or one block of them at a time),

    g_k = ∇_θ L_k,      cos(g_1, g_2) = g_1 · g_2 / (‖g_1‖ ‖g_2‖),      ratio = ‖g_1‖ / ‖g_2‖.

A step along −g_2 changes L_1 by about −η g_1·g_2: a cosine near 0 means optimising one objective does
little for the other.  In millions of dimensions two unrelated directions are nearly orthogonal anyway,
so a cosine means something only against a null: the cosine between the *same* loss's gradients on two
disjoint batches (how much one batch's gradient agrees with another's, from sampling alone).

    grads = loss_gradients(loss, params)                   # {name: gradient}, the graph is freed
    geometry(grads_align, grads_task, block_of)            # {"global": {...}, "<block>": {...}}
"""
from __future__ import annotations

import re


def loss_gradients(loss, params: dict) -> dict:
    """``{name: ∂loss/∂p}`` for the named parameters ``params`` (a zero tensor where the loss does not reach)."""
    import torch

    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(params[n])).detach() for n, g in zip(names, grads)}


def layer_block(name: str) -> str:
    """The block a parameter belongs to: ``…layer.<i>.…`` → ``layer <i>``; anything else by its first two name parts."""
    m = re.search(r"(?:^|\.)layers?\.(\d+)\.", name)
    return f"layer {int(m.group(1))}" if m else ".".join(name.split(".")[:2])


def geometry(g1: dict, g2: dict, block_of=layer_block) -> dict:
    """Cosine, both norms and their ratio, globally and per block (``block_of(name)``), summed in float64."""
    if set(g1) != set(g2):
        raise ValueError(f"the two gradients cover different parameters: {sorted(set(g1) ^ set(g2))[:5]} …")
    parts: dict[str, list[str]] = {"global": list(g1)}
    for n in g1:
        parts.setdefault(block_of(n), []).append(n)
    out = {}
    for block, names in parts.items():
        dot = sum(float((g1[n].double() * g2[n].double()).sum()) for n in names)
        n1 = sum(float(g1[n].double().pow(2).sum()) for n in names) ** 0.5
        n2 = sum(float(g2[n].double().pow(2).sum()) for n in names) ** 0.5
        out[block] = {"cos": dot / (n1 * n2) if n1 > 0 and n2 > 0 else float("nan"),
                      "norm_1": n1, "norm_2": n2, "ratio": n1 / n2 if n2 > 0 else float("inf")}
    return out
