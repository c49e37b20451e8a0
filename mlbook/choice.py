"""Multiple-choice scoring of a causal LM (or a LLaVA-style model): which of a closed set of answers
does the model find most likely after a prompt?

For a prompt x and a candidate answer a = (a_1 … a_m) followed by the end-of-turn token e,

    score(a | x) = Σ_t log p(a_t | x, a_<t) + log p(e | x, a),        prediction = argmax_a score(a | x),

the probability that the model *says exactly a and stops*. Two implementations, side by side:

- ``score_naive``: one forward pass over every (prompt + candidate) sequence — the definition;
- ``score``: the prompt once, then all its candidates from the prompt's KV cache — the fast path
  (a prompt of P tokens with C candidates of A tokens costs P + C·A tokens instead of C·(P + A)).

Prompts may differ in length (left padding with explicit position ids, so padding changes nothing),
and may carry images (``pixel_values``, one per prompt, for LLaVA-style models).
"""
from __future__ import annotations


def _device(model):
    return next(model.parameters()).device


def _cache_arg(model) -> str:
    """The forward argument that takes a KV cache: ``cache`` (transformers ≥ 5.2) or ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def score_naive(model, prompts: list[list[int]], candidates: list[list[list[int]]], end_id: int,
                pixel_values=None) -> list[list[float]]:
    """score(a | x) for each prompt's candidates, one full sequence at a time (the reference)."""
    import torch

    dev, out = _device(model), []
    for i, (p, cands) in enumerate(zip(prompts, candidates)):
        row = []
        for c in cands:
            ids = torch.tensor([p + c + [end_id]], device=dev)
            kw = {} if pixel_values is None else {"pixel_values": pixel_values[i : i + 1].to(dev)}
            with torch.no_grad():
                logp = model(input_ids=ids, **kw).logits[0].float().log_softmax(-1)  # (T, V)
            targets = ids[0, len(p):]  # a_1 … a_m, e
            row.append(float(logp[len(p) - 1 : -1].gather(1, targets[:, None]).sum()))
        out.append(row)
    return out


def score(model, prompts: list[list[int]], candidates: list[list[list[int]]], end_id: int, pad_id: int = 0,
          pixel_values=None, batch_size: int = 32) -> list[list[float]]:
    """Same numbers as :func:`score_naive` (to float error), computed from each prompt's KV cache.

    prompts: n token-id lists; candidates: for each prompt a list of candidate token-id lists (without
    the end token, which is appended); pixel_values: None or a (n, 3, H, W) tensor.
    """
    out = []
    for s in range(0, len(prompts), batch_size):
        pv = None if pixel_values is None else pixel_values[s : s + batch_size]
        out += _score_batch(model, prompts[s : s + batch_size], candidates[s : s + batch_size], end_id, pad_id, pv)
    return out


def _score_batch(model, prompts, candidates, end_id, pad_id, pixel_values):
    import torch

    dev = _device(model)
    n, P = len(prompts), max(len(p) for p in prompts)
    # 1. prompts, left-padded: real tokens at positions 0 … len−1 whatever the padding
    ids = torch.full((n, P), pad_id, dtype=torch.long)
    mask = torch.zeros((n, P), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p)
        mask[i, P - len(p):] = 1
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    kw = {} if pixel_values is None else {"pixel_values": pixel_values.to(dev)}
    with torch.no_grad():
        first = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                      use_cache=True, logits_to_keep=1, **kw)
    first_logp = first.logits[:, -1].float().log_softmax(-1)  # (n, V): log p(a_1 | x)
    cache = getattr(first, "cache", None) or first.past_key_values  # transformers ≥ 5.2 names it `cache`

    # 2. every candidate + end token, right-padded, continuing its prompt's cache
    rows = [(i, c + [end_id]) for i, cands in enumerate(candidates) for c in cands]
    owner = torch.tensor([i for i, _ in rows])
    A = max(len(c) for _, c in rows)
    cids = torch.full((len(rows), A), pad_id, dtype=torch.long)
    cmask = torch.zeros((len(rows), A), dtype=torch.long)
    for r, (_, c) in enumerate(rows):
        cids[r, : len(c)] = torch.tensor(c)
        cmask[r, : len(c)] = 1
    cache.batch_select_indices(owner.to(dev))  # one copy of the prompt's keys/values per candidate
    cpos = mask.sum(1)[owner][:, None] + torch.arange(A)[None, :]  # continue where the prompt ended
    with torch.no_grad():
        logits = model(input_ids=cids.to(dev), attention_mask=torch.cat([mask[owner], cmask], 1).to(dev),
                       position_ids=cpos.to(dev), use_cache=True, **{_cache_arg(model): cache}).logits
    logp = logits.float().log_softmax(-1)  # (rows, A, V): position t predicts token t + 1
    # log p(token_0) from the prompt's last position, log p(token_t) from candidate position t − 1
    tok_logp = torch.cat([first_logp[owner].gather(1, cids[:, :1].to(dev)),
                          logp[:, :-1].gather(2, cids[:, 1:, None].to(dev))[..., 0]], 1)  # (rows, A)
    totals = (tok_logp * cmask.to(dev)).sum(1).tolist()
    out, k = [], 0
    for cands in candidates:
        out.append(totals[k : k + len(cands)])
        k += len(cands)
    return out


def accuracy(scores: list[list[float]], gold: list[int]) -> float:
    """Share of items whose highest-scoring candidate is the gold one (ties: the first candidate wins)."""
    if not gold:
        return float("nan")
    return sum(max(range(len(s)), key=s.__getitem__) == g for s, g in zip(scores, gold)) / len(gold)
