"""mlbook.train: the shared training loop (schedule, determinism, accumulation, bit-for-bit resume),
the SFT loss, save_pretrained and the LoRA helpers — on tiny random Llama models."""
from __future__ import annotations

import math

import pytest
import torch

from mlbook.chapters.ch07_copsd import organism
from mlbook.training import cached, checkpoint, fit, lora, sft


def _tiny(seed: int = 0, vocab: int = 37):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def _batches(n: int, seed: int = 0, vocab: int = 37):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, vocab, (4, 9), generator=g)} for _ in range(n)]


def _lm_loss(model, batch):
    ids = batch["input_ids"]
    out = model(input_ids=ids, labels=ids)
    return out.loss, {"first_logit": out.logits[0, 0, 0].detach()}


def _weights(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


def test_lr_factor_schedules():
    assert fit.lr_factor(0, 10, warmup=4) == pytest.approx(0.25)
    assert fit.lr_factor(3, 10, warmup=4) == pytest.approx(1.0)
    assert fit.lr_factor(7, 10) == 1.0
    assert fit.lr_factor(4, 10, warmup=4, schedule="cosine") == pytest.approx(1.0)
    assert fit.lr_factor(7, 10, warmup=4, schedule="cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert fit.lr_factor(9, 10, schedule="linear") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="cosine"):
        fit.lr_factor(0, 10, schedule="exp")


def test_fit_learns_records_history_and_is_deterministic():
    data = _batches(1) * 30                                   # one batch, memorised
    h1 = fit.fit(m1 := _tiny(), _lm_loss, data, steps=30, lr=1e-2, seed=3, progress=False)
    h2 = fit.fit(m2 := _tiny(), _lm_loss, data, steps=30, lr=1e-2, seed=3, progress=False)
    assert h1["loss"][-1] < 0.7 * h1["loss"][0]
    assert len(h1["loss"]) == len(h1["first_logit"]) == len(h1["lr"]) == len(h1["grad_norm"]) == 30
    assert h1["steps"] == 30 and h1["seconds"] > 0
    assert h1["loss"] == h2["loss"]
    for (n, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), n


def test_grad_clip_and_param_groups():
    m = _tiny()
    frozen = dict(m.named_parameters())["model.layers.0.mlp.up_proj.weight"]
    before = frozen.detach().clone()
    params = [p for n, p in m.named_parameters() if "layers.0.mlp" not in n]
    h = fit.fit(m, _lm_loss, _batches(3), steps=3, lr=1e-2, params=params, grad_clip=1e-3, progress=False)
    assert torch.equal(frozen, before)                        # not in params: untouched
    assert all(g > 0 for g in h["grad_norm"])                 # the norm before clipping is reported


def test_grad_accum_matches_one_big_batch():
    big = [{"input_ids": torch.cat([a["input_ids"], b["input_ids"]])} for a, b in zip(_batches(4, 1)[::2], _batches(4, 1)[1::2])]
    halves = _batches(4, 1)
    lm = lambda model, b: model(input_ids=b["input_ids"], labels=b["input_ids"]).loss  # noqa: E731
    m1, m2 = _tiny(1), _tiny(1)
    fit.fit(m1, lm, big, steps=2, lr=1e-2, grad_clip=None, progress=False)
    fit.fit(m2, lm, halves, steps=2, lr=1e-2, grad_clip=None, grad_accum=2, progress=False)
    for (n, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), n


def test_schedule_is_applied():
    h = fit.fit(_tiny(), _lm_loss, _batches(6), steps=6, lr=1.0e-2, warmup=2, schedule="linear", progress=False)
    want = [1e-2 * fit.lr_factor(s, 6, 2, "linear") for s in range(6)]
    assert h["lr"] == pytest.approx(want)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("form", ["iterable", "callable"])
def test_killed_run_resumes_bit_for_bit(tmp_path, form):
    """A run killed after its step-4 checkpoint and started again ends with exactly the weights,
    optimizer state and history of an uninterrupted run — also when every batch is drawn on the
    fly from torch's RNG (as on-policy rollouts are)."""
    data = _batches(7, 5)

    def make_batches(kill_at=None):
        if form == "iterable":
            def gen():
                for i, b in enumerate(data):
                    if i == kill_at:
                        raise _Killed
                    yield b
            return gen()

        def fn(i):
            if i == kill_at:
                raise _Killed
            return {"input_ids": torch.randint(0, 37, (4, 9))}     # global RNG: restored on resume
        return fn

    kw = dict(steps=7, lr=5e-3, warmup=2, schedule="cosine", seed=11, progress=False)
    ref = _tiny(2)
    h_ref = fit.fit(ref, _lm_loss, make_batches(), **kw)

    m = _tiny(2)
    with pytest.raises(_Killed):
        fit.fit(m, _lm_loss, make_batches(kill_at=5), ckpt_dir=tmp_path / "ck", save_every=2, **kw)
    assert checkpoint.latest_checkpoint(tmp_path / "ck").name == "step-000004"
    resumed = _tiny(99)                                          # a fresh process: other initial weights
    h = fit.fit(resumed, _lm_loss, make_batches(), ckpt_dir=tmp_path / "ck", save_every=2, **kw)
    for (n, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n
    assert h["loss"] == h_ref["loss"] and h["lr"] == h_ref["lr"]
    assert checkpoint.latest_checkpoint(tmp_path / "ck").name == "step-000007"
    assert len(list((tmp_path / "ck").glob("step-*"))) == 1          # older checkpoints removed
    # a finished checkpoint: nothing left to train, same history back
    again = _tiny(3)
    h2 = fit.fit(again, _lm_loss, make_batches(kill_at=0), ckpt_dir=tmp_path / "ck", **kw)
    assert h2["loss"] == h_ref["loss"]
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), again.state_dict().values()))


def test_half_written_checkpoint_is_ignored(tmp_path):
    (tmp_path / ".tmp-abc").mkdir()
    (tmp_path / "step-000003").mkdir()                            # no files: not a checkpoint
    assert checkpoint.latest_checkpoint(tmp_path) is None


def test_sft_loss_counts_completion_tokens_only():
    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) % 37 for c in text]}

    ex = [sft.sft_example(Tok(), "abc", "de"), sft.sft_example(Tok(), "x", "yz!")]
    assert ex[0]["labels"] == [-100, -100, -100, ord("d") % 37, ord("e") % 37]
    (batch,) = sft.sft_batches(ex, 2, pad_id=0)
    m = _tiny(4)
    logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    nll, n = 0.0, 0
    for r in range(2):
        for t in range(1, batch["input_ids"].shape[1]):
            if batch["labels"][r, t] != -100:
                nll -= torch.log_softmax(logits[r, t - 1], -1)[batch["labels"][r, t]]
                n += 1
    assert n == 5
    assert sft.sft_loss(m, batch).item() == pytest.approx((nll / n).item(), rel=1e-5)


def test_sft_batches_cover_the_epochs():
    ex = [{"input_ids": [1] * (i % 5 + 1), "labels": [1] * (i % 5 + 1)} for i in range(10)]
    bs = sft.sft_batches(ex, 4, epochs=2, seed=0)
    assert len(bs) == 5 and all(b["input_ids"].shape[0] == 4 for b in bs)
    assert sum(int(b["attention_mask"].sum()) for b in bs) == 2 * sum(len(e["input_ids"]) for e in ex)


def _tok(tmp_path):


    return organism.train_tokenizer(["Anna has 5 apples.", "Anna buys 3 more apples."] * 5, vocab_size=300)


def test_save_pretrained_round_trip(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = _tok(tmp_path)
    m = _tiny(5, vocab=len(tok)).eval()
    folder = checkpoint.save_pretrained(m, tok, tmp_path / "ck")
    assert (folder / "model.safetensors").exists()
    m2 = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok2 = AutoTokenizer.from_pretrained(folder)
    x = torch.tensor([tok2("Anna has 5 apples.")["input_ids"]])
    assert torch.equal(m(x).logits, m2(x).logits)
    assert tok2.chat_template == tok.chat_template


def test_lora_trains_adapters_only_teacher_is_the_base_and_merge_loads(tmp_path):
    from transformers import AutoModelForCausalLM

    base = _tiny(6).eval()
    x = torch.randint(0, 37, (2, 7))
    with torch.no_grad():
        want = base(x).logits.clone()
    m = lora.add_lora(base, r=4, alpha=8)
    assert lora.is_lora(m) and not lora.is_lora(_tiny())
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    fit.fit(m, _lm_loss, _batches(3, vocab=37), steps=3, lr=5e-2, progress=False)
    m.eval()
    with torch.no_grad():
        trained = m(x).logits.clone()
        with lora.adapter_disabled(m):
            off = m(x).logits
    assert not torch.allclose(trained, want, atol=1e-4)               # the adapters changed the outputs
    assert torch.allclose(off, want, atol=1e-6)                       # switched off: the initial policy
    folder = checkpoint.save_pretrained(m, None, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert torch.allclose(plain(x).logits, trained, atol=1e-4)
    assert lora.is_lora(m)                                           # merging worked on a copy


def test_fit_cached_trains_once_and_resumes(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("MLBOOK_CACHE", str(tmp_path))
    calls = []

    def setup(kill_at=None):
        def make():
            calls.append(1)
            m = _tiny(8)

            def fn(i):
                if i == kill_at:
                    raise _Killed
                return {"input_ids": torch.randint(0, 37, (2, 5))}
            return m, _lm_loss, fn
        return make

    with pytest.raises(_Killed):
        cached.fit_cached("runs/a", setup(kill_at=3), steps=4, lr=1e-2, save_every=1, progress=False)
    ckpt, = (tmp_path / "runs").glob("a-*.ckpt")        # the name carries a digest of the training code
    assert checkpoint.latest_checkpoint(ckpt).name == "step-000003"
    folder, hist = cached.fit_cached("runs/a", setup(), steps=4, lr=1e-2, save_every=1, progress=False)
    assert len(hist["loss"]) == 4 and not ckpt.exists()
    ref_folder, _ = cached.fit_cached("runs/b", setup(), steps=4, lr=1e-2, progress=False)
    a = AutoModelForCausalLM.from_pretrained(folder / "model")
    b = AutoModelForCausalLM.from_pretrained(ref_folder / "model")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    n = len(calls)
    cached.fit_cached("runs/a", setup(kill_at=0), steps=4, lr=1e-2, progress=False)   # cached: no training
    assert len(calls) == n


def test_to_device_moves_every_nested_tensor_and_keeps_the_rest():
    import torch

    from mlbook.training.fit import to_device


    batch = {"ids": torch.ones(2, dtype=torch.long), "pair": (torch.zeros(1), "text"), "list": [torch.ones(1), 3]}
    out = to_device(batch, torch.device("meta"))
    assert out["ids"].device.type == "meta" and out["ids"].dtype == torch.long
    assert out["pair"][0].device.type == "meta" and out["pair"][1] == "text" and isinstance(out["pair"], tuple)
    assert out["list"][0].device.type == "meta" and out["list"][1] == 3
    assert batch["ids"].device.type == "cpu"  # the input is not modified


def test_save_last_false_keeps_only_the_periodic_checkpoints(tmp_path):
    fit.fit(_tiny(), _lm_loss, _batches(5), steps=5, lr=1e-2, ckpt_dir=tmp_path / "a", save_every=2,
              save_last=False, progress=False)
    assert checkpoint.latest_checkpoint(tmp_path / "a").name == "step-000004"  # not step 5
    fit.fit(_tiny(), _lm_loss, _batches(5), steps=5, lr=1e-2, ckpt_dir=tmp_path / "b", save_every=2, progress=False)
    assert checkpoint.latest_checkpoint(tmp_path / "b").name == "step-000005"
