"""The chapter 7 exercise checks accept the book's solutions, reject the typical mistakes and answer a stub
with a reminder (so that the untouched notebook runs)."""
import pytest

from mlbook.chapters.ch07_copsd import exercises as ex
from mlbook.training import copsd
from mlbook.training.grpo import group_advantages


def stub(*args):
    raise NotImplementedError


def copsd_loss(s, t, m, T, c, detach=True, temperature_after=False):
    if temperature_after:                                                   # the mistake: T outside the softmax
        log_s, log_t = s.log_softmax(-1) / T, t.log_softmax(-1) / T
    else:
        log_s, log_t = (s / T).log_softmax(-1), (t / T).log_softmax(-1)
    if detach:
        log_t = log_t.detach()
    return ((log_t.exp() * (log_t - log_s)).clamp(max=c).sum(-1) * m).sum() / m.sum()


def test_check_copsd_loss():
    assert ex.check_copsd_loss(lambda s, t, m, T, c: copsd.copsd_loss_reference(s, t, m, T, c)).startswith("✔")
    assert ex.check_copsd_loss(copsd_loss).startswith("✔")
    with pytest.raises(AssertionError):                                     # forgets the clip
        ex.check_copsd_loss(lambda s, t, m, T, c: copsd.copsd_loss_reference(s, t, m, T, 1e9))
    with pytest.raises(AssertionError, match="teacher"):                    # forgets to detach the teacher
        ex.check_copsd_loss(lambda s, t, m, T, c: copsd_loss(s, t, m, T, c, detach=False))
    with pytest.raises(AssertionError):                                     # divides the log-probabilities by T
        ex.check_copsd_loss(lambda s, t, m, T, c: copsd_loss(s, t, m, T, c, temperature_after=True))


def test_check_clip_gradient():
    assert ex.check_clip_gradient(ex.clip_gradient).startswith("✔")
    with pytest.raises(AssertionError):                                     # the unclipped gradient
        ex.check_clip_gradient(lambda s, t, T, c: ((s / T).softmax(-1) - (t / T).softmax(-1)) / T)
    with pytest.raises(AssertionError):                                     # forgets the chain rule's 1/T
        ex.check_clip_gradient(lambda s, t, T, c: ex.clip_gradient(s, t, T, c) * T)


def test_check_group_advantages():
    assert ex.check_group_advantages(group_advantages).startswith("✔")
    with pytest.raises(AssertionError):                                     # no normalisation by the standard deviation
        ex.check_group_advantages(lambda r, g: (r.view(-1, g) - r.view(-1, g).mean(1, keepdim=True)).view(-1))

    def population_std(r, g):                                               # population instead of sample std
        r = r.float().view(-1, g)
        return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True, unbiased=False) + 1e-4)).view(-1)
    with pytest.raises(AssertionError):
        ex.check_group_advantages(population_std)


def test_check_identical_probability():
    assert ex.check_identical_probability(lambda p, g: p ** g + (1 - p) ** g).startswith("✔")
    with pytest.raises(AssertionError):                                     # only the all-wrong groups
        ex.check_identical_probability(lambda p, g: (1 - p) ** g)
    with pytest.raises(AssertionError):                                     # the two events for one sample, not G
        ex.check_identical_probability(lambda p, g: p ** 2 + (1 - p) ** 2)


def test_stubs_are_reminded_not_failed():
    for check in (ex.check_copsd_loss, ex.check_clip_gradient, ex.check_group_advantages, ex.check_identical_probability):
        assert check(stub).startswith("not implemented yet — fill in stub above")
