"""Outcome rewards and GRPO, and the sampling metrics avg@k, pass@k, maj@k.

- ``last_boxed`` / ``parse_number`` / ``reward``: the binary reward of the COPSD paper's GRPO
  baseline — 1 if the **last** ``\\boxed{}`` of the completion holds the right number, else 0.
- ``group_advantages``: GRPO's advantage, each reward minus its group's mean, divided by the
  group's standard deviation (+ε).  A group whose rewards are all equal gets advantage 0 for every
  member: no learning signal at all.
- ``grpo_loss``: the clipped surrogate ``−min(ρA, clip(ρ, 1−ε, 1+ε)A)`` per completion token,
  averaged over all completion tokens of the batch (TRL's default ``dapo`` normalisation; no KL
  term, β = 0 as in TRL's default).  With one update per batch ρ = 1 and the gradient is A ∇log π.
- ``evaluate``: k samples per problem; avg@k (mean accuracy), pass@k (any correct), maj@k
  (majority answer correct), format adherence (share of samples with a well-formed ``\\boxed{}``).
"""
from __future__ import annotations

import re
from collections import Counter

_BOXED = "\\boxed{"


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces balanced), or None when there is none or it is unclosed."""
    i = text.rfind(_BOXED)
    if i < 0:
        return None
    depth, j = 1, i + len(_BOXED)
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + len(_BOXED): j]
        j += 1
    return None


_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?$")


def parse_number(s: str | None) -> float | None:
    """``" 1,234 "`` → 1234.0; None for anything that is not a plain number."""
    if s is None:
        return None
    s = s.strip().replace(",", "").replace(" ", "").strip("$")
    return float(s) if _NUMBER.match(s) else None


def extract_answer(text: str) -> float | None:
    """The number in the last ``\\boxed{}`` of ``text`` (None if absent or not a number)."""
    return parse_number(last_boxed(text))


def well_formed(text: str) -> bool:
    """Format adherence: the completion ends in a ``\\boxed{}`` answer holding a number."""
    return extract_answer(text) is not None


def reward(text: str, answer) -> float:
    """1.0 if the last ``\\boxed{}`` holds ``answer``, else 0.0."""
    got = extract_answer(text)
    return float(got is not None and abs(got - float(answer)) < 1e-9)


# ----------------------------------------------------------------------------- GRPO
def group_advantages(rewards, group_size: int, eps: float = 1e-4):
    """(B,) rewards in consecutive groups of ``group_size`` → (B,) advantages ``(r − mean_g) / (std_g + ε)``.

    ``std`` is the unbiased standard deviation, as in TRL.  Equal rewards in a group → zeros.
    """
    import torch

    r = rewards.float().view(-1, group_size)
    mean = r.mean(1, keepdim=True)
    std = r.std(1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    return ((r - mean) / (std + eps)).view(-1)


def identical_share(rewards, group_size: int) -> float:
    """Share of groups whose rewards are all equal (TRL logs it as ``frac_reward_zero_std``)."""
    r = rewards.float().view(-1, group_size)
    return float((r.max(1).values == r.min(1).values).float().mean())


def grpo_loss(logp, old_logp, advantages, epsilon: float = 0.2):
    """Clipped surrogate over N completion tokens: ``logp``, ``old_logp``, ``advantages`` are (N,)
    (each token carries its completion's advantage).  Mean over tokens (``dapo``)."""
    import torch

    ratio = torch.exp(logp - old_logp)
    per_token = -torch.min(ratio * advantages, ratio.clamp(1 - epsilon, 1 + epsilon) * advantages)
    return per_token.mean() if per_token.numel() else logp.sum() * 0.0


def _chunk_logp(h, targets, head, temperature):
    return (head(h) / temperature).log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)


def token_logprobs(h, targets, head, temperature: float = 1.0, chunk: int = 1024):
    """(N,) log-probabilities of ``targets`` under ``softmax(head(h) / temperature)``, a chunk of tokens at
    a time under activation checkpointing (only one chunk's (chunk × V) logits alive)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    parts = [checkpoint(_chunk_logp, h[s:s + chunk], targets[s:s + chunk], head, temperature, use_reentrant=False)
             for s in range(0, h.shape[0], chunk)]
    return torch.cat(parts) if parts else h.new_zeros(0)


def grpo_batches(model, tokenizer, pool: list[tuple], *, n_prompts: int, group_size: int, max_new_tokens: int,
                 seed: int = 0, temperature: float = 1.1, top_k: int = 20, top_p: float = 0.95,
                 sample_batch: int | None = None):
    """``i -> batch``: ``n_prompts`` problems per step, ``group_size`` on-policy samples each, rewards and advantages."""
    from .distill import PromptCycle, rollout_batch

    cycle = PromptCycle(pool, n_prompts, seed)

    def make(i):
        problems = cycle(i)
        b = rollout_batch(model, tokenizer, problems, max_new_tokens=max_new_tokens, temperature=temperature,
                          top_k=top_k, top_p=top_p, repeat=group_size, sample_batch=sample_batch)
        b["advantages"] = group_advantages(b["rewards"], group_size)
        b["identical"] = identical_share(b["rewards"], group_size)
        r = b["rewards"].view(-1, group_size)
        b["groups"] = [(lang, bool(row.max() == row.min())) for (_, lang), row in zip(problems, r)]
        return b

    return make


def grpo_loss_fn(temperature: float = 1.1, epsilon: float = 0.2, chunk: int = 1024, langs: list[str] = ()):
    """``loss_fn(model, batch)`` for ``train.fit`` (log-probabilities at the sampling temperature, as TRL).

    Besides the loss it reports the rollouts' mean reward, the share of groups with identical rewards,
    and, for each language in ``langs``, how many groups it had this step (``groups_<lang>``) and how
    many of them had identical rewards (``identical_<lang>``).
    """
    from .distill import completion_hidden, head_logits, unwrap

    def loss_fn(model, batch):
        raw = unwrap(model)
        mask = batch["comp_mask"]
        h = completion_hidden(model, batch["student"], mask)                          # (N, d)
        dev = h.device
        ids = batch["student"][0][:, batch["student"][2]:]
        targets = ids[mask.bool()].to(dev)                                             # (N,)
        adv = batch["advantages"].to(dev)[:, None].expand_as(mask)[mask.bool()]        # (N,) per token
        logp = token_logprobs(h, targets, lambda x: head_logits(raw, x), temperature, chunk)
        loss = grpo_loss(logp, logp.detach(), adv, epsilon)
        stats = {"reward": batch["rewards"].float().mean(), "identical_groups": batch["identical"],
                 "completion_len": mask.sum(1).float().mean()}
        for lang in langs:
            stats[f"groups_{lang}"] = sum(g == lang for g, _ in batch["groups"])
            stats[f"identical_{lang}"] = sum(g == lang and same for g, same in batch["groups"])
        return loss, stats

    return loss_fn


# ----------------------------------------------------------------------------- evaluation
def majority(answers: list) -> float | None:
    """Most frequent non-None answer (ties: the one seen first); None when no sample answered."""
    got = [a for a in answers if a is not None]
    if not got:
        return None
    counts = Counter(got)
    best = max(counts.values())
    return next(a for a in got if counts[a] == best)


def sample_metrics(answers: list[list], golds: list) -> dict:
    """avg@k, pass@k, maj@k over problems, from the extracted answers of k samples per problem; also
    ``format`` (share of samples with a well-formed answer) and ``identical`` (share of problems whose
    k samples are all right or all wrong: as a GRPO group of k, they would carry no signal)."""
    import numpy as np

    correct = [[a is not None and abs(a - g) < 1e-9 for a in ans] for ans, g in zip(answers, golds)]
    maj = [majority(ans) for ans in answers]
    return {"avg": float(np.mean([np.mean(c) for c in correct])),
            "pass": float(np.mean([any(c) for c in correct])),
            "maj": float(np.mean([m is not None and abs(m - g) < 1e-9 for m, g in zip(maj, golds)])),
            "format": float(np.mean([[a is not None for a in ans] for ans in answers])),
            "identical": float(np.mean([all(c) or not any(c) for c in correct]))}


def evaluate(model, tokenizer, problems: list[tuple], *, k: int, max_new_tokens: int, prompt=None,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, batch_size: int = 256,
             keep_texts: bool = False) -> dict:
    """k samples per ``(Skeleton, lang)`` problem → ``{lang: {"avg", "pass", "maj", "format", "identical", "n"}}``.

    ``prompt(skeleton, lang) -> str`` builds the prompt text (default: the student's prompt).
    """
    from . import wordproblems as wp
    from .distill import chat_prompt, encode, stop_ids, student_message, unwrap
    from .rollout import sample

    if prompt is None:
        prompt = lambda sk, lang: chat_prompt(tokenizer, student_message(wp.render(sk, lang)), lang)  # noqa: E731
    prompts = [encode(tokenizer, prompt(sk, lang)) for sk, lang in problems]
    flat = [p for p in prompts for _ in range(k)]
    comps = sample(unwrap(model), flat, max_new_tokens=max_new_tokens, stop_ids=stop_ids(unwrap(model), tokenizer),
                   pad_id=tokenizer.pad_token_id, temperature=temperature, top_k=top_k, top_p=top_p,
                   batch_size=batch_size)
    texts = tokenizer.batch_decode(comps, skip_special_tokens=True)
    by_lang: dict = {}
    for i, (sk, lang) in enumerate(problems):
        d = by_lang.setdefault(lang, {"answers": [], "golds": [], "texts": []})
        d["answers"].append([extract_answer(t) for t in texts[i * k:(i + 1) * k]])
        d["golds"].append(sk.answer)
        if keep_texts:
            d["texts"].append(texts[i * k:(i + 1) * k])
    out = {}
    for lang, d in by_lang.items():
        out[lang] = {**sample_metrics(d["answers"], d["golds"]), "n": len(d["golds"])}
        if keep_texts:
            out[lang]["texts"] = d["texts"]
    return out
