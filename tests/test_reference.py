"""The smoke references' comparison: another CPU's float32 noise passes, a real change does not."""
from tests import reference


def test_float_noise_passes_and_a_change_fails():
    assert reference._close(0.6390860475290784, 0.6390854120790113, 0.0)      # two CPUs' kernels, 7th digit
    assert reference._close([1e-3, 2.0], [1e-3 * (1 + 5e-6), 2.0], 0.0)
    assert not reference._close(0.6390860, 0.6391, 0.0)                       # 2e-5 relative: a change
    assert not reference._close(0.955, 0.842, 0.005)
    assert reference._close(0.955, 0.957, 0.005)                              # the card's absolute tolerance
    assert not reference._close(0.0, 1e-9, 0.0)                               # zero stays exact


def test_a_verdict_that_a_timing_decides_is_left_out():
    # chapter 2's claim 1 tests attr_time_share (a timing: the card's volatile) and attr_rank_corr (compared)
    stem = "02_locate_steer_improve"
    assert reference._volatile(stem, "attr_time_share")
    assert reference._volatile(stem, "claim1_verdict")
    assert not reference._volatile(stem, "attr_rank_corr")
    assert not reference._volatile(stem, "claim2_verdict") and not reference._volatile(stem, "premise_verdict")
    kept = reference.comparable(stem, {"claim1_verdict": "holds", "claim2_verdict": "holds", "attr_rank_corr": 0.9})
    assert kept == {"attr_rank_corr": 0.9, "claim2_verdict": "holds"}
