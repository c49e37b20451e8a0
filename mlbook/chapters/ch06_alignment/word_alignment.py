"""Word alignments between UDHR translations, for the token-level alignment loss: SimAlign (Jalili Sabet et
al., 2020; the ``simalign`` package) on the chapter's own encoder, multilingual-e5-small.

SimAlign needs no parallel training data.  It embeds both sentences with the encoder, takes the hidden
states of one layer for every subword token, and scores each source–target token pair by the cosine
similarity of their vectors, rescaled to [0, 1].  A *matching method* turns that similarity matrix into
links:

- ``inter`` (the paper's *Argmax*): link i–j when j is i's most similar target token and i is j's most
  similar source token (the intersection of the forward and backward argmax);
- ``itermax``: Argmax, then one more round of Argmax over the pairs where at least one token is still
  unaligned, the similarity damped by 0.9 where the other one is aligned already — it adds links for the
  tokens Argmax leaves alone (sentences of at most 2 tokens: Argmax only);
- ``mwmf``: the maximum-weight matching of the bipartite similarity graph (each token at most one link).

A subword link i–j becomes the link of their words (``token_type="bpe"``): a word pair is linked when any
of their subwords are.  Both sentences of a pair go through the encoder in one batch: on the book's
2-core CPU machine, 0.06 s a pair on average over the en–de and en–ru UDHR units (median 0.045 s; mwmf
0.13 s), up to ten times more when other processes share the cores; loading the aligner takes about 3 s.
"""
from __future__ import annotations

import functools
import json

import regex

from mlbook.core.cache import cached_folder, key_of, source_digest
from mlbook.core.catalogue import repo_root
from mlbook.models.resolve import resolve

ENCODER = "intfloat/multilingual-e5-small"
METHODS = {"itermax": "i", "inter": "a", "mwmf": "m"}   # our names (simalign's) → simalign's one-letter codes

_LETTERS = r"\p{L}\p{M}\p{N}\u200c\u200d"   # letters, combining marks, digits, zero-width (non-)joiner
_WORD = regex.compile(rf"[{_LETTERS}]+(?:[-‐'’][{_LETTERS}]+)*|[^\s{_LETTERS}]")


def words(text: str) -> list[str]:
    """The chapter's words of ``text``: runs of letters, digits and combining marks (a hyphen or apostrophe
    between two such runs stays inside the word: ``какую-либо``), and every other non-space character a word
    of its own (punctuation is split off).  The marks matter: ``\\w`` does not match Devanagari vowel signs,
    which would cut ``मनुष्यों`` after every consonant."""
    return _WORD.findall(text)


@functools.cache
def _aligner(layer: int, method: str):
    import torch
    from simalign import SentenceAligner

    path = str(resolve(ENCODER, "encoder"))
    with torch.random.fork_rng():   # the loader draws a (never used) pooler: keep the caller's random stream
        return SentenceAligner(model=path, token_type="bpe", matching_methods=METHODS[method], layer=layer)


def align(pairs, layer: int = 8, method: str = "itermax", progress: bool = False) -> list[list[tuple[int, int]]]:
    """For each ``(src_words, tgt_words)`` of ``pairs``, its links ``(i, j)``: source word i ↔ target word j,
    sorted, found by SimAlign with ``method`` (``itermax``, ``inter`` or ``mwmf``) on the hidden states of
    encoder layer ``layer`` (0 = the embeddings)."""
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, not {method!r}")
    aligner = _aligner(layer, method)
    return [[(i, j) for i, j in aligner.get_word_aligns(list(src), list(tgt))[method]]
            for src, tgt in tqdm(pairs, desc="word alignment", unit="pair", disable=not progress)]


def cached_alignments(src_lang: str, tgt_lang: str, units, layer: int = 8, method: str = "itermax",
                      progress: bool = False) -> list[list[tuple[int, int]]]:
    """:func:`align` on the :func:`words` of ``units`` (``udhr_pairs`` rows: their ``src`` and ``tgt``), computed
    once into the mlbook cache under the languages, the texts, ``layer``, ``method`` and this module's source."""
    texts = [[u["src"], u["tgt"]] for u in units]
    key = key_of("ch06-word-alignments", src_lang, tgt_lang, texts, layer, method, source_digest(__name__))

    def build(folder):
        links = align([(words(s), words(t)) for s, t in texts], layer, method, progress)
        (folder / "alignments.json").write_text(json.dumps(links))
        return {"pairs": len(links), "src": src_lang, "tgt": tgt_lang, "layer": layer, "method": method}

    folder = cached_folder(f"ch06/word-alignments-{key}", build)
    return [[(i, j) for i, j in links] for links in json.loads((folder / "alignments.json").read_text())]


def score(pred, gold) -> dict:
    """Precision, recall, F1 and alignment error rate of predicted links ``pred`` against the sure gold links
    ``gold`` (one list of ``(i, j)`` per sentence pair), counted over all pairs together.

    With A the predicted links and S the sure ones: precision = |A∩S|/|A|, recall = |A∩S|/|S|, F1 their
    harmonic mean, and AER = 1 − (|A∩S| + |A∩P|)/(|A| + |S|) (Och & Ney, 2003), where the possible links P
    contain S; our gold has sure links only (P = S), so AER = 1 − F1."""
    if len(pred) != len(gold):
        raise ValueError(f"{len(pred)} predicted alignments for {len(gold)} gold ones")
    n_pred = n_gold = hits = 0
    for a, s in zip(pred, gold):
        a, s = {tuple(x) for x in a}, {tuple(x) for x in s}
        n_pred, n_gold, hits = n_pred + len(a), n_gold + len(s), hits + len(a & s)
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_gold if n_gold else 0.0
    f1 = 2 * hits / (n_pred + n_gold) if n_pred + n_gold else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "aer": 1 - f1, "links": n_pred, "gold": n_gold}


GOLD = repo_root() / "data" / "06_alignment_vs_transfer" / "gold_alignments"


def load_gold(pair: str) -> list[dict]:
    """The hand-made gold links of ``pair`` (``"en-de"``, ``"en-ru"``): ``{"src", "tgt", "sure", …}`` per sentence pair,
    ``src``/``tgt`` the :func:`words` of the two sentences, ``sure`` their links ``(i, j)``."""
    path = GOLD / f"{pair}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no gold alignments {path.name}; there are {sorted(p.stem for p in GOLD.glob('*.jsonl'))}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{**r, "sure": [tuple(x) for x in r["sure"]]} for r in rows]
