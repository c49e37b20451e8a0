"""The behaviour of chapter 2: naming a country's capital.

Two formats of the same question:

- **sentence** ``The capital of France is`` → `` Paris``: the model answers it zero-shot for the
  countries it knows; the clean/corrupted pairs of the patching grids use it (two countries
  whose prompts have the same number of tokens and whose capitals start with different tokens).
- **terse** ``France:`` → `` Paris``: zero-shot the model does not know what is asked; after a
  few demonstrations (``Japan: Tokyo`` lines) it does.  The *Improve* step makes the zero-shot
  terse prompt answer like the few-shot one, by steering.

Countries, capitals and continents come from ``mlbook.corpora.facts`` (CLDR and npm ``world-countries``).
"""
from __future__ import annotations

import random

from mlbook.corpora.facts import country_facts

CONTINENT_TEMPLATES = ("{c}:", "The capital of {c} is", "I have never been to {c}")


def countries() -> list[tuple[str, str, str]]:
    """``(country, capital, continent)`` in English for the UN member states that have all three
    (``mlbook.corpora.facts``: CLDR names, world-countries' regions), sorted by country."""
    facts: dict = {}
    for r in country_facts(["en"], relations=("capital", "continent")):
        facts.setdefault(r["country_name"], {})[r["relation"]] = r["answer"]
    return sorted((c, f["capital"], f["continent"]) for c, f in facts.items() if len(f) == 2)


def sentence(country: str) -> str:
    return f"The capital of {country} is"


def terse(country: str) -> str:
    return f"{country}:"


def few_shot(country: str, demos: list) -> str:
    """``demos`` (rows of ``countries()``) as ``Country: Capital`` lines, then the terse question."""
    if any(d[0] == country for d in demos):
        raise ValueError(f"{country} is among its own demonstrations")
    return "".join(f"{d[0]}: {d[1]}\n" for d in demos) + terse(country)


def draw_demos(rows: list, country: str, k: int, rng: random.Random) -> list:
    """``k`` demonstrations drawn from ``rows`` without ``country``."""
    return rng.sample([r for r in rows if r[0] != country], k)


def encode(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def first_token(tok, answer: str) -> int:
    """The answer's first token as it follows a prompt (with its leading space)."""
    ids = encode(tok, " " + answer.strip())
    if not ids:
        raise ValueError(f"answer {answer!r} tokenises to nothing")
    return ids[0]


def pairs(tok, rows: list, n: int, seed: int = 0) -> list[dict]:
    """Up to ``n`` clean/corrupted pairs: sentence prompts of two different countries with the same token
    count, whose capitals' first tokens differ.  Each country is clean in at most one pair."""
    rng = random.Random(seed)
    order = rows[:]
    rng.shuffle(order)
    by_len: dict[int, list] = {}
    for c, a, *_ in order:
        by_len.setdefault(len(encode(tok, sentence(c))), []).append((c, a))
    out, used = [], set()
    for c, a, *_ in order:
        if len(out) >= n:
            break
        if c in used:
            continue
        ids = encode(tok, sentence(c))
        right = first_token(tok, a)
        for c2, a2 in by_len[len(ids)]:
            if c2 != c and c2 not in used and first_token(tok, a2) != right:
                used |= {c, c2}
                out.append({"clean": c, "answer": a, "corrupt": c2, "wrong": a2,
                            "clean_ids": ids, "corrupt_ids": encode(tok, sentence(c2)),
                            "right_id": right, "wrong_id": first_token(tok, a2)})
                break
    return out
