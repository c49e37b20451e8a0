"""Chapter 7's task: word problems, their student and teacher prompts, the ``\\boxed{}`` reward, and the
sampling metrics avg@k, pass@k, maj@k — what the on-policy methods of ``mlbook.training`` are given.

A *problem* is a ``(Skeleton, lang)`` pair (``wordproblems``).  The **student** sees it in L only; the
**teacher** (COPSD's frozen initial policy) also sees the English translation and the English reference
solution.  ``student_prompt``, ``teacher_prompt`` and ``reward`` are the three callables the loop takes;
``rollout``, ``copsd_batches`` and ``grpo_batches`` are the loop with them and the chapter's sampling
settings (T = 1.1, top-k 20, top-p 0.95, as the paper's code).

- ``last_boxed`` / ``parse_number`` / ``reward``: the binary reward of the COPSD paper's GRPO
  baseline — 1 if the **last** ``\\boxed{}`` of the completion holds the right number, else 0.
- ``evaluate``: k samples per problem; avg@k (mean accuracy), pass@k (any correct), maj@k
  (majority answer correct), format adherence (share of samples with a well-formed ``\\boxed{}``).
"""
from __future__ import annotations

import re
from collections import Counter

from mlbook.models.layout import unwrap
from mlbook.text.sampling import encode, end_of_turn, sample, stop_ids
from mlbook.training import copsd, grpo, onpolicy

from . import wordproblems as wp

SAMPLING = {"temperature": copsd.TEMPERATURE, "top_k": 20, "top_p": 0.95}   # the paper's rollout settings

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


def completion_text(problem_l: dict, tokenizer) -> str:
    """The reference completion after the think prefix: the solution in L and the end of the turn."""
    return "\n" + problem_l["solution"] + end_of_turn(tokenizer)


def student_prompt(tokenizer):
    """``problem -> prompt text`` of the student: the problem in L through the chat template."""
    def build(problem) -> str:
        sk, lang = problem
        return chat_prompt(tokenizer, student_message(wp.render(sk, lang)), lang)

    return build


def teacher_prompt(tokenizer, translation: bool = True, reference: bool = True):
    """``problem -> prompt text`` of the teacher: the problem in L with the privileged English context."""
    def build(problem) -> str:
        sk, lang = problem
        return chat_prompt(tokenizer, teacher_message(wp.render(sk, lang), wp.render(sk, "en"), translation, reference),
                           lang)

    return build


# ----------------------------------------------------------------------------- the reward
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


def problem_reward(text: str, problem) -> float:
    """The reward of a completion of ``problem`` (a ``(Skeleton, lang)`` pair): ``reward(text, its answer)``."""
    return reward(text, problem[0].answer)


# ----------------------------------------------------------------------------- the loop with this task
def rollout(model, tokenizer, problems: list, *, max_new_tokens: int, teacher: dict | None = None,
            sample_batch: int | None = None, repeat: int = 1) -> dict:
    """On-policy samples of the student for ``problems``; ``teacher``: ``{"translation", "reference"}`` to
    also build the teacher's inputs (its prompt + the same completion)."""
    return onpolicy.rollout_batch(model, tokenizer, problems, prompt=student_prompt(tokenizer), reward=problem_reward,
                                  teacher_prompt=teacher_prompt(tokenizer, **teacher) if teacher is not None else None,
                                  max_new_tokens=max_new_tokens, repeat=repeat, sample_batch=sample_batch, **SAMPLING)


def copsd_batches(model, tokenizer, pool: list, *, n_prompts: int, max_new_tokens: int, seed: int = 0,
                  translation: bool = True, reference: bool = True, sample_batch: int | None = None):
    """COPSD's ``i -> batch`` on this task: the student's prompt, the teacher's (with the chosen context)."""
    return copsd.copsd_batches(model, tokenizer, pool, prompt=student_prompt(tokenizer),
                               teacher_prompt=teacher_prompt(tokenizer, translation, reference), reward=problem_reward,
                               n_prompts=n_prompts, max_new_tokens=max_new_tokens, seed=seed, sample_batch=sample_batch,
                               **SAMPLING)


def grpo_batches(model, tokenizer, pool: list, *, n_prompts: int, group_size: int, max_new_tokens: int, seed: int = 0,
                 sample_batch: int | None = None):
    """GRPO's ``i -> batch`` on this task; groups are labelled by language."""
    return grpo.grpo_batches(model, tokenizer, pool, prompt=student_prompt(tokenizer), reward=problem_reward,
                             n_prompts=n_prompts, group_size=group_size, max_new_tokens=max_new_tokens, seed=seed,
                             label=lambda problem: problem[1], sample_batch=sample_batch, **SAMPLING)


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
    k samples are all right or all wrong: as a GRPO group of k, they would carry no signal), and
    ``per_problem``: each problem's avg and format share."""
    import numpy as np

    correct = [[a is not None and abs(a - g) < 1e-9 for a in ans] for ans, g in zip(answers, golds)]
    maj = [majority(ans) for ans in answers]
    return {"avg": float(np.mean([np.mean(c) for c in correct])),
            "pass": float(np.mean([any(c) for c in correct])),
            "maj": float(np.mean([m is not None and abs(m - g) < 1e-9 for m, g in zip(maj, golds)])),
            "format": float(np.mean([[a is not None for a in ans] for ans in answers])),
            "identical": float(np.mean([all(c) or not any(c) for c in correct])),
            # per problem, in the problems' order: the resampling units of the chapter's claims
            "per_problem": {"avg": [float(np.mean(c)) for c in correct],
                            "format": [float(np.mean([a is not None for a in ans])) for ans in answers]}}


def evaluate(model, tokenizer, problems: list[tuple], *, k: int, max_new_tokens: int, prompt=None,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, batch_size: int = 256,
             keep_texts: bool = False) -> dict:
    """k samples per ``(Skeleton, lang)`` problem → ``{lang: {"avg", "pass", "maj", "format", "identical", "n"}}``.

    ``prompt(skeleton, lang) -> str`` builds the prompt text (default: the student's prompt).
    """
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
