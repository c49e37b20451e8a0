"""Which neurons carry a prediction?  Integrated gradients over one MLP layer's neurons.

For the activations ``a`` (d_mlp,) of layer ℓ's neurons (``mlp_post``, the input of ``down_proj``) at one
position, and a scalar F of the output (e.g. P(y)), the attribution of neuron i is (Sundararajan et al.
2017, applied to neurons as in Dai et al. 2022)

    IG_i = a_i · ∫₀¹ ∂F(α a)/∂a_i dα  ≈  a_i · (1/m) Σ_{k=1..m} ∂F((k/m) a)/∂a_i

the gradient averaged along the path that scales the layer's activations at that position from 0 to
their value (a right Riemann sum of m steps).  *Completeness*: Σ_i IG_i = F(a) − F(0), up to the
step error, where F(0) is the run with those activations zeroed.  All m steps of B prompts run as
rows of one batch (``batch_size`` rows at a time), so F is ``metric(logits, rows)``: ``rows`` (R,) says
which prompt each row of the logits belongs to (e.g. to pick each prompt's own target token).
"""
from __future__ import annotations

from . import gradients, hooks


def neuron_ig(model, ids, layer: int, metric, steps: int = 20, position: int = -1, batch_size: int = 160,
              logits_to_keep: int = 0):
    """``(attributions (B, d_mlp), F(a) (B,), F(0) (B,))`` for ``ids`` (B,T) of one length; ``metric(logits)
    rows) -> (R,)`` is F.  Row (b, k) of the batch scales prompt b's activations at ``position`` by k/m.
    ``logits_to_keep = 1`` computes only the last position's logits (for an F that reads only those)."""
    import torch

    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    ids = torch.as_tensor(ids)
    if ids.dim() != 2:
        raise ValueError(f"ids must be (B,T) token ids of one length, got shape {tuple(ids.shape)}")
    address = hooks.addr(layer, "mlp_post")
    dev = hooks._device(model)
    every = torch.arange(ids.shape[0], device=dev)
    keep = gradients.keep_logits(logits_to_keep, ids.shape[1])
    with torch.no_grad():
        out, cache = hooks.run_with_cache(model, ids, address, logits_to_keep=keep)
        full = metric(out.logits, every).float().cpu()
        with hooks.ablate(model, address, positions=[position]):
            zero = metric(model(input_ids=ids.to(dev), logits_to_keep=keep).logits, every).float().cpu()
    a = cache[address][:, position].to(dev)                                   # (B, d_mlp)
    B = ids.shape[0]
    rows = [(b, k) for b in range(B) for k in range(1, steps + 1)]
    total = torch.zeros(B, a.shape[-1], dtype=torch.float32, device=dev)
    for s in range(0, len(rows), batch_size):
        chunk = rows[s:s + batch_size]
        b_idx = torch.tensor([b for b, _ in chunk], device=dev)
        alpha = torch.tensor([k / steps for _, k in chunk], device=dev, dtype=a.dtype)

        def scaled(act, b_idx=b_idx, alpha=alpha):
            act = act.clone()
            act[:, position] = alpha[:, None] * a[b_idx]
            return act
        with torch.enable_grad(), gradients.frozen(model), hooks.hooked(model, {address: scaled}), \
                gradients.capture_grads(model, address) as (_, grads):
            metric(model(input_ids=ids.to(dev)[b_idx], logits_to_keep=keep).logits, b_idx).sum().backward()
        total.index_add_(0, b_idx, grads[address][:, position].float())
    return (a.float() * total / steps).cpu(), full, zero


def completeness_error(attributions, full, zero):
    """|Σ_i IG_i − (F(a) − F(0))| per prompt: what the m-step sum misses."""
    return (attributions.sum(-1) - (full - zero)).abs()
