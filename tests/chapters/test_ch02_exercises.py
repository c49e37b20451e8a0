"""Chapter 2's exercise checks accept a right answer and reject wrong ones."""
import pytest

from mlbook.chapters.ch02_locate_steer import exercises as ex


def right_attr(c, k, g):
    return ((c - k) * g).sum(-1)


def test_attribution_check():
    assert ex.check_attribution(right_attr).startswith("✔")
    for wrong in (lambda c, k, g: ((k - c) * g).sum(-1),          # the patch backwards
                  lambda c, k, g: ((c - k) * g).sum(),            # summed over positions too
                  lambda c, k, g: (c * g).sum(-1)):               # the clean activation, not the patch
        with pytest.raises(AssertionError):
            ex.check_attribution(wrong)
    assert "not implemented" in ex.check_attribution(lambda c, k, g: (_ for _ in ()).throw(NotImplementedError))


def right_ig(grad_fn, a0, a1, steps):
    return (a1 - a0) * sum(grad_fn(a0 + k / steps * (a1 - a0)) for k in range(steps)) / steps


def test_integrated_check():
    assert ex.check_integrated(right_ig).startswith("✔")
    for wrong in (lambda gf, a0, a1, m: (a1 - a0) * sum(gf(a0 + k / m * (a1 - a0)) for k in range(1, m + 1)) / m,  # right sum
                  lambda gf, a0, a1, m: sum(gf(a0 + k / m * (a1 - a0)) for k in range(m)) / m,                  # no (a1 − a0)
                  lambda gf, a0, a1, m: (a1 - a0) * sum(gf(a0 + k / m * (a1 - a0)) for k in range(m))):         # no average
        with pytest.raises(AssertionError):
            ex.check_integrated(wrong)


def test_integrated_check_accepts_the_right_answer_on_every_draw():
    """The completeness tolerance is the left Riemann sum's error bound, not a fixed number: a fixed 0.02
    rejected the right answer on 13 of 200 draws."""
    import random
    for seed in range(300):
        random.seed(seed)
        assert ex.check_integrated(right_ig).startswith("✔"), seed
