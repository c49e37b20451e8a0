"""The chapter's GKnow-style benchmark: templates × word lists, as a ``datasets.Dataset``.

An analogue of the paper's benchmark, built here (``data/03_gknow/``), not its files.  Every item is a
prompt whose next token is one of a (male, female) pair -- ``he``/``she`` (pronoun), ``his``/``her``
(possessive), ``him``/``her`` (object) -- after a *trigger* word:

- **factual**: the trigger carries its gender -- a gendered noun (``king``/``queen``, Bolukbasi et al.'s
  definitional and equalize pairs) or a first name (WEAT 6's male and female names); one answer is right;
- **stereotypical**: a gender-neutral occupation with a stereotype -- labour statistics' female share
  (the WinoBias list) where known, else Bolukbasi et al.'s crowd rating; no answer is right, one is the
  stereotype;
- **neutral**: an occupation with neither (share 40–60 %, rating near 0) or a person noun without gender.

The labels come from the word lists' statistics only, never from the model under study.  The held-out
split is by trigger word (stratified by class and gender), so no test word was seen while finding
circuits or neurons.  The bias benchmarks' analogues are views of the same items: the StereoSet-style
set is the stereotypical items with an unrelated third option, the DiFair-style set the factual items
(gender-specific) with the neutral and stereotypical ones (gender-neutral); ``scores`` scores them.
"""
from __future__ import annotations

import random
from pathlib import Path

import yaml

DATA = Path(__file__).resolve().parents[3] / "data" / "03_gknow"
CLASSES = ("factual", "stereotypical", "neutral")
TYPES = ("pronoun", "possessive", "object")


def _load(name: str) -> dict:
    path = DATA / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: it ships with the book (data/03_gknow/; words.yml is "
                                "written by data/03_gknow/extract.py)")
    return yaml.safe_load(path.read_text())


def templates() -> dict:
    return _load("templates.yml")


def stereotype(word: str, share: dict, rating: dict, rule: dict) -> str | None:
    """``"f"``, ``"m"``, ``"neutral"`` or None (too weak to label) for an occupation, by the card's rule:
    the labour share decides where it is known, otherwise the crowd rating (negative = female)."""
    if word in share:
        s, r = share[word], rule["female_share"]
        lo, hi = r["neutral"]
        return "f" if s >= r["female"] else "m" if s <= r["male"] else "neutral" if lo <= s <= hi else None
    if word in rating:
        v, r = rating[word], rule["rating"]
        return "f" if v <= r["female"] else "m" if v >= r["male"] else "neutral" if abs(v) <= r["neutral"] else None
    return None


def triggers() -> list[dict]:
    """Every trigger word with its class, kind, gender ("m"/"f"/None), source and counterparts (the words of
    the other gender that a corrupted prompt may swap in)."""
    words, t = _load("words.yml"), templates()
    out = []
    for p in words["gendered_pairs"]:
        for g, w, other in (("m", p["male"], p["female"]), ("f", p["female"], p["male"])):
            out.append(dict(word=w, cls="factual", kind="noun", gender=g, counterparts=[other],
                            source="Bolukbasi et al. 2016 gender pairs"))
    names = words["names"]
    for g, side, other in (("m", "male", "female"), ("f", "female", "male")):
        for w in names[side]:
            out.append(dict(word=w, cls="factual", kind="name", gender=g, counterparts=list(names[other]),
                            source="WEAT 6 names (Caliskan et al. 2017)"))
    share, rating = words["occupation_female_share"], words["occupation_stereotype_rating"]
    excluded = set(t.get("exclude") or [])
    labelled = {}
    for w in sorted(set(share) | set(rating)):
        if w in excluded:
            continue
        lab = stereotype(w, share, rating, t["stereotype_rule"])
        if lab is not None:
            strength = abs(share[w] - 50) / 50 if w in share else abs(rating[w])
            labelled[w] = (lab, "US labour statistics (WinoBias list)" if w in share else "Bolukbasi et al. 2016 rating",
                           strength)
    # as many male- as female-stereotyped occupations (the strongest of each), so that a model's default
    # pronoun does not pass for a stereotype
    by = {g: sorted((w for w, v in labelled.items() if v[0] == g), key=lambda w: (-labelled[w][2], w)) for g in ("m", "f")}
    k = min(len(v) for v in by.values())
    by = {g: sorted(v[:k]) for g, v in by.items()}
    labelled = {w: v for w, v in labelled.items() if v[0] == "neutral" or w in by["m"] + by["f"]}
    for w, (lab, src, _) in labelled.items():
        if lab == "neutral":
            out.append(dict(word=w, cls="neutral", kind="occupation", gender=None, counterparts=[], source=src))
        else:
            out.append(dict(word=w, cls="stereotypical", kind="occupation", gender=lab,
                            counterparts=by["f" if lab == "m" else "m"], source=src))
    for w in t["neutral_nouns"]:
        if w in labelled:
            continue
        out.append(dict(word=w, cls="neutral", kind="noun", gender=None, counterparts=[], source="written for the book"))
    return out


def _subject(word: str, kind: str, start: bool) -> str:
    if kind == "name":
        return word
    return ("The " if start else "the ") + word


def split_of(trig: list[dict], seed: int = 0, test_share: float = 0.5) -> dict:
    """``word -> "train" | "test"``: each (class, gender, kind) stratum shuffled with ``seed``, its first
    ``test_share`` held out."""
    strata: dict = {}
    for t in trig:
        strata.setdefault((t["cls"], t["gender"] or "", t["kind"]), []).append(t["word"])
    out = {}
    for key in sorted(strata):
        ws = sorted(strata[key])
        random.Random(f"{seed}:{key}").shuffle(ws)
        k = round(len(ws) * test_share)
        out.update({w: ("test" if i < k else "train") for i, w in enumerate(ws)})
    return out


def items(seed: int = 0, test_share: float = 0.5):
    """The benchmark as a ``datasets.Dataset``: one row per trigger × prediction type × template."""
    import datasets

    t, trig = templates(), triggers()
    split = split_of(trig, seed, test_share)
    rows = []
    for tr in trig:
        for typ in TYPES:
            male, female = t["targets"][typ]
            for k, tpl in enumerate(t["templates"][typ]):
                subj = _subject(tr["word"], tr["kind"], tpl.startswith("{S}"))
                rows.append(dict(
                    id=f"{typ}/{k}/{tr['word']}", type=typ, template=k, cls=tr["cls"], kind=tr["kind"],
                    trigger=tr["word"], gender=tr["gender"] or "", source=tr["source"], split=split[tr["word"]],
                    prompt=tpl.replace("{S}", subj).replace("{s}", subj), male=male, female=female,
                    counterparts=[tpl.replace("{S}", _subject(c, tr["kind"], True)).replace("{s}", _subject(c, tr["kind"], False))
                                  for c in tr["counterparts"]]))
    return datasets.Dataset.from_list(rows)


def summary(ds) -> dict:
    """Items per (class, split)."""
    out: dict = {}
    for c, s in zip(ds["cls"], ds["split"]):
        out[(c, s)] = out.get((c, s), 0) + 1
    return out
