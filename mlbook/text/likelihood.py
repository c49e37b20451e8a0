"""How well a model predicts text: next-token negative log-likelihood, per paragraph.

For a paragraph x_1 … x_n, NLL(x) = − Σ_{t=2..n} log p(x_t | x_<t): nats over its n − 1 predicted
tokens.  A corpus' NLL per token is Σ NLL / Σ (n − 1), so long paragraphs weigh more; a paired
comparison of two models (or a model with and without an intervention) uses each paragraph's
own NLL per token as the unit.
"""
from __future__ import annotations


def paragraph_nll(model, paragraphs: list[list[int]]):
    """``(nll, n)``: per paragraph, the summed NLL (nats) and the number of predicted tokens."""
    import torch

    dev = next(model.parameters()).device
    nll, n = [], []
    with torch.no_grad():
        for ids in paragraphs:
            if len(ids) < 2:
                raise ValueError("a paragraph needs at least two tokens to predict one")
            x = torch.tensor([ids], device=dev)
            logp = model(input_ids=x).logits[0, :-1].float().log_softmax(-1)
            nll.append(-float(logp.gather(1, x[0, 1:, None]).sum()))
            n.append(len(ids) - 1)
    return nll, n


def nll_per_token(model, paragraphs: list[list[int]]) -> float:
    """Mean next-token NLL (nats per token) over the paragraphs, weighted by their length."""
    nll, n = paragraph_nll(model, paragraphs)
    return sum(nll) / max(sum(n), 1)
