"""mlbook.wordproblems: exact answers, parallel renderings, the pseudo-language, clear errors."""
from __future__ import annotations

import random
import re

import pytest

from mlbook.chapters.ch07_copsd import task as rl
from mlbook.chapters.ch07_copsd import wordproblems as wp


def test_languages_and_errors():
    assert wp.languages() == ["en", "de", "es", "sw", "qaa"]
    with pytest.raises(ValueError, match="sw \\(Swahili\\)"):
        wp.render(wp.draw(random.Random(0)), "xx")


def test_answers_are_computed_and_never_negative():
    rng = random.Random(1)
    for _ in range(500):
        sk = wp.draw(rng)
        vals = sk.values()
        assert 1 <= sk.n_steps <= 3 and min(vals) >= 0
        assert wp.START_RANGE[0] <= sk.start <= wp.START_RANGE[1]
        assert all(wp.STEP_RANGE[0] <= n <= wp.STEP_RANGE[1] for _, n in sk.events)
        assert sk.answer == vals[-1]


def test_solution_equations_hold_and_end_in_the_boxed_answer():
    rng = random.Random(2)
    for _ in range(100):
        sk = wp.draw(rng)
        for lang in wp.languages():
            r = wp.render(sk, lang)
            eqs = re.findall(r"(\d+) ([+-]) (\d+) = (\d+)", r["solution"])
            assert len(eqs) == sk.n_steps
            for a, op, b, c in eqs:
                assert (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(c)
            assert rl.extract_answer(r["solution"]) == sk.answer == r["answer"]


def test_renderings_are_parallel():
    """Every language carries the same numbers in the same order: the renderings are translations."""
    sk = wp.Skeleton(name=0, friend=1, item=2, start=7, events=(("buy", 3), ("give", 4)))
    nums = {lang: re.findall(r"\d+", wp.render(sk, lang)["problem"]) for lang in wp.languages()}
    assert all(n == ["7", "3", "4"] for n in nums.values())
    assert wp.render(sk, "en")["problem"] == ("Anna has 7 pens. Anna buys 3 more pens. Anna gives 4 pens to David. "
                                             "How many pens does Anna have now?")
    assert wp.render(sk, "en")["solution"] == ("Anna buys 3 more pens: 7 + 3 = 10. Anna gives 4 pens to David: 10 - 4 = 6. "
                                              "The answer is \\boxed{6}.")
    assert wp.render(sk, "de")["problem"].startswith("Anna hat 7 Stifte. Anna kauft 3 weitere Stifte.")
    assert wp.render(sk, "sw")["problem"].endswith("Anna ana kalamu ngapi sasa?")
    assert wp.render(sk, "es")["problem"].endswith("¿Cuántos lápices tiene Anna ahora?")


def test_items_are_translations_item_by_item():
    """Item k is the same thing in every language (a dictionary check, worked by hand)."""
    words = {"en": ["apples", "books", "pens", "coins", "eggs", "oranges"],
             "de": ["Äpfel", "Bücher", "Stifte", "Münzen", "Eier", "Orangen"],
             "es": ["manzanas", "libros", "lápices", "monedas", "huevos", "naranjas"],
             "sw": ["matufaha", "vitabu", "kalamu", "sarafu", "mayai", "machungwa"]}
    for lang, expected in words.items():
        assert [it["items"] for it in wp.templates()["languages"][lang]["items"]] == expected, lang


def test_pseudo_language_is_a_consistent_cipher_of_english():
    cipher = wp.templates()["languages"]["qaa"]["cipher"]
    assert len(set(cipher.values())) == len(cipher)                  # one-to-one
    assert not set(cipher.values()) & set(cipher)                    # no invented word is an English word we use
    rng = random.Random(3)
    for _ in range(50):
        sk = wp.draw(rng)
        en, qa = wp.render(sk, "en"), wp.render(sk, "qaa")
        we, wq = re.findall(r"[A-Za-z]+|\d+", en["problem"]), re.findall(r"[A-Za-z]+|\d+", qa["problem"])
        assert len(we) == len(wq)
        names = set(wp.templates()["names"])
        for a, b in zip(we, wq):
            assert b == (a if a.isdigit() or a in names else (cipher[a.lower()].capitalize() if a[0].isupper()
                                                                 else cipher[a.lower()]))
    assert "Qaa" in wp.prompt_text("qaa", "think_prefix")
    assert "\\boxed{}" in wp.prompt_text("qaa", "instruction")


def test_problem_sets_are_distinct_and_exclude():
    train = wp.problem_set(200, seed=0)
    assert len(set(train)) == 200
    test = wp.problem_set(100, seed=0, exclude=train)
    assert not set(train) & set(test)
    assert wp.problem_set(5, seed=9) == wp.problem_set(5, seed=9)


def test_prompt_texts():
    for lang in wp.languages():
        for key in (*wp.PROMPT_KEYS, "labels.problem", "labels.translation", "labels.reference"):
            assert wp.prompt_text(lang, key)
    with pytest.raises(ValueError):
        wp.prompt_text("de", "labels.nope")
