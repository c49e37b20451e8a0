"""InfoNCE: the contrastive loss that pulls translations together (cross-lingual alignment).

Sentence level (translation ranking).  A batch holds n parallel pairs (s_i, t_i); u_i and v_i are their
pooled embeddings.  Each source must pick its own translation among the batch's targets:

    L = −(1/n) Σ_i log  exp(cos(u_i, v_i) / τ) / Σ_j exp(cos(u_i, v_j) / τ)

— a cross-entropy over the n × n cosine matrix scaled by 1/τ, whose right answers are its diagonal.
This is sentence-transformers' ``MultipleNegativesRankingLoss`` with ``scale = 1/τ``;
``symmetric=True`` averages it with the same loss read column-wise (each target picks its source).

Token level (realignment).  The pairs are aligned words (a_k, b_k), k = 1..m, gathered over a batch of
sentence pairs; a word's vector is the mean of its sub-word states (:func:`word_vectors`).  With all 2m
vectors in one pool, a word's positive is its aligned partner and its negatives are the other aligned
words *of the other language* only (same-language negatives are masked: that a word is unlike the other
words of its own language says nothing about alignment).  That masked pool is exactly the symmetric loss
above over the m word pairs, which is how :func:`token_info_nce` computes it.
"""
from __future__ import annotations


def info_nce(u, v, tau: float = 0.1, symmetric: bool = False):
    """Mean InfoNCE of n pairs (rows of ``u`` and ``v``, any scale: they are L2-normalised here)."""
    import torch
    import torch.nn.functional as F

    if u.ndim != 2 or u.shape != v.shape:
        raise ValueError(f"u and v must both be (n, d) with the same shape, got {tuple(u.shape)} and {tuple(v.shape)}")
    if u.shape[0] < 2:
        raise ValueError("InfoNCE needs at least 2 pairs in a batch (one positive, at least one negative each)")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    logits = F.normalize(u, dim=-1) @ F.normalize(v, dim=-1).T / tau   # (n, n): cos / τ
    target = torch.arange(len(u), device=u.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = (loss + F.cross_entropy(logits.T, target)) / 2
    return loss


def word_vectors(hidden, word_ids: list[list[int | None]]):
    """Per sentence, the mean hidden state of each word's sub-word tokens.

    ``hidden``: (b, L, d); ``word_ids[r][p]`` the word index of token p of row r (a fast tokenizer's
    ``encoding.word_ids(r)``), None for special and padding tokens.  Returns a list of b tensors
    (n_words_r, d), word order kept."""
    import torch

    out = []
    for r, ids in enumerate(word_ids):
        pos = [(p, w) for p, w in enumerate(ids) if w is not None]
        n = max((w for _, w in pos), default=-1) + 1
        index = torch.tensor([w for _, w in pos], device=hidden.device)
        sums = hidden.new_zeros(n, hidden.shape[-1]).index_add(0, index, hidden[r, [p for p, _ in pos]])
        counts = torch.bincount(index, minlength=n).clamp(min=1).unsqueeze(-1).to(hidden.dtype)
        out.append(sums / counts)
    return out


def token_info_nce(src_words, tgt_words, alignments: list[list[tuple[int, int]]], tau: float = 0.1):
    """Realignment loss over the aligned words of a batch of sentence pairs.

    ``src_words[r]``, ``tgt_words[r]``: (n_words, d) word vectors of pair r (:func:`word_vectors`);
    ``alignments[r]``: its (source word, target word) index pairs.  Every aligned pair of the batch is one
    positive; the batch's other aligned words of the other language are its negatives (symmetric InfoNCE)."""
    import torch

    a = [src_words[r][i] for r, al in enumerate(alignments) for i, _ in al]
    b = [tgt_words[r][j] for r, al in enumerate(alignments) for _, j in al]
    if len(a) < 2:
        raise ValueError(f"the batch holds {len(a)} aligned word pair(s); the token loss needs at least 2")
    return info_nce(torch.stack(a), torch.stack(b), tau, symmetric=True)
