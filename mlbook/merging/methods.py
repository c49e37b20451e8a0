"""Training-free model merging on tensors: task arithmetic, TIES, DARE, Breadcrumbs and DiM3 (= WIDEN's
rule: per-column magnitude/direction change, ranked, softmaxed over the models, calibrated).

Notation: θ_B the base, θ_k (k = 1..K) the fine-tuned models, τ_k = θ_k − θ_B their task vectors.
Every function takes torch tensors, computes in float32 and returns the base's dtype."""
from __future__ import annotations

EPS = 1e-8

METHODS = ("task_arithmetic", "ties", "dare", "breadcrumbs", "dim3")


def task_vector(theta, base):
    """τ = θ − θ_B (same shape as the inputs, float32)."""
    return theta.float() - base.float()


def _lambdas(lambdas, k):
    if lambdas is None:
        return [1.0] * k
    if isinstance(lambdas, (int, float)):
        return [float(lambdas)] * k
    assert len(lambdas) == k, f"{len(lambdas)} lambdas for {k} task vectors"
    return [float(x) for x in lambdas]


def task_arithmetic(base, deltas, lambdas=None):
    """θ* = θ_B + Σ_k λ_k τ_k. base: any shape S; deltas: K tensors of shape S; lambdas: K floats
    (or one float for all; default 1)."""
    out = base.float().clone()
    for lam, d in zip(_lambdas(lambdas, len(deltas)), deltas):
        out += lam * d.float()  # θ* = θ_B + Σ λ_k τ_k
    return out.to(base.dtype)


def rank_window(a, lo, hi):
    """Boolean mask (shape of a) of the entries whose rank in the *stable* ascending order of a lies in
    [lo, hi): the same as ``order = argsort(a, stable=True); mask[order[lo:hi]] = True``, without the sort.

    The values at ranks lo and hi − 1 by two selections (:func:`_values_at_ranks`, O(n)); every entry strictly
    between them is in; entries equal to a boundary value hold consecutive ranks in index order, of which those
    inside the window are kept (:func:`rank_window_slices`, here in one slice)."""
    import torch

    flat = a.reshape(-1)
    mask = torch.zeros(flat.shape, dtype=torch.bool, device=a.device)
    for i, m in rank_window_slices(flat, lo, hi):
        mask[i:i + m.numel()] = m
    return mask.view(a.shape)


def rank_window_slices(flat, lo, hi, chunk=None):
    """:func:`rank_window`'s mask of the 1-D ``flat``, a slice of ``chunk`` entries at a time: yields
    ``(start, mask of flat[start:start + chunk])`` in order, so that a caller applying it (TIES's trim,
    :mod:`fast`) never holds a mask of the whole tensor. One rule for ties, wherever the mask is used: the
    entries equal to a boundary value v take ranks #{a < v}, #{a < v} + 1, … in index order."""
    import torch

    n = flat.numel()
    lo, hi = max(0, int(lo)), min(n, int(hi))
    chunk = n if chunk is None else int(chunk)
    spans = range(0, n, max(chunk, 1))
    if hi <= lo:
        for i in spans:
            yield i, torch.zeros(min(chunk, n - i), dtype=torch.bool, device=flat.device)
        return
    v_lo, v_hi = (float(v) for v in _values_at_ranks(flat, lo, hi - 1))
    from_min = lo == 0 and v_lo < v_hi  # then v_lo is the minimum, and all its entries (ranks 0, 1, …) are in
    # the rank of the next entry equal to each boundary value still to be decided
    nxt = {v: sum(int(torch.count_nonzero(flat[i:i + chunk] < v)) for i in spans)
           for v in ({v_hi} if from_min else {v_lo, v_hi})}
    for i in spans:
        x = flat[i:i + chunk]
        mask = x < v_hi if from_min else (x > v_lo) & (x < v_hi)
        for v in nxt:
            if nxt[v] >= hi:  # every later entry equal to v ranks past the window
                continue
            idx = (x == v).nonzero()[:, 0]
            rank = nxt[v] + torch.arange(len(idx), device=flat.device)
            nxt[v] += len(idx)
            mask[idx[(rank >= lo) & (rank < hi)]] = True
        yield i, mask


def _values_at_ranks(flat, i, j, use_numpy=None):
    """The values at ranks i and j of the 1-D ``flat`` sorted ascending, by selection (O(n), no sort): on CPU
    :func:`value_at_rank` (a sampled bracket, then numpy's introselect on the few entries inside it),
    ``kthvalue`` on a GPU."""

    if flat.device.type == "cpu" if use_numpy is None else use_numpy:
        flat = flat.detach().cpu()
        if i == 0:  # rank 0 is the minimum: no selection
            return flat.min(), value_at_rank(flat, j)
        return value_at_rank(flat, i), value_at_rank(flat, j)
    return flat.kthvalue(i + 1).values, flat.kthvalue(j + 1).values  # kthvalue counts from 1


SAMPLE = 1 << 16   # entries of the sample that brackets a rank
SLICE = 1 << 18    # entries per slice of value_at_rank's pass over the array


def _sample(flat):
    """``SAMPLE`` entries of ``flat`` at random positions (a fixed seed: the same sample every run)."""
    import torch

    return flat[torch.randint(flat.numel(), (SAMPLE,), generator=torch.Generator().manual_seed(0))]


def value_at_rank(flat, r):
    """The value at rank ``r`` (0-based) of the 1-D CPU tensor ``flat`` sorted ascending — exactly.

    A full ``np.partition`` copies the array and walks it several times. Instead: sort a sample of ``SAMPLE``
    entries at random positions (fixed seed; an evenly strided sample of a weight matrix can fall on a few of
    its columns, and those may not look like the rest); the sample's quantiles r/n ∓ 6 standard errors bracket the wanted value
    [a, b]; one pass counts the entries below a and collects those in [a, b] (≈ 0.1 % of them); if rank r
    falls among those, partitioning them gives it. Otherwise (a sample that misrepresents the tensor)
    the full partition answers: the result is exact either way, only its speed depends on the sample."""
    import math

    import numpy as np
    import torch

    n = flat.numel()
    if n <= 8 * SAMPLE:
        return torch.tensor(np.partition(flat.numpy(), r)[r])
    s = _sample(flat).numpy()
    m, q = s.size, r / n
    half = 6 * math.sqrt(q * (1 - q) / m) + 2 / m  # the bracket's half-width in quantile
    i, j = math.floor((q - half) * m), math.ceil((q + half) * m)
    ks = [x for x in (i, j) if 0 <= x < m]
    s = np.partition(s, ks) if ks else s  # the sample's order statistics i and j (no sort)
    a = torch.tensor(s[i] if i >= 0 else -math.inf)  # near either end the bracket stays open on that side
    b = torch.tensor(s[j] if j < m else math.inf)
    below, parts = 0, []
    for k in range(0, n, SLICE):  # slice by slice: the comparisons' masks are a slice each, not the array's size
        x = flat[k:k + SLICE]
        below += int(torch.count_nonzero(x < a))
        parts.append(x[(x >= a) & (x <= b)])
    inside = torch.cat(parts)
    if below <= r < below + inside.numel():
        return torch.tensor(np.partition(inside.numpy(), r - below)[r - below])
    return torch.tensor(np.partition(flat.numpy(), r)[r])


def _topk_mask(x, k):
    """Boolean mask of the k entries of x with the largest |x| (ties: the earlier index wins)."""
    return rank_window(x.abs().neg_(), 0, k)  # ranks 0 … k−1 of −|x| ascending = the k largest |x|


def _zeros_bool(x):
    import torch

    return torch.zeros(x.shape, dtype=torch.bool, device=x.device)


def _sum(ts):
    """Σ of a list of same-shaped tensors, in list order, into a new tensor."""
    out = ts[0].clone()
    for t in ts[1:]:
        out += t
    return out


def ties(base, deltas, density=0.5, lam=1.0):
    """TIES-merging. base: shape S; deltas: K tensors of shape S.
    1. trim: keep in each τ_k its int(density·n) entries of largest |value| (n = numel), zero the rest;
    2. elect: γ = sign(Σ_k trim(τ_k)) per entry;
    3. disjoint mean: mean over the k whose trimmed value is non-zero with sign γ (0 if none);
    4. θ* = θ_B + lam · mean."""
    import torch

    # one task vector at a time, never a K × S stack: a streamed merge's peak is a few copies of one weight
    k = int(density * base.numel())
    trimmed = []
    for d in deltas:
        d = d.float()
        trimmed.append(d * _topk_mask(d, k))  # trim(τ_k): top-k by |τ_k|
    gamma = torch.sign(_sum(trimmed))  # γ = sign(Σ_k trim(τ_k))
    count = torch.zeros_like(gamma, dtype=torch.int64)
    for t in trimmed:
        agree = (torch.sign(t) == gamma) & (t != 0)  # A_k = {trim(τ_k) ≠ 0, sign = γ}
        count += agree
        t.mul_(agree)  # keep only the agreeing entries (in place: trimmed[k] is not needed otherwise)
    mean = _sum(trimmed) / count.clamp(min=1)  # τ* = Σ_{k∈A} trim(τ_k) / |A|
    return (base.float() + lam * mean).to(base.dtype)  # θ* = θ_B + λ τ*


def dare(delta, p, generator=None):
    """DARE: drop each entry with probability p, rescale the survivors by 1/(1−p), so E[out] = δ.
    Mask: keep where U ≥ p, U = torch.rand(delta.shape, generator) (one draw per entry, in order)."""
    import torch

    if p <= 0:
        return delta.float().clone()
    keep = torch.rand(delta.shape, generator=generator) >= p  # m ~ Bernoulli(1 − p)
    return delta.float() * keep.to(delta.device) / (1.0 - p)  # δ̃ = m ⊙ δ / (1 − p)


def dare_merge(base, deltas, p, lambdas=None, seed=0):
    """θ* = θ_B + Σ_k λ_k DARE(τ_k, p), one torch.Generator seeded with `seed` drawn for τ_1, τ_2, … in order."""
    import torch

    g = torch.Generator().manual_seed(int(seed))
    return task_arithmetic(base, [dare(d, p, g) for d in deltas], lambdas)


def breadcrumbs(delta, density=0.7, small=0.09):
    """Breadcrumbs mask for one tensor (boolean, shape of delta): sort |δ| ascending (stable), drop the
    int(small·n) smallest, keep the next int(density·n), drop the rest (the largest outliers)."""
    n = delta.numel()
    lo = int(small * n)
    return rank_window(delta.abs().float(), lo, min(n, lo + int(density * n)))  # keep ranks lo … hi−1 of |δ|


def breadcrumbs_merge(base, deltas, lambdas=None, density=0.7, small=0.09):
    """θ* = θ_B + Σ_k λ_k (mask_k ⊙ τ_k), mask_k = breadcrumbs(τ_k)."""
    return task_arithmetic(base, [d.float() * breadcrumbs(d, density, small) for d in deltas], lambdas)


def rank01(x):
    """r = rank / n along the last dim, in [0, 1): rank 0 = smallest. Ties: ranks from a stable
    argsort of argsort, so equal values get distinct ranks in index order (earlier index = lower)."""
    import torch

    n = x.shape[-1]
    return torch.argsort(torch.argsort(x, dim=-1, stable=True), dim=-1, stable=True).float() / n


def column_scores(r, t, c):
    """r: K × n (K models). s = softmax over the K models per column; where r_kj > t·mean_j(r_k·),
    s_kj = c."""
    import torch

    s = torch.softmax(r, dim=0)  # s_kj = exp(r_kj) / Σ_k' exp(r_k'j)
    over = r > t * r.mean(dim=1, keepdim=True)  # r_kj > t · mean_j r_kj
    return torch.where(over, torch.full_like(s, c), s)  # s_kj ← c there


def column_changes(W_B, W_list):
    """Steps 1–2 of DiM3 for 2-D weights (out × in): per model k and column j the magnitude change
    ΔM_kj = |m_kj − m_Bj| and the direction change ΔD_kj = 1 − cos(u_kj, u_Bj). Returns (ΔM, ΔD), K × in."""
    import torch

    B = W_B.float()
    mB = B.norm(dim=0)  # m_Bj = ‖W_B[:, j]‖₂                              (in,)
    mK = torch.stack([w.float().norm(dim=0) for w in W_list])  # m_kj      K × in
    dM = (mK - mB).abs()  # ΔM_kj = |m_kj − m_Bj|                          K × in
    # u_j = W[:, j] / (m_j + ε) and cos(u_k, u_B) = u_k·u_B / (‖u_k‖ ‖u_B‖ + ε); with ‖u‖ = m / (m + ε) the
    # scalings cancel into one expression of the column dot products (no normalised copies of W):
    dot = torch.stack([(w.float() * B).sum(0) for w in W_list])  # W_k[:, j] · W_B[:, j]   K × in
    cos = dot / (mK * mB + EPS * (mK + EPS) * (mB + EPS))  # cos(u_kj, u_Bj)
    return dM, 1.0 - cos  # ΔD_kj = 1 − cos(u_kj, u_Bj)                   K × in


def dim3_weights(W_B, W_list, t=1.0, c=1.0):
    """Per-column merge weights w (K × n_in) for 2-D weights W_B, W_k of shape out × in
    (columns = input dims), or per-entry weights (K × n) for 1-D weights (no ranking, one score)."""
    import torch

    if W_B.dim() == 1:
        d = torch.stack([(w.float() - W_B.float()).abs() for w in W_list])
        return column_scores(d, t, c)  # s from raw |θ_k − θ_B|, w = s
    assert W_B.dim() == 2, "dim3_weights: 1-D or 2-D weights only"
    return weights_from_ranks(*dim3_ranks(W_B, W_list), t, c)


def dim3_ranks(W_B, W_list):
    """Steps 1–3 of DiM3 for a 2-D weight — what does not depend on t or c: the ranks r^mag, r^dir (K × in)
    of the columns' magnitude and direction changes (an interactive sweep of t, c computes them once)."""
    dM, dD = column_changes(W_B, W_list)  # steps 1–2
    return rank01(dM), rank01(dD)  # 3: r_kj = rank_j(Δ_kj) / n_in


def weights_from_ranks(r_mag, r_dir, t=1.0, c=1.0):
    """Steps 4–5 of DiM3 from the ranks: softmax over the models, override by c, w = ½ (s^mag + s^dir)."""
    return 0.5 * (column_scores(r_mag, t, c) + column_scores(r_dir, t, c))  # w_kj = ½ (s^mag_kj + s^dir_kj)


def dim3_merge_tensor(W_B, W_list, t=1.0, c=1.0, transpose=False):
    """DiM3 merge of one 1-D or 2-D weight: W*[:, j] = W_B[:, j] + Σ_k w_kj τ_k[:, j].
    transpose=True (token embedding, vocab × hidden): merge W.T so one column is one token."""
    if transpose:
        return dim3_merge_tensor(W_B.T, [w.T for w in W_list], t, c).T.contiguous()
    w = dim3_weights(W_B, W_list, t, c)  # K × in  (K × n for 1-D)
    out = W_B.float().clone()
    for wk, Wk in zip(w, W_list):
        out += wk * task_vector(Wk, W_B)  # W* = W_B + Σ_k w_k ⊙ τ_k, w_k broadcast over rows
    return out.to(W_B.dtype)
