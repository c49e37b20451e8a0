"""EAP-IG, edge-patched runs and neuron integrated gradients against direct computations on a tiny
random Llama (float64, so finite differences and completeness are tight)."""
import numpy as np
import pytest
import torch

from mlbook.interp import circuits, hooks, neuron_ig
from tests.interp.test_hooks import _tiny


@pytest.fixture(scope="module")
def model():
    return _tiny("llama").double()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(5)
    clean = torch.randint(3, 101, (3, 6), generator=g)
    corrupt = clean.clone()
    corrupt[:, 1] = torch.randint(3, 101, (3,), generator=g)        # one word swapped, as in the chapter
    return clean, corrupt


def metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 9]


def _receiver_inputs(model, ids):
    """Each receiver's input, read by hand from the norms' forward pre-hooks."""
    blocks = hooks.layers(model)
    mods = [m for b in blocks for m in (b.input_layernorm, b.post_attention_layernorm)] + [model.model.norm]
    got = {}
    hs = [m.register_forward_pre_hook(lambda mod, args, r=r: got.__setitem__(r, args[0].detach().clone()))
          for r, m in enumerate(mods)]
    with torch.no_grad():
        model(input_ids=ids)
    for h in hs:
        h.remove()
    return mods, got


def _shifted(model, ids, r, shift):
    """metric with receiver r's input (only its own path, not the skip connection) moved by ``shift``."""
    mods, _ = _receiver_inputs(model, ids[:1])
    h = mods[r].register_forward_pre_hook(lambda mod, args: (args[0] + shift, *args[1:]))
    with torch.no_grad():
        out = metric(model(input_ids=ids).logits)
    h.remove()
    return out


def test_graph_counts_and_the_stream_is_the_sum_of_its_senders(model, batch):
    g = circuits.Graph.of(model)
    L, H = g.n_layers, g.n_heads
    assert (g.n_senders, g.n_receivers) == (1 + L * (H + 1), 2 * L + 1)
    # edges by hand: embed reaches all; heads of layer l reach attn l' > l, mlp l' >= l, logits; mlp l reaches l' > l
    by_hand = g.n_receivers + sum(H * ((L - 1 - l) + (L - l) + 1) + 2 * (L - 1 - l) + 1 for l in range(L))
    assert g.n_edges == by_hand
    z = circuits.sender_writes(model, batch[0], g)
    _, x = _receiver_inputs(model, batch[0])
    valid = g.valid()
    for r in range(g.n_receivers):
        summed = z[valid[:, r]].sum(0)
        assert torch.allclose(summed, x[r], atol=1e-10), g.receiver_names()[r]


def test_full_graph_is_the_clean_run_and_the_empty_circuit_the_corrupted_run(model, batch):
    g = circuits.Graph.of(model)
    clean, corrupt = batch
    with torch.no_grad():
        m_clean, m_corr = metric(model(input_ids=clean).logits), metric(model(input_ids=corrupt).logits)
    assert torch.allclose(circuits.circuit_metric(model, clean, corrupt, metric, g.valid(), g).double(), m_clean, atol=1e-5)
    empty = torch.zeros_like(g.valid())
    assert torch.allclose(circuits.circuit_metric(model, clean, corrupt, metric, empty, g).double(), m_corr, atol=1e-5)


def _edges(g, n=6, seed=0):
    idx = torch.nonzero(g.valid())
    return [tuple(map(int, idx[i])) for i in torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))[:n]]


def test_one_corrupted_edge_is_its_receivers_input_minus_the_senders_difference(model, batch):
    g = circuits.Graph.of(model)
    clean, corrupt = batch
    diff = circuits.sender_writes(model, clean, g) - circuits.sender_writes(model, corrupt, g)
    for s, r in _edges(g):
        c = g.valid().clone()
        c[s, r] = False
        got = circuits.circuit_metric(model, clean, corrupt, metric, c, g).double()
        assert torch.allclose(got, _shifted(model, clean, r, -diff[s]), atol=1e-5), g.edge_names([(s, r)])


def test_eap_ig_with_one_step_is_edge_attribution_patching(model, batch):
    """m = 1: the score is the directional derivative of L at the clean run along z_u − z'_u, at receiver v
    only -- checked by central finite differences of a hand-made shift of that receiver's input."""
    g = circuits.Graph.of(model)
    clean, corrupt = batch
    scores = circuits.eap_ig(model, clean, corrupt, metric, steps=1, graph=g)
    diff = circuits.sender_writes(model, clean, g) - circuits.sender_writes(model, corrupt, g)
    eps = 1e-3     # rotary tables stay float32 in a float64 model: smaller steps drown in their rounding
    for s, r in _edges(g, 8, seed=1):
        fd = (_shifted(model, clean, r, eps * diff[s]) - _shifted(model, clean, r, -eps * diff[s])) / (2 * eps)
        assert float(scores[s, r]) == pytest.approx(float(fd.mean()), rel=2e-3, abs=1e-5), g.edge_names([(s, r)])
    assert float(scores[~g.valid()].abs().max()) == 0.0


def test_eap_ig_ranks_edges_like_exact_edge_patching(model, batch):
    g = circuits.Graph.of(model)
    clean, corrupt = batch
    scores = circuits.eap_ig(model, clean, corrupt, metric, steps=10, graph=g)
    full = circuits.circuit_metric(model, clean, corrupt, metric, g.valid(), g).mean()
    top = torch.nonzero(circuits.top_edges(scores, 15, g))
    exact = []
    for s, r in top.tolist():
        c = g.valid().clone()
        c[s, r] = False
        exact.append(float(full - circuits.circuit_metric(model, clean, corrupt, metric, c, g).mean()))
    est = [float(scores[s, r]) for s, r in top.tolist()]
    assert np.corrcoef(est, exact)[0, 1] > 0.9
    assert np.mean(np.sign(est) == np.sign(exact)) >= 0.9


def test_top_edges_random_circuits_iou_and_faithfulness():
    g = circuits.Graph(n_layers=2, n_heads=2)
    scores = torch.zeros(g.n_senders, g.n_receivers)
    scores[0, 4], scores[1, 1], scores[3, 0] = 3.0, -5.0, 9.0          # (3, 0) is not an edge (mlp 0 → attn 0)
    top = circuits.top_edges(scores, 2, g)
    assert set(map(tuple, torch.nonzero(top).tolist())) == {(0, 4), (1, 1)}
    r1, r2 = circuits.random_circuit(g, 5, seed=0), circuits.random_circuit(g, 5, seed=0)
    assert torch.equal(r1, r2) and int(r1.sum()) == 5 and not (r1 & ~g.valid()).any()
    a = torch.zeros(3, 3, dtype=torch.bool)
    b = torch.zeros(3, 3, dtype=torch.bool)
    a[0, 0] = a[0, 1] = a[1, 1] = True
    b[0, 1] = b[1, 1] = b[2, 2] = True
    assert circuits.iou(a, b) == pytest.approx(2 / 4)
    assert circuits.faithfulness(3.0, 5.0, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        circuits.faithfulness(1.0, 2.0, 2.0)


def test_bad_inputs_are_refused(model):
    with pytest.raises(ValueError, match="one shape"):
        circuits.eap_ig(model, torch.ones(2, 4, dtype=torch.long), torch.ones(2, 5, dtype=torch.long), metric)
    with pytest.raises(ValueError, match="steps"):
        circuits.eap_ig(model, torch.ones(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long), metric, steps=0)
    with pytest.raises(NotImplementedError, match="sandwich"):
        circuits.Graph.of(_tiny("gemma"))


def _ig_by_hand(model, ids, b, layer, f, steps):
    """The definition for one prompt: one forward and one backward per step, scaling the last position."""
    address = hooks.addr(layer, "mlp_post")
    _, cache = hooks.run_with_cache(model, ids, address)
    a = cache[address][0, -1]
    total = torch.zeros_like(a)
    for k in range(1, steps + 1):
        x = ((k / steps) * a).clone().requires_grad_(True)

        def put(act, x=x):
            act = act.clone()
            act[0, -1] = x
            return act
        with hooks.hooked(model, {address: put}):
            (g,) = torch.autograd.grad(f(model(input_ids=ids).logits, torch.tensor([b])).sum(), x)
        total += g
    return a * total / steps


def prob(logits, rows):
    target = torch.tensor([5, 7, 11])[rows]                      # each prompt its own token
    return torch.softmax(logits[:, -1], -1)[torch.arange(len(rows)), target]


def test_neuron_ig_is_the_definition_and_complete(model, batch):
    ids = batch[0]
    attr, full, zero = neuron_ig.neuron_ig(model, ids, layer=1, metric=prob, steps=7, batch_size=5)
    assert attr.shape == (3, 48)
    for b in range(3):
        ref = _ig_by_hand(model, ids[b:b + 1], b, 1, prob, 7)
        assert torch.allclose(attr[b].double(), ref, atol=1e-6)
    err = [float(neuron_ig.completeness_error(*neuron_ig.neuron_ig(model, ids, 1, prob, steps=m)).max()) for m in (2, 20, 200)]
    gap = float((full - zero).abs().max())
    assert err[2] < 0.01 * gap and err[2] < err[1] < err[0]       # the Riemann sum's error falls with the steps
    with pytest.raises(ValueError, match="steps"):
        neuron_ig.neuron_ig(model, ids, 1, prob, steps=0)


def test_many_circuits_in_one_call_and_last_position_logits_only(model, batch):
    """A list of circuits is the stack of single calls (one corrupted run shared); ``logits_to_keep = 1``
    changes nothing for a metric of the last position, in EAP-IG, edge-patched runs and neuron IG."""
    g = circuits.Graph.of(model)
    clean, corrupt = batch
    cs = [g.valid(), torch.zeros_like(g.valid()), circuits.random_circuit(g, 40, 1)]
    many = circuits.circuit_metric(model, clean, corrupt, metric, cs, g, logits_to_keep=1)
    assert many.shape == (3, 3)
    for row, c in zip(many, cs):
        assert torch.allclose(row, circuits.circuit_metric(model, clean, corrupt, metric, c, g), atol=1e-6)
    assert torch.allclose(circuits.eap_ig(model, clean, corrupt, metric, steps=3, graph=g, logits_to_keep=1),
                          circuits.eap_ig(model, clean, corrupt, metric, steps=3, graph=g), atol=1e-8)
    a1 = neuron_ig.neuron_ig(model, clean, 1, prob, steps=4, logits_to_keep=1)
    a0 = neuron_ig.neuron_ig(model, clean, 1, prob, steps=4)
    assert all(torch.allclose(x, y, atol=1e-8) for x, y in zip(a1, a0))


def test_frozen_parameters_change_no_attribution_and_are_restored(model, batch):
    from mlbook.interp import gradients

    clean, corrupt = batch
    with gradients.frozen(model):
        assert not any(p.requires_grad for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    s = circuits.eap_ig(model, clean, corrupt, metric, steps=2)
    assert all(p.grad is None for p in model.parameters())          # no weight gradient was computed
    model.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.requires_grad_(False)
    try:                                                           # the same scores with the model frozen by hand
        assert torch.allclose(s, circuits.eap_ig(model, clean, corrupt, metric, steps=2), atol=1e-10)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
