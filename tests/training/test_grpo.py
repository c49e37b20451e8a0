"""mlbook.rl: \\boxed{} extraction and the binary reward, GRPO's group-normalised advantages (zero
when all rewards in a group are equal), the clipped surrogate's gradient, and avg/pass/maj@k."""
from __future__ import annotations

import pytest
import torch

from mlbook.chapters.ch07_copsd import organism, task
from mlbook.chapters.ch07_copsd import wordproblems as wp
from mlbook.training import fit as train
from mlbook.training import grpo


@pytest.mark.parametrize("text,want", [
    ("so 5 + 3 = 8. The answer is \\boxed{8}.", 8.0),
    ("\\boxed{3} then again \\boxed{ 12 }", 12.0),                 # the last box counts
    ("\\boxed{1,234}", 1234.0),
    ("\\boxed{-4}", -4.0),
    ("\\boxed{\\frac{1}{2}}", None),                               # nested braces: found, not a plain number
    ("\\boxed{7", None),                                           # unclosed
    ("no box, the answer is 8", None),
    ("\\boxed{}", None),
])
def test_extract_answer(text, want):
    assert task.extract_answer(text) == want


def test_last_boxed_balances_braces():
    assert task.last_boxed("x \\boxed{\\frac{1}{2}} y") == "\\frac{1}{2}"


def test_reward_and_format():
    assert task.reward("... \\boxed{6}.", 6) == 1.0
    assert task.reward("... \\boxed{6}. Wait, \\boxed{7}", 6) == 0.0
    assert task.reward("6", 6) == 0.0
    assert task.well_formed("\\boxed{6}") and not task.well_formed("\\boxed{six}")


def test_group_advantages_formula():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    a = grpo.group_advantages(r, 4)
    g = r.view(2, 4)
    want = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-4)).view(-1)
    assert torch.allclose(a, want)
    assert a[:4].sum().abs() < 1e-6                                  # advantages sum to zero within a group
    assert a[0] > 0 > a[1]


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_equal_rewards_give_zero_advantage_and_zero_gradient(value):
    r = torch.full((8,), value)
    a = grpo.group_advantages(r, 8)
    assert torch.equal(a, torch.zeros(8))
    assert grpo.identical_share(r, 8) == 1.0
    logp = torch.randn(20, requires_grad=True)
    loss = grpo.grpo_loss(logp, logp.detach(), a[:1].expand(20))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(logp.grad) == 0


def test_identical_share_counts_groups():
    r = torch.tensor([1, 1, 0, 1, 0, 0]).float()
    assert grpo.identical_share(r, 2) == pytest.approx(2 / 3)


def test_grpo_gradient_on_policy_is_advantage_times_score():
    """With ρ = 1 (one update per batch) the surrogate's gradient is −A/N per token's log-probability."""
    logp = torch.randn(6, requires_grad=True)
    adv = torch.tensor([1.0, 1.0, -0.5, -0.5, 2.0, 0.0])
    grpo.grpo_loss(logp, logp.detach(), adv).backward()
    assert torch.allclose(logp.grad, -adv / 6)


def test_grpo_clip_stops_gradient_outside_the_trust_region():
    logp = torch.tensor([0.5, -0.5], requires_grad=True)              # ratios e^0.5 > 1.2 and e^-0.5 < 0.8
    grpo.grpo_loss(logp, torch.zeros(2), torch.tensor([1.0, -1.0]), epsilon=0.2).backward()
    assert torch.equal(logp.grad, torch.zeros(2))


def test_token_logprobs_chunked_matches_direct():
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(6, 15, bias=False)
    h = torch.randn(9, 6, generator=g, requires_grad=True)
    tgt = torch.randint(0, 15, (9,), generator=g)
    want = (head(h) / 1.1).log_softmax(-1)[torch.arange(9), tgt]
    got = grpo.token_logprobs(h, tgt, head, 1.1, chunk=4)
    assert torch.allclose(got, want, atol=1e-6)
    got.sum().backward()
    g1 = h.grad.clone()
    h.grad = None
    want.sum().backward()
    assert torch.allclose(g1, h.grad, atol=1e-6)


def test_sample_metrics_by_hand():
    answers = [[3.0, 3.0, 4.0, None], [None, None, None, None], [1.0, 2.0, 2.0, 5.0]]
    golds = [3, 7, 5]
    m = task.sample_metrics(answers, golds)
    assert m["avg"] == pytest.approx((2 / 4 + 0 + 1 / 4) / 3)
    assert m["pass"] == pytest.approx(2 / 3)
    assert m["maj"] == pytest.approx(1 / 3)                           # 3 ✓, none ✗, majority 2 ✗
    assert m["format"] == pytest.approx(7 / 12)
    assert m["identical"] == pytest.approx(1 / 3)                    # only problem 2 (all wrong)


def test_majority_ties_go_to_the_first_seen():
    assert task.majority([2.0, 1.0, 1.0, 2.0]) == 2.0
    assert task.majority([None, None]) is None


def test_grpo_step_on_a_tiny_model():



    sks = wp.problem_set(4, seed=3)
    tok = organism.train_tokenizer([wp.render(s, "en")["solution"] for s in sks] * 2, vocab_size=300)
    model = organism.organism_llama(tok, d_model=32, n_layers=1, n_heads=2)
    batches = task.grpo_batches(model, tok, [(s, "en") for s in sks], n_prompts=2, group_size=4, max_new_tokens=10)
    b = batches(0)
    assert b["advantages"].shape == (8,) and 0 <= b["identical"] <= 1
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    h = train.fit(model, grpo.grpo_loss_fn(labels=["en", "de"]), batches, steps=2, lr=1e-2, progress=False)
    assert {"loss", "reward", "identical_groups", "groups_en", "identical_de"} <= set(h)
    assert h["groups_en"] == [2, 2] and h["groups_de"] == [0, 0]
    assert all(0 <= i <= 2 for i in h["identical_en"])
    if all(x == 1.0 for x in h["identical_groups"]):                 # no signal at all: nothing may move
        assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_evaluate_per_language():



    sks = wp.problem_set(3, seed=4)
    tok = organism.train_tokenizer([wp.render(s, "de")["solution"] for s in sks] * 2, vocab_size=300)
    model = organism.organism_llama(tok, d_model=32, n_layers=1, n_heads=2)
    out = task.evaluate(model, tok, [(s, l) for l in ("en", "de") for s in sks], k=2, max_new_tokens=5, keep_texts=True)
    assert set(out) == {"en", "de"} and out["de"]["n"] == 3 and len(out["de"]["texts"][0]) == 2
    assert all(0 <= out[l][m] <= 1 for l in out for m in ("avg", "pass", "maj", "format"))
