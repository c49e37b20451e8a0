"""The chapter 5 exercise checks accept the book's solutions, reject typical mistakes and answer a stub with
a reminder (so that the untouched notebook runs)."""
import numpy as np
import pytest

from mlbook.chapters.ch05_contextual_recall import exercises as ex
from mlbook.chapters.ch05_contextual_recall import prompts


def test_check_conditional_recall():
    assert ex.check_conditional_recall(ex.conditional_recall).startswith("✔")
    with pytest.raises(AssertionError):  # the unconditional mediated accuracy
        ex.check_conditional_recall(lambda d, m: float(np.mean(m)))
    with pytest.raises(AssertionError):  # P(Q1 and Q2) instead of P(Q2 | Q1)
        ex.check_conditional_recall(lambda d, m: float((np.asarray(m) * np.asarray(d)[:, None]).mean()))


def test_check_correct():
    assert ex.check_correct(ex.strictly_first).startswith("✔")
    with pytest.raises(AssertionError):  # argmax: a tie goes to the first candidate, the gold one
        ex.check_correct(lambda s: int(np.argmax(s)) == 0)
    with pytest.raises(AssertionError):  # compares with the mean, not the best distractor
        ex.check_correct(lambda s: len(s) == 1 or s[0] > np.mean(s[1:]))


def test_check_template():
    def lives(name, country):
        return prompts.mediated("en", "capital", country, name, "lives")
    assert ex.check_template(lives).startswith("✔")
    with pytest.raises(AssertionError):  # a direct query: no person at all
        ex.check_template(lambda name, country: f"The capital of {country} is")
    with pytest.raises(AssertionError):  # names the country again in the query
        ex.check_template(lambda name, country: f"{name} lives in {country}. The capital of {country}, where {name} lives, is")
    with pytest.raises(AssertionError):  # a trailing space
        ex.check_template(lambda name, country: lives(name, country) + " ")


def test_stub_gets_a_reminder():
    def stub(*a):
        raise NotImplementedError
    for check in (ex.check_conditional_recall, ex.check_correct, ex.check_template):
        assert check(stub).startswith("not implemented yet")
