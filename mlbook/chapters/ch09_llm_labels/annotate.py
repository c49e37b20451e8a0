"""Chapter 9's LLM annotator: a chat model labels emails as spam or not, three ways, and its labels are
cached.

**Chat interfaces** (the paper's): the email, then a question the model answers with Yes or No.  The
answer is read from the next-token distribution after the assistant's turn opens,

    log-odds(x, q) = log p(Yes | x, q) − log p(No | x, q),        label = [log-odds > 0],

that is, the answer the model would give greedily between the two words.  The *holistic* interface asks
one question ("is this spam?"); the *two-question* interface mirrors how a person would decide — is the
email selling something (the topic)?  was it sent in bulk to people who did not ask (the manner)? — and
labels spam only when both answers are Yes:  label = [min_q log-odds(x, q) > 0].  The questions share the
email: one pass over the chat template and the email, then each question from its KV cache
(``mlbook.text.choice.score`` with one group per email).

**Likelihood interface** (what a small model does better): the email's log-likelihood after a description
of each class, a zero-shot generative classifier with equal priors,

    s(x) = log p(x | "The following is a spam email …") − log p(x | "The following is a normal email …"),
    label = [s(x) > 0].

No label of the gold standard enters any of the three: thresholds are 0, the model's own preference.

Cost: each label is charged the tokens the model reads (every question's full prompt, as an API without a
prompt cache would) and one output token per question.
"""
from __future__ import annotations

import json

import numpy as np

from mlbook.core.cache import cached_folder, key_of, source_digest
from mlbook.text import choice

VERSION = 1
INTERFACES = ("holistic", "two_question", "likelihood")
QUESTIONS = {
    "holistic": ["Is this email spam (unsolicited bulk email)? Answer Yes or No."],
    "two_question": [
        "Does this email advertise, sell or promote something (a product, a service, an offer, a way to make "
        "money)? Answer Yes or No.",
        "Was this email sent in bulk to people who did not ask for it? Answer Yes or No.",
    ],
}
DESCRIPTIONS = ("The following is a spam email (an unsolicited advertisement sent in bulk).\n\n",
                "The following is a normal email (a personal message or a mailing-list post).\n\n")


def truncate(tok, texts, max_tokens: int) -> list[str]:
    """Each text cut to its first ``max_tokens`` tokens (what the annotator reads)."""
    out = []
    for t in texts:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        out.append(t if len(ids) <= max_tokens else tok.decode(ids[:max_tokens]))
    return out


def chat_prompt(tok, email: str, question: str) -> list[int]:
    msgs = [{"role": "user", "content": f"Here is an email.\n\n---\n{email}\n---\n\n{question}"}]
    return tok(tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False),
               add_special_tokens=False)["input_ids"]


def answer_ids(tok) -> tuple[int, int]:
    yes, no = (tok("Yes", add_special_tokens=False)["input_ids"], tok("No", add_special_tokens=False)["input_ids"])
    if len(yes) != 1 or len(no) != 1:
        raise ValueError(f"'Yes'/'No' are not single tokens for this tokenizer ({yes}, {no})")
    return yes[0], no[0]


def chat_log_odds(model, tok, emails: list[str], questions: list[str], batch_size: int = 32):
    """(log-odds (n, q), tokens read per email): every question asked of every email, the email's pass shared."""
    yes, no = answer_ids(tok)
    prompts, groups = [], []
    for i, e in enumerate(emails):
        for q in questions:
            prompts.append(chat_prompt(tok, e, q))
            groups.append(i)
    got = choice.score(model, prompts, [[[yes], [no]]] * len(prompts), end_id=None, pad_id=tok.pad_token_id or 0,
                       batch_size=batch_size, groups=groups if len(questions) > 1 else None)
    lo = np.array([a - b for a, b in got]).reshape(len(emails), len(questions))
    tokens = np.array([len(p) for p in prompts]).reshape(len(emails), len(questions)).sum(1)
    return lo, tokens


def likelihood_scores(model, tok, emails: list[str], batch_size: int = 32):
    """(s(x), tokens read per email): the email's log-likelihood after each class description."""
    heads = [tok(d, add_special_tokens=False)["input_ids"] for d in DESCRIPTIONS]
    bodies = [tok(e, add_special_tokens=False)["input_ids"] or [tok.eos_token_id] for e in emails]
    got = choice.score(model, [heads[0]] * len(bodies) + [heads[1]] * len(bodies),
                       [[b] for b in bodies] * 2, end_id=None, pad_id=tok.pad_token_id or 0, batch_size=batch_size)
    ll = np.array([r[0] for r in got]).reshape(2, len(bodies))
    tokens = np.array([len(heads[0]) + len(heads[1]) + 2 * len(b) for b in bodies])
    return ll[0] - ll[1], tokens


def labels_of(scores: dict) -> dict:
    """Each interface's 0/1 labels from its scores (threshold 0: the model's own preference)."""
    return {"holistic": (scores["holistic"][:, 0] > 0).astype(int),
            "two_question": (scores["two_question"].min(axis=1) > 0).astype(int),
            "likelihood": (scores["likelihood"] > 0).astype(int)}


def annotate(model, tok, texts: list[str], ids: list[str], model_name: str, max_tokens: int, batch_size: int = 32,
             chunk: int = 64, progress: bool = True) -> dict:
    """Every interface's scores, labels and tokens read, for each email; cached under the model, the emails'
    ids, ``max_tokens`` and the source of this module and of the scorer.  ``info["emails_per_s"]`` is the
    throughput of the pass that built the entry."""
    import time

    from tqdm.auto import tqdm

    key = key_of("ch09-annotate", model_name, list(ids), max_tokens, VERSION,
                 source_digest(__name__, "mlbook.text.choice"))

    def build(folder):
        emails = truncate(tok, texts, max_tokens)
        parts = {k: [] for k in INTERFACES}
        toks = {k: [] for k in INTERFACES}
        t0 = time.perf_counter()
        for s in tqdm(range(0, len(emails), chunk), desc="LLM labels", unit="×64 emails", disable=not progress):
            part = emails[s:s + chunk]
            for k in ("holistic", "two_question"):
                lo, n = chat_log_odds(model, tok, part, QUESTIONS[k], batch_size)
                parts[k].append(lo)
                toks[k].append(n)
            sc, n = likelihood_scores(model, tok, part, batch_size)
            parts["likelihood"].append(sc)
            toks["likelihood"].append(n)
        seconds = time.perf_counter() - t0
        np.savez(folder / "scores.npz", **{k: np.concatenate(v) for k, v in parts.items()},
                 **{f"tokens_{k}": np.concatenate(v) for k, v in toks.items()})
        meta = {"model": model_name, "n": len(emails), "seconds": seconds, "emails_per_s": len(emails) / seconds}
        (folder / "info.json").write_text(json.dumps(meta))
        return meta

    folder = cached_folder(f"ch09/labels-{key}", build)
    z = np.load(folder / "scores.npz")
    scores = {k: z[k] for k in INTERFACES}
    return {"scores": scores, "labels": labels_of(scores), "tokens_in": {k: z[f"tokens_{k}"] for k in INTERFACES},
            "tokens_out": {"holistic": 1, "two_question": 2, "likelihood": 0},
            "info": json.loads((folder / "info.json").read_text())}
