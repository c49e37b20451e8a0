"""A chapter's reproducibility summary, in the shape of the ML Reproducibility Challenge's reports — scope
(the claims), what we ran (models, data, scale, seeds, device), results (each verdict with its interval),
what was easy, what was difficult — generated from the card and a run's metrics, never typed by hand.

The top of every chapter shows it for the committed result of its profile (``show``: with its provenance,
fresh or stale); the chapter's replication check shows it again for the run that just finished; the
scorecard page shows it for every chapter.
"""
from __future__ import annotations

from pathlib import Path

from . import evidence
from .catalogue import chapter_card
from .provenance import freshness, load_result


def claim_results(claims: list[dict], metrics: dict) -> dict:
    """Each claim's verdict and tests on ``metrics``, premises applied (``{}`` when the chapter has not
    recorded its units: a run of older code)."""
    try:
        return evidence.evaluate_claims(claims, metrics)
    except (KeyError, ValueError):
        return {}


def _scale(card: dict, env: dict, profile: str) -> str:
    sizes = env.get("sizes") or {**card["sizes"].get("common", {}), **card["sizes"].get(profile, {})}
    keys = card.get("scale_keys") or [k for k in sizes if k not in ("seeds",)][:8]
    return ", ".join(f"{k} = {sizes[k]}" for k in keys if k in sizes)


def reproducibility(stem: str, profile: str, metrics: dict, env: dict | None = None, state: str | None = None,
                    heading_level: int = 2) -> str:
    """The summary as MyST markdown."""
    card, env = chapter_card(stem), env or {}
    h = "#" * heading_level
    ran = card.get("ran") or {}
    lines = [f"{h} Reproducibility summary (`{profile}` profile)", ""]
    if state in ("stale", "unknown"):
        lines += [f"*This result is **{state}**: the chapter's code, notebook or card changed since it was produced "
                  f"(`mlbook run {stem} --profile {profile}` renews it).*", ""]
    lines += ["**Scope.** The claims checked:", ""]
    lines += [f"- {c['id']}: {c.get('claim', '')}" for c in card["claims"]]
    seeds = ", ".join(map(str, env.get("seeds", []))) or "—"
    device = env.get("gpu") or env.get("device") or "—"
    lines += ["", "**What we ran.** "
              + " ".join(x for x in (ran.get("models") and f"Models: {ran['models']}.",
                                     ran.get("data") and f"Data: {ran['data']}.") if x)
              + f" Scale: {_scale(card, env, profile)}. Seeds: {seeds}. Device: {device}"
              + (f"; {env['seconds']:.0f} s" if isinstance(env.get("seconds"), (int, float)) else "") + ".", "",
              "**Results.**", ""]
    results = claim_results(card["claims"], metrics)
    for c in card["claims"]:
        r = results.get(c["id"])
        if r is None:
            lines.append(f"- {c['id']}: not recorded")
            continue
        pred = (c.get("predict") or {}).get(profile)
        tests = "; ".join(f"{t['statistic']} {evidence.fmt_interval(t)} vs {t['direction']} than {t['threshold']:g}"
                          f" (MDE {t['mde']:.2g})" if t["mde"] is not None else
                          f"{t['statistic']} {evidence.fmt_interval(t)}" for t in r["tests"])
        miss = "" if pred in (None, r["verdict"]) else f" — predicted *{pred}*"
        prem = f" — its premise ({r['premise_unmet']}) is not established; on its own it measures *{r['measured']}*" \
            if r.get("premise_unmet") else ""
        lines.append(f"- {c['id']}: **{r['verdict']}**{miss}{prem} ({tests})")
        settle = [(t["statistic"], k) for t in r["tests"] if (k := evidence.scale_to_settle(t))]
        if settle and not r.get("premise_unmet"):
            lines.append("  - To settle it at the size measured: " + "; ".join(
                f"{name} needs ≈ {k:.2g}× as many units" for name, k in settle) + ".")
        why = (c.get("mechanism") or {}).get(profile)
        rev = evidence.revision(c, profile)
        if rev:
            lines.append(f"  - Predicted before the first run: *{rev['predicted']}*"
                         + (f" — {rev['mechanism']}" if rev.get("mechanism") else ""))
            lines.append(f"  - That run did not bear it out: {rev['why']}")
            if pred and why:
                lines.append(f"  - Revised prediction, which this result is tested against: *{pred}* — {why}")
        elif pred and why:
            lines.append(f"  - Predicted before the run: *{pred}* — {why}")
    for key, title in (("easy", "What was easy"), ("difficult", "What was difficult")):
        items = card.get(key) or []
        if items:
            lines += ["", f"**{title}.**", ""] + [f"- {x}" for x in items]
    return "\n".join(lines) + "\n"


def show(stem: str, profile: str, results: Path | None = None):
    """The summary of the committed result of ``profile`` (an IPython Markdown object), or a note saying there
    is none yet.  Read before the run starts: the chapter's own run replaces that result when it finishes."""
    from IPython.display import Markdown

    metrics, env = load_result(stem, profile, results)
    if not metrics:
        return Markdown(f"*No committed `{profile}` result of this chapter yet; its replication check below shows "
                        f"this run's verdicts.*")
    state = freshness(stem, profile, results)
    return Markdown(reproducibility(stem, profile, metrics, env, state=state, heading_level=3)
                    + f"\n*From `results/{profile}/{stem}/` ({state}).*\n")
