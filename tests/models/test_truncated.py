"""Chapter 8's building blocks on tiny random models: multiple-choice scoring (fast path = definition),
the scenes, the LLaVA assembly and its answer loss, cross-lingual similarity, and the experiment's
weight plumbing (``mlbook.choice``, ``scenes``, ``vlm``, ``crosslingual``, ``dim3``)."""
from __future__ import annotations

import pytest
import torch

from mlbook.models import loading


def test_truncated_backbone_keeps_the_first_layers(tiny_lm_dir, tmp_path, monkeypatch):
    """loading.truncated: the smoke profile's backbone — the real checkpoint's first layers, loadable, cached."""
    from transformers import AutoModelForCausalLM



    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    full = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    d = loading.truncated(str(tiny_lm_dir), 2)
    cut = AutoModelForCausalLM.from_pretrained(d)
    assert cut.config.num_hidden_layers == 2 and len(cut.model.layers) == 2
    sd, want = cut.state_dict(), full.state_dict()
    assert not any(k.startswith("model.layers.2.") for k in sd)
    for k, v in sd.items():
        assert torch.equal(v, want[k]), k
    # the same model as running the full one with its last layer skipped
    full.model.layers = full.model.layers[:2]
    full.config.num_hidden_layers = 2
    x = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        assert torch.allclose(cut(input_ids=x).logits, full(input_ids=x).logits, atol=1e-6)
    assert loading.truncated(str(tiny_lm_dir), 2) == d  # cached
    for bad in (0, 4, 1.5):
        with pytest.raises(ValueError, match="n_layers"):
            loading.truncated(str(tiny_lm_dir), bad)
