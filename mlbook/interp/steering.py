"""Steering vectors: move the residual stream along a direction that separates two sets of prompts.

Difference of means (contrastive activation addition): for prompts that show a behaviour
(P) and prompts that do not (N), at a site ``a`` and the last token,

    v_a = mean_{x ∈ P} a(x) − mean_{x ∈ N} a(x),

and the steered model runs with ``a ← a + α v_a`` (``hooks.add``) -- at every token, or only
at the last.  ``last_states`` reads the activations it needs, many prompts per pass.
"""
from __future__ import annotations

from mlbook.text.batching import right_pad

from . import hooks


def last_states(model, prompts: list[list[int]], addresses, pad_id: int = 0, batch_size: int = 32):
    """``{address: (N, d)}``: the activation at each prompt's last token (prompts right-padded,
    so position ids are the unpadded ones), float32 on the CPU."""
    import torch

    addresses = hooks._as_list(addresses)
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("last_states needs non-empty token lists")
    out = {a: [] for a in addresses}
    for s in range(0, len(prompts), batch_size):
        chunk = prompts[s:s + batch_size]
        ids, mask = right_pad(chunk, pad_id)
        last = mask.sum(1) - 1
        _, cache = hooks.run_with_cache(model, {"input_ids": ids, "attention_mask": mask}, addresses, logits_to_keep=1)
        rows = torch.arange(len(chunk))
        for a in addresses:
            out[a].append(cache[a][rows, last.to(cache[a].device)].float().cpu())
    return {a: torch.cat(v) for a, v in out.items()}


def mean_difference(model, positive: list[list[int]], negative: list[list[int]], addresses, pad_id: int = 0,
                    batch_size: int = 32):
    """``{address: v}`` with ``v = mean(positive last-token activations) − mean(negative ones)``."""
    pos = last_states(model, positive, addresses, pad_id, batch_size)
    neg = last_states(model, negative, addresses, pad_id, batch_size)
    return {a: pos[a].mean(0) - neg[a].mean(0) for a in pos}
