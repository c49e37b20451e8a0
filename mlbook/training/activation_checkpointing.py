"""Activation checkpointing of a transformers model's decoder layers: backward keeps only each layer's
input and recomputes the layer from it, instead of storing every intermediate of every layer.

For a token of SmolLM2-135M a layer stores about 12k floats for backward (the norms, q/k/v, the attention
output, the MLP's gate, up and product, …) but its input is 576 of them: checkpointing cuts the policy's
activation memory by about 20× for one more forward pass of the policy in each backward.  The gradients are
the same (the recomputed forward is the forward).  TRL's trainers switch it on by default.

    recompute_layers(model)          # before training (LoRA models too); recompute_layers(model, False) undoes it
"""
from __future__ import annotations

from mlbook.models.layout import base_model, unwrap


def recompute_layers(model, on: bool = True):
    """Switch activation checkpointing of the decoder layers on (or off) and return ``model``.

    Non-reentrant checkpointing (``use_reentrant=False``): it needs no input that requires grad, so it
    works when only LoRA adapters train.  It acts in training mode only; sampling (``eval()``) and
    ``no_grad`` passes (a frozen teacher) run the plain forward."""
    inner = base_model(unwrap(model))
    if not getattr(inner, "supports_gradient_checkpointing", False):
        raise TypeError(f"{type(inner).__name__} does not support activation checkpointing of its layers")
    if on:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        inner.gradient_checkpointing_disable()
    return model
