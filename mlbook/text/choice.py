"""Multiple-choice scoring of a causal LM (or a LLaVA-style model): which of a closed set of answers
does the model find most likely after a prompt?

For a prompt x and a candidate answer a = (a_1 … a_m) followed by the end-of-turn token e,

    score(a | x) = Σ_t log p(a_t | x, a_<t) + log p(e | x, a),        prediction = argmax_a score(a | x),

the probability that the model *says exactly a and stops*; with ``end_id=None`` the end term is left out and
the score is log p(a | x), the log-likelihood of a continuation (lm-evaluation-harness's ``loglikelihood``:
the answer to a completion prompt, where the text goes on after it). Two implementations, side by side:

- ``score_naive``: one forward pass over every (prompt + candidate) sequence — the definition;
- ``score``: the prompt once, then all its candidates from the prompt's KV cache — the fast path
  (a prompt of P tokens with C candidates of A tokens costs P + C·A tokens instead of C·(P + A)).
  With ``groups``, prompts that begin alike (the same image, or the same context, asked in several
  languages) share one pass over their common head: causal attention makes the head's keys and values
  the same whatever follows it, so each prompt then costs only its own tail.

Prompts may differ in length (left padding with explicit position ids, so padding changes nothing),
and may carry images (``pixel_values``, one per prompt, for LLaVA-style models).
"""
from __future__ import annotations

from mlbook.models.layout import cache_keyword

from .batching import left_pad


def score_naive(model, prompts: list[list[int]], candidates: list[list[list[int]]], end_id: int | None,
                pixel_values=None) -> list[list[float]]:
    """score(a | x) for each prompt's candidates, one full sequence at a time (the reference)."""
    import torch

    dev, out = next(model.parameters()).device, []
    for i, (p, cands) in enumerate(zip(prompts, candidates)):
        row = []
        for c in cands:
            ids = torch.tensor([p + c + ([] if end_id is None else [end_id])], device=dev)
            kw = {} if pixel_values is None else {"pixel_values": pixel_values[i : i + 1].to(dev)}
            with torch.no_grad():
                logp = model(input_ids=ids, **kw).logits[0].float().log_softmax(-1)  # (T, V)
            targets = ids[0, len(p):]  # a_1 … a_m (, e)
            row.append(float(logp[len(p) - 1 : -1].gather(1, targets[:, None]).sum()))
        out.append(row)
    return out


def score(model, prompts: list[list[int]], candidates: list[list[list[int]]], end_id: int | None, pad_id: int = 0,
          pixel_values=None, batch_size: int = 64, groups: list | None = None) -> list[list[float]]:
    """Same numbers as :func:`score_naive` (to float error), computed from each prompt's KV cache.

    prompts: n token-id lists; candidates: for each prompt a list of candidate token-id lists (without
    the end token, which is appended; ``end_id=None``: no end token, each candidate non-empty);
    pixel_values: None or a (n, 3, H, W) tensor.
    groups: None, or one label per prompt; prompts with the same label share their longest common prefix
    (at most all but their last token) and, with images, the same image — that head is run once per group.
    With images the head must hold every image token (an image and then the question in several languages).
    """
    import torch

    n = len(prompts)
    if groups is not None and len(groups) != n:
        raise ValueError(f"{len(groups)} group labels for {n} prompts")
    units = [[i] for i in range(n)] if groups is None else list(_group(groups).values())
    units.sort(key=lambda u: max(len(prompts[i]) for i in u))  # similar lengths batched: little padding
    scores: list = [None] * n
    chunk: list = []
    for k, u in enumerate(units):
        chunk.append(u)
        if sum(map(len, chunk)) >= batch_size or k == len(units) - 1:
            idx = [i for v in chunk for i in v]
            pv = None if pixel_values is None else pixel_values[torch.tensor(idx)]
            heads = None if groups is None else [j for j, v in enumerate(chunk) for _ in v]
            got = _score_batch(model, [prompts[i] for i in idx], [candidates[i] for i in idx], end_id, pad_id, pv,
                               heads)
            for i, row in zip(idx, got):
                scores[i] = row
            chunk = []
    return scores


def _group(labels) -> dict:
    out: dict = {}
    for i, g in enumerate(labels):
        out.setdefault(g, []).append(i)
    return out


def _common_head(prompts) -> int:
    """Length of the longest common prefix of the prompts, leaving each at least one token of its own."""
    k = min(len(p) for p in prompts) - 1
    for j in range(max(k, 0)):
        if any(p[j] != prompts[0][j] for p in prompts[1:]):
            return j
    return max(k, 0)


def _score_batch(model, prompts, candidates, end_id, pad_id, pixel_values, heads=None):
    import torch

    dev = next(model.parameters()).device
    past: dict = {}
    if heads is None:  # 1. prompts, left-padded: real tokens at positions 0 … len−1 whatever the padding
        ids, mask = left_pad(prompts, pad_id)
        kw = {} if pixel_values is None else {"pixel_values": pixel_values.to(dev)}
    else:  # 1a. each group's common head once; 1b. every prompt's own tail, continuing its head's cache
        members = _group(heads)
        h_len = {g: _common_head([prompts[i] for i in ix]) for g, ix in members.items()}
        first = {g: ix[0] for g, ix in members.items()}
        if pixel_values is not None:
            for g, ix in members.items():
                if any(not torch.equal(pixel_values[i], pixel_values[first[g]]) for i in ix):
                    raise ValueError("prompts grouped together must share their image")
        tails = [p[h_len[g]:] for p, g in zip(prompts, heads)]
        image_id = getattr(model.config, "image_token_id", None)
        if pixel_values is not None and any(image_id in t for t in tails):
            raise ValueError("an image token lies outside the shared head: group only prompts with the same image")
        order = sorted(members)
        h_ids, h_mask = left_pad([prompts[first[g]][: h_len[g]] for g in order], pad_id)
        kw = {} if pixel_values is None else {"pixel_values": pixel_values[[first[g] for g in order]].to(dev)}
        with torch.no_grad():
            out = model(input_ids=h_ids.to(dev), attention_mask=h_mask.to(dev),
                        position_ids=(h_mask.cumsum(1) - 1).clamp(min=0).to(dev), use_cache=True, logits_to_keep=1, **kw)
        cache = getattr(out, "cache", None) or out.past_key_values
        at = {g: j for j, g in enumerate(order)}
        row = torch.tensor([at[g] for g in heads])
        cache.batch_select_indices(row.to(dev))  # one copy of its group's head per prompt
        t_ids, t_mask = left_pad(tails, pad_id)
        ids, mask = t_ids, torch.cat([h_mask[row], t_mask], 1)
        kw, past = {}, {cache_keyword(model): cache}
    pos = (mask.cumsum(1) - 1).clamp(min=0)[:, -ids.shape[1]:]
    with torch.no_grad():
        first_out = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                          use_cache=True, logits_to_keep=1, **kw, **past)
    first_logp = first_out.logits[:, -1].float().log_softmax(-1)  # (n, V): log p(a_1 | x)
    cache = getattr(first_out, "cache", None) or first_out.past_key_values  # transformers ≥ 5.2 names it `cache`

    return _continue(model, first_logp, cache, mask, candidates, end_id)


def _continue(model, first_logp, cache, mask, candidates, end_id):
    """2. The candidates, continuing their prompt's cache: a candidate a_1 … a_m is fed as its m tokens (the end
    token e is only predicted, never fed) and position t predicts a_{t+1}, then e. Candidates are run in buckets
    of similar length (answer lengths range from 1 to 9 tokens over the languages: one padded pass would spend
    most of its compute on padding, one pass per length most of its time on reading the weights)."""
    import copy

    import torch

    dev = first_logp.device
    stop = end_id is not None  # False: log p(a | x) only, the end token neither scored nor fed
    filler = end_id if stop else 0
    rows = [(i, c) for i, cands in enumerate(candidates) for c in cands]
    totals = [0.0] * len(rows)
    buckets: dict = {}
    for r, (i, c) in enumerate(rows):
        if not c:  # the empty answer: the model stops at once
            if not stop:
                raise ValueError(f"an empty candidate of prompt {i} has no log-likelihood without an end token")
            totals[r] = float(first_logp[i, end_id])
        elif len(c) == 1 and not stop:  # log p(a_1 | x) is already known: no pass of its own
            totals[r] = float(first_logp[i, c[0]])
        else:
            buckets.setdefault(len(c), []).append(r)
    buckets = _merge_buckets(buckets)
    for b, (m, members) in enumerate(sorted(buckets.items())):
        owner = torch.tensor([rows[r][0] for r in members])
        lens = torch.tensor([len(rows[r][1]) for r in members])
        real = torch.arange(m)[None, :] < lens[:, None]  # (r, m): right padding inside a merged bucket
        scored = real if stop else torch.arange(m)[None, :] < lens[:, None] - 1  # without e: a_2 … a_m only
        ids = torch.tensor([rows[r][1] + [filler] * (m - len(rows[r][1])) for r in members])  # (r, m)
        targets = torch.cat([ids[:, 1:], torch.full((len(members), 1), filler)], 1)  # a_2 … a_m, e (then filler)
        kv = cache if b == len(buckets) - 1 else copy.deepcopy(cache)  # the last bucket may consume the cache
        kv.batch_select_indices(owner.to(dev))  # one copy of the prompt's keys/values per candidate
        pos = mask.sum(1)[owner][:, None] + torch.arange(m)[None, :]  # continue where the prompt ended
        att = torch.cat([mask[owner], real.to(mask.dtype)], 1)
        cols = m if stop else m - 1  # without e the last position predicts nothing that is scored
        with torch.no_grad():
            logits = model(input_ids=ids.to(dev), attention_mask=att.to(dev), position_ids=pos.to(dev),
                           use_cache=True, logits_to_keep=torch.arange(cols, device=dev),
                           **{cache_keyword(model): kv}).logits  # (r, cols, V)
        logp = logits.float().log_softmax(-1).gather(2, targets[:, :cols, None].to(dev))[..., 0]  # (r, cols)
        first = first_logp[owner.to(dev)].gather(1, ids[:, :1].to(dev))[:, 0]  # log p(a_1 | x)
        for r, v in zip(members, (first + (logp * scored[:, :cols].to(dev)).sum(1)).tolist()):
            totals[r] = v
    out, k = [], 0
    for cands in candidates:
        out.append(totals[k : k + len(cands)])
        k += len(cands)
    return out


def _merge_buckets(buckets: dict, call_cost: int = 96) -> dict:
    """Merge length buckets ``{m: rows}`` into consecutive ranges that minimise Σ (call_cost + rows · longest):
    a forward pass costs about ``call_cost`` tokens' worth of time before its first token (reading the weights),
    so a few short answers ride along with longer ones as padding rather than get a pass of their own.
    Returns ``{longest m of the range: rows}``."""
    ms = sorted(buckets)
    best = [0.0] + [float("inf")] * len(ms)  # best[j]: cheapest cover of the first j lengths
    cut = [0] * (len(ms) + 1)
    for j in range(1, len(ms) + 1):
        for i in range(j):
            n = sum(len(buckets[m]) for m in ms[i:j])
            c = best[i] + call_cost + n * ms[j - 1]
            if c < best[j]:
                best[j], cut[j] = c, i
    out, j = {}, len(ms)
    while j:
        i = cut[j]
        out[ms[j - 1]] = [r for m in ms[i:j] for r in buckets[m]]
        j = i
    return out


def correct(scores: list[list[float]], gold: list[int]) -> list[bool]:
    """Per item: is its highest-scoring candidate the gold one (ties: the first candidate wins)?"""
    return [max(range(len(s)), key=s.__getitem__) == g for s, g in zip(scores, gold)]


def accuracy(scores: list[list[float]], gold: list[int]) -> float:
    """Share of items whose highest-scoring candidate is the gold one (ties: the first candidate wins)."""
    if not gold:
        return float("nan")
    return sum(correct(scores, gold)) / len(gold)
