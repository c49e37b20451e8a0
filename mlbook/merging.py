"""Training-free model merging on tensors and state dicts: task arithmetic, TIES, DARE,
Breadcrumbs and DiM3 (= WIDEN's rule: per-column magnitude/direction change, ranked, softmaxed
over the models, calibrated), plus a streaming merge of safetensors folders.

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


def _topk_mask(x, k):
    """Boolean mask of the k entries of x with the largest |x| (ties broken by torch.topk)."""
    mask = _zeros_bool(x)
    if k > 0:
        mask.view(-1)[x.abs().reshape(-1).topk(k).indices] = True
    return mask


def _zeros_bool(x):
    import torch

    return torch.zeros(x.shape, dtype=torch.bool, device=x.device)


def ties(base, deltas, density=0.5, lam=1.0):
    """TIES-merging. base: shape S; deltas: K tensors of shape S.
    1. trim: keep in each τ_k its int(density·n) entries of largest |value| (n = numel), zero the rest;
    2. elect: γ = sign(Σ_k trim(τ_k)) per entry;
    3. disjoint mean: mean over the k whose trimmed value is non-zero with sign γ (0 if none);
    4. θ* = θ_B + lam · mean."""
    import torch

    T = torch.stack([d.float() for d in deltas])  # K × S
    n = T[0].numel()
    k = int(density * n)
    trimmed = torch.stack([t * _topk_mask(t, k) for t in T])  # trim(τ_k): top-k by |τ_k|
    gamma = torch.sign(trimmed.sum(0))  # γ = sign(Σ_k trim(τ_k))
    agree = (torch.sign(trimmed) == gamma) & (trimmed != 0)  # A_k = {trim(τ_k) ≠ 0, sign = γ}
    count = agree.sum(0)
    mean = (trimmed * agree).sum(0) / count.clamp(min=1)  # τ* = Σ_{k∈A} trim(τ_k) / |A|
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
    import torch

    n = delta.numel()
    lo = int(small * n)
    hi = min(n, lo + int(density * n))
    order = torch.argsort(delta.abs().reshape(-1).float(), stable=True)
    mask = _zeros_bool(delta)
    mask.view(-1)[order[lo:hi]] = True  # keep ranks lo … hi−1 of |δ|
    return mask


def breadcrumbs_merge(base, deltas, lambdas=None, density=0.7, small=0.09):
    """θ* = θ_B + Σ_k λ_k (mask_k ⊙ τ_k), mask_k = breadcrumbs(τ_k)."""
    return task_arithmetic(base, [d.float() * breadcrumbs(d, density, small) for d in deltas], lambdas)


# ---------------------------------------------------------------- DiM3 / WIDEN
def _rank01(x):
    """r = rank / n along the last dim, in [0, 1): rank 0 = smallest. Ties: ranks from a stable
    argsort of argsort, so equal values get distinct ranks in index order (earlier index = lower)."""
    import torch

    n = x.shape[-1]
    return torch.argsort(torch.argsort(x, dim=-1, stable=True), dim=-1, stable=True).float() / n


def _scores(r, t, c):
    """r: K × n (K models). s = softmax over the K models per column; where r_kj > t·mean_j(r_k·),
    s_kj = c."""
    import torch

    s = torch.softmax(r, dim=0)  # s_kj = exp(r_kj) / Σ_k' exp(r_k'j)
    over = r > t * r.mean(dim=1, keepdim=True)  # r_kj > t · mean_j r_kj
    return torch.where(over, torch.full_like(s, c), s)  # s_kj ← c there


def dim3_weights(W_B, W_list, t=1.0, c=1.0):
    """Per-column merge weights w (K × n_in) for 2-D weights W_B, W_k of shape out × in
    (columns = input dims), or per-entry weights (K × n) for 1-D weights (no ranking, one score)."""
    import torch

    B = W_B.float()
    Ws = torch.stack([w.float() for w in W_list])  # K × out × in  (or K × n)
    if B.dim() == 1:
        return _scores((Ws - B).abs(), t, c)  # s from raw |θ_k − θ_B|, w = s
    assert B.dim() == 2, "dim3_weights: 1-D or 2-D weights only"
    mB = B.norm(dim=0)  # m_Bj = ‖W_B[:, j]‖₂                              (in,)
    uB = B / (mB + EPS)  # u_Bj = W_B[:, j] / (m_Bj + ε)                  out × in
    mK = Ws.norm(dim=1)  # m_kj                                            K × in
    uK = Ws / (mK[:, None, :] + EPS)  # u_kj                               K × out × in
    dM = (mK - mB).abs()  # ΔM_kj = |m_kj − m_Bj|                          K × in
    cos = (uK * uB).sum(1) / (uK.norm(dim=1) * uB.norm(dim=0) + EPS)  # cos(u_kj, u_Bj)
    dD = 1.0 - cos  # ΔD_kj = 1 − cos(u_kj, u_Bj)                         K × in
    s_mag = _scores(_rank01(dM), t, c)  # r_kj = rank_j(ΔM_kj)/n_in, then softmax + override
    s_dir = _scores(_rank01(dD), t, c)
    return 0.5 * (s_mag + s_dir)  # w_kj = ½ (s^mag_kj + s^dir_kj)


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


# ---------------------------------------------------------------- state dicts and folders
def merge_tensor(name, base, thetas, method, lambdas=None, density=None, lam=1.0, p=0.0, seed=0,
                 small=0.09, t=1.0, c=1.0, transpose_keys=("embed_tokens",)):
    """Merge one named tensor. Non-float tensors are copied from the base. dim3: 2-D → column rule
    (transposed when a key of transpose_keys is in `name`), 1-D → vector rule, else task arithmetic.
    dare: the generator is seeded with seed + crc32(name), so the result does not depend on order."""
    import zlib

    if not base.is_floating_point():
        return base.clone()
    deltas = [task_vector(th, base) for th in thetas]
    if method == "task_arithmetic":
        return task_arithmetic(base, deltas, lambdas)
    if method == "ties":
        return ties(base, deltas, 0.5 if density is None else density, lam)
    if method == "dare":
        return dare_merge(base, deltas, p, lambdas, seed + zlib.crc32(name.encode()))
    if method == "breadcrumbs":
        return breadcrumbs_merge(base, deltas, lambdas, 0.7 if density is None else density, small)
    if method == "dim3":
        if base.dim() in (1, 2):
            tr = base.dim() == 2 and any(k in name for k in transpose_keys)
            return dim3_merge_tensor(base, thetas, t, c, transpose=tr)
        return task_arithmetic(base, deltas, lambdas)
    raise ValueError(f"unknown method {method!r}; one of {METHODS}")


def merge_state_dicts(base_sd, model_sds, method, **kw):
    """Merge every key of base_sd present in all model_sds (merge_tensor; **kw its options). Keys absent
    from the base (e.g. a vision tower) are copied from the first model holding them; base keys that some
    model lacks are copied from the base."""
    out = {}
    for name, b in base_sd.items():
        if all(name in sd for sd in model_sds):
            out[name] = merge_tensor(name, b, [sd[name] for sd in model_sds], method, **kw)
        else:
            out[name] = b.clone()
    for sd in model_sds:
        for name, v in sd.items():
            out.setdefault(name, v.clone())
    return out


def _weight_files(d):
    """{tensor name: safetensors file} for a model folder (single file or shards)."""
    from pathlib import Path

    from safetensors import safe_open

    files = sorted(Path(d).glob("*.safetensors"))
    assert files, f"no .safetensors files in {d}"
    where = {}
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            for k in h.keys():
                where[k] = f
    return where


def merge_folders(base_dir, model_dirs, out_dir, method, copy_from=None, **kw):
    """Stream-merge safetensors folders tensor by tensor (one tensor of each model in memory at a time,
    plus the current output shard). The output mirrors the base's shard layout (tensors found only in the
    models go to an extra shard) with an index json when there are several shards; the non-weight files
    (config, tokenizer, …) are copied from copy_from or model_dirs[0]. Returns out_dir as a Path."""
    import json
    import shutil
    from contextlib import ExitStack
    from pathlib import Path

    from safetensors import safe_open
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bw, mws = _weight_files(base_dir), [_weight_files(d) for d in model_dirs]
    with ExitStack() as stack:
        handles = {}

        def get(where, name):
            f = where[name]
            if f not in handles:
                handles[f] = stack.enter_context(safe_open(str(f), framework="pt"))
            return handles[f].get_tensor(name)

        shards = {}  # output file name → tensor names, base layout first
        for name, f in bw.items():
            shards.setdefault(f.name, []).append(name)
        extra = sorted({n for mw in mws for n in mw} - set(bw))
        if extra:
            shards["model-extra.safetensors"] = extra
        if len(shards) == 1:
            shards = {"model.safetensors": next(iter(shards.values()))}
        weight_map, total = {}, 0
        for fname, names in shards.items():
            tensors = {}
            for name in names:
                if name not in bw:  # only in the models: copy from the first holding it
                    i = next(i for i, mw in enumerate(mws) if name in mw)
                    tensors[name] = get(mws[i], name).contiguous()
                elif all(name in mw for mw in mws):
                    tensors[name] = merge_tensor(name, get(bw, name), [get(mw, name) for mw in mws],
                                                 method, **kw).contiguous()
                else:
                    tensors[name] = get(bw, name).contiguous()
                weight_map[name] = fname
                total += tensors[name].numel() * tensors[name].element_size()
            save_file(tensors, str(out / fname), metadata={"format": "pt"})
            del tensors
    src = Path(copy_from or model_dirs[0])
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors") and f.name != "model.safetensors.index.json":
            shutil.copy2(f, out / f.name)
    if len(shards) > 1:
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return out
