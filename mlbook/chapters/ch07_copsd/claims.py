"""Chapter 7's claims as statistics with their resampling units, for ``mlbook.core.evidence``.

Every comparison is paired: each seed draws one test set of problems, asked in every target language, and
every model (the start model as student and as teacher, each trained one) answers the same problems with k
samples each.  The unit is a (target language, problem) pair within a seed — one stratum per seed — and its
value the difference of the two models' avg@k (or format share) on it.  GRPO's groups are the units of the
stall claim.
"""
from __future__ import annotations

from mlbook.core.evidence import interval


def _per_problem(results, who, seed, lang, metric="avg"):
    return results[who, seed][lang]["per_problem"][metric]


def paired(results, a, b, seeds, langs, metric: str = "avg") -> list[list[float]]:
    """Per seed, ``a`` minus ``b`` on every (language, problem) of ``langs``."""
    return [[x - y for lang in langs for x, y in zip(_per_problem(results, a, s, lang, metric),
                                                     _per_problem(results, b, s, lang, metric))] for s in seeds]


class PremiseError(RuntimeError):
    """The privileged teacher is not better than the student: COPSD would distil nothing."""


def premise(results: dict, seeds, targets, stop: bool = True) -> dict:
    """The premise, checked before any training: in **every** target language the start model as
    teacher (translation + reference in its context) beats itself as student.

    Returns ``{lang: interval of teacher − student avg@k}`` over the language's (problem) pairs within
    seeds.  ``stop``: raise :class:`PremiseError`, naming the languages whose interval does not lie
    above zero and what to change, instead of training on a premise that fails.
    """
    out = {lang: interval(paired(results, "teacher", "start", seeds, [lang])) for lang in targets}
    weak = [lang for lang, r in out.items() if r["lo"] is None or r["lo"] <= 0.0]
    if weak and stop:
        shown = "; ".join(f"{lang}: {out[lang]['estimate']:+.3f} [{out[lang]['lo']}, {out[lang]['hi']}]" for lang in weak)
        raise PremiseError(
            f"the premise fails: the privileged teacher is not clearly better than the student in {', '.join(weak)} "
            f"({shown}). COPSD would distil nothing there, so its claims cannot be tested. Give the warm-up more "
            f"reading-with-help conversations (`helped`) or evaluate more problems (`n_eval`, `k`).")
    return out


def claim_units(results: dict, grpo_histories: list[dict], seeds, targets, resource_level) -> dict:
    """The claims' statistics (means of the seed means) and units.

    ``results``: ``{(who, seed): {lang: task.evaluate(...) entry}}`` with ``who`` in start, teacher, copsd,
    copsd_noref, grpo; ``grpo_histories``: the GRPO runs' fit histories (per step, per language, how many
    groups and how many with identical rewards); ``resource_level(lang)``: warm-up conversations in ``lang``."""
    import numpy as np

    u: dict = {}
    u["teacher_minus_student"] = paired(results, "teacher", "start", seeds, targets)
    # the premise in every target language: tested where it is weakest (the smallest mean advantage; choosing
    # the minimum of several biases its estimate down, so the test is conservative)
    weakest = min(targets, key=lambda lang: np.mean([np.mean(x) for x in paired(results, "teacher", "start", seeds, [lang])]))
    u["teacher_minus_student_weakest"] = paired(results, "teacher", "start", seeds, [weakest])
    u["copsd_gain"] = paired(results, "copsd", "start", seeds, targets)
    u["copsd_minus_grpo"] = paired(results, "copsd", "grpo", seeds, targets)
    u["copsd_format_gain"] = paired(results, "copsd", "start", seeds, targets, "format")
    u["copsd_minus_noref"] = paired(results, "copsd", "copsd_noref", seeds, targets)
    # claim 2b, in the target language that starts lowest (mean start accuracy over the seeds)
    lowest = min(targets, key=lambda lang: np.mean([results["start", s][lang]["avg"] for s in seeds]))
    u["copsd_minus_grpo_lowest"] = paired(results, "copsd", "grpo", seeds, [lowest])
    u["grpo_identical_share_lowest"] = [
        [1.0] * int(sum(h[f"identical_{lowest}"])) + [0.0] * int(sum(h[f"groups_{lowest}"]) - sum(h[f"identical_{lowest}"]))
        for h in grpo_histories]
    # claim 5: the lowest-resource target gains more than the highest-resource one — and gains at all
    lo_res, hi_res = min(targets, key=resource_level), max(targets, key=resource_level)
    gain = {lang: paired(results, "copsd", "start", seeds, [lang]) for lang in (lo_res, hi_res)}
    u["gain_lowest_minus_highest"] = [[a - b for a, b in zip(x, y)] for x, y in zip(gain[lo_res], gain[hi_res])]
    u["copsd_gain_lowest_resource"] = gain[lo_res]
    out = {"claim_weakest_teacher_language": weakest, "claim_lowest_start_language": lowest, "claim_lowest_resource_language": lo_res,
           "claim_highest_resource_language": hi_res}
    for name, units in u.items():
        units = [s for s in units if s]
        out[name + "__units"] = units
        out[name] = float(np.mean([np.mean(s) for s in units])) if units else float("nan")
    return out
