"""The chapter 8 exercise checks accept the book's solutions, reject the typical mistakes and answer a stub
with a reminder (so that the untouched notebook runs)."""
import pytest
import torch

from mlbook.chapters.ch08_dim3 import exercises as ex
from mlbook.merging import methods


def stub(*args):
    raise NotImplementedError


def solution_not_overridden(W_B, W_list, criteria=("magnitude", "direction")):
    dM, dD = methods.column_changes(W_B, W_list)
    mask = torch.zeros(W_B.shape[1], dtype=torch.bool)
    for name, d in (("magnitude", dM), ("direction", dD)):
        if name in criteria:                                                # rank 0 per model (ties: first)
            mask |= torch.nn.functional.one_hot(d.argmin(1), d.shape[1]).bool().any(0)
    return mask


def test_check_direction_change():
    assert ex.check_direction_change(
        lambda B, W: 1 - torch.nn.functional.cosine_similarity(W, B, dim=0)).startswith("✔")
    with pytest.raises(AssertionError):                                     # rows instead of columns
        ex.check_direction_change(lambda B, W: 1 - torch.nn.functional.cosine_similarity(W, B, dim=1))
    with pytest.raises(AssertionError):                                     # the cosine, not 1 − cosine
        ex.check_direction_change(lambda B, W: torch.nn.functional.cosine_similarity(W, B, dim=0))


def test_check_not_overridden():
    assert ex.check_not_overridden(solution_not_overridden).startswith("✔")
    with pytest.raises(AssertionError):                                     # the method card's claim: none
        ex.check_not_overridden(lambda B, Ws: torch.zeros(B.shape[1], dtype=torch.bool))
    with pytest.raises(AssertionError):                                     # only the magnitude criterion
        ex.check_not_overridden(lambda B, Ws: solution_not_overridden(B, Ws, criteria=("magnitude",)))


def test_check_token_weights():
    assert ex.check_token_weights(lambda E, Es: methods.dim3_weights(E.T, [e.T for e in Es])).startswith("✔")
    with pytest.raises(AssertionError, match="shape"):                      # forgets to transpose: one per hidden dim
        ex.check_token_weights(lambda E, Es: methods.dim3_weights(E, Es))
    with pytest.raises(AssertionError):                                     # the models' rows swapped
        ex.check_token_weights(lambda E, Es: methods.dim3_weights(E.T, [e.T for e in Es[::-1]]))


def test_stubs_are_reminded_not_failed():
    for check in (ex.check_direction_change, ex.check_not_overridden, ex.check_token_weights):
        assert check(stub).startswith("not implemented yet — fill in stub above")
