"""Chapter 5's experiment: score every prompt's candidate answers with a model (cached), decide which prompts
it answers correctly, and turn the table into the statistics of the claims, with their resampling units.

A prompt is answered correctly when its gold answer has the highest log-likelihood among the candidates,

    correct(x) = [ max_{a ∈ forms(gold)} log p(a | x)  >  max_{c ≠ gold} max_{a ∈ forms(c)} log p(a | x) ],

the forms being the answer's CLDR spellings (singular and plural of a currency) with the article the prompt
needs.  Chance is 1 / (number of candidates).  Greedy decoding of ≤ 8 tokens on a subset checks that the
ranking agrees with what the model would say.
"""
from __future__ import annotations

import math

from mlbook.core.cache import cached_folder, key_of, source_digest
from mlbook.corpora.facts import RELATIONS, country_facts
from mlbook.text import choice
from mlbook.text.sampling import sample

VERSION = 1


def select_facts(languages, n_countries: int, relations=None):
    """The facts of the ``n_countries`` largest UN members (by area) that have a capital in every language,
    leaving out facts whose answer repeats a word of the country's name in some language (they can be
    answered by copying the name from the context: Kuwait → Kuwait City, Djibouti)."""
    facts = country_facts(list(languages), relations or RELATIONS)
    copy = {(c, r) for c, r, k in zip(facts["country"], facts["relation"], facts["copyable"]) if k}
    cap = {c for c, r in zip(facts["country"], facts["relation"]) if r == "capital" and (c, r) not in copy}
    area = {c: a for c, a in zip(facts["country"], facts["area"])}
    chosen = set(sorted(cap, key=lambda c: (-area[c], c))[:n_countries])
    keep = [i for i, (c, r) in enumerate(zip(facts["country"], facts["relation"])) if c in chosen and (c, r) not in copy]
    facts = facts.select(keep)
    order = sorted(range(len(facts)), key=lambda i: (facts[i]["locale"], facts[i]["relation"], facts[i]["country"]))
    return facts.select(order)


def encode(tok, prompts: list[dict], answers: dict):
    """Token ids: each prompt as the tokenizer reads it (its BOS included) and, per candidate key, each of
    its forms as a continuation after a space; ``owner`` maps a flat form back to its candidate."""
    ids, flat, owner = [], [], []
    memo: dict = {}
    for p in prompts:
        ids.append(tok(p["text"])["input_ids"])
        forms, own = [], []
        for j, key in enumerate(p["candidates"]):
            for a in answers[p["locale"], p["relation"], key]:
                if a not in memo:
                    memo[a] = tok(" " + a, add_special_tokens=False)["input_ids"]
                forms.append(memo[a])
                own.append(j)
        flat.append(forms)
        owner.append(own)
    return ids, flat, owner


def score_items(model, tok, items: list[dict], answers: dict, batch_size: int = 64) -> list[list[float]]:
    """Per prompt, the log-likelihood of each candidate (the max over its forms), uncached; prompts with the
    same ``group`` share one pass over their common head."""
    ids, flat, owner = encode(tok, items, answers)
    got = choice.score(model, ids, flat, end_id=None, pad_id=tok.pad_token_id or 0, batch_size=batch_size,
                       groups=[p["group"] for p in items])
    out = []
    for row, own, p in zip(got, owner, items):
        best = [-math.inf] * len(p["candidates"])
        for v, j in zip(row, own):
            best[j] = max(best[j], v)
        out.append(best)
    return out


def score_prompts(model, tok, prompts: list[dict], answers: dict, model_name: str, batch_size: int = 64,
                  progress: bool = True) -> tuple[list[list[float]], dict]:
    """``(scores, info)``: :func:`score_items` of every prompt, cached under the model, the prompts, the
    answers and the source of the scoring code; ``info["prompts_per_s"]`` is the throughput of the pass that
    built the entry.  The prompts are scored in order of their group, so that a group is never split."""
    import json
    import time

    spec = {"model": model_name, "prompts": key_of([(p["text"], p["candidates"]) for p in prompts]),
            "answers": key_of(sorted((list(k), v) for k, v in answers.items())), "version": VERSION,
            "code": source_digest("mlbook.text.choice", "mlbook.chapters.ch05_contextual_recall.experiment"),
            "tokenizer": type(tok).__name__, "vocab": len(tok)}

    def build(folder):
        t0 = time.perf_counter()
        order = sorted(range(len(prompts)), key=lambda i: prompts[i]["group"])
        ordered, out = [prompts[i] for i in order], [None] * len(prompts)
        bar = _bar(len(prompts), f"scoring {model_name.split('/')[-1]}", progress)
        for lo, hi in _chunks(ordered, 512):
            for i, best in zip(order[lo:hi], score_items(model, tok, ordered[lo:hi], answers, batch_size)):
                out[i] = best
            bar.update(hi - lo)
        bar.close()
        seconds = time.perf_counter() - t0
        (folder / "scores.json").write_text(json.dumps(out))
        (folder / "info.json").write_text(json.dumps({**spec, "seconds": seconds, "prompts_per_s": len(prompts) / seconds}))
        return {"spec": spec}

    folder = cached_folder(f"recall/{model_name.replace('/', '--')}-{key_of(spec)}", build)
    return json.loads((folder / "scores.json").read_text()), json.loads((folder / "info.json").read_text())


def _chunks(prompts, size: int):
    """Consecutive ranges of about ``size`` prompts that never split a group (the progress bar's steps)."""
    out, lo = [], 0
    while lo < len(prompts):
        hi = min(lo + size, len(prompts))
        while hi < len(prompts) and prompts[hi]["group"] == prompts[hi - 1]["group"]:
            hi += 1
        out.append((lo, hi))
        lo = hi
    return out


def _bar(total: int, desc: str, on: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not on, leave=False)


def table(prompts: list[dict], scores: list[list[float]]):
    """One row per prompt: its fields, ``correct`` (the gold candidate strictly first), ``chance`` and
    ``p_gold`` (the gold answer's share of the candidates' probability mass)."""
    import numpy as np
    import pandas as pd

    rows = []
    for p, s in zip(prompts, scores):
        s = np.asarray(s, float)
        w = np.exp(s - s.max())
        rows.append({k: v for k, v in p.items() if k != "candidates"} | {
            "n_candidates": len(s), "chance": 1 / len(s), "correct": bool(s[0] > s[1:].max()) if len(s) > 1 else True,
            "p_gold": float(w[0] / w.sum()), "predicted": p["candidates"][int(s.argmax())],
            "predicted_index": int(s.argmax())})
    return pd.DataFrame(rows)


def greedy_check(model, tok, prompts: list[dict], answers: dict, n: int, seed: int = 0, max_new_tokens: int = 8):
    """Greedy decoding of ≤ ``max_new_tokens`` tokens on ``n`` prompts drawn with ``seed``: which candidate,
    if any, does the text start with (case, spacing and apostrophes folded; an article may be left out)?
    Returns one dict per prompt: prompt (its index), text, pick (the candidate's index, −1 for none of
    them), greedy_correct (pick = 0, the gold answer)."""
    import random

    picked = random.Random(seed).sample(range(len(prompts)), min(n, len(prompts)))
    ids = [tok(prompts[i]["text"])["input_ids"] for i in picked]
    outs = sample(model, ids, max_new_tokens=max_new_tokens, stop_ids=set(), pad_id=tok.pad_token_id or 0,
                  greedy=True, batch_size=32)
    rows = []
    for i, o in zip(picked, outs):
        p = prompts[i]
        text = _fold(tok.decode(o, skip_special_tokens=True))
        pick, best = -1, 0
        for j, key in enumerate(p["candidates"]):
            for a in answers[p["locale"], p["relation"], key]:
                for form in {_fold(a), _fold(a.split(maxsplit=1)[-1]), _fold(a.split("’", 1)[-1])}:
                    if form and text.startswith(form) and len(form) > best:  # the longest match names the answer
                        pick, best = j, len(form)
        rows.append({"prompt": i, "text": text, "pick": pick, "greedy_correct": pick == 0})
    return rows


def _fold(s: str) -> str:
    return " ".join(s.replace("’", "'").casefold().split())


def wilson_lo(k: int, n: int, z: float = 1.959964) -> float:
    """Wilson's lower 95 % bound of a rate of k in n."""
    if n == 0:
        return 0.0
    p = k / n
    return (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)


def eligible_cells(df, margin: float = 0.1) -> dict:
    """``{(relation, locale): eligible}`` from the direct queries alone: a cell is eligible when the Wilson
    lower bound of its direct accuracy exceeds chance by ``margin`` — the model knows these facts when asked
    directly, so a drop under mediation means something."""
    d = df[df.kind == "direct"]
    out = {}
    for (rel, loc), g in d.groupby(["relation", "locale"]):
        out[rel, loc] = wilson_lo(int(g.correct.sum()), len(g)) > g.chance.mean() + margin
    return out
