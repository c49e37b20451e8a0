"""mlbook.gluscope against brute-force references on tiny random Llama and Gemma-3 models."""
from __future__ import annotations

import numpy as np
import torch

from mlbook.chapters.ch01_gluscope import experiment

K = 4  # top-k examples in the tests


def test_case_contrast_finds_a_planted_difference_and_not_a_null():
    """Two cases that peak on disjoint token groups are detected; exchangeable ones are not."""
    from datasets import Dataset

    vocab, d, n = 40, 8, 30
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(2, d, generator=g)
    emb = torch.cat([centres[0] + 0.3 * torch.randn(20, d, generator=g),
                     centres[1] + 0.3 * torch.randn(20, d, generator=g)])
    texts = Dataset.from_list([{"input_ids": [t]} for t in range(vocab)])
    rng = np.random.default_rng(0)
    planted = {"pp_top_texts": [rng.integers(0, 20, 8).tolist() for _ in range(n)],
               "mm_top_texts": [rng.integers(20, 40, 8).tolist() for _ in range(n)]}
    mixed = {"pp_top_texts": [rng.integers(0, 40, 8).tolist() for _ in range(n)],
             "mm_top_texts": [rng.integers(0, 40, 8).tolist() for _ in range(n)]}
    for case in (planted, mixed):
        case.update({"pp_top_positions": [[0] * 8] * n, "mm_top_positions": [[0] * 8] * n})
    hit = experiment.case_contrast(planted, texts, emb, n_neurons=n, n_perm=99)
    miss = experiment.case_contrast(mixed, texts, emb, n_neurons=n, n_perm=99)
    assert hit["share_significant"] > 0.9 and hit["binom_p"] < 1e-6 and hit["jaccard"] == 0
    assert miss["share_significant"] < 0.25 and miss["binom_p"] > 1e-3
