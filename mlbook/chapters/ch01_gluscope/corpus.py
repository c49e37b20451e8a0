"""Chapter 1's corpus: real offline text in three registers — the UDHR in twelve languages, Python's
documentation topics, Python source code — cut into seeded token windows."""
from __future__ import annotations

from mlbook.corpora.udhr import udhr as udhr_table

UDHR_LANGUAGES = ("eng", "deu_1996", "fra", "spa", "tur", "vie", "rus", "arb", "hin", "cmn_hans", "jpn", "kor")

STDLIB_MODULES = ("textwrap", "heapq", "bisect", "fractions", "statistics", "shlex", "difflib", "calendar",
                  "csv", "string", "colorsys", "json.decoder", "json.encoder", "fnmatch", "glob", "pprint")

SHARES = {"udhr": 0.5, "pydoc": 0.25, "code": 0.25}


def documents(languages=UDHR_LANGUAGES) -> list[dict]:
    """Real offline text in three registers, as long documents: the UDHR, one document per
    language (``languages=None``: all 500+); Python's documentation topics (``pydoc_data``),
    one document; and Python source code, one document per stdlib module."""
    import importlib.util
    from pydoc_data.topics import topics

    udhr, docs = udhr_table(list(languages) if languages else None), {}
    for lang, text in zip(udhr["lang"], udhr["text"]):
        docs.setdefault(lang, []).append(text)
    out = [{"register": "udhr", "lang": lang, "name": f"UDHR {lang}", "text": "\n".join(t)} for lang, t in docs.items()]
    out.append({"register": "pydoc", "lang": "eng", "name": "pydoc topics",
                "text": "\n\n".join(topics[k] for k in sorted(topics))})
    for mod in STDLIB_MODULES:
        path = importlib.util.find_spec(mod).origin
        out.append({"register": "code", "lang": "python", "name": mod, "text": open(path, encoding="utf-8").read()})
    return out


def corpus(tokenizer, n_tokens: int, seed: int = 0, seq_len: int = 128, shares=None, languages=UDHR_LANGUAGES):
    """A seeded sample of token windows, ``shares`` of ``n_tokens`` per register -> ``datasets.Dataset``.

    Each document is tokenised and cut into windows of at most ``seq_len`` tokens (the
    tokenizer's BOS, if it adds one, opens every window and is not counted).  The seed
    chooses which windows are taken; it does not change the registers' shares.
    Columns: text (index), register, lang, name, input_ids, first (index of the first text token).
    """
    import random

    from datasets import Dataset

    shares = shares or SHARES
    prefix = tokenizer("", add_special_tokens=True)["input_ids"]
    room = seq_len - len(prefix)
    pools: dict[str, list] = {r: [] for r in shares}
    for d in documents(languages):
        if d["register"] not in pools:
            continue
        ids = tokenizer(d["text"], add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), room):
            chunk = ids[start:start + room]
            if len(chunk) >= 8:
                pools[d["register"]].append({**{k: d[k] for k in ("register", "lang", "name")},
                                             "input_ids": prefix + chunk, "first": len(prefix)})
    rng, rows = random.Random(seed), []
    for reg, share in shares.items():
        pool, budget = list(pools[reg]), int(round(share * n_tokens))
        rng.shuffle(pool)
        for w in pool:
            if budget <= 0:
                break
            rows.append(w)
            budget -= len(w["input_ids"]) - w["first"]
    rng.shuffle(rows)
    return Dataset.from_list([{"text": i, **r} for i, r in enumerate(rows)])
