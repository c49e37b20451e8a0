"""mlbook.distill (COPSD) and mlbook.rollout: the clipped forward-KL loss against a direct formula
(values and gradients, the clip's zero gradient), the chunked fast path against the reference,
prompts, and batched KV-cache sampling against Hugging Face's generate."""
from __future__ import annotations

import pytest
import torch

from mlbook.text import batching, sampling
from tests.tiny import causal_lm as _tiny

# ----------------------------------------------------------------------------- rollouts


@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_greedy_sampling_matches_generate(kind):
    """Left-padded batched decoding with our KV-cache loop == each prompt alone through HF generate."""
    m = _tiny(kind)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(3, 41, (n,), generator=g).tolist() for n in (3, 7, 5)]
    free = sampling.sample(m, prompts, max_new_tokens=8, stop_ids={1}, pad_id=0, greedy=True)
    stop = free[1][2]                         # a token row 1 emits third: rows stop at different steps (pruning)
    got = sampling.sample(m, prompts, max_new_tokens=8, stop_ids={stop}, pad_id=0, greedy=True)
    assert len({len(c) for c in got}) > 1
    for p, c in zip(prompts, got):
        ref = m.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long), max_new_tokens=8,
                         do_sample=False, eos_token_id=stop, pad_token_id=0)[0, len(p):].tolist()
        cut = next((i + 1 for i, t in enumerate(ref) if t == stop), len(ref))
        assert c == ref[:cut]


def test_filter_logits_matches_hf_processors():
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    g = torch.Generator().manual_seed(6)
    x = torch.randn(5, 50, generator=g) * 3
    ours = sampling.filter_logits(x, temperature=1.1, top_k=20, top_p=0.95)
    ref = TopPLogitsWarper(0.95)(None, TopKLogitsWarper(20)(None, TemperatureLogitsWarper(1.1)(None, x.clone())))
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    assert torch.allclose(ours[~torch.isinf(ours)], ref[~torch.isinf(ref)])


def test_sampling_is_seeded_and_stops():
    m = _tiny()
    prompts = [[5, 6, 7], [8, 9]]
    torch.manual_seed(0)
    a = sampling.sample(m, prompts, max_new_tokens=20, stop_ids={1, 3}, pad_id=0, temperature=1.5)
    torch.manual_seed(0)
    b = sampling.sample(m, prompts, max_new_tokens=20, stop_ids={1, 3}, pad_id=0, temperature=1.5)
    c = sampling.sample(m, prompts, max_new_tokens=20, stop_ids={1, 3}, pad_id=0, temperature=1.5)
    assert a == b and a != c                                        # the global RNG decides
    for c in a:
        assert len(c) <= 20 and all(t not in (1, 3) for t in c[:-1])
    ids, mask, start = batching.joined(prompts, a, pad_id=0)
    assert start == 3 and ids.shape[1] == 3 + max(len(c) for c in a)
    assert mask[:, start:].sum().item() == sum(len(c) for c in a)
