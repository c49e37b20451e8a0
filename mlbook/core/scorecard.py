"""The scorecard: one row per claim of every chapter, built from recorded metrics and the cards.

Numbers come from ``results/<profile>/<chapter>/metrics.json`` (written by ``mlbook.record``); claims, their
tests and the predicted verdicts come from each chapter's card; the verdict and its interval are computed by
``mlbook.core.evidence`` from the recorded units.  A result whose inputs changed since it was produced is
marked *stale* (``mlbook.core.provenance``).  Nothing is typed by hand.
"""
from __future__ import annotations

from pathlib import Path

from . import evidence
from .cache import atomic_write_text
from .catalogue import chapter_card, list_chapters
from .provenance import freshness, load_result
from .summary import claim_results, reproducibility


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def ours(result: dict | None) -> str:
    """Each test's estimate with its 95 % interval, e.g. ``+0.012 [-0.004, +0.029]``; tests joined by ' · '."""
    if result is None:
        return "—"
    return " · ".join(evidence.fmt_interval(t) for t in result["tests"])


def mde_text(result: dict | None) -> str:
    if result is None:
        return "—"
    return " · ".join(_fmt(t["mde"], 2) for t in result["tests"])


def prediction(claim: dict, profile: str) -> str:
    """The card's prediction at ``profile``; a revised one names the first, which a run missed."""
    pred = (claim.get("predict") or {}).get(profile) or "—"
    rev = evidence.revision(claim, profile)
    return f"{pred} (revised; first: {rev['predicted']})" if rev else pred


def claims_rows(stem: str, metrics: dict, profile: str, env: dict | None = None) -> list[dict]:
    """The chapter's claims joined with one run's metrics: what the chapter's replication table shows."""
    rows, claims = [], chapter_card(stem)["claims"]
    results = claim_results(claims, metrics)
    for c in claims:
        r = results.get(c["id"])
        row = {"claim": c.get("claim", c["id"]), "paper": c.get("paper", ""),
               "ours (95 % interval)": ours(r), "verdict": r["verdict"] if r else "—",
               "predicted": prediction(c, profile), "MDE": mde_text(r)}
        if env is not None:
            row["seeds"] = ", ".join(map(str, env.get("seeds", []))) or "—"
        rows.append(row)
    return rows


def table(profiles=("cpu", "gpu"), results: Path | None = None) -> list[dict]:
    """All chapters' claims as flat rows: per profile the estimate with interval, the verdict, the MDE, the
    prediction and whether the result is stale."""
    rows = []
    for stem in list_chapters():
        try:
            card = chapter_card(stem)
        except FileNotFoundError:
            continue
        runs = {p: load_result(stem, p, results) for p in profiles}
        state = {p: freshness(stem, p, results) for p in profiles}
        verdicts = {p: claim_results(card["claims"], runs[p][0]) if runs[p][0] else {} for p in profiles}
        for c in card["claims"]:
            row = {"chapter": stem, "id": c["id"], "claim": c.get("claim", ""), "paper": c.get("paper", "")}
            notes = []
            for p in profiles:
                m, env = runs[p]
                r = verdicts[p].get(c["id"])
                row[f"ours ({p})"] = ours(r)
                row[f"verdict ({p})"] = (r["verdict"] + (" (stale)" if state[p] == "stale" else "")) if r else "—"
                row[f"MDE ({p})"] = mde_text(r)
                row[f"predicted ({p})"] = prediction(c, p)
                row[f"seeds ({p})"] = ", ".join(map(str, env.get("seeds", []))) if env else "—"
                row[f"state ({p})"] = state[p]
                if r and r["verdict"] != "holds":          # the paper reports the claim as holding
                    mech = (c.get("mechanism") or {}).get(p)
                    why = f" (its premise, {r['premise_unmet']}, is not established; on its own: {r['measured']})" \
                        if r.get("premise_unmet") else ""
                    notes.append(f"{p}: {r['verdict']}{why}" + (f" — {mech}" if mech else ""))
            row["note"] = "; ".join(notes)
            rows.append(row)
    return rows


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown(profiles=("cpu", "gpu"), results: Path | None = None) -> str:
    """The scorecard page as MyST markdown: a summary, each chapter's reproducibility summary, its table."""
    rows = table(profiles, results)
    lines = [
        "# Scorecard",
        "",
        "Every claim of every chapter, with the number we measured at each profile, its 95 % bootstrap interval,",
        "the verdict it supports (holds / does not hold / inconclusive), the minimal detectable effect (MDE) of the",
        "comparison at that profile's sizes, and the verdict the chapter's card predicted before the run.",
        "This page is generated by `mlbook scorecard` from the recorded metrics (`results/<profile>/<chapter>/`)",
        "and the cards; no number on it is typed by hand. A dash means that the chapter has not been run at that",
        "profile; *stale* means that the chapter's code, notebook or card changed since that result was produced.",
        "",
    ]
    if not rows:
        lines.append("*No chapter with claims has been run yet.*")
        return "\n".join(lines) + "\n"
    for p in profiles:
        done = [r for r in rows if r[f"verdict ({p})"] != "—"]
        if done:
            counts = {v: sum(r[f"verdict ({p})"].startswith(v) for r in done) for v in evidence.VERDICTS}
            stale = sum(r[f"state ({p})"] == "stale" for r in done)
            lines.append(f"- `{p}`: {len(done)} claims checked — " + ", ".join(f"{n} {v}" for v, n in counts.items()
                                                                            if n)
                         + (f" ({stale} of them from stale results)" if stale else "") + ".")
    lines.append("")
    cols = ["claim", "paper"] + [f"{k} ({p})" for p in profiles for k in ("ours", "verdict", "MDE", "predicted")]
    for stem in dict.fromkeys(r["chapter"] for r in rows):
        mine = [r for r in rows if r["chapter"] == stem]
        lines += [f"## {chapter_card(stem).get('title', stem)}", ""]
        for p in profiles:
            m, env = load_result(stem, p, results)
            if m:
                lines += [reproducibility(stem, p, m, env, state=mine[0][f"state ({p})"], heading_level=3), ""]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for r in mine:
            lines.append("| " + " | ".join(_md_escape(r.get(c, "")) for c in cols) + " |")
        notes = [f"- {r['id']}: {r['note']}" for r in mine if r["note"]]
        if notes:
            lines += ["", "Where our verdict differs from the paper's, and why:", *notes]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_page(path: str | Path, profile: str | None = None, results: Path | None = None) -> Path:
    """Write the page; a book built at ``smoke`` shows its own column, the cpu/gpu editions show both."""
    profiles = ("cpu", "gpu") if profile in (None, "cpu", "gpu") else (profile,)
    atomic_write_text(path, markdown(profiles, results))
    return Path(path)
