"""COPSD's loss: crosslingual on-policy self-distillation (arXiv 2605.09548).

The same model is student and teacher.  The **student** sees the problem in the low-resource
language L only; the **teacher** — the frozen initial policy — also sees privileged context: the
English translation and the English reference solution.  On the student's own sample
``y ~ π_S(· | x_L)`` the student is pulled towards the teacher's full next-token distribution at
every completion token, with the loss of the paper's released code:

    L = 1/N Σ_t Σ_v min(c, p_T(v) [log p_T(v) − log p_S(v)]),   p = softmax(logits / τ),  τ = 1.1, c = 0.05

— forward KL(teacher ‖ student) over the whole vocabulary, each entry clipped at ``c`` (an entry
at the clip gets no gradient).  Two implementations side by side: ``copsd_loss_reference`` from
full (tokens × vocab) logits, and ``copsd_loss_chunked``, which goes from final hidden states
through the LM head a chunk of tokens at a time under activation checkpointing, so only one
chunk's logits are alive in forward and backward (tested to agree).

The student's and the teacher's prompts come from the chapter (``mlbook.chapters.ch07_copsd.task``).
"""
from __future__ import annotations

from mlbook.models.layout import head_logits, unwrap

from .lora import adapter_disabled
from .onpolicy import PromptCycle, completion_hidden, rollout_batch

TEMPERATURE = 1.1      # the distillation temperature of the paper's code

CLIP = 0.05            # per-entry clip


def copsd_terms(student_logits, teacher_logits, temperature: float = TEMPERATURE, clip: float = CLIP):
    """Per-entry clipped forward-KL terms ``min(c, p_T (log p_T − log p_S))``, same shape as the logits."""
    log_s = (student_logits.float() / temperature).log_softmax(-1)
    log_t = (teacher_logits.float() / temperature).log_softmax(-1).detach()
    return (log_t.exp() * (log_t - log_s)).clamp(max=clip)


def copsd_loss_reference(student_logits, teacher_logits, mask, temperature: float = TEMPERATURE, clip: float = CLIP):
    """The loss from full logits: ``student_logits``, ``teacher_logits`` (B, L, V) at the completion
    tokens, ``mask`` (B, L) marking real tokens.  Mean over tokens of the clipped sum over the vocabulary."""
    per_token = copsd_terms(student_logits, teacher_logits, temperature, clip).sum(-1)      # (B, L)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def chunk_sum(h_s, h_t, head_s, head_t, temperature, clip):
    import torch

    with torch.no_grad():
        t_logits = head_t(h_t)
    return copsd_terms(head_s(h_s), t_logits, temperature, clip).sum()


def copsd_loss_chunked(h_s, h_t, head_s, head_t, temperature: float = TEMPERATURE, clip: float = CLIP,
                       chunk: int = 1024, num_items=None):
    """The same loss from hidden states: ``h_s`` (N, d) student (with grad), ``h_t`` (N, d) teacher,
    ``head_s``/``head_t`` map hidden states to logits.  Only ``chunk`` × V logits live at a time:
    each chunk is recomputed in backward (activation checkpointing) instead of being stored.
    ``num_items``: divide by the optimizer step's token count (``token_mean.token_mean``) instead of N."""
    from torch.utils.checkpoint import checkpoint

    n = h_s.shape[0]
    if n == 0:
        return h_s.sum() * 0.0
    total = 0.0
    for s in range(0, n, chunk):
        total = total + checkpoint(chunk_sum, h_s[s:s + chunk], h_t[s:s + chunk], head_s, head_t, temperature,
                                   clip, use_reentrant=False)
    return total / (n if num_items is None else num_items)


def copsd_batches(model, tokenizer, pool: list, *, prompt, teacher_prompt, reward, n_prompts: int,
                  max_new_tokens: int, seed: int = 0, temperature: float = TEMPERATURE, top_k: int = 20,
                  top_p: float = 0.95, sample_batch: int | None = None):
    """``i -> batch`` for ``fit``: ``n_prompts`` problems of ``pool`` per step, one on-policy sample each, with
    the teacher's inputs (``teacher_prompt`` of the same problem + the student's completion)."""
    cycle = PromptCycle(pool, n_prompts, seed)
    return lambda i: rollout_batch(model, tokenizer, cycle(i), prompt=prompt, reward=reward, teacher_prompt=teacher_prompt,
                                   max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                   sample_batch=sample_batch)

def copsd_loss_fn(teacher=None, temperature: float = TEMPERATURE, clip: float = CLIP, chunk: int = 1024):
    """``loss_fn(model, batch)`` for ``train.fit``.

    ``teacher``: the frozen initial model (full fine-tuning), or None for a LoRA student, whose
    teacher is the same model with its adapters switched off.
    """
    import torch

    def loss_fn(model, batch):
        raw = unwrap(model)
        tmodel = teacher if teacher is not None else raw
        mask = batch["comp_mask"]
        h_s = completion_hidden(model, batch["student"], mask)
        with torch.no_grad(), adapter_disabled(tmodel):
            h_t = completion_hidden(tmodel, batch["teacher"], mask)

        def head_t(h):
            with adapter_disabled(tmodel):
                return head_logits(tmodel, h)

        loss = copsd_loss_chunked(h_s, h_t, lambda h: head_logits(raw, h), head_t, temperature, clip, chunk,
                                  batch.get("num_items_in_batch"))
        return loss, {"reward": batch["rewards"].float().mean(), "completion_len": mask.sum(1).float().mean()}

    return loss_fn


def token_table(model, tokenizer, batch, row: int = 0, teacher=None, temperature: float = TEMPERATURE,
                clip: float = CLIP, top: int = 3) -> list[dict]:
    """Along one sampled completion: each token, the student's and teacher's probability of it, their
    top tokens, and the token's clipped KL — what the chapter's playground shows."""
    import torch

    raw = unwrap(model)
    tmodel = teacher if teacher is not None else raw
    mask = batch["comp_mask"][row:row + 1]
    one = lambda part: (part[0][row:row + 1], part[1][row:row + 1], part[2])  # noqa: E731
    with torch.no_grad():
        s_logits = head_logits(raw, completion_hidden(raw, one(batch["student"]), mask))
        with adapter_disabled(tmodel):
            t_logits = head_logits(tmodel, completion_hidden(tmodel, one(batch["teacher"]), mask))
    terms = copsd_terms(s_logits, t_logits, temperature, clip)                     # (n, V)
    p_s, p_t = (s_logits / temperature).softmax(-1), (t_logits / temperature).softmax(-1)
    ids = batch["student"][0][row, batch["student"][2]:][mask[0].bool()]
    rows = []
    for k, tok_id in enumerate(ids.tolist()):
        rows.append({"token": tokenizer.decode([tok_id]), "p_student": float(p_s[k, tok_id]),
                     "p_teacher": float(p_t[k, tok_id]), "kl": float(terms[k].sum()),
                     "clipped_share": float((terms[k] >= clip).float().mean()),
                     "student_top": [tokenizer.decode([j]) for j in p_s[k].topk(top).indices.tolist()],
                     "teacher_top": [tokenizer.decode([j]) for j in p_t[k].topk(top).indices.tolist()]})
    return rows
