"""The on-policy loop shared by COPSD and GRPO: a deterministic cycle over a pool of training problems,
sampling the current policy's completions from a chapter's prompts, scoring them with the chapter's
reward, and the hidden states that predict the sampled tokens.

A *problem* is whatever the chapter says it is; the loop only calls
``prompt(problem) -> str`` (the student's prompt text), ``teacher_prompt(problem) -> str`` (the same
problem with privileged context, COPSD only) and ``reward(text, problem) -> float``.
"""
from __future__ import annotations

import random

from mlbook.models.layout import base_model, decoder_stack, unwrap
from mlbook.text.batching import joined, positions
from mlbook.text.sampling import encode, sample, stop_ids


class PromptCycle:
    """Deterministic order over a pool of training problems: step ``i`` takes the next ``n`` of a
    shuffled order (reshuffled each pass), so a resumed run sees the same prompts."""

    def __init__(self, pool: list, n: int, seed: int):
        self.pool, self.n, self.seed = list(pool), n, seed

    def __call__(self, i: int) -> list:
        out = []
        for j in range(i * self.n, (i + 1) * self.n):
            epoch, k = divmod(j, len(self.pool))
            order = list(range(len(self.pool)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            out.append(self.pool[order[k]])
        return out


def rollout_batch(model, tokenizer, problems: list, *, prompt, reward, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, repeat: int = 1, teacher_prompt=None,
                  sample_batch: int | None = None) -> dict:
    """Sample ``repeat`` completions per problem from its ``prompt`` and package them.

    Returns ``student`` (the joined prompt + completion ids, mask and completion start), ``comp_mask``,
    and for logging ``problems`` (one per row), ``texts`` and ``rewards``; with ``teacher_prompt``, also
    ``teacher``: the teacher's prompt followed by the same completion.
    """
    import torch

    rows = [p for p in problems for _ in range(repeat)]
    s_prompts = [encode(tokenizer, prompt(p)) for p in rows]
    pad = tokenizer.pad_token_id
    comps = sample(unwrap(model), s_prompts, max_new_tokens=max_new_tokens, stop_ids=stop_ids(unwrap(model), tokenizer),
                   pad_id=pad, temperature=temperature, top_k=top_k, top_p=top_p, batch_size=sample_batch)
    texts = tokenizer.batch_decode(comps, skip_special_tokens=True)
    batch = {"student": joined(s_prompts, comps, pad), "problems": rows, "texts": texts,
             "rewards": torch.tensor([reward(t, p) for t, p in zip(texts, rows)])}
    batch["comp_mask"] = batch["student"][1][:, batch["student"][2]:]
    if teacher_prompt is not None:
        batch["teacher"] = joined([encode(tokenizer, teacher_prompt(p)) for p in rows], comps, pad)
    return batch

def completion_tokens(batch) -> int:
    """The completion tokens of a rollout batch: what COPSD's and GRPO's losses average over
    (``token_mean.token_mean(..., count=completion_tokens)`` normalises them over the whole optimizer step)."""
    return int(batch["comp_mask"].sum())


def final_hidden(model, ids, mask):
    """(B, T, d) hidden states after the final norm — what the LM head reads — without computing
    the (B, T, V) logits (``logits_to_keep=1``) and without keeping every layer's states
    (``output_hidden_states`` would hold all of them, a teacher's under ``no_grad`` too): a hook on the
    final norm takes its output.  ``model`` is called itself (a DDP wrapper keeps its gradient sync)."""
    norm = decoder_stack(base_model(unwrap(model))).norm
    seen = []
    handle = norm.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), logits_to_keep=1, use_cache=False)
    finally:
        handle.remove()
    return seen[-1]


def completion_hidden(model, batch_part, comp_mask):
    """(N, d): the hidden states that predict the N real completion tokens of a joined batch."""
    ids, mask, start = batch_part                      # a text.batching.Joined
    dev = next(unwrap(model).parameters()).device
    h = final_hidden(model, ids.to(dev), mask.to(dev))
    L = comp_mask.shape[1]
    return h[:, start - 1: start - 1 + L][comp_mask.to(dev).bool()]
