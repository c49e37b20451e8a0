"""Batches of texts of similar length, and the way back to the input order.

A batch is padded to its longest row, so a batch that mixes a 5-token and a 60-token text spends most of its
work on padding. Sorting the texts by length once and cutting the sorted list into batches keeps every batch
nearly as wide as its rows (sentence-transformers' ``encode`` does the same):

    batches = by_length(lengths, batch_size)      # lists of input positions, shortest texts first
    out = torch.cat([f(batch) for batch in batches])[input_order(batches)]   # row i ↔ input i again

Only inference may batch this way: a training batch drawn by length is not a random sample.
"""
from __future__ import annotations


def by_length(lengths, batch_size: int) -> list[list[int]]:
    """The positions 0..n-1 sorted by ``lengths`` (ties keep their input order), cut into batches of
    ``batch_size`` (the last one shorter)."""
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number ≥ 1, got {batch_size!r}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def input_order(batches: list[list[int]]) -> list[int]:
    """For each input position, its row in the batches' outputs stacked in batch order: index the stacked
    output with it to get the rows back in input order."""
    flat = [i for b in batches for i in b]
    if sorted(flat) != list(range(len(flat))):
        raise ValueError("the batches must hold every position 0..n-1 exactly once")
    back = [0] * len(flat)
    for row, i in enumerate(flat):
        back[i] = row
    return back
