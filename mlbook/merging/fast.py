"""The streamed merge's kernels: TIES and DiM3 as :mod:`methods` defines them, computed with fewer passes over
memory and fewer tensors alive.

:mod:`methods` is the readable path — one line per step of each paper's rule, the code the chapter prints.
Here the same arithmetic runs in place: with ``consume=True`` the fine-tuned tensors θ_k (fresh reads of a
streamed merge, used once) become their task vectors τ_k = θ_k − θ_B in their own memory, and each
intermediate overwrites the last. A merge of one tensor then holds the base, the K inputs and one tensor more
of its size (TIES: −|τ_k| during a selection; DiM3: the output); the readable path holds about twice that. Every result equals the readable one bit for
bit (the same floating-point operations in the same order: ``tests/merging/test_fast.py``).

Where the time and memory of a streamed merge of a 135M-parameter model went (``bench/bench_dim3_merge.py``,
profiled tensor by tensor): for TIES, the selection of each task vector's top-k — a full ``np.partition`` copies
and walks the array; :func:`methods.value_at_rank` brackets the rank from a sample first, and that sample must be
drawn at random positions: an evenly strided one fell on four of the embedding's 576 columns, missed, and the
full partition ran anyway. Then the elementwise passes, each allocating a temporary of the tensor's size; a
boolean mask multiplied into a float tensor is itself converted to a float copy, and 28 MB masks freed and
reallocated stay in the heap. Done slice by slice (``CHUNK``), the passes keep their temporaries small and in
the cache: the peak is the tensors themselves. Reading the three models and writing one is the rest."""
from __future__ import annotations

from .methods import (
    column_changes,
    dim3_merge_tensor,
    rank01,
    rank_window_slices,
    weights_from_ranks,
)


def _deltas(base, thetas, consume):
    """τ_k = θ_k − θ_B in float32; with ``consume``, in θ_k's own memory where θ_k is float32 already."""
    b = base.float()
    return [th.sub_(b) if consume and th.dtype == b.dtype else th.float() - b for th in thetas]


CHUNK = 1 << 18   # entries per slice of the elementwise passes: their temporaries stay in the cache, not in RSS


def _trim_(t, k):
    """trim(τ) in place: keep the k entries of largest |τ| (ties: the earlier index wins), zero the rest — the mask
    of :func:`methods._topk_mask` (ranks 0 … k−1 of −|τ|), formed and applied a slice at a time by
    :func:`methods.rank_window_slices`."""
    flat = t.view(-1)
    if k >= flat.numel():
        return t
    for i, keep in rank_window_slices(flat.abs().neg_(), 0, k, CHUNK):
        flat[i:i + keep.numel()].mul_(keep)
    return t


def ties(base, thetas, density=0.5, lam=1.0, consume=False):
    """:func:`methods.ties` on the fine-tuned tensors θ_k (not their task vectors): the same result.

    Only the trim needs the whole tensor (a top-k over all its entries); the other steps are elementwise and run
    slice by slice (``CHUNK`` entries), so their temporaries — γ, |A|, the agreement masks — are a slice each, not
    a tensor each. Alive at the peak: θ_B, the K task vectors and −|τ_k| of one selection."""
    import torch

    k = int(density * base.numel())
    trimmed = [_trim_(t, k) for t in _deltas(base, thetas, consume)]  # trim(τ_k): top-k by |τ_k|
    flat, b = [t.view(-1) for t in trimmed], base.float().reshape(-1)
    for i in range(0, b.numel(), CHUNK):
        ts = [t[i:i + CHUNK] for t in flat]  # views: every step below writes through them
        gamma = ts[0].clone()
        for t in ts[1:]:
            gamma += t
        gamma.sign_()  # γ = sign(Σ_k trim(τ_k))
        count = torch.zeros_like(gamma)  # |A| per entry (small integers: exact in float32)
        for t in ts:
            agree = torch.mul(t, gamma).gt_(0)  # t·γ > 0 ⟺ t ≠ 0 and sign(t) = γ
            count += agree
            t.mul_(agree)
        mean = ts[0]  # Σ_k of the agreeing entries, into the first task vector's memory
        for t in ts[1:]:
            mean += t
        mean.div_(count.clamp_(min=1))
        if lam != 1.0:
            mean.mul_(lam)
        mean.add_(b[i:i + CHUNK])  # θ* = θ_B + λ τ*
    return trimmed[0].to(base.dtype)


def dim3_merge_tensor_fast(W_B, W_list, t=1.0, c=1.0, transpose=False, consume=False):
    """:func:`methods.dim3_merge_tensor` with the weighted task vectors formed in the inputs' memory and added
    in place, and the embedding's transpose merged through views (no transposed copies)."""
    if W_B.dim() != 2:
        return dim3_merge_tensor(W_B, W_list, t, c, transpose)
    B = W_B.float()
    Ws = [w if consume and w.dtype == B.dtype else w.float().clone() for w in W_list]
    if transpose:  # one column = one token: work on transposed views, written back through them
        B, Ws = B.T, [w.T for w in Ws]
    dM, dD = column_changes(B, Ws)  # steps 1–2 (model by model: no K × out × in stack)
    w = weights_from_ranks(rank01(dM), rank01(dD), t, c)  # steps 3–5
    out = B.clone()  # the layout of B (a transposed view stays transposed: out.T is contiguous)
    for wk, W in zip(w, Ws):
        out += W.sub_(B).mul_(wk)  # W* = W_B + Σ_k w_k ⊙ τ_k
    out = out.T if transpose else out
    return out.contiguous().to(W_B.dtype)
