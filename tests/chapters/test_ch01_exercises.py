"""The chapter 1 exercise checks accept the book's solutions, reject the typical mistakes and answer a stub
with a reminder (so that the untouched notebook runs)."""
import pytest
import torch

from mlbook.chapters.ch01_gluscope import exercises as ex
from mlbook.interp import hooks


def stub(*args):
    raise NotImplementedError


def solution_case_of(gate, in_):
    return torch.where((gate == 0) | (in_ == 0), -1, (gate < 0).long() * 2 + (in_ < 0).long())


def refactor(flip_where, flip_out=True):
    def fn(model):
        with torch.no_grad():
            for layer in range(hooks.n_layers(model)):
                w_gate, w_in, w_out = hooks.mlp_weights(model, layer)
                flip = flip_where((w_gate * w_in).sum(1))
                w_in[flip] *= -1
                if flip_out:
                    w_out[:, flip] *= -1
    return fn


def test_check_case_of():
    assert ex.check_case_of(solution_case_of).startswith("✔")
    with pytest.raises(AssertionError):                                     # forgets the exact zeros
        ex.check_case_of(lambda g, a: (g < 0).long() * 2 + (a < 0).long())
    with pytest.raises(AssertionError):                                     # swaps gate+in− and gate−in+
        ex.check_case_of(lambda g, a: torch.where((g == 0) | (a == 0), -1, (a < 0).long() * 2 + (g < 0).long()))


def test_check_refactor():
    assert ex.check_refactor(refactor(lambda dot: dot < 0)).startswith("✔")
    with pytest.raises(AssertionError, match="logits changed"):             # flips w_in but not w_out
        ex.check_refactor(refactor(lambda dot: dot < 0, flip_out=False))
    with pytest.raises(AssertionError, match="cos"):                        # the wrong sign: flips the aligned ones
        ex.check_refactor(refactor(lambda dot: dot > 0))


def test_check_swish_floor():
    assert ex.check_swish_floor(ex.swish_floor).startswith("✔")
    with pytest.raises(AssertionError):                                     # remembers SiLU's floor instead of computing
        ex.check_swish_floor(lambda act: (-1.2785, -0.2785))

    def coarse(act):                                                        # a grid of step 0.1, not refined
        xs = torch.linspace(-10, 0, 101, dtype=torch.float64)
        i = int(act(xs).argmin())
        return float(xs[i]), float(act(xs[i]))
    with pytest.raises(AssertionError):
        ex.check_swish_floor(coarse)


def test_stubs_are_reminded_not_failed():
    for check in (ex.check_case_of, ex.check_refactor, ex.check_swish_floor):
        assert check(stub).startswith("not implemented yet — fill in stub above")
