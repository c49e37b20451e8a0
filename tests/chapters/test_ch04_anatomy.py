"""Chapter 4's own code: ROME's update against its closed form and ROME/FT-L edits on a tiny Llama with
SmolLM2's tokenizer, the CounterFact-style edits (split, targets, neighbours), scoring by hand, batched
scoring against single runs, MEGA's maps, steering, gate and layer choice, and the gpu profile's sizes."""
import numpy as np
import pytest
import torch

from mlbook.chapters.ch04_anatomy_of_an_edit import counterfact as cf
from mlbook.chapters.ch04_anatomy_of_an_edit import experiment as X
from mlbook.chapters.ch04_anatomy_of_an_edit import ftl, mega, rome
from mlbook.interp import hooks
from mlbook.models import loading


@pytest.fixture(scope="module")
def tiny(tiny_lm_dir):
    lm, tok = loading.load_causal_lm(str(tiny_lm_dir))
    return lm.eval(), tok


def _fact(subject, relation, answer, key, tok):
    return {"subject": subject, "relation": relation, "answer": answer, "answer_key": key,
            "answer_id": cf.first_token(tok, answer)}


@pytest.fixture(scope="module")
def known(tiny):
    _, tok = tiny
    rows = [("France", "capital", "Paris", "FR"), ("Germany", "capital", "Berlin", "DE"), ("Japan", "capital", "Tokyo", "JP"),
            ("Italy", "capital", "Rome", "IT"), ("Spain", "capital", "Madrid", "ES"), ("Peru", "capital", "Lima", "PE"),
            ("France", "continent", "Europe", "150"), ("Germany", "continent", "Europe", "150"),
            ("Japan", "continent", "Asia", "142"), ("Kenya", "continent", "Africa", "002"),
            ("Chile", "continent", "South America", "005"), ("Italy", "continent", "Europe", "150")]
    return [_fact(*r, tok) for r in rows]


# -- ROME ---------------------------------------------------------------------------------------------------

def test_rank_one_closed_form():
    g = torch.Generator().manual_seed(0)
    W, k, v = torch.randn(5, 9, generator=g, dtype=torch.float64), torch.randn(9, generator=g, dtype=torch.float64), \
        torch.randn(5, generator=g, dtype=torch.float64)
    A = torch.randn(9, 30, generator=g, dtype=torch.float64)
    C = A @ A.T / 30
    dW = rome.rank_one(W, C, k, v)
    assert torch.linalg.matrix_rank(dW) == 1
    assert torch.allclose((W + dW) @ k, v, atol=1e-10)                       # k* ↦ v*
    u = torch.linalg.solve(C, k)
    for _ in range(5):                                                      # other keys: the covariance-weighted amount
        k2 = torch.randn(9, generator=g, dtype=torch.float64)
        assert torch.allclose(dW @ k2, (v - W @ k) * (u @ k2) / (u @ k), atol=1e-10)
    # among all ΔW with (W + ΔW) k = v it is the one of least Σ ‖ΔW k_j‖² over the keys K (C = K Kᵀ / n)
    other = torch.outer(v - W @ k, k) / (k @ k)
    assert torch.trace(dW @ C @ dW.T) <= torch.trace(other @ C @ other.T) + 1e-12


def test_subject_position(tiny):
    _, tok = tiny
    text = "Geography quiz. The capital of United Kingdom is"
    pos = rome.subject_position(tok, text, "United Kingdom")
    ids = cf.encode(tok, text)
    assert tok.decode(ids[:pos + 1]).endswith("Kingdom") and not tok.decode(ids[:pos]).endswith("Kingdom")
    with pytest.raises(ValueError, match="not in"):
        rome.subject_position(tok, text, "France")


def test_key_covariance_is_the_mean_outer_product(tiny):
    lm, _ = tiny
    windows = [[5, 9, 11, 300, 7], [42, 8], [100, 200, 300]]
    C = rome.key_covariance(lm, 1, windows, batch_size=2)
    keys = []
    for w in windows:
        with torch.no_grad(), hooks.capture(lm, [hooks.addr(1, "mlp_post")]) as c:
            lm(input_ids=torch.tensor([w]))
        keys.append(c[hooks.addr(1, "mlp_post")][0].double())
    K = torch.cat(keys)
    assert torch.allclose(C, K.T @ K / len(K), atol=1e-8)


def _edit(tiny, known):
    _, tok = tiny
    return cf.edits(known, tok, [0])[0][0]


def test_rome_maps_the_key_to_the_solved_value_and_undoes_exactly(tiny, known):
    lm, tok = tiny
    e = _edit(tiny, known)
    A = torch.randn(64, 200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    C = A @ A.T / 200
    w0 = hooks.layers(lm)[1].mlp.down_proj.weight.detach().clone()
    dW, info = rome.rome(lm, tok, 1, e, C, rome.Hyper(steps=8))
    assert [r["nll"] for r in info["log"]][-1] < info["log"][0]["nll"]       # the value optimisation lowers the NLL
    with rome.applied(lm, 1, dW):
        W1 = hooks.layers(lm)[1].mlp.down_proj.weight.detach()
        assert torch.allclose(W1.double() @ info["k"].double(), info["v_star"].double(), atol=1e-4)
    assert torch.equal(hooks.layers(lm)[1].mlp.down_proj.weight, w0)
    assert all(p.requires_grad for p in lm.parameters())


def test_ftl_stays_in_its_ball_and_changes_one_matrix(tiny, known):
    lm, tok = tiny
    e = _edit(tiny, known)
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    dW, log = ftl.ftl(lm, tok, 2, e, ftl.Hyper(steps=5, lr=1e-2, eps=1e-3))
    assert dW.abs().max() <= 1e-3 + 1e-7 and dW.abs().max() > 0
    assert log["loss"][-1] < log["loss"][0]
    assert all(torch.equal(p, before[n]) for n, p in lm.named_parameters())
    assert all(p.requires_grad for p in lm.parameters())
    for p in lm.parameters():                      # a model frozen before stays frozen
        p.requires_grad_(False)
    try:
        ftl.ftl(lm, tok, 2, e, ftl.Hyper(steps=1))
        assert not any(p.requires_grad for p in lm.parameters())
    finally:
        for p in lm.parameters():
            p.requires_grad_(True)


# -- the edits and their scores -----------------------------------------------------------------------------

def test_edits_split_targets_and_neighbours(tiny, known):
    _, tok = tiny
    E = cf.edits(known, tok, [0, 1, 2])
    subjects = [(e["subject"], e["relation"]) for s in E for e in E[s]]
    assert len(subjects) == len(set(subjects)) == len(known)                  # every fact once, at one seed
    assert E == cf.edits(known, tok, [0, 1, 2]) and cf.edits(known, tok, [3, 4, 5]) != E   # seeded
    for e in (e for s in E for e in E[s]):
        assert e["new_id"] != e["true_id"] and e["new"] != e["answer"]
        assert all(p != e["prompt"] for p in e["paraphrases"]) and e["subject"] in e["prompt"]
        assert all(e["subject"] not in p for p, _ in e["neighbours"])
        assert all(t != e["new_id"] for _, t in e["neighbours"])
        assert e["new"] in e["context"] and e["subject"] in e["context"]
    europe = next(e for s in E for e in E[s] if e["relation"] == "continent" and e["answer"] == "Europe")
    same = [p for p, t in europe["neighbours"] if t == europe["true_id"]]
    assert len(same) == 2 and europe["neighbours"][:2] == [(p, europe["true_id"]) for p in same]   # same object first


def test_scores_by_hand():
    e = {"new_id": 3, "neighbours": [("a", 1), ("b", 2)]}
    le = torch.tensor([0.0, 0, 0, 5, 0])
    lp = torch.tensor([[0.0, 0, 0, 5, 0], [9.0, 0, 0, 5, 0], [0.0, 0, 0, 1, 2]])
    ln = torch.tensor([[0.0, 4, 0, 3, 0], [0.0, 0, 1, 3, 0]])
    assert cf.scores(le, lp, ln, e) == {"efficacy": 1.0, "generalisation": pytest.approx(1 / 3), "specificity": 0.5}


def test_batched_last_logits_equal_single_runs(tiny):
    lm, _ = tiny
    prompts = [[5, 9, 11, 300, 7], [42, 8], [100, 200, 300]]
    got = cf.last_logits(lm, prompts, batch_size=3)
    for n, p in enumerate(prompts):
        with torch.no_grad():
            want = lm(input_ids=torch.tensor([p])).logits[0, -1]
        assert torch.allclose(got[n], want, atol=1e-5)


def test_success_contrast_and_located_layers_by_hand():
    def rec(gen, attn_new):
        a = np.zeros((4, 2))
        a[:, 0] = attn_new
        return {"scores": {"generalisation": gen}, "imp": {"attn": a, "ffn": a}}
    recs = [rec(1.0, [0, 1, 5, 2]), rec(2 / 3, [0, 1, 3, 4]), rec(0.0, [1, 1, 0, 0]), rec(1 / 3, [1, 1, 2, 0])]
    assert [X.success(r) for r in recs] == [True, False, False, False]          # the chapter's split: every paraphrase
    assert [X.success(r, 0.5) for r in recs] == [True, True, False, False]
    assert np.allclose(X.contrast(recs, "attn", 0, 0.5), [-1, 0, 3, 3])
    assert np.allclose(X.contrast(recs, "attn", 0), [-2 / 3, 0, 10 / 3, 2 / 3])   # [0,1,5,2] − mean of the other three
    assert X.located_layers(recs, 2, 0.5) == ([2, 3], [0, 1])
    # no failures: ranked by the mean importance of the edits there are
    assert X.located_layers(recs[:2], 1, 0.5) == ([2], [0])


# -- MEGA ---------------------------------------------------------------------------------------------------

def test_fit_map_rank0_is_the_mean_difference_and_rank_r_recovers_a_subspace_map():
    g = torch.Generator().manual_seed(2)
    src = torch.randn(6, 10, generator=g)
    tgt = src + torch.randn(10, generator=g)
    m0 = mega.fit_map(src, tgt, 0)
    assert torch.allclose(m0(src), src + (tgt.mean(0) - src.mean(0)), atol=1e-6)
    # sources in a 2-d subspace, targets an affine map of them inside it: the rank-2 map reproduces it
    B = torch.linalg.qr(torch.randn(10, 2, generator=g, dtype=torch.float64)).Q
    z = torch.randn(6, 2, generator=g, dtype=torch.float64)
    A = torch.tensor([[1.5, 0.3], [-0.2, 0.7]], dtype=torch.float64)
    src2, tgt2 = z @ B.T + 1.0, (z @ A.T) @ B.T + 3.0
    m2 = mega.fit_map(src2, tgt2, 2)
    assert torch.allclose(m2(src2.float()).double(), tgt2, atol=1e-4)
    with pytest.raises(ValueError, match="needs at least"):
        mega.fit_map(src[:2], tgt[:2], 2)


def test_steering_moves_only_the_last_position_of_the_chosen_layers(tiny):
    lm, _ = tiny
    ids = torch.tensor([[5, 9, 11, 300, 7]])
    v = torch.randn(lm.config.hidden_size)
    addr = [hooks.addr(l_, "attn_out") for l_ in range(3)]
    with torch.no_grad(), hooks.capture(lm, addr) as plain:
        lm(input_ids=ids)
    with torch.no_grad(), mega.steered(lm, {1: mega.Map(v)}, alpha=2.0), hooks.capture(lm, addr) as st:
        lm(input_ids=ids)
    assert torch.allclose(st[addr[0]], plain[addr[0]])
    assert torch.allclose(st[addr[1]][0, :-1], plain[addr[1]][0, :-1], atol=1e-6)
    assert torch.allclose(st[addr[1]][0, -1], plain[addr[1]][0, -1] + 2.0 * v, atol=1e-5)


def test_fit_is_the_difference_of_means_of_the_last_attention_outputs(tiny, known):
    lm, tok = tiny
    e = _edit(tiny, known)
    maps = mega.fit(lm, tok, e, [0, 2])
    src, tgt = [e["prompt"], *e["fit"]], [f"{e['context']} {p}" for p in [e["prompt"], *e["fit"]]]

    def last(texts, layer):
        out = []
        for t in texts:
            with torch.no_grad(), hooks.capture(lm, [hooks.addr(layer, "attn_out")]) as c:
                lm(input_ids=torch.tensor([cf.encode(tok, t)]))
            out.append(c[hooks.addr(layer, "attn_out")][0, -1])
        return torch.stack(out).mean(0)
    for layer in (0, 2):
        assert torch.allclose(maps[layer].shift, last(tgt, layer) - last(src, layer), atol=1e-5)


def test_choose_tau_by_hand():
    assert mega.choose_tau([0.9, 0.8, 0.95], [0.3, 0.5, 0.6]) == pytest.approx(0.7)
    # overlapping clouds: the cut that gets the most of both right
    tau = mega.choose_tau([0.9, 0.8, 0.55], [0.3, 0.5, 0.6])
    assert tau == pytest.approx(0.7) or tau == pytest.approx(0.525)


def test_mega_edit_through_the_gate(tiny, known):
    lm, tok = tiny
    enc, etok = loading.load_encoder("sentence-transformers/all-MiniLM-L6-v2")
    e = _edit(tiny, known)
    shut = X.mega_edit(lm, tok, enc, etok, e, [1, 2], tau=1.01, alpha=4.0)
    assert shut["gate_para"] == 0 and shut["gate_nb"] == 0
    assert shut["scores"] == X.scores(lm, tok, e)                          # a closed gate steers nothing
    opened = X.mega_edit(lm, tok, enc, etok, e, [1, 2], tau=-1.01, alpha=4.0)
    assert opened["gate_para"] == 1 and opened["gate_nb"] == 1


def test_gpu_sizes():
    """The gpu profile's sizes, checked on the CPU: a 24-layer model (SmolLM2-1.7B) has the layers to steer."""
    from mlbook.core.context import sizes

    g = sizes("04_anatomy_of_an_edit", "gpu")
    assert g.per_seed is None and len(g.seeds) >= 3 and 2 * g.n_steer <= 24 and g.val_edits >= 1 and g.alphas
    c = sizes("04_anatomy_of_an_edit", "cpu")
    assert c.per_seed % 4 == 0                                                # balanced over the four relations
