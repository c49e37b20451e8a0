"""Batched sampling from a causal LM with a KV cache: the on-policy rollouts of COPSD and GRPO.

Prompts of different lengths are **left**-padded, so that every row's next token sits in the
last column and one forward pass of one new token per row extends the whole batch; the
attention mask hides the padding and position ids count real tokens only.  Each step feeds
just the new tokens and the cache of keys and values (``O(T)`` work per token, not ``O(T²)``),
and rows that have finished leave the batch and the cache.

    completions = sample(model, prompt_ids, max_new_tokens=64, temperature=1.1, top_k=20, top_p=0.95,
                         stop_ids=stop_ids(model, tok), pad_id=tok.pad_token_id)

``filter_logits`` is the readable version of temperature + top-k + top-p (nucleus) filtering,
in the order Hugging Face's ``generate`` applies them (tested against its logits processors).
"""
from __future__ import annotations

from mlbook.models.layout import base_model, cache_keyword

from .batching import left_pad, positions


def filter_logits(logits, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
    """Temperature, then top-k, then top-p: logits of the tokens that may be sampled, ``-inf`` elsewhere.

    ``logits``: (B, V).  top-p keeps the smallest set of most likely tokens whose probability
    reaches ``top_p`` (always at least the most likely one).
    """
    import torch

    x = logits / temperature
    if top_k and top_k < x.shape[-1]:
        kth = torch.topk(x, top_k, dim=-1).values[..., -1:]              # (B, 1) the k-th largest
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        srt, idx = torch.sort(x, dim=-1, descending=True)
        cum = srt.softmax(-1).cumsum(-1)
        drop = cum - srt.softmax(-1) >= top_p                            # mass before this token already reaches top_p
        drop[..., 0] = False
        x = x.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
    return x


def end_of_turn(tokenizer) -> str:
    """The text that closes an assistant turn in this tokenizer's chat template (e.g. ``<|im_end|>``)."""
    marker = "XQXQ"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "a"}, {"role": "assistant", "content": marker}],
                                         tokenize=False)
    tail = text[text.rindex(marker) + len(marker):].strip()
    return tail or (tokenizer.eos_token or "")


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stop_ids(model, tokenizer) -> set[int]:
    """Token ids that end a completion: the tokenizer's eos, the model's generation eos, and the chat
    template's end-of-turn token (when the tokenizer has a chat template and that is one token)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen = getattr(base_model(model), "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    ids |= set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if getattr(tokenizer, "chat_template", None):
        eot = encode(tokenizer, end_of_turn(tokenizer))
        if len(eot) == 1:
            ids.add(eot[0])
    return ids

def sample(model, prompts: list[list[int]], *, max_new_tokens: int, stop_ids: set[int], pad_id: int,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, greedy: bool = False,
           batch_size: int | None = None) -> list[list[int]]:
    """One completion per prompt (token ids, ending with the stop token when one was sampled).

    Draws from torch's global RNG (seed it for reproducible rollouts).  ``batch_size`` bounds the
    rows generated at once.  The model is put in eval mode while sampling and restored after.
    """
    import torch

    if batch_size and len(prompts) > batch_size:
        out = []
        for s in range(0, len(prompts), batch_size):
            out += sample(model, prompts[s:s + batch_size], max_new_tokens=max_new_tokens, stop_ids=stop_ids,
                          pad_id=pad_id, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
        return out
    dev = next(model.parameters()).device
    kw = cache_keyword(model)
    stops = torch.tensor(sorted(stop_ids), device=dev)
    rows: list[list[int]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ids, mask = (t.to(dev) for t in left_pad(prompts, pad_id))
            pos = positions(mask)
            out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
            alive = torch.arange(len(prompts), device=dev)       # which prompt each row of the running batch is
            for _ in range(max_new_tokens):
                logits = out.logits[:, -1].float()                                      # (b, V)
                if greedy:
                    nxt = logits.argmax(-1)
                else:
                    probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
                    nxt = torch.multinomial(probs, 1).squeeze(-1)
                for r, tok in zip(alive.tolist(), nxt.tolist()):
                    rows[r].append(tok)
                done = torch.isin(nxt, stops)
                if bool(done.all()):
                    break
                cache = out[kw] if kw in out else out.past_key_values
                if bool(done.any()) and hasattr(cache, "batch_select_indices"):
                    keep = (~done).nonzero().squeeze(1)               # finished rows leave the batch (and the cache)
                    cache.batch_select_indices(keep)
                    alive, nxt, mask, pos = alive[keep], nxt[keep], mask[keep], pos[keep]
                    done = done[keep]
                nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)             # (only without pruning)
                mask = torch.cat([mask, (~done).long()[:, None]], 1)
                pos = pos[:, -1:] + 1
                out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos,
                            use_cache=True, **{kw: cache})
    finally:
        model.train(was_training)
    stop_set = set(stop_ids)
    return [row[: next((i + 1 for i, t in enumerate(row) if t in stop_set), len(row))] for row in rows]
