"""Chapter 8's building blocks on tiny random models: multiple-choice scoring (fast path = definition),
the scenes, the LLaVA assembly and its answer loss, cross-lingual similarity, and the experiment's
weight plumbing (``mlbook.choice``, ``scenes``, ``vlm``, ``crosslingual``, ``dim3``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlbook.text import choice
from tests.tiny import llama as _tiny_llama
from tests.tiny import llava as _tiny_llava


def test_choice_fast_path_equals_definition_llama():
    m = _tiny_llama()
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(6, 64, (n,), generator=g).tolist() for n in (7, 2, 12, 5)]  # ragged: left padding
    cands = [[torch.randint(6, 64, (k,), generator=g).tolist() for k in ks] for ks in ([1, 3, 2], [2], [4, 1], [1, 1, 1, 1])]
    want = choice.score_naive(m, prompts, cands, end_id=2)
    for bs in (1, 3, 32):
        got = choice.score(m, prompts, cands, end_id=2, pad_id=0, batch_size=bs)
        assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4), bs


def test_choice_fast_path_equals_definition_llava_with_images():
    m = _tiny_llava(_tiny_llama())
    g = torch.Generator().manual_seed(4)
    px = torch.randn(3, 3, 24, 24, generator=g)
    prompts = [[5] * 4 + torch.randint(6, 64, (n,), generator=g).tolist() for n in (3, 6, 1)]
    cands = [[[10], [11, 12]], [[13, 14, 15]], [[16], [17], [18]]]
    want = choice.score_naive(m, prompts, cands, end_id=2, pixel_values=px)
    got = choice.score(m, prompts, cands, end_id=2, pad_id=0, pixel_values=px)
    assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4)
    # the image matters: another image, other scores
    other = choice.score(m, prompts, cands, end_id=2, pad_id=0, pixel_values=px.flip(0))
    assert not np.allclose(np.concatenate(other), np.concatenate(got), atol=1e-4)


def test_choice_shared_heads_equal_definition_llama():
    """Prompts grouped by a common head (run once per group) score as if each ran alone."""
    m = _tiny_llama()
    g = torch.Generator().manual_seed(5)
    heads = [torch.randint(6, 64, (n,), generator=g).tolist() for n in (6, 1, 9)]
    prompts, groups = [], []
    for h, head in enumerate(heads):
        for n in (1, 4, 2):  # ragged tails
            prompts.append(head + torch.randint(6, 64, (n,), generator=g).tolist())
            groups.append(f"g{h}")
    prompts.append(list(heads[0]))  # a prompt that is its head: one token goes to its tail
    groups.append("g0")
    cands = [[torch.randint(6, 64, (k,), generator=g).tolist() for k in (1, 3)] for _ in prompts]
    want = choice.score_naive(m, prompts, cands, end_id=2)
    for bs in (1, 4, 64):
        got = choice.score(m, prompts, cands, end_id=2, pad_id=0, batch_size=bs, groups=groups)
        assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4), bs
    assert choice._common_head([[1, 2, 3], [1, 2, 4, 5]]) == 2 and choice._common_head([[1, 2], [1, 2, 3]]) == 1
    with pytest.raises(ValueError, match="group labels"):
        choice.score(m, prompts, cands, end_id=2, groups=groups[:-1])


def test_choice_shared_heads_equal_definition_llava():
    m = _tiny_llava(_tiny_llama())
    g = torch.Generator().manual_seed(6)
    img = torch.randn(2, 3, 24, 24, generator=g)
    prompts = [[1] + [5] * 4 + torch.randint(6, 64, (n,), generator=g).tolist() for n in (3, 1, 5, 2)]
    groups = [0, 0, 1, 1]
    px = img[groups]  # prompts of a group: one image
    cands = [[[10], [11, 12]], [[13, 14, 15]], [[16], [17], [18]], [[19, 20]]]
    want = choice.score_naive(m, prompts, cands, end_id=2, pixel_values=px)
    got = choice.score(m, prompts, cands, end_id=2, pad_id=0, pixel_values=px, groups=groups)
    assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4)
    with pytest.raises(ValueError, match="share their image"):
        choice.score(m, prompts, cands, end_id=2, pixel_values=img[[0, 1, 0, 1]], groups=groups)
    with pytest.raises(ValueError, match="outside the shared head"):  # two prompts agree only on BOS
        choice.score(m, [[1, 5, 5, 5, 5, 7], [1, 9, 5, 5, 5, 5, 8]], [[[10]], [[11]]], end_id=2,
                     pixel_values=img[[0, 0]], groups=[0, 0])


def test_choice_merge_buckets_trades_padding_for_passes():
    few = choice._merge_buckets({1: [0], 2: [1], 3: [2]}, call_cost=96)  # three rows: one pass, padded to 3
    assert few == {3: [0, 1, 2]}
    many = choice._merge_buckets({1: list(range(500)), 9: [500]}, call_cost=96)  # padding 500 rows to 9 costs more
    assert many == {1: list(range(500)), 9: [500]}
    assert choice._merge_buckets({}, call_cost=96) == {}


def test_choice_accuracy():
    assert choice.accuracy([[0.0, -1.0], [-3.0, -2.0, -5.0], [1.0, 1.0]], [0, 1, 1]) == pytest.approx(2 / 3)
    assert np.isnan(choice.accuracy([], []))


def test_choice_continuation_loglikelihood_without_end_token():
    """end_id=None: score = log p(a | x) = Σ_t log p(a_t | x, a_<t), worked out from one full forward pass."""
    m = _tiny_llama()
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(6, 64, (n,), generator=g).tolist() for n in (6, 3, 9)]
    cands = [[[10], [11, 12, 13]], [[14, 15], [16]], [[17, 18, 19, 20], [21], [22, 23]]]
    want = []
    for p, cs in zip(prompts, cands):
        row = []
        for c in cs:
            with torch.no_grad():
                logp = m(input_ids=torch.tensor([p + c])).logits[0].log_softmax(-1)
            row.append(sum(float(logp[len(p) - 1 + t, tok]) for t, tok in enumerate(c)))
        want.append(row)
    assert np.allclose(np.concatenate(choice.score_naive(m, prompts, cands, end_id=None)), np.concatenate(want), atol=1e-4)
    for bs in (1, 2, 32):
        got = choice.score(m, prompts, cands, end_id=None, pad_id=0, batch_size=bs)
        assert np.allclose(np.concatenate(got), np.concatenate(want), atol=1e-4), bs
    with_end = choice.score(m, prompts, cands, end_id=2, pad_id=0)
    assert all(a < b for a, b in zip(np.concatenate(with_end), np.concatenate(want)))  # the end term is a log p < 0
    with pytest.raises(ValueError, match="empty candidate"):
        choice.score(m, prompts[:1], [[[]]], end_id=None)
