"""Templated multi-step arithmetic word problems with exact answers, in several languages.

A problem is first drawn as a language-free **skeleton** — who, which item, a start amount and
1-3 events (buy, get, find add; give, lose, sell subtract) — and then **rendered** in a language
from hand-written templates (``data/07_copsd/templates.yaml``).  Every language renders the same
skeleton, so renderings are exact translations of each other, and the answer is computed:

    sk = Skeleton(name=0, friend=1, item=2, start=7, events=(("buy", 3), ("give", 4)))   # or draw(rng)
    render(sk, "de")["problem"]   # 'Anna hat 7 Stifte. Anna kauft 3 weitere Stifte. Anna gibt David 4 Stifte. Wie viele Stifte hat Anna jetzt?'
    render(sk, "en")["solution"]  # 'Anna buys 3 more pens: 7 + 3 = 10. Anna gives 4 pens to David: 10 - 4 = 6. The answer is \\boxed{6}.'

Languages: English, German, Spanish, Swahili, and ``qaa``, English with every word replaced by an
invented one (a fixed word-substitution cipher), a language no pretrained model has seen.
"""
from __future__ import annotations

import functools
import hashlib
import random
import re
from dataclasses import dataclass

from mlbook.core.catalogue import repo_root

PLUS = ("buy", "get", "find")
MINUS = ("give", "lose", "sell")
OP = {**{k: "+" for k in PLUS}, **{k: "-" for k in MINUS}}
PSEUDO = "qaa"                 # ISO 639-2 reserves qaa-qtz for local use
START_RANGE = (2, 12)          # start amount
STEP_RANGE = (2, 5)            # amount of each event
MAX_VALUE = 20                 # the running amount stays in 0..MAX_VALUE (small sums: the organism can learn them)
PROMPT_KEYS = ("instruction", "think_prefix", "transition", "teacher_instruction")


def _templates_path():
    return repo_root() / "data" / "07_copsd" / "templates.yaml"


@functools.cache
def templates() -> dict:
    """``{"names": [...], "languages": {code: {...}}}`` — the YAML file plus the derived pseudo-language."""
    import yaml

    data = yaml.safe_load(_templates_path().read_text(encoding="utf-8"))
    data["languages"][PSEUDO] = _pseudo_language(data["languages"]["en"], data["names"])
    return data


def languages() -> list[str]:
    """Language codes, English first."""
    return list(templates()["languages"])


def language_name(lang: str) -> str:
    return _lang(lang)["name"]


def _lang(lang: str) -> dict:
    langs = templates()["languages"]
    if lang not in langs:
        raise ValueError(f"unknown language {lang!r}; the languages are: "
                         + ", ".join(f"{k} ({v['name']})" for k, v in langs.items()))
    return langs[lang]


def prompt_text(lang: str, key: str) -> str:
    """A prompt text of ``lang``: ``instruction``, ``think_prefix``, ``transition``, ``teacher_instruction``,
    or a label ``labels.problem`` / ``labels.translation`` / ``labels.reference`` / ``labels.ref_begin`` / ``labels.ref_end``."""
    node = _lang(lang)
    for part in key.split("."):
        if part not in node:
            raise ValueError(f"unknown prompt text {key!r}")
        node = node[part]
    return node


# ----------------------------------------------------------------------------- skeletons
@dataclass(frozen=True)
class Skeleton:
    """A problem without words: ``events`` is a tuple of ``(kind, amount)``."""

    name: int
    friend: int
    item: int
    start: int
    events: tuple

    def values(self) -> list[int]:
        """The running amount: start, after event 1, after event 2, ..."""
        out = [self.start]
        for kind, n in self.events:
            out.append(out[-1] + n if OP[kind] == "+" else out[-1] - n)
        return out

    @property
    def answer(self) -> int:
        return self.values()[-1]

    @property
    def n_steps(self) -> int:
        return len(self.events)


def draw(rng: random.Random, min_steps: int = 1, max_steps: int = 3) -> Skeleton:
    """A random skeleton with ``min_steps``..``max_steps`` events; amounts stay within 0..MAX_VALUE."""
    n_names = len(templates()["names"])
    name, friend = rng.sample(range(n_names), 2)
    item = rng.randrange(len(_lang("en")["items"]))
    cur = start = rng.randint(*START_RANGE)
    events = []
    lo, hi = STEP_RANGE
    for _ in range(rng.randint(min_steps, max_steps)):
        kinds = (PLUS if cur + lo <= MAX_VALUE else ()) + (MINUS if cur >= lo else ())
        kind = rng.choice(kinds)
        n = rng.randint(lo, min(hi, MAX_VALUE - cur) if OP[kind] == "+" else min(hi, cur))
        cur = cur + n if OP[kind] == "+" else cur - n
        events.append((kind, n))
    return Skeleton(name, friend, item, start, tuple(events))


def problem_set(n: int, seed: int, min_steps: int = 1, max_steps: int = 3, exclude=()) -> list[Skeleton]:
    """``n`` distinct skeletons drawn with ``seed``, none of them in ``exclude`` (e.g. a training set)."""
    rng = random.Random(seed)
    seen, out = set(exclude), []
    tries = 0
    while len(out) < n:
        sk = draw(rng, min_steps, max_steps)
        tries += 1
        if tries > 100 * n + 1000:
            raise ValueError(f"cannot draw {n} distinct problems outside the {len(seen)} excluded")
        if sk not in seen:
            seen.add(sk)
            out.append(sk)
    return out


# ----------------------------------------------------------------------------- rendering
def render(sk: Skeleton, lang: str) -> dict:
    """``{"lang", "problem", "solution", "answer"}`` of a skeleton in ``lang``.

    The solution restates each event with its equation, then gives the answer in ``\\boxed{}``:
    ``"Anna buys 3 more apples: 5 + 3 = 8. Anna gives 2 apples to Ben: 8 - 2 = 6. The answer is \\boxed{6}."``
    """
    t = _lang(lang)
    names = templates()["names"]
    slots = dict(name=names[sk.name], friend=names[sk.friend], **t["items"][sk.item])
    slots.setdefault("q", "")
    sentences = [t["start"].format(n=sk.start, **slots)]
    steps = []
    vals = sk.values()
    for (kind, n), a, r in zip(sk.events, vals, vals[1:]):
        sentence = t["events"][kind].format(n=n, **slots)
        sentences.append(sentence)
        steps.append(f"{sentence.rstrip('.')}: {a} {OP[kind]} {n} = {r}.")
    sentences.append(t["question"].format(**slots))
    steps.append(t["answer"].format(answer=sk.answer))
    return {"lang": lang, "problem": " ".join(sentences), "solution": " ".join(steps), "answer": sk.answer}


# ----------------------------------------------------------------------------- the pseudo-language
_WORD = re.compile(r"\\boxed|\{[^{}]*\}|[A-Za-z]+")
_CONS, _VOW = "bdfgklmnprstvz", "aeiou"


def _english_words(node) -> set[str]:
    if isinstance(node, str):
        return {m.group(0).lower() for m in _WORD.finditer(node) if m.group(0)[0] not in "\\{"}
    if isinstance(node, dict):
        return set().union(*(_english_words(v) for k, v in node.items() if k != "name")) if node else set()
    if isinstance(node, list):
        return set().union(*(_english_words(v) for v in node)) if node else set()
    return set()


def _cipher(words: set[str]) -> dict[str, str]:
    """A fixed one-to-one map English word -> invented word (CV syllables, about as long as the word)."""
    out, used = {}, set(words)
    for w in sorted(words):
        salt = 0
        while True:
            r = random.Random(hashlib.sha256(f"{w}/{salt}".encode()).digest())
            syl = max(1, min(3, (len(w) + 1) // 3))
            cand = "".join(r.choice(_CONS) + r.choice(_VOW) for _ in range(syl))
            if len(w) <= 2:
                cand = cand[:2]
            if cand not in used:
                break
            salt += 1
        used.add(cand)
        out[w] = cand
    return out


def _pseudo_language(en: dict, names: list[str]) -> dict:
    cipher = _cipher(_english_words(en) - {n.lower() for n in names})

    def sub(node):
        if isinstance(node, str):
            def one(m):
                w = m.group(0)
                if w[0] in "\\{" or w.lower() not in cipher:
                    return w
                c = cipher[w.lower()]
                return c.capitalize() if w[0].isupper() else c
            return _WORD.sub(one, node)
        if isinstance(node, dict):
            return {k: sub(v) for k, v in node.items()}
        if isinstance(node, list):
            return [sub(v) for v in node]
        return node

    own = {k: v.replace("in English", "in Qaa") for k, v in en.items() if k in PROMPT_KEYS}  # "think in Qaa"
    out = sub({**{k: v for k, v in en.items() if k != "name"}, **own})
    out["name"] = "Qaa (invented: English with every word replaced)"
    out["cipher"] = cipher
    return out
