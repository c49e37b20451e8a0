"""mlbook.core.evidence: planted effects are found, missed or reversed as they should be, and the bootstrap
agrees with the closed form where there is one."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mlbook.core import evidence as ev

GAIN = ev.Test("gain", "greater", 0.0, "items")


def _verdict(units, test=GAIN):
    return ev.evaluate_test(test, {f"{test.statistic}__units": units})


def test_a_true_gain_is_found():
    rng = np.random.default_rng(1)
    r = _verdict((0.3 + rng.normal(0, 0.5, 400)).tolist())
    assert r["verdict"] == "holds" and r["lo"] > 0 and r["mde"] < 0.3


def test_no_effect_at_small_n_is_inconclusive():
    rng = np.random.default_rng(2)
    r = _verdict(rng.normal(0, 1.0, 12).tolist())
    assert r["verdict"] == "inconclusive" and r["lo"] < 0 < r["hi"]
    assert r["mde"] == pytest.approx(2.8 / math.sqrt(12), rel=0.3)   # 12 units of sd 1: only ≈ 0.8 sd is detectable


def test_scale_to_settle_worked_by_hand_and_by_a_larger_sample():
    # by hand: MDE 0.2 at a measured gap of 0.1 to the threshold -> (0.2 / 0.1)^2 = 4x the units
    assert ev.scale_to_settle({"verdict": "inconclusive", "mde": 0.2, "estimate": 0.15, "threshold": 0.05}) == \
        pytest.approx(4.0)
    assert ev.scale_to_settle({"verdict": "holds", "mde": 0.2, "estimate": 0.5, "threshold": 0.0}) is None
    assert ev.scale_to_settle({"verdict": "inconclusive", "mde": 0.2, "estimate": 0.0, "threshold": 0.0}) is None
    # a planted gain of 0.25 sd, inconclusive at n = 40; at the predicted multiple its MDE has shrunk to the gap
    rng = np.random.default_rng(5)
    small = _verdict((0.25 + rng.normal(0, 1.0, 40)).tolist())
    k = ev.scale_to_settle(small)
    assert small["verdict"] == "inconclusive" and k > 1
    big = _verdict((0.25 + rng.normal(0, 1.0, round(40 * k))).tolist())
    assert big["mde"] == pytest.approx(abs(small["estimate"]), rel=0.25)


def test_a_reversed_effect_does_not_hold():
    rng = np.random.default_rng(3)
    r = _verdict((-0.4 + rng.normal(0, 0.5, 300)).tolist())
    assert r["verdict"] == "does not hold" and r["hi"] < 0


def test_a_claim_about_a_gain_cannot_hold_on_losses():
    """"Lower-resource languages gain more" needs the gains themselves: a smaller loss is not a larger gain."""
    claim = {"id": "c", "tests": [{"statistic": "gain_low_minus_high", "direction": "greater", "threshold": 0},
                                  {"statistic": "gain_low", "direction": "greater", "threshold": 0}]}
    rng = np.random.default_rng(4)
    metrics = {"gain_low_minus_high__units": (0.2 + rng.normal(0, 0.1, 200)).tolist(),   # loses less ...
               "gain_low__units": (-0.1 + rng.normal(0, 0.1, 200)).tolist()}            # ... but loses
    assert ev.evaluate_claim(claim, metrics)["verdict"] == "does not hold"


def test_less_direction_and_thresholds():
    t = ev.Test("cer_gap", "less", 0.5)
    assert _verdict((0.2 + np.random.default_rng(5).normal(0, 0.05, 100)).tolist(), t)["verdict"] == "holds"
    t = ev.Test("retention", "greater", 0.9)
    r = _verdict((0.95 + np.random.default_rng(6).normal(0, 0.01, 100)).tolist(), t)
    assert r["verdict"] == "holds" and r["lo"] > 0.9


def test_bootstrap_matches_the_closed_form_for_a_mean():
    """For n iid values the interval of the mean is x̄ ± 1.96 s/√n (large n): the bootstrap must agree."""
    rng = np.random.default_rng(7)
    x = rng.normal(2.0, 3.0, 2000)
    r = ev.interval(x.tolist(), seed=0)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert r["estimate"] == pytest.approx(x.mean())
    assert r["se"] == pytest.approx(se, rel=0.08)
    assert r["lo"] == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert r["hi"] == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)
    assert ev.mde(r["se"]) == pytest.approx(2.8 * r["se"], rel=1e-3)


def test_strata_resample_within_each_stratum():
    """Two strata with very different means: the statistic is the mean of stratum means, and the interval only
    reflects the spread inside each stratum (not the difference between them)."""
    rng = np.random.default_rng(8)
    a, b = (0.0 + rng.normal(0, 0.1, 200)), (10.0 + rng.normal(0, 0.1, 200))
    r = ev.interval([a.tolist(), b.tolist()], seed=0)
    assert r["estimate"] == pytest.approx((a.mean() + b.mean()) / 2)
    closed = 0.5 * math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert r["se"] == pytest.approx(closed, rel=0.1)
    assert r["hi"] - r["lo"] < 0.1


def test_seeded_and_degenerate_cases():
    x = np.random.default_rng(9).normal(0, 1, 50).tolist()
    assert ev.interval(x, seed=3) == ev.interval(x, seed=3)
    assert ev.interval([0.5] * 10)["lo"] == ev.interval([0.5] * 10)["hi"] == 0.5      # an exact constant
    one = ev.interval([0.7])
    assert one["lo"] is None and ev.decide(one["lo"], one["hi"], GAIN) == "inconclusive"
    assert ev.combine(["holds", "inconclusive"]) == "inconclusive"
    assert ev.combine(["holds", "holds"]) == "holds"
    assert ev.combine(["inconclusive", "does not hold"]) == "does not hold"


def test_outcomes_that_never_vary_are_bounded_not_certain():
    """15 of 15 successes do not show a rate above 0.8: Wilson's bound (z² / (n + z²), close to the exact
    Clopper-Pearson bound and to the rule of three, 3 / n) is used instead of the bootstrap's zero width."""
    from scipy import stats

    r = ev.interval([[1] * 5, [1] * 5, [1] * 5])
    u = 1.959964 ** 2 / (15 + 1.959964 ** 2)
    assert r["lo"] == pytest.approx(1 - u) and r["hi"] == 1.0 and r["method"].startswith("no variation")
    exact = stats.binomtest(15, 15).proportion_ci(0.95, method="exact").low         # Clopper-Pearson
    assert abs(r["lo"] - exact) < 0.03 and abs((1 - r["lo"]) - 3 / 15) < 0.02
    assert ev.decide(r["lo"], r["hi"], ev.Test("known", "greater", 0.8)) == "inconclusive"
    big = ev.interval([1] * 60)
    assert ev.decide(big["lo"], big["hi"], ev.Test("known", "greater", 0.8)) == "holds"
    zero = ev.interval([0] * 15)                      # a rate never seen, or a paired difference never non-zero
    assert zero["lo"] == pytest.approx(-u) and zero["hi"] == pytest.approx(u)
    assert ev.decide(zero["lo"], zero["hi"], ev.Test("correct", "less", 0.1)) == "inconclusive"
    assert ev.decide(*(lambda z: (z["lo"], z["hi"]))(ev.interval([0] * 60)), ev.Test("c", "less", 0.1)) == "holds"
    d = ev.interval({"minus": [[1] * 40, [0] * 40]})
    assert d["estimate"] == 1.0 and d["hi"] == pytest.approx(1.0 + 3.8415 / 43.8415, rel=1e-3) and d["lo"] < 0.92
    assert ev.interval([[1] * 5, [0] * 5])["method"] == "no variation within strata"


def _at_z(z: float, n: int = 400, seed: int = 11) -> list:
    """n units whose mean lies z standard errors from 0 (standardised normal draws, shifted)."""
    x = np.random.default_rng(seed).normal(0, 1, n)
    x = (x - x.mean()) / x.std(ddof=1)
    return (x + z / math.sqrt(n)).tolist()


def test_one_of_several_tests_refutes_only_beyond_its_bonferroni_interval():
    """Two tests: a 95 % interval just below zero (z = -2.1: outside 1.96, inside the 97.5 % level's 2.24)
    is not enough to refute the claim; one far below (z = -4) is.  Holding needs no correction."""
    claim = {"id": "c", "tests": [{"statistic": "a", "direction": "greater", "threshold": 0},
                                  {"statistic": "b", "direction": "greater", "threshold": 0}]}
    metrics = {"a__units": _at_z(3.0), "b__units": _at_z(-2.1)}
    alone = ev.evaluate_test(ev.Test("b", "greater", 0.0), metrics)
    assert alone["verdict"] == "does not hold"                          # on its own, at 95 %
    r = ev.evaluate_claim(claim, metrics)
    assert r["tests"][1]["verdict"] == "inconclusive" and r["verdict"] == "inconclusive"
    assert r["tests"][1]["refute_confidence"] == pytest.approx(0.975) and r["tests"][1]["refute_hi"] > 0
    assert "Bonferroni 97.5 %" in ev.fmt_interval(r["tests"][1])
    metrics["b__units"] = _at_z(-4.0)
    assert ev.evaluate_claim(claim, metrics)["verdict"] == "does not hold"
    metrics["b__units"] = _at_z(2.1)                                     # both hold at 95 %: the claim holds
    assert ev.evaluate_claim(claim, metrics)["verdict"] == "holds"


def test_bad_specs_fail_clearly():
    with pytest.raises(ValueError, match="direction"):
        ev.Test.from_card({"statistic": "x", "direction": "up", "threshold": 0})
    with pytest.raises(ValueError, match="threshold"):
        ev.Test.from_card({"statistic": "x", "direction": "greater"})
    with pytest.raises(KeyError, match="x__units"):
        ev.evaluate_test(ev.Test("x", "greater", 0), {})
    with pytest.raises(ValueError, match="states no tests"):
        ev.evaluate_claim({"id": "c"}, {})


def test_spearman_units_cover_the_true_correlation_and_agree_with_the_bootstrap():
    from scipy import stats

    rng = np.random.default_rng(10)
    x = rng.normal(size=3000)
    y = -0.5 * x + rng.normal(size=3000)
    u = ev.spearman_units(x, y)
    truth = 6 / math.pi * math.asin(-0.5 / math.sqrt(1.25) / 2)   # Spearman's ρ of a bivariate normal
    assert u["lo"] < truth < u["hi"] and u["hi"] < 0
    boot = stats.bootstrap((x, y), lambda a, b: stats.spearmanr(a, b).statistic, paired=True, vectorized=False,
                           n_resamples=300, method="percentile", rng=np.random.default_rng(0))
    assert u["lo"] == pytest.approx(boot.confidence_interval.low, abs=0.01)
    assert u["hi"] == pytest.approx(boot.confidence_interval.high, abs=0.01)
    assert ev.evaluate_test(ev.Test("rho", "less", 0.0), {"rho__units": u})["verdict"] == "holds"


def test_difference_of_two_samples_matches_the_closed_form():
    rng = np.random.default_rng(11)
    a, b = rng.normal(1.0, 1.0, 800), rng.normal(0.8, 2.0, 600)
    r = ev.interval({"minus": [a.tolist(), b.tolist()]}, seed=0)
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    assert r["estimate"] == pytest.approx(a.mean() - b.mean())
    assert r["se"] == pytest.approx(se, rel=0.1)
    assert r["lo"] == pytest.approx(r["estimate"] - 1.96 * se, abs=0.3 * se)


def test_a_claim_whose_premise_does_not_hold_is_inconclusive():
    rng = np.random.default_rng(12)
    claims = [{"id": "premise", "tests": [{"statistic": "teacher_minus_student", "direction": "greater", "threshold": 0}]},
              {"id": "claim", "premise": "premise",
               "tests": [{"statistic": "gain", "direction": "greater", "threshold": 0}]}]
    metrics = {"teacher_minus_student__units": rng.normal(0, 1, 10).tolist(),     # not established
               "gain__units": (-0.5 + rng.normal(0, 0.1, 100)).tolist()}          # clearly negative
    out = ev.evaluate_claims(claims, metrics)
    assert out["premise"]["verdict"] == "inconclusive"
    assert out["claim"]["verdict"] == "inconclusive" and out["claim"]["measured"] == "does not hold"
    metrics["teacher_minus_student__units"] = (1 + rng.normal(0, 0.1, 50)).tolist()
    assert ev.evaluate_claims(claims, metrics)["claim"]["verdict"] == "does not hold"


def test_samples_of_one_give_no_interval():
    assert ev.interval([[0.2, 0.4], [0.9]])["lo"] is not None       # strata pooled to their means
    assert ev.interval({"minus": [[0.5], [0.1, 0.2, 0.3]]})["lo"] is None
    assert ev.decide(None, None, GAIN) == "inconclusive"
