"""Chapter 3's exercise checks accept a right answer and reject wrong ones."""
import numpy as np
import pytest

from mlbook.chapters.ch03_gknow import exercises as ex


def right_iou(a, b):
    return len(a & b) / len(a | b) if a | b else 1.0


def test_iou_check():
    assert ex.check_iou(right_iou).startswith("✔")
    for wrong in (lambda a, b: len(a & b) / max(len(a), 1),                      # share of A only
                  lambda a, b: float(len(a & b)),                                 # a count
                  lambda a, b: 2 * len(a & b) / (len(a) + len(b)) if a or b else 1.0,   # Dice, not IoU
                  lambda a, b: len(a & b) / len(a | b) if a | b else 0.0):        # empty circuits differ
        with pytest.raises(AssertionError):
            ex.check_iou(wrong)
    assert "not implemented" in ex.check_iou(lambda a, b: (_ for _ in ()).throw(NotImplementedError))


def right_ig(grad_fn, a, m):
    return a * sum(grad_fn(k / m * a) for k in range(1, m + 1)) / m


def test_neuron_ig_check():
    assert ex.check_neuron_ig(right_ig).startswith("✔")
    for wrong in (lambda gf, a, m: a * sum(gf(k / m * a) for k in range(m)) / m,            # left sum: starts at 0
                  lambda gf, a, m: sum(gf(k / m * a) for k in range(1, m + 1)) / m,         # no × a
                  lambda gf, a, m: a * sum(gf(k / m * a) for k in range(1, m + 1)),         # no average
                  lambda gf, a, m: a * gf(a)):                                              # one step always
        with pytest.raises(AssertionError):
            ex.check_neuron_ig(wrong)
    # the hidden solution in the notebook is the library's definition
    a = np.array([0.5, 2.0])
    assert np.allclose(right_ig(lambda x: 2 * x, a, 50).sum(), (a ** 2).sum(), atol=0.1)
