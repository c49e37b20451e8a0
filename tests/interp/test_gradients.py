"""gradients.frozen and gradients.keep_logits (capture_grads is tested through patching and circuits)."""
import pytest
import torch

from mlbook.interp import gradients


def test_keep_logits_names_the_last_positions():
    assert gradients.keep_logits(0, 6) == 0 and gradients.keep_logits(6, 6) == 0
    assert torch.equal(gradients.keep_logits(1, 6), torch.tensor([5]))
    assert torch.equal(gradients.keep_logits(2, 3), torch.tensor([1, 2]))
    with pytest.raises(ValueError):
        gradients.keep_logits(-1, 6)


def test_frozen_restores_only_what_required_grad():
    lin = torch.nn.Linear(2, 2)
    lin.bias.requires_grad_(False)
    with gradients.frozen(lin):
        assert not lin.weight.requires_grad
    assert lin.weight.requires_grad and not lin.bias.requires_grad
    with pytest.raises(RuntimeError), gradients.frozen(lin):
        raise RuntimeError("restored on the way out of an error too")
    assert lin.weight.requires_grad
