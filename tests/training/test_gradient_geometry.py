"""Gradient cosines, norms and blocks against numbers worked by hand and torch's own cosine."""
from __future__ import annotations

import math

import pytest
import torch

from mlbook.training.gradient_geometry import geometry, layer_block, loss_gradients


def test_geometry_worked_by_hand():
    g1 = {"encoder.layer.0.w": torch.tensor([1.0, 0.0]), "encoder.layer.1.w": torch.tensor([0.0, 2.0])}
    g2 = {"encoder.layer.0.w": torch.tensor([1.0, 1.0]), "encoder.layer.1.w": torch.tensor([0.0, -1.0])}
    out = geometry(g1, g2)
    # global: g1 = (1, 0, 0, 2), g2 = (1, 1, 0, -1): dot = 1 - 2 = -1, |g1| = √5, |g2| = √3
    assert out["global"]["cos"] == pytest.approx(-1 / math.sqrt(15))
    assert out["global"]["ratio"] == pytest.approx(math.sqrt(5 / 3))
    assert out["layer 0"]["cos"] == pytest.approx(1 / math.sqrt(2))
    assert out["layer 1"]["cos"] == pytest.approx(-1.0)
    assert out["layer 1"]["norm_1"] == pytest.approx(2.0) and out["layer 1"]["norm_2"] == pytest.approx(1.0)


def test_global_cosine_is_torchs_on_the_flattened_gradients():
    g = torch.Generator().manual_seed(0)
    g1 = {f"layer.{i}.w": torch.randn(3, 4, generator=g) for i in range(3)}
    g2 = {f"layer.{i}.w": torch.randn(3, 4, generator=g) for i in range(3)}
    flat = [torch.cat([d[k].flatten() for k in sorted(d)]).double() for d in (g1, g2)]
    assert geometry(g1, g2)["global"]["cos"] == pytest.approx(float(torch.nn.functional.cosine_similarity(*flat, dim=0)))
    assert geometry(g1, g1)["global"]["cos"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different parameters"):
        geometry(g1, {"layer.0.w": g1["layer.0.w"]})


def test_layer_block_names():
    assert layer_block("encoder.layer.11.attention.self.query.weight") == "layer 11"
    assert layer_block("model.layers.3.mlp.up_proj.weight") == "layer 3"
    assert layer_block("pooler.dense.weight") == "pooler.dense"


def test_loss_gradients_are_autograds_and_zero_where_the_loss_does_not_reach():
    lin, other = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    params = {"lin.weight": lin.weight, "lin.bias": lin.bias, "other.weight": other.weight}
    grads = loss_gradients(lin(x).pow(2).sum(), params)
    lin(x).pow(2).sum().backward()
    assert torch.allclose(grads["lin.weight"], lin.weight.grad) and torch.allclose(grads["lin.bias"], lin.bias.grad)
    assert torch.count_nonzero(grads["other.weight"]) == 0
