"""Batches of token sequences: one implementation each of padding to ``(ids, mask)``, position ids that
count real tokens, and a seeded order over a training set, epoch after epoch.

Left padding (``left_pad``) puts every row's last real token in the last column, so that one new token
per row extends the whole batch (sampling, scoring candidates from a prompt's cache); right padding
(``right_pad``) keeps token ``t`` of every row in column ``t`` (training batches, statistics).
"""
from __future__ import annotations

import random
from typing import Any, NamedTuple


def left_pad(seqs: list[list[int]], pad_id: int):
    """``(ids, mask)``: (B, T) tensors, each row right-aligned (padding on the left)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        if s:
            ids[r, width - len(s):] = torch.tensor(s)
            mask[r, width - len(s):] = 1
    return ids, mask


def right_pad(seqs: list[list[int]], pad_id: int, width: int | None = None):
    """``(ids, mask)``: (B, T) tensors, each row left-aligned (padding on the right)."""
    import torch

    width = width or max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        s = s[:width]
        if s:
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
    return ids, mask


def positions(mask):
    """Position ids that count only real tokens: 0 at each row's first non-pad token."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class Joined(NamedTuple):
    """Prompts followed by completions: ``ids`` and ``mask`` (B, T); ``ids[:, start:]`` are the completions."""

    ids: Any
    mask: Any
    start: int


def joined(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> Joined:
    """Prompts (left-padded) followed by completions (right-padded), for scoring a rollout.

    Returns ``Joined(ids, mask, start)`` where ``ids[:, start:]`` are the completions: the logits that
    predict completion token ``t`` sit at column ``start - 1 + t`` for every row alike.
    ``comp_mask = mask[:, start:]`` marks real completion tokens.
    """
    import torch

    p_ids, p_mask = left_pad(prompts, pad_id)
    c_ids, c_mask = right_pad(completions, pad_id)
    return Joined(torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1), p_ids.shape[1])


class EpochOrder:
    """Indices ``0 … n−1`` epoch after epoch, each epoch a fresh shuffle drawn from one seeded RNG:
    ``order.first(k)`` are the first ``k`` indices of that endless sequence.  Extending it later draws
    from where the RNG stopped, so the sequence does not depend on how far ahead anyone asked.

    ``rng``: a seed or a ``random.Random`` (which a caller may go on drawing from afterwards)."""

    def __init__(self, n: int, rng: int | random.Random = 0):
        if n < 1:
            raise ValueError(f"an epoch order needs at least one item (got n={n})")
        self.n, self.rng, self.order = n, rng if isinstance(rng, random.Random) else random.Random(rng), []

    def first(self, k: int) -> list[int]:
        while len(self.order) < k:
            idx = list(range(self.n))
            self.rng.shuffle(idx)
            self.order += idx
        return self.order[:k]

    def batch(self, i: int, batch_size: int) -> list[int]:
        """The indices of batch ``i`` (batches of ``batch_size`` consecutive entries)."""
        return self.first((i + 1) * batch_size)[i * batch_size:]
