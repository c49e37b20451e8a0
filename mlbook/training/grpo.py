"""GRPO (group relative policy optimisation) on a chapter's reward.

- ``group_advantages``: GRPO's advantage, each reward minus its group's mean, divided by the
  group's standard deviation (+ε).  A group whose rewards are all equal gets advantage 0 for every
  member: no learning signal at all.
- ``grpo_loss``: the clipped surrogate ``−min(ρA, clip(ρ, 1−ε, 1+ε)A)`` per completion token,
  averaged over all completion tokens of the batch (TRL's default ``dapo`` normalisation; no KL
  term, β = 0 as in TRL's default).  With one update per batch ρ = 1 and the gradient is A ∇log π.
"""
from __future__ import annotations

from mlbook.models.layout import head_logits, unwrap

from .onpolicy import PromptCycle, completion_hidden, rollout_batch


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


def grpo_loss(logp, old_logp, advantages, epsilon: float = 0.2, num_items=None):
    """Clipped surrogate over N completion tokens: ``logp``, ``old_logp``, ``advantages`` are (N,)
    (each token carries its completion's advantage).  Mean over tokens (``dapo``): over these N, or,
    with ``num_items``, the sum over these divided by the optimizer step's token count on every
    process (``token_mean.token_mean``), so that gradient accumulation and several processes give the
    step's global token mean."""
    import torch

    ratio = torch.exp(logp - old_logp)
    per_token = -torch.min(ratio * advantages, ratio.clamp(1 - epsilon, 1 + epsilon) * advantages)
    if num_items is not None:
        return per_token.sum() / num_items
    return per_token.mean() if per_token.numel() else logp.sum() * 0.0


def chunk_logp(h, targets, head, temperature):
    return (head(h) / temperature).log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)


def token_logprobs(h, targets, head, temperature: float = 1.0, chunk: int = 1024):
    """(N,) log-probabilities of ``targets`` under ``softmax(head(h) / temperature)``, a chunk of tokens at
    a time under activation checkpointing (only one chunk's (chunk × V) logits alive)."""
    import torch
    from torch.utils.checkpoint import checkpoint

    parts = [checkpoint(chunk_logp, h[s:s + chunk], targets[s:s + chunk], head, temperature, use_reentrant=False)
             for s in range(0, h.shape[0], chunk)]
    return torch.cat(parts) if parts else h.new_zeros(0)


def grpo_batches(model, tokenizer, pool: list, *, prompt, reward, n_prompts: int, group_size: int,
                 max_new_tokens: int, seed: int = 0, temperature: float = 1.1, top_k: int = 20, top_p: float = 0.95,
                 label=None, sample_batch: int | None = None):
    """``i -> batch``: ``n_prompts`` problems per step, ``group_size`` on-policy samples each, rewards and
    advantages.  ``label(problem)`` names a problem's group in ``batch["groups"]`` (e.g. its language), so
    that the loss can report where groups carried no signal."""
    cycle = PromptCycle(pool, n_prompts, seed)

    def make(i):
        problems = cycle(i)
        b = rollout_batch(model, tokenizer, problems, prompt=prompt, reward=reward, max_new_tokens=max_new_tokens,
                          temperature=temperature, top_k=top_k, top_p=top_p, repeat=group_size,
                          sample_batch=sample_batch)
        b["advantages"] = group_advantages(b["rewards"], group_size)
        b["identical"] = identical_share(b["rewards"], group_size)
        r = b["rewards"].view(-1, group_size)
        b["groups"] = [(label(p) if label else None, bool(row.max() == row.min())) for p, row in zip(problems, r)]
        return b

    return make

def grpo_loss_fn(temperature: float = 1.1, epsilon: float = 0.2, chunk: int = 1024, labels: list = ()):
    """``loss_fn(model, batch)`` for ``train.fit`` (log-probabilities at the sampling temperature, as TRL).
    Normalised over the step's completion tokens when wrapped by ``token_mean(..., count=onpolicy.completion_tokens)``.

    Besides the loss it reports the rollouts' mean reward, the share of groups with identical rewards,
    and, for each group label in ``labels`` (``grpo_batches``' ``label``, e.g. a language), how many groups it
    had this step (``groups_<label>``) and how many of them had identical rewards (``identical_<label>``).
    """
    def loss_fn(model, batch):
        raw = unwrap(model)
        mask = batch["comp_mask"]
        h = completion_hidden(model, batch["student"], mask)                          # (N, d)
        dev = h.device
        ids = batch["student"][0][:, batch["student"][2]:]
        targets = ids[mask.bool()].to(dev)                                             # (N,)
        adv = batch["advantages"].to(dev)[:, None].expand_as(mask)[mask.bool()]        # (N,) per token
        logp = token_logprobs(h, targets, lambda x: head_logits(raw, x), temperature, chunk)
        loss = grpo_loss(logp, logp.detach(), adv, epsilon, batch.get("num_items_in_batch"))
        stats = {"reward": batch["rewards"].float().mean(), "identical_groups": batch["identical"],
                 "completion_len": mask.sum(1).float().mean()}
        for lang in labels:
            stats[f"groups_{lang}"] = sum(g == lang for g, _ in batch["groups"])
            stats[f"identical_{lang}"] = sum(g == lang and same for g, same in batch["groups"])
        return loss, stats

    return loss_fn
