"""LoRA adapters on top of peft: only the adapters train, the base stays frozen, so the *initial
policy* is available by switching the adapters off (``adapter_disabled``) — COPSD's frozen teacher
at no memory cost."""
from __future__ import annotations

import contextlib


def is_lora(model) -> bool:
    """True for a peft model (LoRA adapters on a frozen base)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


def add_lora(model, r: int = 16, alpha: int = 32, dropout: float = 0.0, targets="all-linear"):
    """Wrap ``model`` with LoRA adapters (peft) on ``targets`` (default: every linear layer but the LM head).

    Only the adapters train; the base weights are frozen, so the *initial policy* stays available
    by switching the adapters off (``adapter_disabled``) — COPSD's frozen teacher at no memory cost.
    """
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none",
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def adapter_disabled(model):
    """Context in which a LoRA model computes as its base (adapters off); a no-op for other models."""
    return model.disable_adapter() if is_lora(model) else contextlib.nullcontext()


def merged(model):
    """A plain model with the LoRA adapters folded into the weights (the input is left unchanged)."""
    import copy

    return copy.deepcopy(model).merge_and_unload() if is_lora(model) else model
