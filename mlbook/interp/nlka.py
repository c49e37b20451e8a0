"""NLKA (Yu & Ananiadou 2024): how much a component's write raises the log-probability of a token.

For a token w, a component that writes v into a residual stream h at the last position has importance

    Imp(v) = log p(w | h + v) − log p(w | h),     p(· | x) = softmax(W_U (g ⊙ x / s)),

where ``g`` is the final norm's gain and ``s = sqrt(σ² + ε)`` is frozen at the scale of the model's *real*
final residual (σ² = mean(x_final²) for RMSNorm): the final norm treated as the linear map it is at that
one scale, so that the importance of every component is read with the same ruler (``frozen_scale``,
``frozen_logits``).  The components:

- layer level, attention: v = the attention output of layer l, h = the layer's input (``resid_pre``);
- layer level, FFN: v = the MLP's output, h = the residual after attention (``resid_pre + attn_out``);
- neuron level, FFN: v = m_i · W_down[:, i] for neuron i (m = ``mlp_post``), h = the residual after
  attention.  Then W_U (g ⊙ v) / s = (m_i / s) · (W_U diag(g) W_down)[:, i], so one (vocab, d_mlp) matrix per
  layer (``neuron_readout``) turns every neuron's importance into a rank-one update of the logits of h.

On Gemma-3 the final logits are soft-capped; the same cap is applied here.
"""
from __future__ import annotations

from mlbook.models.layout import decoder_stack, soft_cap, softcapping
from mlbook.text.batching import right_pad

from . import hooks


def _f(x):
    """At least float32 (a bf16 model is read in float32; a float64 one, as in the tests, stays float64)."""
    import torch

    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _gain(model):
    """The final norm's elementwise gain (Gemma's RMSNorm scales by 1 + weight)."""
    norm = decoder_stack(model).norm
    w = _f(norm.weight.detach())
    return 1.0 + w if "Gemma" in type(norm).__name__ else w


def _eps(model) -> float:
    norm = decoder_stack(model).norm
    return float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))


def frozen_scale(model, final_resid):
    """``s = sqrt(mean(x²) + ε)`` of the real final residual(s) ``final_resid`` (..., d) -> (..., 1)."""
    x = _f(final_resid)
    return (x.pow(2).mean(-1, keepdim=True) + _eps(model)).sqrt()


def frozen_logits(model, x, scale):
    """``W_U (g ⊙ x / s)`` (soft-capped where the model caps): the logits of residual(s) ``x`` (..., d) read
    through the final norm frozen at ``scale`` (..., 1).  At ``x`` = the real final residual this is the
    model's own logits."""
    W = _f(hooks.unembed(model))
    return soft_cap((_gain(model) * _f(x) / scale) @ W.T, softcapping(model))


def importance(model, v, h, scale, targets):
    """``Imp = log p(w | h + v) − log p(w | h)`` for each target token ``w`` -> (..., len(targets)).

    ``v``, ``h`` (..., d); ``scale`` (..., 1) broadcastable; ``targets`` a list of token ids."""
    import torch

    lp_with = torch.log_softmax(frozen_logits(model, h + v, scale), -1)[..., targets]
    lp_without = torch.log_softmax(frozen_logits(model, h, scale), -1)[..., targets]
    return lp_with - lp_without


def last_position_states(model, prompts: list[list[int]], pad_id: int = 0):
    """``{"resid_pre", "attn_out", "mlp_out", "mlp_post": (N, L, ·), "final": (N, d)}`` at each prompt's last
    token, float32 on the CPU (right-padded batches)."""
    import torch

    L = hooks.n_layers(model)
    sites = ("resid_pre", "attn_out", "mlp_out", "mlp_post")
    addresses = [hooks.addr(layer, site) for layer in range(L) for site in sites] + [hooks.addr(L - 1, "resid_post")]
    ids, mask = right_pad(prompts, pad_id)
    dev = hooks._device(model)
    _, cache = hooks.run_with_cache(model, {"input_ids": ids.to(dev), "attention_mask": mask.to(dev)}, addresses,
                                    logits_to_keep=1)
    rows, last = torch.arange(len(prompts)), (mask.sum(1) - 1)

    def at(a):
        return _f(cache[a][rows, last.to(cache[a].device)]).cpu()
    out = {site: torch.stack([at(hooks.addr(layer, site)) for layer in range(L)], 1) for site in sites}
    out["final"] = at(hooks.addr(L - 1, "resid_post"))
    return out


def layer_importance(model, prompts: list[list[int]], targets: list[list[int]], pad_id: int = 0):
    """``{"attn": (N, L, T), "ffn": (N, L, T)}``: the layer-level importance of every layer's attention and
    FFN for each prompt's targets (``targets[n]``: T token ids of prompt n), at its last token."""
    import torch

    st = last_position_states(model, prompts, pad_id)
    s = frozen_scale(model, st["final"])[:, None]                       # (N, 1, 1)
    tg = torch.as_tensor(targets)                                         # (N, T)
    out = {}
    for name, v, h in (("attn", st["attn_out"], st["resid_pre"]),
                       ("ffn", st["mlp_out"], st["resid_pre"] + st["attn_out"])):
        rows = []
        for n in range(len(prompts)):                                     # one prompt's 2L vectors at a time
            rows.append(importance(model, v[n], h[n], s[n], tg[n].tolist()))
        out[name] = torch.stack(rows)
    return out


def neuron_readout(model, layer: int):
    """``R = W_U diag(g) W_down`` (vocab, d_mlp): what each neuron of ``layer``'s MLP writes, read as logits
    by the frozen final norm (before the 1/s)."""
    w_down = _f(hooks.mlp_weights(model, layer)[2])                      # (d, d_mlp)
    return _f(hooks.unembed(model)) @ (_gain(model)[:, None] * w_down)


def neuron_importance(model, layer: int, h, m, scale, targets, readout=None, chunk: int = 512):
    """(d_mlp, T): every FFN neuron's importance ``log p(w | h + m_i W_down[:, i]) − log p(w | h)`` at one
    position.  ``h`` (d,) the residual after attention, ``m`` (d_mlp,) the neurons' activations, ``scale``
    the frozen scale (1,) or a float; ``readout`` from ``neuron_readout`` (computed if None).

    Exact, not a first-order estimate: the logits of h + v_i are z_h + (m_i / s) R[:, i]; only their
    log-sum-exp is computed per neuron, in chunks of ``chunk`` neurons.  Soft-capping (Gemma) is not linear,
    so there it is computed per neuron the slow way."""
    import torch

    R = neuron_readout(model, layer) if readout is None else readout
    s = float(scale.reshape(-1)[0]) if hasattr(scale, "reshape") else float(scale)
    if softcapping(model):
        v = _f(m)[:, None] * _f(hooks.mlp_weights(model, layer)[2]).T             # (d_mlp, d)
        return torch.cat([importance(model, v[i:i + chunk], _f(h)[None], s, targets)
                          for i in range(0, len(v), chunk)])
    z = frozen_logits(model, _f(h), s)                               # (vocab,)
    lp_without = torch.log_softmax(z, -1)[targets]                       # (T,)
    out = []
    for i in range(0, R.shape[1], chunk):
        zi = z[None] + (_f(m)[i:i + chunk, None] / s) * R[:, i:i + chunk].T      # (c, vocab)
        out.append(torch.log_softmax(zi, -1)[:, targets] - lp_without)
    return torch.cat(out)
