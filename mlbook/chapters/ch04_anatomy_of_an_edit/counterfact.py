"""A CounterFact-style set of edits over facts the model knows.

Facts come from ``mlbook.corpora.facts.country_facts`` (the capital, official language, currency and
continent of UN member states: CLDR names via babel, world-countries).  The prompts are the templates of
``data/04_anatomy_of_an_edit/templates.yml``.  For a model:

1. **known facts**: a fact is kept only if the model's first-token argmax on the relation's edit prompt
   is the first token of the true answer (``known_facts``, cached per model);
2. **an edit** (``edits``): a known fact (s, r, o) and a counterfactual answer o* of the same relation whose
   first token differs from o's; with its paraphrases (the generalisation prompts, never seen by an
   editing method), its fit prompts (for MEGA's steering only), and its neighbourhood: the edit prompts
   of other known subjects of the same relation, those with the same answer o first (CounterFact's
   "same relation, same object"), each with its own true answer.

The known facts of a relation are split among the seeds of a run (each fact edited once), and each seed
draws its facts' counterfactual answers: every edit is an independent unit of the chapter's tests.
"""
from __future__ import annotations

import random
from functools import cache
from pathlib import Path

import yaml

from mlbook.core.cache import cached_folder, key_of, source_digest
from mlbook.corpora.facts import country_facts
from mlbook.interp.lens import answer_token_id
from mlbook.text.batching import left_pad, positions

DATA = Path(__file__).resolve().parents[3] / "data" / "04_anatomy_of_an_edit"
RELATIONS = ("capital", "language", "currency", "continent")


@cache
def templates() -> dict:
    path = DATA / "templates.yml"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: it ships with the book (data/04_anatomy_of_an_edit/)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def prompt(relation: str, subject: str, kind: str = "edit") -> str | list[str]:
    """The relation's ``edit`` prompt (a string) or its ``fit`` / ``paraphrases`` prompts (a list) for ``subject``."""
    t = templates()["relations"][relation][kind]
    return t.format(s=subject) if isinstance(t, str) else [p.format(s=subject) for p in t]


first_token = answer_token_id   # the first token of an answer as it follows a prompt (with its leading space)


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of a prompt, with the tokenizer's special tokens (SmolLM2 adds none)."""
    return tokenizer(text)["input_ids"]


def candidate_facts() -> list[dict]:
    """Every (subject, relation, answer) of the four relations, in English."""
    ds = country_facts(["en"], relations=RELATIONS)
    return [{"subject": r["country_en"], "relation": r["relation"], "answer": r["answer"], "answer_key": r["answer_key"]}
            for r in ds]


def last_logits(model, prompts: list[list[int]], pad_id: int = 0, batch_size: int = 64):
    """(N, vocab) float32: the next-token logits after each prompt.  Left-padded batches with position ids
    that count real tokens only, so the last column is every row's last token (a hook at position -1
    steers it) and padding changes nothing."""
    import torch

    out = []
    dev = next(model.parameters()).device
    with torch.no_grad():
        for s in range(0, len(prompts), batch_size):
            ids, mask = left_pad(prompts[s:s + batch_size], pad_id)
            out.append(model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions(mask).to(dev),
                             logits_to_keep=1).logits[:, -1].float().cpu())
    return torch.cat(out)


def _known(model, tokenizer, facts: list[dict], batch_size: int) -> list[bool]:
    prompts = [encode(tokenizer, prompt(f["relation"], f["subject"])) for f in facts]
    top = last_logits(model, prompts, batch_size=batch_size).argmax(-1).tolist()
    return [t == first_token(tokenizer, f["answer"]) for t, f in zip(top, facts)]


def known_facts(model, tokenizer, model_name: str, batch_size: int = 64):
    """The facts ``model`` answers right on the edit prompt (first-token argmax), a ``datasets.Dataset``
    cached per model name and code: subject, relation, answer, answer_key, answer_id."""
    from datasets import Dataset, load_from_disk

    facts = candidate_facts()

    def build(folder: Path) -> dict:
        ok = _known(model, tokenizer, facts, batch_size)
        rows = [{**f, "answer_id": first_token(tokenizer, f["answer"])} for f, k in zip(facts, ok) if k]
        Dataset.from_list(rows).save_to_disk(str(folder / "table"))
        return {"candidates": len(facts), "known": len(rows)}

    key = key_of(model_name, source_digest(__name__, "data/04_anatomy_of_an_edit"), len(facts))
    return load_from_disk(str(cached_folder(f"data/ch04-known-{key}", build) / "table"))


def _split(n: int, n_parts: int) -> list[list[int]]:
    """A fixed shuffle of ``range(n)`` cut into ``n_parts`` near-equal parts (the same for every run)."""
    order = list(range(n))
    random.Random(4).shuffle(order)
    return [order[i::n_parts] for i in range(n_parts)]


def edits(known, tokenizer, seeds: list[int], per_seed: int | None = None, n_neighbours: int = 5) -> dict:
    """``{seed: [edit, …]}``: the known facts split among ``seeds`` (each fact edited at one seed only), at
    most ``per_seed`` per seed (balanced over relations), each with a counterfactual answer drawn by the seed.

    An edit: subject, relation, prompt, answer (o), new (o*), true_id, new_id, paraphrases, fit, context
    (the counterfactual said in context, for MEGA's target activations), neighbours [(prompt, their answer's
    first token)], essence (ROME's KL prompt)."""
    if not seeds:
        raise ValueError("edits needs at least one seed")
    rows = list(known)
    if not rows:
        raise ValueError("no known facts: the model answers none of the edit prompts right")
    t = templates()
    by_rel: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_rel.setdefault(r["relation"], []).append(i)
    # o* is drawn among every answer of the relation in the source table, not only the known ones
    pool = {rel: [(a, k, first_token(tokenizer, a)) for a, k in
                  sorted({(f["answer"], f["answer_key"]) for f in candidate_facts() if f["relation"] == rel})]
            for rel in by_rel}
    out: dict = {s: [] for s in seeds}
    for rel in RELATIONS:
        idx = by_rel.get(rel, [])
        parts = _split(len(idx), len(seeds))
        for s, part in zip(seeds, parts):
            rng = random.Random(1000 * s + RELATIONS.index(rel))
            take = part if per_seed is None else part[:max(1, per_seed // len(by_rel))]
            for j in take:
                f = rows[idx[j]]
                new, _, new_id = rng.choice([c for c in pool[rel] if c[1] != f["answer_key"] and c[2] != f["answer_id"]])
                same = [rows[i] for i in idx if rows[i]["subject"] != f["subject"] and rows[i]["answer_id"] != new_id]
                rng.shuffle(same)
                same.sort(key=lambda r: r["answer_key"] != f["answer_key"])   # the same object first (stable)
                out[s].append({
                    "subject": f["subject"], "relation": rel, "prompt": prompt(rel, f["subject"]),
                    "answer": f["answer"], "new": new, "true_id": f["answer_id"], "new_id": new_id,
                    "paraphrases": prompt(rel, f["subject"], "paraphrases"), "fit": prompt(rel, f["subject"], "fit"),
                    "context": t["context_frame"].format(c=t["context"][rel].format(s=f["subject"], new=new)),
                    "essence": t["essence"].format(s=f["subject"]),
                    "neighbours": [(prompt(rel, r["subject"]), r["answer_id"]) for r in same[:n_neighbours]],
                })
    return out


def scores(logits_edit, logits_para, logits_nb, e: dict) -> dict:
    """The three metrics of one edit from next-token logits (1-D for the edit prompt, 2-D for the others):

    efficacy        the new answer's first token is the argmax on the edit prompt
    generalisation  the share of paraphrases where it is the argmax
    specificity     the share of neighbourhood prompts where their own answer still beats the new one
    """
    nb_true = [int(t) for _, t in e["neighbours"]]
    rows = range(len(nb_true))
    return {"efficacy": float(int(logits_edit.argmax()) == e["new_id"]),
            "generalisation": float((logits_para.argmax(-1) == e["new_id"]).float().mean()),
            "specificity": float(sum(float(logits_nb[i, nb_true[i]] > logits_nb[i, e["new_id"]]) for i in rows)
                                 / max(1, len(nb_true)))}
