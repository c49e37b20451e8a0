"""Where things are inside a model — the one place that knows the layouts the book meets.

- ``unwrap``: the model inside a DistributedDataParallel-style wrapper (``.module``);
- ``base_model``: the model under LoRA adapters (peft's ``get_base_model``; the adapters stay active);
- ``decoder_stack``: the module holding the decoder ``layers`` and the final ``norm`` (Llama-style
  ``model.model``, Gemma-3 and LLaVA's ``model.language_model``);
- ``decoder``: the model without its LM head (``get_decoder``), for passes that only read activations;
- ``soft_cap`` / ``head_logits``: the LM head and the final-logit soft-capping of the models that have one
  (Gemma): ``logits = c · tanh(logits / c)``;
- ``cache_keyword``: the forward argument that takes a KV cache (``cache`` in transformers ≥ 5.2, else
  ``past_key_values``).
"""
from __future__ import annotations

import functools
import inspect


def unwrap(model):
    """The model inside a DistributedDataParallel (or similar) wrapper; the model itself otherwise."""
    return getattr(model, "module", model)


def base_model(model):
    """The model under LoRA adapters (peft), with the adapters still in its modules; the model itself otherwise."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_stack(model):
    """The decoder stack: the module holding ``layers`` (a ModuleList) and the final ``norm``."""
    import torch.nn as nn

    for path in ("model", "model.language_model", "language_model", ""):
        m = model
        for part in filter(None, path.split(".")):
            m = getattr(m, part, None)
        if isinstance(getattr(m, "layers", None), nn.ModuleList):
            return m
    raise TypeError(f"mlbook cannot find the decoder layers of {type(model).__name__}: "
                    "it knows Llama-style (model.model.layers), Gemma-3 and LLaVA layouts")


def decoder(model):
    """The decoder stack without the LM head: for passes that only read activations."""
    return model.get_decoder() if hasattr(model, "get_decoder") else model


def softcapping(model) -> float | None:
    """The final-logit soft-capping constant ``c`` of the model's (text) config, None when it has none."""
    cfg = model.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else getattr(cfg, "text_config", None) or cfg
    return getattr(text, "final_logit_softcapping", None) or getattr(cfg, "final_logit_softcapping", None)


def soft_cap(logits, cap: float | None):
    """``cap · tanh(logits / cap)``: the final-logit soft-capping of Gemma; ``logits`` unchanged when ``cap`` is None."""
    import torch

    return cap * torch.tanh(logits / cap) if cap else logits


def head_logits(model, h):
    """LM head (and the final logit soft-capping of models that have one) on hidden states ``h``, in float32."""
    base = base_model(unwrap(model))
    head = base.get_output_embeddings()
    logits = head(h.to(head.weight.dtype)).float()          # h may come out of an autocast (bf16) forward
    return soft_cap(logits, softcapping(base))


@functools.lru_cache(maxsize=None)
def _cache_keyword_of(cls) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def cache_keyword(model) -> str:
    """The forward argument that takes a KV cache: ``cache`` (transformers ≥ 5.2) or ``past_key_values``."""
    return _cache_keyword_of(type(base_model(model)))
