"""FT-L (Zhu et al. 2020, as the ROME paper runs it): fine-tune one MLP's output projection on the edit.

Only ``W_down`` of one layer trains, on one example -- the edit prompt followed by the new answer's tokens
(teacher forcing, the answer's tokens only in the loss) -- with Adam, and after every step the change is
clamped to an L∞ ball, ``‖Ŵ − W‖_∞ ≤ ε`` (the "L" of FT-L; ``eps=None``: no constraint).  Unlike ROME it
knows nothing of the subject: it learns "this prompt → this answer" at the last token, which is why its
edits tend to stay with the prompt they were made on.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlbook.interp import gradients, hooks
from mlbook.text.batching import right_pad

from . import counterfact as cf


@dataclass
class Hyper:
    steps: int = 10
    lr: float = 5e-3
    eps: float | None = 2e-2


def ftl(model, tokenizer, layer: int, edit: dict, hp: Hyper = Hyper()):
    """``(ΔW, log)``: the change of ``W_down[layer]`` after FT-L on ``edit``; the model is left unchanged."""
    import torch

    new_ids = tokenizer(" " + edit["new"], add_special_tokens=False)["input_ids"]
    p = cf.encode(tokenizer, edit["prompt"])
    x, mask = right_pad([p + new_ids], 0)
    dev = hooks._device(model)
    x, mask = x.to(dev), mask.to(dev)
    cols = torch.arange(len(p) - 1, len(p) - 1 + len(new_ids))
    tgt = torch.tensor(new_ids, device=dev)
    w = hooks.layers(model)[layer].mlp.down_proj.weight
    keep = w.detach().clone()
    log = []
    with gradients.frozen(model):          # every weight frozen (and restored after) but the one that trains
        w.requires_grad_(True)
        opt = torch.optim.Adam([w], lr=hp.lr)
        try:
            for _ in range(hp.steps):
                logits = model(input_ids=x, attention_mask=mask).logits[0, cols].float()
                loss = torch.nn.functional.cross_entropy(logits, tgt)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if hp.eps is not None:
                    with torch.no_grad():
                        w.copy_(keep + (w - keep).clamp(-hp.eps, hp.eps))
                log.append(loss.item())
            dW = (w.detach() - keep).cpu()
        finally:
            with torch.no_grad():
                w.copy_(keep)
            w.grad = None
            w.requires_grad_(False)        # `frozen` gives it back its own state on the way out
    return dW, {"loss": log}
