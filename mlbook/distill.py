"""COPSD: crosslingual on-policy self-distillation (arXiv 2605.09548).

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
"""
from __future__ import annotations

import random

from . import wordproblems as wp
from .rollout import joined, sample

TEMPERATURE = 1.1      # the distillation temperature of the paper's code
CLIP = 0.05            # per-entry clip


# ----------------------------------------------------------------------------- prompts
def student_message(problem_l: dict) -> str:
    """``"{Problem_L}: x_L\\n\\n{instruction_L}"`` — the student's user turn."""
    lang = problem_l["lang"]
    return f"{wp.prompt_text(lang, 'labels.problem')}: {problem_l['problem']}\n\n{wp.prompt_text(lang, 'instruction')}"


def teacher_message(problem_l: dict, problem_en: dict, translation: bool = True, reference: bool = True) -> str:
    """The teacher's user turn: x_L, then the privileged context, then the instruction.

    ``translation``: add "English translation: x_en"; ``reference``: add the English reference
    solution between markers and the transition text ("understand it, don't copy it, solve in L").
    Dropping both gives the student's information with the teacher's wording.
    """
    lang = problem_l["lang"]
    t = lambda key: wp.prompt_text(lang, key)  # noqa: E731
    parts = [f"{t('labels.problem')}: {problem_l['problem']}"]
    if translation:
        parts.append(f"{t('labels.translation')}: {problem_en['problem']}")
    if reference:
        parts.append(f"{t('labels.reference')}:\n{t('labels.ref_begin')}\n{problem_en['solution']}\n{t('labels.ref_end')}")
    instruction = f"{t('transition')}\n{t('teacher_instruction')}" if reference else t("teacher_instruction")
    return "\n\n".join(parts) + "\n\n" + instruction


def chat_prompt(tokenizer, message: str, lang: str) -> str:
    """The chat template's user turn + assistant turn start + the "think in L" prefix (as text)."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                         add_generation_prompt=True)
    return text + wp.prompt_text(lang, "think_prefix")


def end_of_turn(tokenizer) -> str:
    """The text that closes an assistant turn in this tokenizer's chat template (e.g. ``<|im_end|>``)."""
    marker = "XQXQ"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "a"}, {"role": "assistant", "content": marker}],
                                         tokenize=False)
    tail = text[text.rindex(marker) + len(marker):].strip()
    return tail or (tokenizer.eos_token or "")


def completion_text(problem_l: dict, tokenizer) -> str:
    """The reference completion after the think prefix: the solution in L and the end of the turn."""
    return "\n" + problem_l["solution"] + end_of_turn(tokenizer)


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stop_ids(model, tokenizer) -> set[int]:
    """eos, the model's generation eos, and the chat template's end-of-turn token."""
    from .rollout import stop_ids as base

    ids = base(model, tokenizer)
    eot = encode(tokenizer, end_of_turn(tokenizer))
    if len(eot) == 1:
        ids.add(eot[0])
    return ids


# ----------------------------------------------------------------------------- hidden states and logits
def unwrap(model):
    """The model inside a DistributedDataParallel (or similar) wrapper."""
    return getattr(model, "module", model)


def final_hidden(model, ids, mask):
    """(B, T, d) hidden states after the final norm — what the LM head reads — without computing
    the (B, T, V) logits (``logits_to_keep=1``)."""
    from .rollout import positions

    out = model(input_ids=ids, attention_mask=mask, position_ids=positions(mask), output_hidden_states=True,
                logits_to_keep=1, use_cache=False)
    return out.hidden_states[-1]


def head_logits(model, h):
    """LM head (and the final logit soft-capping of models that have one) on hidden states ``h``."""
    import torch

    base = unwrap(model)
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    head = base.get_output_embeddings()
    logits = head(h.to(head.weight.dtype)).float()          # h may come out of an autocast (bf16) forward
    cap = getattr(base.config, "final_logit_softcapping", None) or getattr(
        getattr(base.config, "text_config", None), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def completion_hidden(model, batch_part, comp_mask):
    """(N, d): the hidden states that predict the N real completion tokens of a joined batch."""
    ids, mask, start = batch_part
    dev = next(unwrap(model).parameters()).device
    h = final_hidden(model, ids.to(dev), mask.to(dev))
    L = comp_mask.shape[1]
    return h[:, start - 1: start - 1 + L][comp_mask.to(dev).bool()]


# ----------------------------------------------------------------------------- the loss
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


def _chunk_sum(h_s, h_t, head_s, head_t, temperature, clip):
    import torch

    with torch.no_grad():
        t_logits = head_t(h_t)
    return copsd_terms(head_s(h_s), t_logits, temperature, clip).sum()


def copsd_loss_chunked(h_s, h_t, head_s, head_t, temperature: float = TEMPERATURE, clip: float = CLIP,
                       chunk: int = 1024):
    """The same loss from hidden states: ``h_s`` (N, d) student (with grad), ``h_t`` (N, d) teacher,
    ``head_s``/``head_t`` map hidden states to logits.  Only ``chunk`` × V logits live at a time:
    each chunk is recomputed in backward (activation checkpointing) instead of being stored."""
    from torch.utils.checkpoint import checkpoint

    n = h_s.shape[0]
    if n == 0:
        return h_s.sum() * 0.0
    total = 0.0
    for s in range(0, n, chunk):
        total = total + checkpoint(_chunk_sum, h_s[s:s + chunk], h_t[s:s + chunk], head_s, head_t, temperature,
                                   clip, use_reentrant=False)
    return total / n


# ----------------------------------------------------------------------------- on-policy batches
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


def rollout_batch(model, tokenizer, problems: list[tuple], *, max_new_tokens: int, temperature: float = TEMPERATURE,
                  top_k: int = 20, top_p: float = 0.95, repeat: int = 1, teacher: dict | None = None,
                  sample_batch: int | None = None) -> dict:
    """Sample ``repeat`` completions per problem from the student prompt and package them.

    ``problems``: list of ``(Skeleton, lang)``.  ``teacher``: ``{"translation": bool, "reference": bool}``
    to also build the teacher's inputs (prompt + the same completion), or None.
    Returns tensors for the loss and, for logging, the texts, answers and rewards.
    """
    import torch

    from .rl import reward

    rows = [(sk, lang) for sk, lang in problems for _ in range(repeat)]
    rendered = [(wp.render(sk, lang), wp.render(sk, "en")) for sk, lang in rows]
    s_prompts = [encode(tokenizer, chat_prompt(tokenizer, student_message(pl), pl["lang"])) for pl, _ in rendered]
    pad = tokenizer.pad_token_id
    comps = sample(unwrap(model), s_prompts, max_new_tokens=max_new_tokens, stop_ids=stop_ids(unwrap(model), tokenizer),
                   pad_id=pad, temperature=temperature, top_k=top_k, top_p=top_p, batch_size=sample_batch)
    texts = tokenizer.batch_decode(comps, skip_special_tokens=True)
    batch = {"student": joined(s_prompts, comps, pad), "langs": [lang for _, lang in rows],
             "texts": texts, "answers": [pl["answer"] for pl, _ in rendered],
             "rewards": torch.tensor([reward(t, pl["answer"]) for t, (pl, _) in zip(texts, rendered)])}
    batch["comp_mask"] = batch["student"][1][:, batch["student"][2]:]
    if teacher is not None:
        t_prompts = [encode(tokenizer, chat_prompt(tokenizer, teacher_message(pl, pe, **teacher), pl["lang"]))
                     for pl, pe in rendered]
        batch["teacher"] = joined(t_prompts, comps, pad)
    return batch


def copsd_batches(model, tokenizer, pool: list[tuple], *, n_prompts: int, max_new_tokens: int, seed: int = 0,
                  translation: bool = True, reference: bool = True, temperature: float = TEMPERATURE,
                  top_k: int = 20, top_p: float = 0.95, sample_batch: int | None = None):
    """``i -> batch`` for ``train.fit``: ``n_prompts`` problems of ``pool`` per step, one on-policy sample each."""
    cycle = PromptCycle(pool, n_prompts, seed)
    return lambda i: rollout_batch(model, tokenizer, cycle(i), max_new_tokens=max_new_tokens, temperature=temperature,
                                   top_k=top_k, top_p=top_p, sample_batch=sample_batch,
                                   teacher={"translation": translation, "reference": reference})


def copsd_loss_fn(teacher=None, temperature: float = TEMPERATURE, clip: float = CLIP, chunk: int = 1024):
    """``loss_fn(model, batch)`` for ``train.fit``.

    ``teacher``: the frozen initial model (full fine-tuning), or None for a LoRA student, whose
    teacher is the same model with its adapters switched off.
    """
    import torch

    from .train import adapter_disabled

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

        loss = copsd_loss_chunked(h_s, h_t, lambda h: head_logits(raw, h), head_t, temperature, clip, chunk)
        return loss, {"reward": batch["rewards"].float().mean(), "completion_len": mask.sum(1).float().mean()}

    return loss_fn


def token_table(model, tokenizer, batch, row: int = 0, teacher=None, temperature: float = TEMPERATURE,
                clip: float = CLIP, top: int = 3) -> list[dict]:
    """Along one sampled completion: each token, the student's and teacher's probability of it, their
    top tokens, and the token's clipped KL — what the chapter's playground shows."""
    import torch

    from .train import adapter_disabled

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
