"""mlbook.distill (COPSD) and mlbook.rollout: the clipped forward-KL loss against a direct formula
(values and gradients, the clip's zero gradient), the chunked fast path against the reference,
prompts, and batched KV-cache sampling against Hugging Face's generate."""
from __future__ import annotations

import pytest
import torch

from mlbook.chapters.ch07_copsd import organism, task
from mlbook.chapters.ch07_copsd import wordproblems as wp
from mlbook.text import batching
from mlbook.training import copsd, fit, lora


# ----------------------------------------------------------------------------- the loss
def _direct(s_logits, t_logits, mask, T, c):
    """The paper's formula, written out with loops over tokens and vocabulary entries."""
    total, n = 0.0, 0
    B, L, V = s_logits.shape
    for b in range(B):
        for t in range(L):
            if not mask[b, t]:
                continue
            ps = torch.softmax(s_logits[b, t].double() / T, -1)
            pt = torch.softmax(t_logits[b, t].double() / T, -1)
            total += sum(min(c, float(pt[v] * (torch.log(pt[v]) - torch.log(ps[v])))) for v in range(V))
            n += 1
    return total / n


@pytest.mark.parametrize("T,c", [(1.1, 0.05), (1.0, 0.5), (2.0, 10.0)])
def test_loss_matches_the_direct_formula(T, c):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 7, generator=g) * 2, torch.randn(2, 3, 7, generator=g) * 2
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    got = copsd.copsd_loss_reference(s, t, mask, T, c).item()
    assert got == pytest.approx(_direct(s, t, mask, T, c), rel=1e-5, abs=1e-7)


def test_large_clip_is_the_forward_kl():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(1, 4, 9, generator=g), torch.randn(1, 4, 9, generator=g)
    kl = torch.nn.functional.kl_div((s / 1.1).log_softmax(-1), (t / 1.1).log_softmax(-1), log_target=True,
                                    reduction="none").sum(-1).mean()
    assert copsd.copsd_loss_reference(s, t, torch.ones(1, 4), 1.1, 1e9).item() == pytest.approx(kl.item(), rel=1e-5)


def test_gradient_matches_the_formula_and_clipped_entries_get_none():
    """d/dz_S of Σ_v min(c, p_T(v)(log p_T(v) − log p_S(v))) = (1/T) (p_S · Σ_{v unclipped} p_T(v) − p_T ⊙ 1[unclipped]).

    An entry at the clip contributes a constant: moving the student's logit there changes nothing
    through that entry (only through the softmax normaliser of the others)."""
    g = torch.Generator().manual_seed(2)
    T, c = 1.1, 0.05
    t_logits = torch.randn(1, 1, 6, generator=g) * 3
    s_logits = torch.randn(1, 1, 6, generator=g, requires_grad=True)
    loss = copsd.copsd_loss_reference(s_logits, t_logits, torch.ones(1, 1), T, c)
    loss.backward()
    ps, pt = (s_logits.detach() / T).softmax(-1)[0, 0], (t_logits / T).softmax(-1)[0, 0]
    term = pt * (pt.log() - ps.log())
    free = (term < c).double()
    assert 0 < free.sum() < 6, "the example must have clipped and unclipped entries"
    want = (ps.double() * (pt.double() * free).sum() - pt.double() * free) / T
    assert torch.allclose(s_logits.grad[0, 0].double(), want, atol=1e-6)
    # the per-entry terms at the clip have zero gradient w.r.t. the student's log-probabilities
    log_s = (s_logits.detach() / T).log_softmax(-1).requires_grad_(True)
    entries = (pt.log() - log_s[0, 0]).mul(pt).clamp(max=c)
    entries.sum().backward()
    assert torch.all(log_s.grad[0, 0][free == 0] == 0) and torch.all(log_s.grad[0, 0][free == 1] != 0)


def test_equal_distributions_give_zero_loss_and_gradient():
    x = torch.randn(2, 3, 5, requires_grad=True)
    loss = copsd.copsd_loss_reference(x, x.detach(), torch.ones(2, 3))
    loss.backward()
    assert abs(loss.item()) < 1e-7 and x.grad.abs().max() < 1e-7


def test_chunked_path_agrees_with_the_reference():
    """Hidden states → LM head a chunk at a time (checkpointed) == full logits; values and gradients."""
    g = torch.Generator().manual_seed(3)
    N, d, V = 11, 8, 23
    head_s, head_t = torch.nn.Linear(d, V, bias=False), torch.nn.Linear(d, V, bias=False)
    h_s = torch.randn(N, d, generator=g, requires_grad=True)
    h_t = torch.randn(N, d, generator=g)
    ref = copsd.copsd_loss_reference(head_s(h_s)[None], head_t(h_t)[None].detach(), torch.ones(1, N))
    ref.backward()
    grads_ref = (h_s.grad.clone(), head_s.weight.grad.clone())
    h_s.grad, head_s.weight.grad = None, None
    fast = copsd.copsd_loss_chunked(h_s, h_t, head_s, head_t, chunk=4)
    fast.backward()
    assert fast.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(h_s.grad, grads_ref[0], atol=1e-7) and torch.allclose(head_s.weight.grad, grads_ref[1], atol=1e-7)
    assert head_t.weight.grad is None                              # the teacher never trains


def test_copsd_step_on_a_tiny_organism_lora_and_full():
    """One COPSD step end to end on a tiny model, full fine-tuning (frozen copy as teacher) and LoRA
    (adapters off as teacher): the loss is finite, only trainable weights move, and the teacher's
    loss on its own rollouts at step 0 equals the formula on the same logits."""
    import copy



    langs = ["en", "de"]
    sks = wp.problem_set(6, seed=1)
    tok = organism.train_tokenizer([wp.render(s, l)["problem"] + " " + wp.render(s, l)["solution"] for s in sks
                                    for l in langs] + [wp.prompt_text(l, k) for l in langs for k in wp.PROMPT_KEYS],
                                   vocab_size=400)
    pool = [(s, "de") for s in sks]
    for mode in ("full", "lora"):
        model = organism.organism_llama(tok, d_model=32, n_layers=2, n_heads=2, seed=1)
        teacher = copy.deepcopy(model).eval().requires_grad_(False) if mode == "full" else None
        if mode == "lora":
            model = lora.add_lora(model, r=4, alpha=8)
        batches = task.copsd_batches(model, tok, pool, n_prompts=3, max_new_tokens=12, seed=0)
        b = batches(0)
        assert b["comp_mask"].shape[0] == 3 and b["teacher"][0].shape[1] > b["student"][0].shape[1]
        loss_fn = copsd.copsd_loss_fn(teacher, chunk=5)
        loss, stats = loss_fn(model, b)
        # the same loss from full logits
        s_all = model(input_ids=b["student"][0], attention_mask=b["student"][1],
                      position_ids=batching.positions(b["student"][1])).logits
        tm = teacher if teacher is not None else model
        with torch.no_grad(), lora.adapter_disabled(tm):
            t_all = tm(input_ids=b["teacher"][0], attention_mask=b["teacher"][1],
                       position_ids=batching.positions(b["teacher"][1])).logits
        L = b["comp_mask"].shape[1]
        ref = copsd.copsd_loss_reference(s_all[:, b["student"][2] - 1: b["student"][2] - 1 + L],
                                           t_all[:, b["teacher"][2] - 1: b["teacher"][2] - 1 + L], b["comp_mask"])
        assert loss.item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6), mode
        h = fit.fit(model, loss_fn, batches, steps=2, lr=1e-2, progress=False)
        assert all(torch.isfinite(torch.tensor(h["loss"]))) and "reward" in h


def test_token_table_rows():


    sks = wp.problem_set(2, seed=2)
    tok = organism.train_tokenizer([wp.render(s, "es")["solution"] for s in sks] * 2, vocab_size=300)
    m = organism.organism_llama(tok, d_model=32, n_layers=1, n_heads=2)
    b = task.copsd_batches(m, tok, [(s, "es") for s in sks], n_prompts=1, max_new_tokens=6)(0)
    rows = copsd.token_table(m, tok, b, teacher=m)
    assert len(rows) == int(b["comp_mask"][0].sum())
    assert all(0 <= r["p_student"] <= 1 and 0 <= r["p_teacher"] <= 1 and r["kl"] <= 0.05 * len(tok) for r in rows)
    assert {"token", "p_student", "p_teacher", "kl", "student_top", "teacher_top"} <= set(rows[0])
