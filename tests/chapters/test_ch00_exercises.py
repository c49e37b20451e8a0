"""The chapter 0 exercise checks accept the book's solutions, reject the typical mistakes and answer a stub
with a reminder (so that the untouched notebook runs)."""
import pytest
import torch

from mlbook.chapters.ch00_using_this_book import exercises as ex


def stub(*args):
    raise NotImplementedError


def solution_logit_lens(model, resid):
    return model.lm_head(model.model.norm(resid))


def solution_first_stable_top1(ranks):
    stable = (ranks == 0).int().flip(1).cumprod(1).flip(1)
    return torch.where(stable.any(1), ranks.shape[1] - stable.sum(1), torch.full((ranks.shape[0],), -1))


def test_check_logit_lens():
    assert ex.check_logit_lens(solution_logit_lens).startswith("✔")
    with pytest.raises(AssertionError, match="final norm"):                 # forgets the final norm
        ex.check_logit_lens(lambda model, resid: model.lm_head(resid))

    def rms_without_weight(model, resid):                                   # normalises, but drops the norm's weight
        eps = model.config.rms_norm_eps
        return model.lm_head(resid * torch.rsqrt(resid.pow(2).mean(-1, keepdim=True) + eps))
    with pytest.raises(AssertionError):
        ex.check_logit_lens(rms_without_weight)


def test_check_first_stable_top1():
    assert ex.check_first_stable_top1(solution_first_stable_top1).startswith("✔")
    with pytest.raises(AssertionError):                                     # the first top-1 layer, not the stable one
        ex.check_first_stable_top1(lambda r: torch.where((r == 0).any(1), (r == 0).int().argmax(1), -1))
    with pytest.raises(AssertionError):                                     # forgets −1 when the last layer is wrong
        ex.check_first_stable_top1(lambda r: r.shape[1] - (r == 0).int().flip(1).cumprod(1).sum(1))


def test_stubs_are_reminded_not_failed():
    for check in (ex.check_logit_lens, ex.check_first_stable_top1):
        assert check(stub).startswith("not implemented yet — fill in stub above")
