"""Paragraph NLL against torch's cross-entropy on a tiny random model."""
import pytest
import torch
import torch.nn.functional as F

from mlbook.text import likelihood
from tests import tiny


def test_paragraph_nll_is_summed_cross_entropy():
    model = tiny.causal_lm()
    paras = [[3, 7, 9, 11, 4], [5, 6], [8, 8, 8, 20]]
    nll, n = likelihood.paragraph_nll(model, paras)
    assert n == [4, 1, 3]
    for ids, got in zip(paras, nll):
        x = torch.tensor([ids])
        with torch.no_grad():
            want = F.cross_entropy(model(input_ids=x).logits[0, :-1], x[0, 1:], reduction="sum")
        assert got == pytest.approx(float(want), rel=1e-5)
    assert likelihood.nll_per_token(model, paras) == pytest.approx(sum(nll) / 8)


def test_one_token_paragraph_is_refused():
    with pytest.raises(ValueError, match="two tokens"):
        likelihood.paragraph_nll(tiny.causal_lm(), [[3]])
