"""Chapter 5's prompt set: direct queries Q1(r, e) and contextually mediated queries Q2(r, e, n) from the
templates and name lists in ``data/05_contextual_recall/``, over country facts localised by CLDR.

    Q1(r, e)     = q_r(X = e)                         "The capital of France is"
    Q2(r, e, n)  = c_s(e, n) ‖ q_r(X = ref_s(n))      "Lena lives in a country called France. The capital
                                                       of the country where Lena lives is"

Every fact (r, e, language) gets a fixed set of candidate answers — the gold one and distractors drawn among
the relation's other answers — shared by its Q1 and all its Q2, so that chance is the same for both.  A seed
draws, for each (country, language), one scenario s and two names (one synthetic, one real), used for all
of that country's relations: the mediated prompts of one fact differ only in the name, and the relations of
one country share their context sentence (one pass over it, ``choice.score(groups=…)``).
"""
from __future__ import annotations

import random
import unicodedata
from functools import cache

from mlbook.core.catalogue import repo_root

LANGUAGES = ("en", "de", "fr", "es", "ru")
CYRILLIC = {"ru"}


@cache
def _yaml(name: str) -> dict:
    import yaml

    return yaml.safe_load((repo_root() / "data" / "05_contextual_recall" / name).read_text(encoding="utf-8"))


def templates() -> dict:
    return _yaml("templates.yml")["languages"]


def name_lists() -> dict:
    return _yaml("names.yml")


def check_languages(languages) -> list[str]:
    known = templates()
    bad = [lang for lang in languages if lang not in known]
    if bad:
        raise ValueError(f"no templates for language {bad[0]!r}; data/05_contextual_recall/templates.yml has "
                         f"{', '.join(known)}")
    return list(languages)


def direct(lang: str, relation: str, country: str) -> str:
    """Q1: the relation's pattern with X = the country's name."""
    t = templates()[lang]
    x = {k: v.format(country=country) for k, v in t["direct"].items()}
    return t["relations"][relation].format(**x)


def mediated(lang: str, relation: str, country: str, name: str, scenario: str) -> str:
    """Q2: the scenario's context sentence, then the relation's pattern with X = the reference through the name."""
    t = templates()[lang]
    s = t["scenarios"][scenario]
    x = {k: s[k].format(name=name) for k in ("gen", "nom")}
    return s["context"].format(name=name, country=country) + " " + t["relations"][relation].format(**x)


def with_article(lang: str, relation: str, answer: str) -> str:
    """The answer as it follows the prompt: with the article the language's pattern needs (``article`` rules)."""
    rule = templates()[lang].get("article", {}).get(relation)
    if not rule:
        return answer
    first = answer.split()[0].casefold() if answer.split() else ""
    if "feminine" in rule and first in rule.get("feminine_words", []):
        return rule["feminine"] + answer
    if "vowel" in rule and unicodedata.normalize("NFD", answer[:1])[:1].casefold() in "aeiouh":
        return rule["vowel"] + answer
    return rule["default"] + answer


def real_names() -> set[str]:
    """Every real name of the lists, in both scripts, casefolded."""
    return {f.casefold() for forms in name_lists()["real"].values() for pair in forms for f in pair}


def fact_words(facts) -> set[str]:
    """The words of the facts' country names and answers, casefolded: what a synthetic name must not be."""
    return {w.casefold() for f in facts for w in (f["country_name"] + " " + f["answer"]).split()}


def synthetic_names(lang: str, n: int, seed: int, forbidden: set[str] = frozenset()) -> list[str]:
    """``n`` distinct synthetic names of ``lang``'s syllable inventory (2 syllables + coda, 4–9 letters),
    none of them a real name of the lists or a word in ``forbidden`` (the facts' names, casefolded)."""
    inv = name_lists()["synthetic"][lang]
    real = real_names()
    rng, out, tries = random.Random(f"synthetic-{lang}-{seed}"), [], 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise RuntimeError(f"could not draw {n} distinct synthetic {lang} names")
        s = "".join(rng.choice(inv["onsets"]) + rng.choice(inv["vowels"]) for _ in range(2)) + rng.choice(inv["codas"])
        name = s[:1].upper() + s[1:]
        if 4 <= len(name) <= 9 and name.casefold() not in real | forbidden and name not in out:
            out.append(name)
    return out


def real_name(origin: str, lang: str, rng: random.Random) -> str:
    pair = rng.choice(name_lists()["real"][origin])
    return pair[1] if lang in CYRILLIC else pair[0]


def candidate_sets(facts, n_candidates: int, seed: int = 0) -> dict:
    """``{(country, locale, relation): [answer keys]}``: the gold key first, then ``n_candidates − 1``
    distractors drawn (seeded per fact) among the relation's other answer keys in that locale (all of them
    where there are fewer, e.g. six continents).  The draw does not depend on the run's seed: Q1 and every
    Q2 of a fact, in every seed, choose among the same answers."""
    by_rel: dict = {}
    for cc, loc, rel, key in zip(facts["country"], facts["locale"], facts["relation"], facts["answer_key"]):
        by_rel.setdefault((loc, rel), set()).add(key)
    out = {}
    for cc, loc, rel, key in zip(facts["country"], facts["locale"], facts["relation"], facts["answer_key"]):
        others = sorted(by_rel[loc, rel] - {key})
        rng = random.Random(f"{seed}-{cc}-{rel}")  # the same distractor keys in every language
        out[cc, loc, rel] = [key] + (rng.sample(others, n_candidates - 1) if len(others) >= n_candidates else others)
    return out


def build(facts, languages, seeds, n_candidates: int, origins=None) -> tuple[list[dict], dict]:
    """``(prompts, answers)``.

    Only the facts in ``languages`` are used.
    prompts: one dict per prompt — fact (index of the fact among those), country, locale, relation, kind
    ("direct" | "mediated"), seed (None for direct), scenario, name_type ("synthetic" | "real"), name,
    origin, own (the name's origin is the prompt's language), text, group (prompts that share their
    context), candidates (answer keys, gold first).
    answers: ``{(locale, relation, key): [strings to score]}`` — the CLDR forms, with their article.
    """
    languages = check_languages(languages)
    origins = list(origins or name_lists()["real"])
    cands = candidate_sets(facts, n_candidates)
    answers: dict = {}
    rows = [f for f in (facts.to_list() if hasattr(facts, "to_list") else facts) if f["locale"] in languages]
    for f in rows:
        forms = [f["answer"]]
        if not templates()[f["locale"]].get("article", {}).get(f["relation"]):  # a plural fits no singular article
            forms += [a for a in f["aliases"] if a != f["answer"] and a[:1] == f["answer"][:1]]
        answers[f["locale"], f["relation"], f["answer_key"]] = [with_article(f["locale"], f["relation"], a) for a in forms]
    forbidden = fact_words(rows)
    prompts = []
    for i, f in enumerate(rows):
        base = {"fact": i, "country": f["country"], "locale": f["locale"], "relation": f["relation"],
                "candidates": cands[f["country"], f["locale"], f["relation"]]}
        prompts.append({**base, "kind": "direct", "seed": None, "scenario": "", "name_type": "", "name": "",
                        "origin": "", "own": False, "group": f"direct-{i}",
                        "text": direct(f["locale"], f["relation"], f["country_name"])})
    scenarios = {lang: sorted(templates()[lang]["scenarios"]) for lang in languages}
    countries = sorted({f["country"] for f in rows})
    for s in seeds:
        synth = {lang: iter(synthetic_names(lang, len(countries), s, forbidden)) for lang in languages}
        draw = {}
        for lang in languages:
            for k, cc in enumerate(countries):
                rng = random.Random(f"names-{s}-{lang}-{cc}")
                own = (k + s) % 2 == 0  # own-origin and foreign names alternate over countries and seeds
                origin = lang if own and lang in origins else rng.choice([o for o in origins if o != lang])
                draw[lang, cc] = {"scenario": rng.choice(scenarios[lang]), "synthetic": next(synth[lang]),
                                  "real": real_name(origin, lang, rng), "origin": origin, "own": origin == lang}
        for i, f in enumerate(rows):
            d = draw[f["locale"], f["country"]]
            for name_type in ("synthetic", "real"):
                name = d[name_type]
                prompts.append({"fact": i, "country": f["country"], "locale": f["locale"], "relation": f["relation"],
                                "candidates": cands[f["country"], f["locale"], f["relation"]], "kind": "mediated",
                                "seed": s, "scenario": d["scenario"], "name_type": name_type, "name": name,
                                "origin": d["origin"] if name_type == "real" else "",
                                "own": d["own"] if name_type == "real" else False,
                                "group": f"{s}-{f['locale']}-{f['country']}-{name_type}",
                                "text": mediated(f["locale"], f["relation"], f["country_name"], name, d["scenario"])})
    return prompts, answers
