"""InfoNCE against its formula written out term by term (float64), and the token loss's masking."""
from __future__ import annotations

import math

import pytest
import torch

from mlbook.training.contrastive import info_nce, token_info_nce, word_vectors


def direct(u, v, tau, symmetric=False):
    """−(1/n) Σ_i log exp(c_ii/τ) / Σ_j exp(c_ij/τ), c = cosine, by loops."""
    n = len(u)
    cos = [[float(torch.dot(u[i], v[j]) / (u[i].norm() * v[j].norm())) for j in range(n)] for i in range(n)]
    rows = -sum(cos[i][i] / tau - math.log(sum(math.exp(cos[i][j] / tau) for j in range(n))) for i in range(n)) / n
    if not symmetric:
        return rows
    cols = -sum(cos[j][j] / tau - math.log(sum(math.exp(cos[i][j] / tau) for i in range(n))) for j in range(n)) / n
    return (rows + cols) / 2


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("tau", [0.05, 0.1, 1.0])
def test_info_nce_is_the_formula(tau, symmetric):
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(7, 5, generator=g, dtype=torch.float64) * 3, torch.randn(7, 5, generator=g, dtype=torch.float64)
    assert float(info_nce(u, v, tau, symmetric)) == pytest.approx(direct(u, v, tau, symmetric), rel=1e-12)


def test_info_nce_worked_by_hand():
    # two pairs, orthogonal unit vectors: cos = identity, so each row is log(1 + e^{-1/τ}) … with τ = 1
    u = torch.eye(2)
    assert float(info_nce(u, u, 1.0)) == pytest.approx(math.log(1 + math.exp(-1)) , rel=1e-6)
    assert float(info_nce(u, u.flip(0), 1.0)) == pytest.approx(math.log(1 + math.exp(1)), rel=1e-6)


def test_info_nce_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        info_nce(torch.ones(3, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        info_nce(torch.ones(1, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="tau"):
        info_nce(torch.randn(3, 2), torch.randn(3, 2), tau=0)


def test_word_vectors_average_the_sub_words_of_each_word():
    h = torch.arange(2 * 5 * 2, dtype=torch.float64).reshape(2, 5, 2)
    ids = [[None, 0, 0, 1, None], [None, 0, 1, 1, 2]]
    w = word_vectors(h, ids)
    assert torch.equal(w[0], torch.stack([(h[0, 1] + h[0, 2]) / 2, h[0, 3]]))
    assert torch.equal(w[1], torch.stack([h[1, 1], (h[1, 2] + h[1, 3]) / 2, h[1, 4]]))


def test_token_loss_masks_same_language_negatives():
    """The loss is the pooled formula over all 2m aligned words with each anchor's own language masked out,
    written out here; an unaligned word is in no pool."""
    g = torch.Generator().manual_seed(1)
    src = [torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g, dtype=torch.float64)]
    tgt = [torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randn(3, 6, generator=g, dtype=torch.float64)]
    al = [[(0, 1), (2, 0), (3, 3)], [(1, 2), (0, 0)]]
    a = torch.stack([src[r][i] for r, p in enumerate(al) for i, _ in p])
    b = torch.stack([tgt[r][j] for r, p in enumerate(al) for _, j in p])
    x = torch.cat([a, b])
    x = x / x.norm(dim=-1, keepdim=True)
    m, tau = len(a), 0.1
    lang = [0] * m + [1] * m
    pooled = 0.0
    for p in range(2 * m):
        q = (p + m) % (2 * m)
        denominator = sum(math.exp(float(x[p] @ x[r]) / tau) for r in range(2 * m) if lang[r] != lang[p])
        pooled -= float(x[p] @ x[q]) / tau - math.log(denominator)
    assert float(token_info_nce(src, tgt, al, tau)) == pytest.approx(pooled / (2 * m), rel=1e-12)
    src[0][1] = src[0][0] + 1e-3  # an unaligned source word next to an anchor
    assert float(token_info_nce(src, tgt, al, tau)) == pytest.approx(pooled / (2 * m), rel=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        token_info_nce(src, tgt, [[(0, 0)], []])


def test_gradients_flow_to_both_sides():
    u = torch.randn(4, 3, requires_grad=True)
    v = torch.randn(4, 3, requires_grad=True)
    info_nce(u, v, 0.1, symmetric=True).backward()
    assert u.grad.abs().sum() > 0 and v.grad.abs().sum() > 0
