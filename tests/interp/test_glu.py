"""mlbook.gluscope against brute-force references on tiny random Llama and Gemma-3 models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mlbook.interp import glu, hooks
from tests.tiny import glu_lm as _tiny
from tests.tiny import windows as _windows

K = 4  # top-k examples in the tests






def _reference(model, windows, k: int = K):
    """Brute force: dump every activation text by text, then reduce with numpy per neuron and case."""
    L = hooks.n_layers(model)
    act = hooks.act_fn(model)
    acts = {l: {a: [] for a in ("gate", "in", "post", "swish", "text", "pos")} for l in range(L)}
    for w in windows:
        x = torch.tensor([w["input_ids"]])
        addrs = [hooks.addr(l, s) for l in range(L) for s in ("mlp_gate", "mlp_up", "mlp_post")]
        _, cache = hooks.run_with_cache(model, x, addrs)
        for l in range(L):
            gate = cache[hooks.addr(l, "mlp_gate")][0, w["first"]:]
            d = acts[l]
            d["gate"].append(gate)
            d["in"].append(cache[hooks.addr(l, "mlp_up")][0, w["first"]:])
            d["post"].append(cache[hooks.addr(l, "mlp_post")][0, w["first"]:])
            d["swish"].append(act(gate))
            d["text"] += [w["text"]] * gate.shape[0]
            d["pos"] += list(range(w["first"], w["first"] + gate.shape[0]))
    out = {}
    for l in range(L):
        d = {a: torch.cat(v).numpy() if a not in ("text", "pos") else np.array(v) for a, v in acts[l].items()}
        signs = {"pp": (d["gate"] > 0) & (d["in"] > 0), "pm": (d["gate"] > 0) & (d["in"] < 0),
                 "mp": (d["gate"] < 0) & (d["in"] > 0), "mm": (d["gate"] < 0) & (d["in"] < 0)}
        for c, m in signs.items():
            for n in range(d["gate"].shape[1]):
                sel = m[:, n]
                r = out.setdefault((l, n, c), {"count": int(sel.sum()), "freq": sel.mean()})
                for a in glu.ACTS:
                    v = d[a][sel, n]
                    r[a] = (v.mean(), v.max(), v.min()) if sel.any() else (np.nan,) * 3
                best = {}  # per text: the largest |post| in this case and where
                for t, p, v in zip(d["text"][sel], d["pos"][sel], d["post"][sel, n]):
                    if t not in best or abs(v) > abs(best[t][1]):
                        best[t] = (p, v)
                top = sorted(best.items(), key=lambda kv: -abs(kv[1][1]))[:k]
                r["top"] = [(t, p, v) for t, (p, v) in top]
    return out


def _check(stats, ref, model):
    s = stats.summary()
    for (l, n, c), r in ref.items():
        ci = glu.SHORT.index(c)
        assert int(s["count"][l, ci, n]) == r["count"]
        assert float(s["freq"][l, ci, n]) == pytest.approx(r["freq"])
        for a, act in enumerate(glu.ACTS):
            got = [float(s[st][l, ci, a, n]) for st in ("mean", "max", "min")]
            np.testing.assert_allclose(got, r[act], rtol=1e-4, atol=1e-5)
        texts = s["top_texts"][l, ci, :, n].tolist()
        top = [(t, p, v) for t, p, v in zip(texts, s["top_positions"][l, ci, :, n].tolist(),
                                            s["top_values"][l, ci, :, n].tolist()) if t >= 0]
        assert len(top) == len(r["top"])
        for (t, p, v), (rt, rp, rv) in zip(top, r["top"]):
            assert (t, p) == (rt, rp) and v == pytest.approx(rv, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_streaming_statistics_match_brute_force(kind):
    model, windows = _tiny(kind), _windows()
    ref = _reference(model, windows)
    _check(glu.collect(model, windows, batch_size=3, top_k=K, compile=False, progress=False), ref, model)


def test_several_batches_equal_one_batch_and_the_cached_path():
    model, windows = _tiny("llama", 1), _windows(9, 1)
    one = glu.collect(model, windows, batch_size=9, top_k=K, compile=False, progress=False).summary()
    for other in (glu.collect(model, windows, batch_size=2, top_k=K, compile=False, progress=False),
                  glu.collect_cached(model, windows, batch_size=4, top_k=K)):
        o = other.summary()
        for key in ("count", "top_texts", "top_positions"):
            assert torch.equal(one[key], o[key]), key
        for key in ("freq", "mean", "max", "min", "top_values"):
            torch.testing.assert_close(one[key], o[key], equal_nan=True, rtol=1e-5, atol=1e-6)


def test_compiled_reducer_equals_eager():
    g = torch.Generator().manual_seed(3)
    gate, in_ = torch.randn(3, 11, 40, generator=g), torch.randn(3, 11, 40, generator=g)
    swish = torch.nn.functional.silu(gate)
    keep = torch.rand(3, 11, generator=g) > 0.2
    eager = glu.layer_stats(gate, in_, swish, swish * in_, keep)
    fast = glu.reducer(compile=True)(gate, in_, swish, swish * in_, keep)
    for e, f in zip(eager, fast):
        torch.testing.assert_close(e.float(), f.float())


def test_case_index_on_a_hand_built_tensor():
    gate = torch.tensor([1.0, 2.0, -1.0, -3.0, 0.0, 1.0])
    in_ = torch.tensor([1.0, -2.0, 5.0, -1.0, 1.0, 0.0])
    assert glu.case_index(gate, in_).tolist() == [0, 1, 2, 3, -1, -1]


@pytest.mark.parametrize("kind", ["llama", "gemma"])
def test_refactoring_keeps_outputs_and_aligns_gate_and_in(kind):
    model = _tiny(kind, 2)
    x = torch.randint(3, 97, (2, 12))
    with torch.no_grad():
        before = model(x).logits
    windows = _windows(5, 2)
    plain = glu.collect(model, windows, batch_size=5, top_k=K, compile=False, progress=False).summary()
    flips = glu.refactor_glu(model)
    with torch.no_grad():
        after = model(x).logits
    torch.testing.assert_close(before, after, rtol=0, atol=1e-5)
    assert 0 < flips.float().mean() < 1
    assert (glu.weight_cosines(model)["cos_gate_in"] >= 0).all()
    # a flipped neuron's in changes sign: gate+in+ <-> gate+in-, gate-in+ <-> gate-in-
    new = glu.collect(model, windows, batch_size=5, top_k=K, compile=False, progress=False).summary()
    swapped = plain["count"][:, [1, 0, 3, 2]]
    expect = torch.where(flips[:, None, :], swapped, plain["count"])
    assert torch.equal(new["count"], expect)


def test_dataset_has_one_row_per_neuron():
    model, windows = _tiny("llama"), _windows(4)
    stats = glu.collect(model, windows, batch_size=4, top_k=K, compile=False, progress=False)
    ds = glu.to_dataset(stats, glu.weight_cosines(model))
    assert len(ds) == 2 * 48
    row = ds[48 + 5]
    assert (row["layer"], row["neuron"]) == (1, 5)
    assert len(row["pp_top_texts"]) == K
    assert sum(row[f"{c}_freq"] for c in glu.SHORT) == pytest.approx(1.0)
