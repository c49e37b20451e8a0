"""mlbook.merging against hand-worked cases, expectations and a direct numpy implementation of the
DiM3/WIDEN rule (method card 08), and a streamed merge of two tiny Llama models."""
import math

import numpy as np
import pytest
import torch

from mlbook.merging import folders, methods


def test_task_vector_and_arithmetic():
    base = torch.tensor([1.0, 2.0, 3.0])
    a, b = torch.tensor([2.0, 2.0, 0.0]), torch.tensor([1.0, 5.0, 3.0])
    ta, tb = methods.task_vector(a, base), methods.task_vector(b, base)
    assert ta.tolist() == [1.0, 0.0, -3.0] and tb.tolist() == [0.0, 3.0, 0.0]
    # θ_B + 0.5 τ_a + 2 τ_b = [1.5, 8, 1.5]
    assert methods.task_arithmetic(base, [ta, tb], [0.5, 2.0]).tolist() == [1.5, 8.0, 1.5]
    assert methods.task_arithmetic(base.half(), [ta, tb]).dtype == torch.float16


def test_ties_hand_worked_1x4():
    # τ1 = [ 3, -1,  2,   -0.5]  trim (top 2 of 4 by |.|) → [3,  0, 2,   0]
    # τ2 = [-1,  4,  1.5,  0.2]                         → [0,  4, 1.5, 0]
    # τ3 = [ 2, -3, -0.1,  0.3]                         → [2, -3, 0,   0]
    # sum of trimmed = [5, 1, 3.5, 0] → elected sign γ = [+, +, +, 0]
    # disjoint mean over agreeing non-zeros: [(3+2)/2, 4/1, (2+1.5)/2, 0] = [2.5, 4, 1.75, 0]
    # θ* = θ_B + 2·mean with θ_B = [1, 1, 1, 1] → [6, 9, 4.5, 1]
    deltas = [torch.tensor([[3.0, -1, 2, -0.5]]), torch.tensor([[-1.0, 4, 1.5, 0.2]]),
              torch.tensor([[2.0, -3, -0.1, 0.3]])]
    base = torch.ones(1, 4)
    assert torch.allclose(methods.ties(torch.zeros(1, 4), deltas, density=0.5), torch.tensor([[2.5, 4, 1.75, 0]]))
    assert torch.allclose(methods.ties(base, deltas, density=0.5, lam=2.0), torch.tensor([[6.0, 9, 4.5, 1]]))
    # density 1: no trimming; entry 1: sum 0 → γ = 0 → nothing agrees → 0
    d2 = [torch.tensor([1.0, 2.0]), torch.tensor([3.0, -2.0])]
    assert methods.ties(torch.zeros(2), d2, density=1.0).tolist() == [2.0, 0.0]


def test_dare_pattern_and_expectation():
    delta = torch.linspace(-1, 1, 200).reshape(10, 20) + 0.01
    p = 0.3
    out = methods.dare(delta, p, torch.Generator().manual_seed(7))
    keep = torch.rand(delta.shape, generator=torch.Generator().manual_seed(7)) >= p
    assert torch.equal(out == 0, ~keep)  # zeros exactly where dropped
    assert torch.allclose(out[keep], delta[keep] / (1 - p))  # survivors rescaled by 1/(1-p)
    assert torch.equal(out, methods.dare(delta, p, torch.Generator().manual_seed(7)))  # reproducible
    assert abs(keep.float().mean().item() - (1 - p)) < 0.1
    # E[DARE(δ)] = δ: mean over 2000 seeds; per-entry sd of the mean = |δ|·sqrt(p/(1-p)/2000) ≤ 0.015
    mean = torch.stack([methods.dare(delta, p, torch.Generator().manual_seed(s)) for s in range(2000)]).mean(0)
    assert (mean - delta).abs().max() < 0.07
    assert torch.equal(methods.dare(delta, 0.0), delta)
    # dare_merge: one generator drawn for τ_1 then τ_2
    base = torch.ones(10, 20)
    g = torch.Generator().manual_seed(3)
    want = base + 0.5 * methods.dare(delta, p, g) + 2.0 * methods.dare(-delta, p, g)
    assert torch.allclose(methods.dare_merge(base, [delta, -delta], p, [0.5, 2.0], seed=3), want)


def test_breadcrumbs_mask_counts():
    rng = np.random.default_rng(0)
    mags = rng.permutation(np.arange(1, 101)).astype(np.float32)  # |δ| = 1..100, shuffled
    delta = torch.from_numpy(mags * rng.choice([-1, 1], 100)).reshape(4, 25)
    m = methods.breadcrumbs(delta, density=0.7, small=0.09)
    assert m.shape == delta.shape and m.sum().item() == 70
    kept = np.sort(np.abs(delta[m].numpy()))
    assert kept.tolist() == list(range(10, 80))  # 9 smallest (1..9) and 21 largest (80..100) dropped
    base = torch.zeros(4, 25)
    assert torch.equal(methods.breadcrumbs_merge(base, [delta], [2.0]), 2 * delta * m)


# ---------------------------------------------------------------- DiM3
def _softmax0(x):
    e = np.exp(x - x.max(0))
    return e / e.sum(0)


def _rank01_np(x):  # per row: stable argsort of stable argsort / n
    return np.argsort(np.argsort(x, axis=1, kind="stable"), axis=1, kind="stable") / x.shape[1]


def _dim3_numpy(B, Ws, t, c):
    """Direct column-by-column computation of the card's five steps (float64)."""
    B = B.astype(np.float64)
    K, n = len(Ws), B.shape[1]
    dM, dD = np.zeros((K, n)), np.zeros((K, n))
    for k, W in enumerate(Ws):
        for j in range(n):
            mb, mk = np.linalg.norm(B[:, j]), np.linalg.norm(W[:, j])
            ub, uk = B[:, j] / (mb + 1e-8), W[:, j] / (mk + 1e-8)
            dM[k, j] = abs(mk - mb)
            dD[k, j] = 1 - ub @ uk / (np.linalg.norm(ub) * np.linalg.norm(uk))
    w = 0
    for d in (dM, dD):
        r = _rank01_np(d)
        s = _softmax0(r)
        s = np.where(r > t * r.mean(1, keepdims=True), c, s)
        w = w + 0.5 * s
    merged = B.copy()
    for k, W in enumerate(Ws):
        merged += w[k][None, :] * (W - B)
    return w, merged


def _three(shape=(6, 40), seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(shape, generator=g)
    return B, [B + scale * torch.randn(shape, generator=g) for _ in range(2)]


def test_dim3_matches_numpy_reference():
    B, Ws = _three()
    for t, c in [(1.0, 1.0), (0.5, 0.8), (1.3, 1.0)]:
        w_np, m_np = _dim3_numpy(B.numpy(), [W.numpy() for W in Ws], t, c)
        assert np.allclose(methods.dim3_weights(B, Ws, t, c).numpy(), w_np, atol=1e-6)
        assert np.allclose(methods.dim3_merge_tensor(B, Ws, t, c).numpy(), m_np, atol=1e-5)


def test_dim3_rank_ties_are_stable():
    # equal changes get distinct ranks in index order: [2, 1, 1, 0] → ranks [3, 1, 2, 0] / 4
    assert methods.rank01(torch.tensor([[2.0, 1.0, 1.0, 0.0]])).tolist() == [[0.75, 0.25, 0.5, 0.0]]


def test_dim3_weight_bounds():
    lo = 1 / (1 + math.e)  # softmax of two values in [0, 1): ≥ e^0 / (e^0 + e^1) ≈ 0.2689
    for seed in range(5):
        B, Ws = _three((8, 300), seed)
        w = methods.dim3_weights(B, Ws)
        assert w.min().item() >= lo - 1e-6 and w.max().item() <= 1 + 1e-6
        assert w.min().item() < 0.4 and (w == 1).any()  # both ends are actually reached (soft selection)
    assert lo == pytest.approx(0.2689, abs=1e-4)


def test_dim3_c1_t0_vs_task_arithmetic():
    B, Ws = _three((5, 50), 1)
    ta = methods.task_arithmetic(B, [methods.task_vector(W, B) for W in Ws])
    # t < 0: every r_kj ≥ 0 > t·mean, every score → c = 1 → exactly task arithmetic with λ = 1
    assert torch.allclose(methods.dim3_merge_tensor(B, Ws, t=-1.0, c=1.0), ta, atol=1e-6)
    # t = 0 (the card's note): true except in the columns ranked 0 (r = 0 is not > 0), one per model
    # and criterion, whose score stays the softmax value
    out = methods.dim3_merge_tensor(B, Ws, t=0.0, c=1.0)
    w = methods.dim3_weights(B, Ws, t=0.0, c=1.0)
    off = (w != 1).any(0)
    assert 1 <= off.sum().item() <= 4
    assert torch.allclose(out[:, ~off], ta[:, ~off], atol=1e-6)
    assert not torch.allclose(out[:, off], ta[:, off], atol=1e-6)


def test_dim3_transposed_embedding():
    E, Es = _three((30, 8), 2)  # vocab × hidden
    out = methods.dim3_merge_tensor(E, Es, transpose=True)
    _, m_np = _dim3_numpy(E.numpy().T, [x.numpy().T for x in Es], 1.0, 1.0)
    assert np.allclose(out.numpy(), m_np.T, atol=1e-5)  # one weight per token (row of E)
    w = methods.dim3_weights(E.T, [x.T for x in Es])
    assert w.shape == (2, 30)
    assert torch.allclose(out[4], E[4] + w[0, 4] * (Es[0][4] - E[4]) + w[1, 4] * (Es[1][4] - E[4]), atol=1e-6)
    assert not torch.allclose(out, methods.dim3_merge_tensor(E, Es))


def test_dim3_vector_rule():
    b = torch.tensor([1.0, 1.0, 1.0, 1.0])
    xs = [torch.tensor([1.5, 1.0, 0.9, 3.0]), torch.tensor([1.0, 1.2, 0.0, 1.1])]
    d = np.abs(np.stack([x.numpy() for x in xs]) - b.numpy())  # raw |θ_k − θ_B|, no ranking
    for t in (1.0, 2.0):
        s = np.where(d > t * d.mean(1, keepdims=True), 0.7, _softmax0(d))
        assert np.allclose(methods.dim3_weights(b, xs, t, 0.7).numpy(), s, atol=1e-6)
        want = b.numpy() + (s * (np.stack([x.numpy() for x in xs]) - b.numpy())).sum(0)
        assert np.allclose(methods.dim3_merge_tensor(b, xs, t, 0.7).numpy(), want, atol=1e-6)


def test_merge_state_dicts_dispatch():
    B, Ws = _three((6, 10), 3)
    base = {"model.embed_tokens.weight": B, "norm.weight": B[0], "conv": B.reshape(3, 2, 10),
            "step": torch.tensor(3)}
    sds = [{"model.embed_tokens.weight": W, "norm.weight": W[0], "conv": W.reshape(3, 2, 10),
            "step": torch.tensor(5)} for W in Ws]
    sds[0]["vision.proj"] = torch.ones(2)
    out = folders.merge_state_dicts(base, sds, "dim3")
    assert torch.allclose(out["model.embed_tokens.weight"], methods.dim3_merge_tensor(B, Ws, transpose=True))
    assert torch.allclose(out["norm.weight"], methods.dim3_merge_tensor(B[0], [W[0] for W in Ws]))
    assert torch.allclose(out["conv"], (Ws[0] + Ws[1] - B).reshape(3, 2, 10), atol=1e-6)
    assert out["step"].item() == 3 and torch.equal(out["vision.proj"], torch.ones(2))
    with pytest.raises(ValueError):
        folders.merge_state_dicts(base, sds, "nope")


@pytest.fixture(scope="module")
def tiny_llamas(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("llamas")
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    base = LlamaForCausalLM(cfg)
    base.save_pretrained(root / "base", max_shard_size="40KB")  # sharded: exercises the index
    dirs = []
    for i in range(2):
        m = LlamaForCausalLM(cfg)
        m.load_state_dict(base.state_dict())
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.05 * torch.randn_like(p))
        m.save_pretrained(root / f"m{i}")
        dirs.append(root / f"m{i}")
    return root, cfg


@pytest.mark.parametrize("method,kw", [("dim3", {}), ("ties", {"density": 0.3}), ("dare", {"p": 0.5, "seed": 1})])
def test_merge_folders_tiny_llama(tiny_llamas, method, kw):
    from transformers import LlamaForCausalLM

    root, cfg = tiny_llamas
    base_sd = LlamaForCausalLM.from_pretrained(root / "base").state_dict()
    sds = [LlamaForCausalLM.from_pretrained(root / f"m{i}").state_dict() for i in range(2)]
    out_dir = folders.merge_folders(root / "base", [root / "m0", root / "m1"], root / f"out-{method}", method, **kw)
    assert (out_dir / "config.json").exists()
    merged, info = LlamaForCausalLM.from_pretrained(out_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    want = folders.merge_state_dicts(base_sd, sds, method, **kw)
    got = merged.state_dict()
    assert set(want) == set(got)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert not torch.equal(got["model.layers.0.mlp.up_proj.weight"], base_sd["model.layers.0.mlp.up_proj.weight"])
    merged(torch.tensor([[1, 2, 3]]))  # runs


# ---------------------------------------------------------------- fast selections, ties, multimodal folders
def test_rank_window_equals_the_stable_sort():
    g = torch.Generator().manual_seed(0)
    for trial in range(30):
        n = int(torch.randint(1, 400, (1,), generator=g))
        a = torch.randint(-5, 6, (n,), generator=g).float()  # many ties
        if trial % 3 == 0:
            a = torch.randn(n, generator=g)
        lo = int(torch.randint(0, n + 1, (1,), generator=g))
        hi = int(torch.randint(lo, n + 2, (1,), generator=g))
        want = torch.zeros(n, dtype=torch.bool)
        want[torch.argsort(a, stable=True)[lo:hi]] = True
        assert torch.equal(methods.rank_window(a, lo, hi), want), (trial, lo, hi)
    for n in (1, 7, 50):  # windows from rank 0: the minimum is found without a selection
        a = torch.randint(-2, 3, (n,), generator=g).float()
        for hi in sorted({1, n // 2, n}):
            want = torch.zeros(n, dtype=torch.bool)
            want[torch.argsort(a, stable=True)[:hi]] = True
            assert torch.equal(methods.rank_window(a, 0, hi), want), (n, hi)
    m = methods.rank_window(torch.tensor([[3.0, 1.0], [1.0, 2.0]]), 1, 3)  # shape kept; ranks 1, 2 = the second 1 and the 2
    assert m.tolist() == [[False, False], [True, True]]


def test_rank_window_slices_give_the_stable_sort_slice_by_slice():
    """The one tie rule, applied a slice at a time (TIES's trim uses it so): the slices, joined, are the mask of the
    stable sort for every chunk size, ties across slice borders included."""
    g = torch.Generator().manual_seed(1)
    for trial in range(40):
        n = int(torch.randint(1, 300, (1,), generator=g))
        a = torch.randint(-3, 4, (n,), generator=g).float() if trial % 2 else torch.randn(n, generator=g)
        lo = 0 if trial % 4 < 2 else int(torch.randint(0, n + 1, (1,), generator=g))
        hi = int(torch.randint(lo, n + 2, (1,), generator=g))
        want = torch.zeros(n, dtype=torch.bool)
        want[torch.argsort(a, stable=True)[lo:hi]] = True
        for chunk in (1, 7, 64, n):
            parts = list(methods.rank_window_slices(a, lo, hi, chunk))
            assert [i for i, _ in parts] == list(range(0, n, chunk))
            assert torch.equal(torch.cat([m for _, m in parts]), want), (trial, lo, hi, chunk)


def test_values_at_ranks_numpy_and_kthvalue_agree():
    # the GPU path (kthvalue) and the CPU path (numpy introselect) pick the same boundary values
    g = torch.Generator().manual_seed(1)
    for trial in range(20):
        n = int(torch.randint(2, 300, (1,), generator=g))
        a = torch.randint(-4, 5, (n,), generator=g).float() if trial % 2 else torch.randn(n, generator=g)
        i = int(torch.randint(0, n, (1,), generator=g))
        j = int(torch.randint(i, n, (1,), generator=g))
        srt = torch.sort(a).values
        for use_numpy in (True, False):
            vi, vj = methods._values_at_ranks(a, i, j, use_numpy=use_numpy)
            assert (float(vi), float(vj)) == (float(srt[i]), float(srt[j])), (trial, use_numpy)


def test_ties_trim_breaks_ties_by_index():
    x = torch.tensor([2.0, -2.0, 1.0, 2.0, 0.5])
    assert methods._topk_mask(x, 2).tolist() == [True, True, False, False, False]  # |2| three times: the first two
    assert methods._topk_mask(x, 0).sum() == 0 and methods._topk_mask(x, 5).all()


def test_breadcrumbs_equals_its_sort_definition_with_ties():
    d = torch.tensor([0.0, 0.0, 0.0, 1.0, -1.0, 1.0, 2.0, 3.0, -3.0, 3.0])
    order = torch.argsort(d.abs(), stable=True)
    lo, hi = int(0.09 * 10), int(0.09 * 10) + int(0.7 * 10)  # 0, 7
    want = torch.zeros(10, dtype=torch.bool)
    want[order[lo:hi]] = True
    assert torch.equal(methods.breadcrumbs(d), want)
    assert methods.breadcrumbs(d).tolist() == [True] * 7 + [False] * 3


def test_merge_state_dicts_merges_tied_weights_once():
    B, Ws = _three((12, 6), 5)  # a 12-token × 6 embedding, tied to the head
    base = {"model.embed_tokens.weight": B, "lm_head.weight": B}
    sds = [{"model.embed_tokens.weight": W, "lm_head.weight": W} for W in Ws]
    out = folders.merge_state_dicts(base, sds, "dim3")
    assert out["lm_head.weight"] is out["model.embed_tokens.weight"]
    assert torch.allclose(out["lm_head.weight"], methods.dim3_merge_tensor(B, Ws, transpose=True))


def test_lm_name_maps_multimodal_names_to_the_base():
    base = {"model.layers.0.mlp.up_proj.weight", "model.embed_tokens.weight", "lm_head.weight"}
    assert folders.lm_name("model.language_model.layers.0.mlp.up_proj.weight", base) == "model.layers.0.mlp.up_proj.weight"
    assert folders.lm_name("language_model.model.embed_tokens.weight", base) == "model.embed_tokens.weight"
    assert folders.lm_name("language_model.lm_head.weight", base) == "lm_head.weight"
    assert folders.lm_name("lm_head.weight", base) == "lm_head.weight"
    assert folders.lm_name("model.vision_tower.embeddings.patch_embedding.weight", base) is None
    assert folders.lm_name("multi_modal_projector.linear_1.weight", base) is None


def test_merge_folders_into_a_multimodal_copy(tiny_llamas):
    from transformers import (
        LlamaForCausalLM,
        LlavaConfig,
        LlavaForConditionalGeneration,
        SiglipVisionConfig,
    )

    root, cfg = tiny_llamas
    base = LlamaForCausalLM.from_pretrained(root / "base")
    torch.manual_seed(9)
    vcfg = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=24, patch_size=12, vision_use_head=False)
    V = LlavaForConditionalGeneration(LlavaConfig(vision_config=vcfg.to_dict(), text_config=cfg.to_dict(),
                                                  image_token_id=5, vision_feature_select_strategy="full",
                                                  image_seq_length=4))
    V.model.language_model.load_state_dict(base.model.state_dict())
    V.lm_head.load_state_dict(base.lm_head.state_dict())
    with torch.no_grad():
        for p in V.model.language_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    V.save_pretrained(root / "V")
    out = folders.merge_folders(root / "base", [root / "V", root / "m1"], root / "out-mm", "dim3", into=0)
    merged = LlavaForConditionalGeneration.from_pretrained(out)
    names = set(base.state_dict())
    want = folders.merge_state_dicts(base.state_dict(),
                                [folders.lm_state_dict(V.state_dict(), names),
                                 LlamaForCausalLM.from_pretrained(root / "m1").state_dict()], "dim3")
    got_lm = folders.lm_state_dict(merged.state_dict(), names)
    assert set(got_lm) == names
    for k in names:
        assert torch.equal(got_lm[k], want[k]), k
    for k, v in V.state_dict().items():  # the vision tower and the projector are V's, untouched
        if "vision_tower" in k or "projector" in k:
            assert torch.equal(merged.state_dict()[k], v), k
    assert not (out / "MANIFEST.json").exists()
    merged(input_ids=torch.tensor([[5] * 4 + [7, 8]]), pixel_values=torch.randn(1, 3, 24, 24))  # runs
