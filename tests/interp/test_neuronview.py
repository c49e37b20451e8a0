"""mlbook.gluscope against brute-force references on tiny random Llama and Gemma-3 models."""
from __future__ import annotations

import torch

from mlbook.interp import glu, hooks, neuronview
from tests.tiny import glu_lm as _tiny
from tests.tiny import windows as _windows

K = 4  # top-k examples in the tests






class _ByteTokenizer:
    """Token i is byte i: enough to test how the viewer splits text into pieces."""

    def decode(self, ids, skip_special_tokens=False):
        return bytes(int(i) % 256 for i in ids).decode("utf-8", errors="replace")


def test_token_pieces_give_each_character_once():


    text = "día ☃ x"
    ids = list(text.encode("utf-8"))
    pieces = neuronview.token_pieces(_ByteTokenizer(), ids)
    assert len(pieces) == len(ids) and "".join(pieces) == text
    assert neuronview.token_pieces(_ByteTokenizer(), ids[2:])[0] == ""    # a character cut by the window


def test_layer_post_stops_early_and_matches_the_cache():


    model = _tiny("gemma", 4)
    seqs = [[5, 6, 7, 8, 9], [10, 11, 12]]
    post = neuronview.layer_post(model, seqs, 0)
    for b, seq in enumerate(seqs):
        _, cache = hooks.run_with_cache(model, torch.tensor([seq]), [hooks.addr(0, "mlp_post")])
        torch.testing.assert_close(post[b, :len(seq)], cache[hooks.addr(0, "mlp_post")][0])


def test_neuron_page_is_self_contained_html():


    model, windows = _tiny("llama", 5), _windows(6, 5)
    stats = glu.collect(model, windows, batch_size=3, top_k=K, compile=False, progress=False)
    ds = glu.to_dataset(stats, glu.weight_cosines(model))
    page = neuronview.neuron_page(model, _ByteTokenizer(), ds, windows, 1, 7, n=2, label="tiny")
    html = neuronview.static_viewer([("tiny L1.N7", page)])
    assert "<script" not in html and "http" not in html and "<link" not in html
    for case in glu.CASES:
        assert case in html
    assert html.count("font-family:monospace") <= 4 * 2
