"""Patching, gradients, head sites, steering and probes against direct computations on tiny random
Llama and Gemma-3 models (the layouts of SmolLM2 and Gemma-3)."""
import numpy as np
import pytest
import torch

from mlbook.interp import gradients, hooks, patching, probe, steering
from tests.interp.test_hooks import _tiny

ARCHS = ["llama", "gemma"]


@pytest.fixture(scope="module", params=ARCHS)
def tiny(request):
    return _tiny(request.param)


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(3)
    return torch.randint(3, 101, (1, 6), generator=g), torch.randint(3, 101, (1, 6), generator=g)


def metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 9]


def _one_patch(model, clean, corrupt, address, pos, feats=None):
    """The definition: one forward per patch, by hand."""
    _, cache = hooks.run_with_cache(model, clean, address)
    with torch.no_grad():
        base = metric(model(input_ids=corrupt).logits)[0]

        def fn(act):
            act = act.clone()
            if feats is None:
                act[:, pos] = cache[address][:, pos]
            else:
                act[:, pos, feats] = cache[address][:, pos, feats]
            return act
        with hooks.hooked(model, {address: fn}):
            return float(metric(model(input_ids=corrupt).logits)[0] - base)


def test_batched_grid_equals_one_patch_per_run(tiny, pair):
    clean, corrupt = pair
    addresses = [hooks.addr(layer, site) for layer in range(3) for site in ("resid_pre", "attn_out", "mlp_out")]
    grid = patching.activation_patching(tiny, clean, corrupt, metric, addresses, batch_size=7)  # chunks split addresses
    assert grid.shape == (len(addresses), 6)
    for i, a in enumerate(addresses):
        for p in range(6):
            assert float(grid[i, p]) == pytest.approx(_one_patch(tiny, clean, corrupt, a, p), abs=1e-4)


def test_patching_the_whole_stream_gives_the_full_effect(tiny, pair):
    clean, corrupt = pair
    _, cache = hooks.run_with_cache(tiny, clean, hooks.addr(1, "resid_pre"))
    full = patching.patch_rows(tiny, corrupt, [(hooks.addr(1, "resid_pre"), cache[hooks.addr(1, "resid_pre")],
                                                torch.ones(6, 32, dtype=torch.bool))], metric)
    with torch.no_grad():
        want = metric(tiny(input_ids=clean).logits) - metric(tiny(input_ids=corrupt).logits)
    assert float(full[0]) == pytest.approx(float(want[0]), abs=1e-4)


def test_head_patching_equals_patching_its_features(tiny, pair):
    clean, corrupt = pair
    grid = patching.head_patching(tiny, clean, corrupt, metric)
    d_head = 32 // 4
    for layer in range(3):
        for h in range(4):
            want = _one_patch(tiny, clean, corrupt, hooks.addr(layer, "attn_z"), slice(None), slice(h * d_head, (h + 1) * d_head))
            assert float(grid[layer, h]) == pytest.approx(want, abs=1e-4)


def test_head_writes_sum_to_o_proj(tiny, pair):
    clean, _ = pair
    a = hooks.addr(1, "attn_z")
    out = {}
    o_proj = hooks.layers(tiny)[1].self_attn.o_proj
    handle = o_proj.register_forward_hook(lambda m, i, o: out.__setitem__("o", o.detach()))
    try:
        _, cache = hooks.run_with_cache(tiny, clean, a)
    finally:
        handle.remove()
    writes = hooks.head_writes(tiny, 1, cache[a])
    assert writes.shape == (1, 6, 4, 32)
    assert torch.allclose(writes.sum(-2), out["o"], atol=1e-5)


def test_captured_gradients_equal_autograd(tiny, pair):
    clean, _ = pair
    a = hooks.addr(1, "resid_pre")
    with torch.enable_grad(), gradients.capture_grads(tiny, a) as (acts, grads):
        metric(tiny(input_ids=clean).logits).sum().backward()
    tiny.zero_grad()
    # by hand: make the activation a leaf and differentiate through the rest of the model
    _, cache = hooks.run_with_cache(tiny, clean, a)
    leaf = cache[a].clone().requires_grad_(True)
    with torch.enable_grad(), hooks.patch(tiny, {a: lambda act: leaf}):
        metric(tiny(input_ids=clean).logits).sum().backward()
    tiny.zero_grad()
    assert torch.allclose(acts[a], cache[a], atol=1e-6)
    assert torch.allclose(grads[a], leaf.grad, atol=1e-5)


def test_gradients_flow_when_the_weights_are_frozen(tiny, pair):
    clean, _ = pair
    for p in tiny.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad(), gradients.capture_grads(tiny, hooks.addr(2, "mlp_out")) as (_, grads):
            metric(tiny(input_ids=clean).logits).sum().backward()
        assert grads[hooks.addr(2, "mlp_out")].abs().sum() > 0
    finally:
        for p in tiny.parameters():
            p.requires_grad_(True)


def test_attribution_patching_is_the_first_order_term(tiny, pair):
    clean, corrupt = pair
    addresses = [hooks.addr(layer, "resid_pre") for layer in range(3)]
    est = patching.attribution_patching(tiny, clean, corrupt, metric, addresses)
    for i, a in enumerate(addresses):
        _, c = hooks.run_with_cache(tiny, clean, a)
        with torch.enable_grad(), gradients.capture_grads(tiny, a) as (acts, grads):
            metric(tiny(input_ids=corrupt).logits).sum().backward()
        tiny.zero_grad()
        want = ((c[a] - acts[a]) * grads[a]).sum(-1)[0]
        assert torch.allclose(est[i], want, atol=1e-5)
    assert est.shape == (3, 6)


def test_integrated_patching_one_step_and_completeness(tiny, pair):
    clean, corrupt = pair
    a = hooks.addr(1, "resid_pre")
    one = patching.integrated_patching(tiny, clean, corrupt, metric, a, steps=1)
    assert torch.allclose(one, patching.attribution_patching(tiny, clean, corrupt, metric, [a])[0], atol=1e-5)
    with torch.no_grad():
        full = float(metric(tiny(input_ids=clean).logits)[0] - metric(tiny(input_ids=corrupt).logits)[0])
    errs = [abs(float(patching.integrated_patching(tiny, clean, corrupt, metric, a, steps=s).sum()) - full) for s in (1, 64)]
    assert errs[1] < 0.05 * abs(full) + 1e-3
    assert errs[1] < errs[0]


def test_bad_pairs_are_refused(tiny):
    with pytest.raises(ValueError, match="same length"):
        patching.activation_patching(tiny, torch.tensor([[3, 4, 5]]), torch.tensor([[3, 4]]), metric, [hooks.addr(0, "resid_pre")])
    with pytest.raises(ValueError, match="one value per row"):
        patching.activation_patching(tiny, torch.tensor([[3, 4]]), torch.tensor([[5, 6]]), lambda lg: lg[:, -1],
                                     [hooks.addr(0, "resid_pre")])


def test_last_states_and_mean_difference(tiny):
    seqs = [[3, 4, 5, 6], [7, 8], [9, 10, 11]]
    a = hooks.addr(1, "resid_post")
    got = steering.last_states(tiny, seqs, a, batch_size=2)[a]
    for i, s in enumerate(seqs):  # one unpadded pass each
        _, c = hooks.run_with_cache(tiny, torch.tensor([s]), a)
        assert torch.allclose(got[i], c[a][0, -1], atol=1e-5)
    v = steering.mean_difference(tiny, seqs[:2], seqs[2:], a)[a]
    assert torch.allclose(v, got[:2].mean(0) - got[2], atol=1e-5)
    with pytest.raises(ValueError, match="non-empty"):
        steering.last_states(tiny, [[]], a)


def test_control_labels_keep_shares_and_items():
    items = ["a", "b", "c", "d", "a", "b", "c", "d"]
    labels = ["x", "x", "y", "z", "x", "x", "y", "z"]
    ctrl = probe.control_labels(items, labels, seed=1)
    assert sorted(ctrl[:4]) == sorted(labels[:4])          # same class shares over items
    assert ctrl[:4] == ctrl[4:]                             # one label per item, wherever it occurs


def test_probe_reads_a_linear_property():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 10))
    y = (X[:, 3] > 0).astype(int)
    assert probe.probe_accuracy(X[:150], y[:150], X[150:], y[150:]) > 0.9


def test_a_patch_that_changes_nothing_is_exactly_zero(tiny):
    """Clean and corrupted share their first 3 tokens: patching any of them writes what the corrupted run
    holds, so Δ is 0 exactly (no rounding residue of a batched row); the other cells are the definition's."""
    g = torch.Generator().manual_seed(5)
    shared = torch.randint(3, 101, (1, 3), generator=g)
    clean = torch.cat([shared, torch.randint(3, 101, (1, 3), generator=g)], 1)
    corrupt = torch.cat([shared, torch.randint(3, 101, (1, 3), generator=g)], 1)
    addresses = [hooks.addr(layer, site) for layer in range(3) for site in ("resid_pre", "attn_out", "mlp_out")]
    rows = []
    h = tiny.register_forward_pre_hook(lambda mod, args, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True)
    try:
        grid = patching.activation_patching(tiny, clean, corrupt, metric, addresses, batch_size=5)
    finally:
        h.remove()
    assert torch.equal(grid[:, :3], torch.zeros(len(addresses), 3))
    live = len(addresses) * 3                      # only the patches that change a value run, 5 to a batch
    assert sum(rows) == 1 + 1 + live + -(-live // 5)  # clean and corrupted caches; each batch's unpatched row 0
    for i, a in enumerate(addresses):
        for p in range(3, 6):
            assert float(grid[i, p]) == pytest.approx(_one_patch(tiny, clean, corrupt, a, p), abs=1e-4)
