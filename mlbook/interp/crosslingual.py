"""Cross-lingual similarity of hidden states, layer by layer: does a model represent the same input,
written in two languages, alike?

For a pair (x_a, x_b) of the same content in languages a and b, and a layer ℓ,

    h_ℓ(x) = mean over the pooled positions of x of the residual stream after layer ℓ   (ℓ = 0: embeddings)
    sim_ℓ  = mean over pairs of cos(h_ℓ(x_a), h_ℓ(x_b)).

The pooled positions are chosen by the caller (e.g. the question tokens only, so that an image or an
English context shared by both inputs does not count as agreement).
"""
from __future__ import annotations


def pooled_states(model, inputs: list[list[int]], pool: list[list[int]], pad_id: int = 0, pixel_values=None,
                  batch_size: int = 64):
    """Mean hidden state over the positions flagged in ``pool`` (one 0/1 list per input), at every layer:
    a float tensor (n_inputs, n_layers + 1, d). Inputs are right-padded; pixel_values: None or (n, 3, H, W)."""
    import torch

    dev = next(model.parameters()).device
    out = []
    for s in range(0, len(inputs), batch_size):
        chunk, pchunk = inputs[s : s + batch_size], pool[s : s + batch_size]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        att = torch.zeros((len(chunk), width), dtype=torch.long)
        pm = torch.zeros((len(chunk), width))
        for r, (x, p) in enumerate(zip(chunk, pchunk)):
            ids[r, : len(x)], att[r, : len(x)], pm[r, : len(x)] = torch.tensor(x), 1, torch.tensor(p, dtype=torch.float)
        kw = {} if pixel_values is None else {"pixel_values": pixel_values[s : s + batch_size].to(dev)}
        with torch.no_grad():
            hs = model(input_ids=ids.to(dev), attention_mask=att.to(dev), output_hidden_states=True, logits_to_keep=1,
                       **kw).hidden_states  # logits_to_keep=1: the LM head (a fifth of the compute) is not needed
        h = torch.stack([x.float() for x in hs], 1)  # (b, L + 1, T, d)
        w = pm.to(dev)[:, None, :, None]  # (b, 1, T, 1)
        out.append(((h * w).sum(2) / w.sum(2).clamp(min=1)).cpu())  # (b, L + 1, d)
    return torch.cat(out)


def pair_similarity(states_a, states_b):
    """Per pair and layer, the cosine between paired pooled states (n, L + 1, d) → (n, L + 1) tensor."""
    import torch.nn.functional as F

    return F.cosine_similarity(states_a, states_b, dim=-1)


def layer_similarity(states_a, states_b):
    """Per-layer mean cosine between paired pooled states (n, L + 1, d) → (L + 1,) tensor."""
    return pair_similarity(states_a, states_b).mean(0)


def thirds(n_layers: int) -> tuple[range, range, range]:
    """Layers 1 … n_layers (the embedding layer 0 excluded) split into lower, middle and upper thirds."""
    k = n_layers // 3
    lo, mid = range(1, 1 + k), range(1 + k, 1 + n_layers - k)
    return lo, mid, range(1 + n_layers - k, 1 + n_layers)
