"""Checks for chapter 5's exercises. Each draws fresh random inputs and compares the reader's function with
the chapter's own rule (``claims``, ``experiment``) or checks the properties a mediated prompt must have."""
from __future__ import annotations

import random

import numpy as np

from mlbook.core.exercises import exercise


def conditional_recall(direct, mediated) -> float:
    """P(Q2 correct | Q1 correct): the share of mediated answers that are right among the facts the model
    answers right when asked directly (``direct``: one 0/1 per fact; ``mediated``: (facts, prompts) 0/1)."""
    d, m = np.asarray(direct, bool), np.asarray(mediated, float)
    return float(m[d].mean()) if d.any() else float("nan")


@exercise
def check_conditional_recall(fn, trials: int = 200) -> str:
    """``fn(direct, mediated) -> float`` with direct (n,) and mediated (n, k) arrays of 0/1."""
    rng = np.random.default_rng(random.randrange(10 ** 6))
    for _ in range(trials):
        n, k = int(rng.integers(3, 40)), int(rng.integers(1, 4))
        direct = rng.random(n) < rng.uniform(0.2, 0.9)
        direct[0] = True
        mediated = (rng.random((n, k)) < rng.uniform(0.1, 0.9)).astype(int)
        want, got = conditional_recall(direct, mediated), float(fn(direct.astype(int), mediated))
        if abs(want - got) > 1e-9:
            raise AssertionError(f"direct={direct.astype(int).tolist()}, mediated={mediated.tolist()}: "
                                 f"expected {want:.4f}, got {got:.4f}")
    return "✔ P(Q2 | Q1 correct) right on every table"


def strictly_first(scores) -> bool:
    """Is the gold candidate (index 0) strictly the most likely? A tie is not an answer."""
    s = np.asarray(scores, float)
    return bool(s[0] > s[1:].max()) if len(s) > 1 else True


@exercise
def check_correct(fn, trials: int = 300) -> str:
    """``fn(scores) -> bool``: scores is a list of log-likelihoods, the gold candidate's first."""
    rng = random.Random(random.randrange(10 ** 6))
    cases = [[-1.0, -1.0], [-2.0, -1.0, -3.0], [-0.5, -4.0], [-3.0, -3.0, -3.0], [-1.0]]
    for _ in range(trials):
        k = rng.randint(2, 8)
        s = [round(rng.uniform(-12, 0), rng.choice([0, 1, 3])) for _ in range(k)]
        cases.append(s)
    for s in cases:
        want, got = strictly_first(s), bool(fn(list(s)))
        if want != got:
            raise AssertionError(f"scores {s}: expected {want}, got {got}")
    return "✔ correct() right, ties included"


@exercise
def check_template(fn, trials: int = 100) -> str:
    """``fn(name, country) -> str``: a mediated prompt for "the capital": a context sentence that introduces
    the country through the person, then a query that refers to the country *only* through the person."""
    rng = random.Random(random.randrange(10 ** 6))
    letters = "bdfgklmnprstvz"
    for _ in range(trials):
        name = "".join(rng.choice(letters) + rng.choice("aeiou") for _ in range(3)).capitalize()
        country = "".join(rng.choice(letters) + rng.choice("aeiou") for _ in range(4)).capitalize() + "ia"
        text = fn(name, country)
        if not isinstance(text, str) or not text.strip():
            raise AssertionError(f"fn({name!r}, {country!r}) returned {text!r}, not a prompt")
        if text != text.rstrip():
            raise AssertionError(f"{text!r} ends with whitespace: the answer is scored after ' ', add none")
        if text.count(country) != 1:
            raise AssertionError(f"{text!r}: the country must be named exactly once (in the context), "
                                 f"found {text.count(country)} times")
        last = text.rfind(name)
        if text.count(name) < 2 or last < text.find(country):
            raise AssertionError(f"{text!r}: the query must refer to the country through {name!r} after the "
                                 f"context names it (the name twice, the last time after the country)")
        if name not in text[text.find(country) + len(country):]:
            raise AssertionError(f"{text!r}: nothing after the country refers back to {name!r}")
    return "✔ a mediated prompt: the country once, then a reference through the name"
