"""Where does a behaviour live?  Activation patching and its first-order shortcut.

A *clean* prompt shows the behaviour (``The capital of France is`` → ``Paris``), a
*corrupted* one of the same length does not (``… of Italy is``).  A metric ``m`` of the
logits (e.g. the logit difference ``Paris − Rome``) separates them.  For an activation
``a`` (an address, a position, maybe a slice of its features):

    activation patching   Δ(a) = m(corrupted run with a := a_clean) − m(corrupted run)

one forward pass per patch.  Here every patch is a row of one batch: the corrupted prompt
repeated R times, row r patched at its own address, positions and features, so a grid of
30 layers × 5 positions costs one pass of 150 short rows, not 150 passes.

    attribution patching  Δ̂(a) = (a_clean − a_corrupted) · ∂m/∂a |corrupted

the first-order Taylor expansion of Δ around the corrupted run: one clean forward, one
corrupted forward and one backward give Δ̂ for every address and position at once.  It is
exact when m is linear in a along that segment, and fails where the patch changes
attention patterns or saturates a softmax.
"""
from __future__ import annotations

from . import gradients, hooks


def _ids(x):
    import torch

    x = x["input_ids"] if hasattr(x, "keys") else x
    x = torch.as_tensor(x)
    return x[None] if x.dim() == 1 else x


def _check(clean, corrupted):
    if clean.shape[0] != 1 or clean.shape != corrupted.shape:
        raise ValueError(f"clean and corrupted must be one prompt each, of the same length: got shapes "
                         f"{tuple(clean.shape)} and {tuple(corrupted.shape)} (pad or reword the pair)")


def _metric_of(metric, logits):
    m = metric(logits)
    if m.dim() != 1 or m.shape[0] != logits.shape[0]:
        raise ValueError(f"metric must map logits (B,T,V) to one value per row (B,), got shape {tuple(m.shape)}")
    return m


def patch_rows(model, corrupted, patches, metric, batch_size: int = 160):
    """``Δ`` for R patches: row r of a batch of copies of the corrupted prompt takes, at address
    ``patches[r][0]``, the clean activation ``patches[r][1]`` (1,T,D) where ``patches[r][2]`` (a (T,D)
    bool mask) is set.  Rows of different addresses share a batch (each address's hook edits
    only its own rows), so a whole grid costs ⌈R / batch_size⌉ forward passes.  Returns (R,).

    Two rules keep float rounding out of the cells of no effect, where it would rank them at random among
    the small real effects.  Each batch carries the unpatched corrupted run as its row 0 and Δ is taken
    against that row, so a patch whose change cannot reach the metric (the last layer's outputs at earlier
    tokens) gives 0, not the difference between a row of a large batch and an unbatched run (≈ 1e-6, its
    sign set by the machine's kernels).  A patch that writes what the corrupted run already holds (every
    token before the first one where the prompts differ, in a causal model) leaves the run as it was: Δ = 0
    by definition, returned without a forward pass."""
    import torch

    dev = hooks._device(model)
    corrupted = corrupted.to(dev)
    addresses = list(dict.fromkeys(p[0] for p in patches))
    _, corr = hooks.run_with_cache(model, corrupted, addresses)  # what each address holds in the corrupted run

    def changes(address, clean, mask):  # does the patch write any value the corrupted run does not hold?
        c = corr[address][0]
        return bool((torch.broadcast_to(mask.to(dev), c.shape) & (clean[0].to(dev, c.dtype) != c)).any())

    live = [r for r, p in enumerate(patches) if changes(*p)]
    delta = torch.zeros(len(patches))
    with torch.no_grad():
        for s in range(0, len(live), batch_size):
            chunk = [patches[r] for r in live[s:s + batch_size]]
            fns = {}
            for address in dict.fromkeys(p[0] for p in chunk):
                rows = [i for i, p in enumerate(chunk) if p[0] == address]
                clean = torch.cat([chunk[i][1] for i in rows]).to(dev)                     # (r,T,D)
                mask = torch.stack([torch.broadcast_to(chunk[i][2], clean.shape[1:]) for i in rows]).to(dev)
                idx = torch.tensor(rows, device=dev) + 1  # row 0 of the batch: the corrupted run itself

                def put(act, idx=idx, clean=clean, mask=mask):
                    act = act.clone()
                    act[idx] = torch.where(mask, clean.to(act.dtype), act[idx])
                    return act
                fns[address] = put
            with hooks.hooked(model, fns):
                logits = model(input_ids=corrupted.expand(1 + len(chunk), -1)).logits
            m = _metric_of(metric, logits)
            delta[live[s:s + batch_size]] = (m[1:] - m[0]).float().cpu()  # against the unpatched row of the same batch
    return delta


def position_masks(T: int, D: int, positions=None):
    """One (T,D) mask per position: that token, all features."""
    import torch

    positions = range(T) if positions is None else positions
    masks = []
    for p in positions:
        k = torch.zeros(T, D, dtype=torch.bool)
        k[p] = True
        masks.append(k)
    return masks


def head_masks(T: int, n_heads: int, d_head: int, positions=None):
    """One (T, H·d_head) mask per head of ``attn_z``: that head's features, at ``positions`` (all by default)."""
    import torch

    masks = []
    for h in range(n_heads):
        k = torch.zeros(T, n_heads * d_head, dtype=torch.bool)
        k[slice(None) if positions is None else positions, h * d_head:(h + 1) * d_head] = True
        masks.append(k)
    return masks


def activation_patching(model, clean, corrupted, metric, addresses, positions=None, batch_size: int = 160):
    """Grid ``Δ[address, position]`` (tensor len(addresses) × len(positions)): patch one address
    at one position from the clean run into the corrupted run, every cell a row of a batch."""
    clean, corrupted = _ids(clean), _ids(corrupted)
    _check(clean, corrupted)
    addresses = hooks._as_list(addresses)
    _, cache = hooks.run_with_cache(model, clean, addresses)
    T = clean.shape[1]
    positions = list(range(T)) if positions is None else list(positions)
    patches = [(a, cache[a], m) for a in addresses for m in position_masks(T, cache[a].shape[-1], positions)]
    return patch_rows(model, corrupted, patches, metric, batch_size).view(len(addresses), len(positions))


def head_patching(model, clean, corrupted, metric, layers=None, positions=None, batch_size: int = 160):
    """Grid ``Δ[layer, head]``: patch one head's output (``attn_z``, its d_head features) at
    ``positions`` (all by default) from the clean run into the corrupted run."""
    clean, corrupted = _ids(clean), _ids(corrupted)
    _check(clean, corrupted)
    layers = range(hooks.n_layers(model)) if layers is None else layers
    addresses = [hooks.addr(layer, "attn_z") for layer in layers]
    _, cache = hooks.run_with_cache(model, clean, addresses)
    H = hooks.n_heads(model)
    T, D = cache[addresses[0]].shape[1:]
    patches = [(a, cache[a], m) for a in addresses for m in head_masks(T, H, D // H, positions)]
    return patch_rows(model, corrupted, patches, metric, batch_size).view(len(addresses), H)


def attribution_patching(model, clean, corrupted, metric, addresses, positions=None):
    """Grid ``Δ̂[address, position] = Σ_features (a_clean − a_corr) · ∂m/∂a`` from one clean
    forward, one corrupted forward and one backward pass."""
    import torch

    clean, corrupted = _ids(clean), _ids(corrupted)
    _check(clean, corrupted)
    addresses = hooks._as_list(addresses)
    _, cache = hooks.run_with_cache(model, clean, addresses)
    dev = hooks._device(model)
    with torch.enable_grad(), gradients.capture_grads(model, addresses) as (acts, grads):
        _metric_of(metric, model(input_ids=corrupted.to(dev)).logits).sum().backward()
    positions = slice(None) if positions is None else positions
    return torch.stack([((cache[a] - acts[a]) * grads[a]).sum(-1)[0, positions] for a in addresses]).float().cpu()


def logit_difference(right: int, wrong: int, position: int = -1):
    """The metric ``logit[right] − logit[wrong]`` at ``position``, per row."""
    def metric(logits):
        return logits[:, position, right] - logits[:, position, wrong]
    return metric


def integrated_patching(model, clean, corrupted, metric, address: str, steps: int = 8):
    """Integrated-gradients patching of one address (per position):

        Δ̃(a) = Σ_features (a_clean − a_corr) · (1/m) Σ_{k=0}^{m−1} ∂m/∂a |_{a_corr + (k/m)(a_clean − a_corr)}

    the gradient averaged along the straight path from the corrupted to the clean activation (a left
    Riemann sum), with the whole activation at ``address`` moved along the path.  ``steps = 1`` is
    attribution patching; as ``steps`` grows, the sum over positions tends to the exact effect of
    patching the whole activation (completeness)."""
    import torch

    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    clean, corrupted = _ids(clean), _ids(corrupted)
    _check(clean, corrupted)
    _, c_cache = hooks.run_with_cache(model, clean, address)
    _, k_cache = hooks.run_with_cache(model, corrupted, address)
    a_clean, a_corr = c_cache[address], k_cache[address]
    dev = hooks._device(model)
    total = torch.zeros_like(a_corr, dtype=torch.float32)
    for k in range(steps):
        point = a_corr + (k / steps) * (a_clean - a_corr)
        with torch.enable_grad(), hooks.patch(model, {address: point}), \
                gradients.capture_grads(model, address) as (_, grads):
            _metric_of(metric, model(input_ids=corrupted.to(dev)).logits).sum().backward()
        total += grads[address].float()
    return ((a_clean - a_corr).float() * total / steps).sum(-1)[0].cpu()
