"""mlbook.distill (COPSD) and mlbook.rollout: the clipped forward-KL loss against a direct formula
(values and gradients, the clip's zero gradient), the chunked fast path against the reference,
prompts, and batched KV-cache sampling against Hugging Face's generate."""
from __future__ import annotations

import torch

from mlbook.models import layout
from mlbook.text import batching
from mlbook.training import onpolicy
from tests.tiny import causal_lm as _tiny

# ----------------------------------------------------------------------------- rollouts


def test_final_hidden_and_head_give_the_logits():
    for kind in ("llama", "gemma"):
        m = _tiny(kind, 7)
        ids, mask = batching.left_pad([[5, 6, 7, 8], [9, 10]], 0)
        want = m(input_ids=ids, attention_mask=mask, position_ids=batching.positions(mask)).logits
        got = layout.head_logits(m, onpolicy.final_hidden(m, ids, mask))
        assert torch.allclose(got, want, atol=1e-5), kind
