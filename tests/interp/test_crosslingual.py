"""Chapter 8's building blocks on tiny random models: multiple-choice scoring (fast path = definition),
the scenes, the LLaVA assembly and its answer loss, cross-lingual similarity, and the experiment's
weight plumbing (``mlbook.choice``, ``scenes``, ``vlm``, ``crosslingual``, ``dim3``)."""
from __future__ import annotations

import torch

from mlbook.interp import crosslingual
from tests.tiny import llama as _tiny_llama


def test_pooled_states_and_similarity():
    m = _tiny_llama(6)
    ids = [[7, 8, 9, 10], [11, 12]]
    pool = [[0, 1, 1, 0], [1, 1]]
    got = crosslingual.pooled_states(m, ids, pool, batch_size=1)
    assert got.shape == (2, 4, 32)
    with torch.no_grad():
        hs = m(input_ids=torch.tensor([ids[0]]), output_hidden_states=True).hidden_states
    want = torch.stack([h[0, 1:3].mean(0) for h in hs])
    assert torch.allclose(got[0], want, atol=1e-5)
    sim = crosslingual.layer_similarity(got, got)
    assert torch.allclose(sim, torch.ones(4), atol=1e-5)
    lo, mid, hi = crosslingual.thirds(30)
    assert (list(lo), list(mid), list(hi)) == (list(range(1, 11)), list(range(11, 21)), list(range(21, 31)))
