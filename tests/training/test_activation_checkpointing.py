"""mlbook.training.activation_checkpointing: the same gradients with the layers recomputed (full
fine-tuning and LoRA), far fewer bytes kept for backward (counted with saved-tensor hooks), and a
clear error for a model without the feature."""
from __future__ import annotations

import pytest
import torch

from mlbook.models import layout
from mlbook.text import batching
from mlbook.training import onpolicy
from mlbook.training.activation_checkpointing import recompute_layers
from mlbook.training.lora import add_lora
from tests.tiny import causal_lm as _tiny

IDS, MASK = batching.left_pad([[5, 6, 7, 8, 9, 10, 11, 12], [9, 10, 3, 4]], 0)


def _loss(model):
    h = onpolicy.final_hidden(model, IDS, MASK)
    return layout.head_logits(model, h).log_softmax(-1)[..., 3].mean()


def _grads(model):
    model.train()
    model.zero_grad(set_to_none=True)
    _loss(model).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _saved_bytes(model) -> int:
    """Bytes of the tensors autograd keeps for backward outside checkpointed regions (a checkpointed
    region packs its own tensors and unpacks them by recomputation)."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _loss(model)
    return total[0]


@pytest.mark.parametrize("lora", [False, True])
def test_same_gradients_with_the_layers_recomputed(lora):
    plain = _tiny("llama", 3)
    if lora:
        plain = add_lora(plain, r=4, alpha=8)
        for n, p in plain.named_parameters():          # peft starts B at zero: make the adapters' gradients non-trivial
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)
    want = _grads(plain)
    got = _grads(recompute_layers(plain))
    assert want.keys() == got.keys() and len(want) > 0
    for n in want:
        assert torch.allclose(got[n], want[n], atol=1e-6, rtol=1e-5), n


def test_recomputing_keeps_far_fewer_bytes_for_backward():
    m = _tiny("llama", 4)
    plain = _saved_bytes(m)
    recomputed = _saved_bytes(recompute_layers(m))
    assert recomputed < 0.5 * plain, (recomputed, plain)
    assert _saved_bytes(recompute_layers(m, on=False)) == plain      # and it can be switched off again


def test_a_model_without_the_feature_is_refused():
    with pytest.raises(TypeError, match="activation checkpointing"):
        recompute_layers(torch.nn.Linear(2, 2))


def test_final_hidden_is_the_last_of_the_hidden_states():
    m = _tiny("llama", 5)
    with torch.no_grad():
        want = m(input_ids=IDS, attention_mask=MASK, position_ids=batching.positions(MASK),
                 output_hidden_states=True).hidden_states[-1]
        got = onpolicy.final_hidden(m, IDS, MASK)
    assert torch.equal(got, want)
