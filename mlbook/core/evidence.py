"""A claim's verdict as evidence: a 95 % bootstrap interval of its statistic, a three-valued verdict, and
the minimal detectable effect of the comparison at the run's sizes.

A claim of a card states, before any run, one or more *tests* (all must hold):

    statistic:  the name the chapter records its estimate under (``run.record(**{name: ...})``), together
                with the values of its resampling units under ``<name>__units``
    direction:  "greater" (the claim says statistic > threshold) or "less"
    threshold:  the paper's effect or a stated minimum (0 for "a gain")
    unit:       what is resampled, in words ("problems within seeds", "seeds", "neurons", ...)

The units are either one list (one value per unit; the statistic is their mean) or a list of lists, one
per stratum (e.g. one list of per-problem differences per seed; the statistic is the mean of the stratum
means, and the bootstrap resamples units *within* each stratum); ``{"minus": [A, B]}`` for the difference
of two independent samples (e.g. mean CER on one tier's lines minus another's); or an interval computed in
closed form (``spearman_units``).  The interval is scipy's bootstrap
(BCa where it is defined, percentile otherwise), seeded; the verdict is

    holds          the whole interval lies on the claim's side of the threshold
    does not hold  the whole interval lies on the other side
    inconclusive   the interval straddles the threshold

and a claim of several tests holds only if every test holds, does not hold as soon as one does not hold,
and is inconclusive otherwise (a claim about a gain "in every tier" cannot hold on one tier's loss).  With k
tests, one of them refutes the claim only if its Bonferroni interval (1 − 0.05 / k) is on the wrong side.

The minimal detectable effect (MDE) is the smallest true difference from the threshold that the
comparison detects with 80 % power at α = 0.05 (two-sided): (z₀.₉₇₅ + z₀.₈) × the bootstrap standard error
≈ 2.8 SE.  An MDE larger than the paper's effect means the run cannot settle the claim: predict
"inconclusive" and say which size would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

VERDICTS = ("holds", "does not hold", "inconclusive")
DIRECTIONS = ("greater", "less")
CONFIDENCE = 0.95
N_RESAMPLES = 4999
Z_MDE = 1.959964 + 0.841621  # z(0.975) + z(0.80): 80 % power at two-sided α = 0.05


@dataclass(frozen=True)
class Test:
    """One falsifiable comparison of a claim: ``statistic`` vs ``threshold`` in ``direction``."""

    statistic: str
    direction: str
    threshold: float
    unit: str = ""

    @classmethod
    def from_card(cls, spec: dict) -> Test:
        missing = [k for k in ("statistic", "direction", "threshold") if k not in spec]
        if missing:
            raise ValueError(f"a claim's test needs {', '.join(missing)}: {spec}")
        if spec["direction"] not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {spec['direction']!r}")
        return cls(str(spec["statistic"]), spec["direction"], float(spec["threshold"]), str(spec.get("unit", "")))


def _strata(units) -> list[list[float]]:
    """Units as a list of strata (each a list of floats); a flat list is one stratum."""
    if units is None:
        raise ValueError("no units recorded")
    units = list(units)
    if units and all(isinstance(u, (list, tuple)) for u in units):
        strata = [[float(x) for x in s] for s in units]
    else:
        strata = [[float(x) for x in units]]
    strata = [s for s in strata if s]
    if not strata:
        raise ValueError("no units recorded")
    return strata


def mean_of_means(strata: list[list[float]]) -> float:
    """The statistic: the mean over strata of each stratum's mean (one stratum: the plain mean)."""
    return sum(sum(s) / len(s) for s in strata) / len(strata)


def spearman_units(x, y, confidence: float = CONFIDENCE) -> dict:
    """Units for a rank correlation over many items (tens of thousands of neurons): Spearman's ρ with the
    Fisher-z interval, z = atanh ρ ± z_(1+c)/2 · √(1.06 / (n − 3)) (Fieller, Hartley & Pearson 1957), as a
    closed-form interval instead of a bootstrap (which would need every item recorded)."""
    import numpy as np
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    n = int(len(x))
    rho = float(stats.spearmanr(x, y).statistic)
    se_z = math.sqrt(1.06 / (n - 3))
    zq = float(stats.norm.ppf(0.5 + confidence / 2))
    z = math.atanh(max(min(rho, 1 - 1e-12), -1 + 1e-12))
    return {"estimate": rho, "lo": math.tanh(z - zq * se_z), "hi": math.tanh(z + zq * se_z),
            "se": (1 - rho ** 2) * se_z, "n": n, "method": "Fisher z"}


def interval(units, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0) -> dict:
    """``{estimate, lo, hi, se, n, method}``: the mean of stratum means and its bootstrap interval.

    ``units`` may also be an interval computed in closed form (a dict with ``estimate``, ``lo``, ``hi``,
    ``se``, ``n``, e.g. from :func:`spearman_units`), which is returned as it is.

    ``scipy.stats.bootstrap`` resamples each stratum independently (a stratified bootstrap): BCa when every
    stratum varies and has at least two units, else percentile.  Units that do not vary at all get the bound
    of :func:`_no_variation` (0/1 outcomes: Wilson's; other constants: zero width); a single unit has no
    interval (``lo``/``hi`` are None).
    """
    import numpy as np
    from scipy import stats

    if isinstance(units, dict) and "minus" in units:
        return _difference(*units["minus"], confidence=confidence, n_resamples=n_resamples, seed=seed)
    if isinstance(units, dict):
        missing = {"estimate", "lo", "hi", "se", "n"} - set(units)
        if missing:
            raise ValueError(f"closed-form units need {sorted(missing)}")
        return {"method": "closed form", **units}
    strata = _strata(units)
    est = mean_of_means(strata)
    n = sum(len(s) for s in strata)
    if all(len(set(s)) == 1 for s in strata):
        if all(len(s) == 1 for s in strata) and len(strata) == 1:
            return {"estimate": est, "lo": None, "hi": None, "se": None, "n": n, "method": "one unit"}
        if len({s[0] for s in strata}) == 1:
            return _no_variation(est, n, confidence)
        return {"estimate": est, "lo": est, "hi": est, "se": 0.0, "n": n, "method": "no variation within strata"}
    if any(len(s) < 2 for s in strata):
        # a stratum of one unit cannot be resampled within itself: resample the pooled strata's means instead
        strata = [[sum(s) / len(s) for s in strata]]
    if len(strata[0]) < 2:  # one mean only: no interval
        return {"estimate": est, "lo": None, "hi": None, "se": None, "n": n, "method": "one unit"}
    data = tuple(np.asarray(s, dtype=float) for s in strata)

    def statistic(*samples, axis=-1):
        return sum(x.mean(axis=axis) for x in samples) / len(samples)

    method = "BCa" if all(len(set(s)) > 1 for s in strata) else "percentile"
    with np.errstate(all="ignore"):
        res = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=confidence,
                              method=method, vectorized=True, rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa can fail on degenerate resamples
        res = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=confidence,
                              method="percentile", vectorized=True, rng=np.random.default_rng(seed))
        lo, hi, method = float(res.confidence_interval.low), float(res.confidence_interval.high), "percentile"
    return {"estimate": est, "lo": lo, "hi": hi, "se": float(res.standard_error), "n": n, "method": method}


def _z(confidence: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(0.5 + confidence / 2))


def _no_variation(value: float, n: int, confidence: float) -> dict:
    """Every one of ``n`` units has the same value: the bootstrap has nothing to resample.  Units that are all
    1 or all 0 are outcomes of which one kind was never seen, and not seeing it in n tries bounds its rate by
    Wilson's score bound u = z² / (n + z²) (≈ 3.84 / n, the "rule of three"): all 1 → [1 − u, 1]; all 0 →
    [−u, u] (a rate below u, or a paired difference of two such outcomes within ±u).  Any other constant is
    an exact number: zero width."""
    if value not in (0, 1):
        return {"estimate": value, "lo": value, "hi": value, "se": 0.0, "n": n, "method": "no variation"}
    z = _z(confidence)
    u = z * z / (n + z * z)
    lo, hi = (1 - u, 1.0) if value == 1 else (-u, u)
    return {"estimate": float(value), "lo": lo, "hi": hi, "se": (hi - lo) / (2 * z), "n": n,
            "method": "no variation (Wilson bound)"}


def _difference(a, b, confidence: float, n_resamples: int, seed: int) -> dict:
    """Units ``{"minus": [A, B]}``: the statistic of A minus that of B, two independent samples (each a list
    or a list of strata), each resampled within its own strata."""
    import numpy as np
    from scipy import stats

    sa, sb = _strata(a), _strata(b)
    est = mean_of_means(sa) - mean_of_means(sb)
    n = sum(map(len, sa)) + sum(map(len, sb))
    if any(len(s) < 2 for s in sa + sb):
        sa, sb = [sum(sa, [])], [sum(sb, [])]
    if len(sa[0]) < 2 or len(sb[0]) < 2:   # a sample of one: no interval
        return {"estimate": est, "lo": None, "hi": None, "se": None, "n": n, "method": "one unit"}
    data = tuple(np.asarray(s, dtype=float) for s in sa + sb)
    k = len(sa)

    def statistic(*samples, axis=-1):
        return (sum(x.mean(axis=axis) for x in samples[:k]) / k
                - sum(x.mean(axis=axis) for x in samples[k:]) / (len(samples) - k))

    if all(len(set(s)) == 1 for s in sa + sb) and len({s[0] for s in sa}) == 1 and len({s[0] for s in sb}) == 1:
        ia, ib = _no_variation(sa[0][0], sum(map(len, sa)), confidence), _no_variation(sb[0][0], sum(map(len, sb)), confidence)
        lo, hi = ia["lo"] - ib["hi"], ia["hi"] - ib["lo"]
        return {"estimate": est, "lo": lo, "hi": hi, "se": (hi - lo) / (2 * _z(confidence)), "n": n,
                "method": "no variation"}
    res = stats.bootstrap(data, statistic, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return {"estimate": est, "lo": float(res.confidence_interval.low), "hi": float(res.confidence_interval.high),
            "se": float(res.standard_error), "n": n, "method": "percentile (difference of two samples)"}


def decide(lo: float | None, hi: float | None, test: Test) -> str:
    """The verdict of one test from its interval (no interval: inconclusive)."""
    if lo is None or hi is None:
        return "inconclusive"
    side_lo, side_hi = lo - test.threshold, hi - test.threshold
    if test.direction == "less":
        side_lo, side_hi = -side_hi, -side_lo
    if side_lo > 0:
        return "holds"
    if side_hi < 0:
        return "does not hold"
    return "inconclusive"


def combine(verdicts: list[str]) -> str:
    """All tests must hold; one that does not hold decides; otherwise inconclusive."""
    if not verdicts:
        raise ValueError("a claim needs at least one test")
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "inconclusive"


def mde(se: float | None) -> float | None:
    """Minimal detectable effect (80 % power, two-sided α = 0.05) from a standard error."""
    return None if se is None else Z_MDE * se


def revision(claim: dict, profile: str) -> dict | None:
    """The card's first prediction at ``profile`` when a run did not bear it out: ``{predicted, mechanism,
    why}`` from the claim's ``revised`` entry (the card's ``predict``/``mechanism`` are then the revised ones,
    which the tests assert).  A missed prediction is kept and shown, never rewritten silently."""
    rev = (claim.get("revised") or {}).get(profile)
    if rev is None:
        return None
    if rev.get("predicted") not in VERDICTS or not rev.get("why"):
        raise ValueError(f"claim {claim.get('id')}: revised.{profile} needs 'predicted' (one of {VERDICTS}) and "
                         f"'why' (what the run showed that the first prediction missed)")
    return rev


def scale_to_settle(result: dict) -> float | None:
    """How many times the units an inconclusive test would need for its MDE to shrink to the distance between
    the measured estimate and the threshold (SE ∝ 1/√n, so MDE(k·n) = MDE/√k): ``(MDE / |estimate − threshold|)²``.
    ``None`` when the test is not inconclusive, has no MDE, or sits on the threshold."""
    if result.get("verdict") != "inconclusive" or not result.get("mde") or result.get("estimate") is None:
        return None
    gap = abs(result["estimate"] - result["threshold"])
    return None if gap == 0 else (result["mde"] / gap) ** 2


def evaluate_test(test: Test, metrics: dict, seed: int = 0) -> dict:
    """The interval, verdict and MDE of one test from a chapter's recorded ``metrics``."""
    key = f"{test.statistic}__units"
    if key not in metrics:
        raise KeyError(f"{key!r} was not recorded: the chapter must record the units of {test.statistic!r}")
    iv = interval(metrics[key], seed=seed)
    return {**iv, "statistic": test.statistic, "direction": test.direction, "threshold": test.threshold,
            "unit": test.unit, "verdict": decide(iv["lo"], iv["hi"], test), "mde": mde(iv["se"])}


def claim_tests(claim: dict) -> list[Test]:
    tests = claim.get("tests")
    if not tests:
        raise ValueError(f"claim {claim.get('id')!r} states no tests (statistic, direction, threshold, unit)")
    return [Test.from_card(t) for t in tests]


def evaluate_claim(claim: dict, metrics: dict, seed: int = 0) -> dict:
    """``{"verdict", "tests": [...]}`` of a card's claim on recorded metrics.

    A claim of k tests holds when every test's 95 % interval lies on its side (an intersection of tests: no
    correction needed).  It is refuted as soon as *one* test lies on the wrong side, so with k tests the
    refutation is guarded against chance (Bonferroni): a test counts as "does not hold" only when its
    (1 − 0.05 / k) interval lies on the wrong side too; that interval is kept as ``refute_lo``/``refute_hi``."""
    tests = claim_tests(claim)
    results = [evaluate_test(t, metrics, seed) for t in tests]
    if len(tests) > 1:
        level = 1 - (1 - CONFIDENCE) / len(tests)
        for t, r in zip(tests, results):
            if r["verdict"] == "does not hold":
                wide = interval(metrics[f"{t.statistic}__units"], confidence=level, seed=seed)
                r.update(refute_lo=wide["lo"], refute_hi=wide["hi"], refute_confidence=level)
                r["verdict"] = decide(wide["lo"], wide["hi"], t)
    return {"id": claim["id"], "verdict": combine([r["verdict"] for r in results]), "tests": results}


def evaluate_claims(claims: list[dict], metrics: dict, seed: int = 0) -> dict:
    """Every claim of a card, in order, with premises applied: a claim that names a ``premise`` (another
    claim's id: what it stands on, e.g. "the teacher is better than the student") is *inconclusive* unless
    its premise holds — a comparison whose premise fails does not test the paper's claim, whatever its
    interval says (the interval is still reported)."""
    out: dict = {}
    for c in claims:
        r = evaluate_claim(c, metrics, seed)
        prem = c.get("premise")
        if prem is not None:
            if prem not in out:
                raise ValueError(f"claim {c['id']!r}: its premise {prem!r} must be a claim listed before it")
            if out[prem]["verdict"] != "holds":
                r = {**r, "verdict": "inconclusive", "measured": r["verdict"], "premise_unmet": prem}
        out[c["id"]] = r
    return out


def flat(claim_id: str, result: dict) -> dict:
    """The numbers of a claim's verdict as metrics: ``<id>_verdict``, and per test ``<stat>_lo/_hi/_mde``."""
    out = {f"{claim_id}_verdict": result["verdict"]}
    for r in result["tests"]:
        s = r["statistic"]
        out.update({f"{s}_lo": r["lo"], f"{s}_hi": r["hi"], f"{s}_mde": r["mde"], f"{s}_n": r["n"]})
    return out


def fmt_interval(r: dict, digits: int = 3) -> str:
    """``+0.012 [-0.004, +0.029]`` (or the estimate alone when there is no interval)."""
    f = lambda v: f"{v:+.{digits}f}"  # noqa: E731
    if r.get("lo") is None:
        return f(r["estimate"])
    out = f"{f(r['estimate'])} [{f(r['lo'])}, {f(r['hi'])}]"
    if r.get("refute_confidence") is not None and r.get("refute_lo") is not None:
        out += f" (Bonferroni {100 * r['refute_confidence']:.4g} %: [{f(r['refute_lo'])}, {f(r['refute_hi'])}])"
    return out
