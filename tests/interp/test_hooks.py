"""mlbook.hooks against hand-written forward passes.

Tiny random Llama (SmolLM2's layout) and Gemma-3 models are built from configs, so
every identity is checked on both module layouts in a few seconds; two tests load the
real SmolLM2-135M-Instruct (and Gemma-3-270M when mlbook.models can load it).
"""
import math

import pytest
import torch

from mlbook.interp import hooks as H
from mlbook.models import loading as models

ARCHS = ["llama", "gemma"]


def _tiny(arch):
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    common = dict(vocab_size=101, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, initializer_range=0.2)
    torch.manual_seed(0)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    else:  # softcapping on, so logit_lens must apply it
        model = Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=8, sliding_window=4,
                                                   final_logit_softcapping=3.0))
    with torch.no_grad():  # non-trivial norm weights, so forgetting a norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module", params=ARCHS)
def tiny(request):
    return _tiny(request.param)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 101, (2, 7), generator=torch.Generator().manual_seed(1))


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def all_addresses(model):
    return [H.addr(L, s) for L in range(H.n_layers(model)) for s in H.SITES]


def rms_norm(x, norm, gemma):
    """RMSNorm by hand: Llama scales by w, Gemma by (1 + w)."""
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    w = norm.weight + 1 if gemma else norm.weight
    return w * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def act_by_hand(x, gemma):
    if gemma:  # GELU, tanh approximation
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return x * torch.sigmoid(x)  # SiLU


def close(a, b, tol=1e-5):
    return torch.allclose(a, b, atol=tol, rtol=tol)


# -- addresses ------------------------------------------------------------------------

def test_addresses_round_trip_and_errors(tiny):
    assert H.addr(2, "mlp_post") == "blocks.2.mlp_post"
    assert H.parse("blocks.2.mlp_post") == (2, "mlp_post")
    for s in H.SITES:
        assert H.parse(H.addr(0, s)) == (0, s)
    for bad in ["blocks.1.mlp_in", "blocks.x.resid_pre", "1.resid_pre", "blocks.-1.resid_pre"]:
        with pytest.raises(ValueError, match="resid_pre.*mlp_post"):
            H.parse(bad)
    with pytest.raises(ValueError, match=r"layers 0\.\.2.*resid_pre"):
        H.module_for(tiny, "blocks.3.resid_pre")
    with pytest.raises(ValueError):
        H.addr(0, "hook_z")
    with pytest.raises(ValueError, match=r"0\.\.2"):  # the error reaches the user at `with`
        with H.capture(tiny, ["blocks.0.resid_pre", "blocks.9.mlp_out"]):
            pass
    assert not _hooked(tiny)  # and the first, valid hook was removed again


def test_layout_helpers(tiny):
    gemma = "Gemma" in type(tiny).__name__
    assert H.n_layers(tiny) == 3 and len(H.layers(tiny)) == 3
    wg, wi, wo = H.mlp_weights(tiny, 1)
    assert wg.shape == wi.shape == (48, 32) and wo.shape == (32, 48)
    x = torch.randn(5)
    assert close(H.act_fn(tiny)(x), act_by_hand(x, gemma))
    assert H.unembed(tiny).shape == (101, 32)
    module, how = H.module_for(tiny, "blocks.1.attn_out")
    assert how == "output" and module is (H.layers(tiny)[1].post_attention_layernorm if gemma
                                          else H.layers(tiny)[1].self_attn)


# -- reading --------------------------------------------------------------------------

def test_residual_decomposition(tiny, ids):
    out, c = H.run_with_cache(tiny, ids, all_addresses(tiny))
    for L in range(3):
        a = lambda s: c[H.addr(L, s)]
        assert a("resid_pre").shape == (2, 7, 32) and a("mlp_post").shape == (2, 7, 48)
        assert close(a("resid_post"), a("resid_pre") + a("attn_out") + a("mlp_out"))
        if L < 2:
            assert torch.equal(c[H.addr(L + 1, "resid_pre")], a("resid_post"))
    assert not any(t.requires_grad for t in c.values())


def test_mlp_sites_match_hand_written_mlp(tiny, ids):
    gemma = "Gemma" in type(tiny).__name__
    _, c = H.run_with_cache(tiny, ids, all_addresses(tiny))
    for L, layer in enumerate(H.layers(tiny)):
        wg, wi, wo = H.mlp_weights(tiny, L)
        mid = c[H.addr(L, "resid_pre")] + c[H.addr(L, "attn_out")]  # stream between the sublayers
        x = rms_norm(mid, layer.pre_feedforward_layernorm if gemma else layer.post_attention_layernorm, gemma)
        gate, up = x @ wg.T, x @ wi.T
        post = act_by_hand(gate, gemma) * up
        out = post @ wo.T
        if gemma:
            out = rms_norm(out, layer.post_feedforward_layernorm, gemma)
        assert close(c[H.addr(L, "mlp_gate")], gate)
        assert close(c[H.addr(L, "mlp_up")], up)
        assert close(c[H.addr(L, "mlp_post")], post)
        assert close(c[H.addr(L, "mlp_out")], out)


def test_hidden_states_and_logit_lens(tiny, ids):
    out, c = H.run_with_cache(tiny, ids, [H.addr(L, "resid_post") for L in range(3)] + ["blocks.0.resid_pre"],
                              output_hidden_states=True)
    hs = out.hidden_states  # embeddings, layer 0, layer 1, final_norm(layer 2)
    assert torch.equal(hs[0], c["blocks.0.resid_pre"])
    assert close(hs[1], c["blocks.0.resid_post"]) and close(hs[2], c["blocks.1.resid_post"])
    assert close(hs[3], tiny.model.norm(c["blocks.2.resid_post"]))
    assert close(H.logit_lens(tiny, c["blocks.2.resid_post"]), out.logits)
    if "Gemma" in type(tiny).__name__:  # the softcap is really there
        assert out.logits.abs().max() < 3.0


# -- writing --------------------------------------------------------------------------

def test_patch_resid_pre(tiny, ids):
    base = logits_of(tiny, ids)
    _, c = H.run_with_cache(tiny, ids, ["blocks.1.resid_pre"])
    with H.patch(tiny, {"blocks.1.resid_pre": c["blocks.1.resid_pre"]}):
        assert close(logits_of(tiny, ids), base)
    with H.patch(tiny, {"blocks.1.resid_pre": torch.zeros(32)}):
        assert (logits_of(tiny, ids) - base).abs().max() > 1e-2
    with H.patch(tiny, {"blocks.1.resid_pre": lambda act: act * 1.0}):
        assert close(logits_of(tiny, ids), base)


def test_patch_positions_respect_causality(tiny, ids):
    """Patching token 4 of layer 1 changes the logits at tokens >= 4 only."""
    base = logits_of(tiny, ids)
    with H.patch(tiny, {"blocks.1.resid_pre": torch.zeros(32)}, positions=4):
        diff = (logits_of(tiny, ids) - base).abs().amax(dim=(0, 2))
    assert (diff[:4] < 1e-6).all() and (diff[4:] > 1e-3).all()


def test_ablate_neuron_equals_zeroing_down_proj_column(tiny, ids):
    j = [3, 17]
    down = H.layers(tiny)[1].mlp.down_proj
    with H.ablate(tiny, "blocks.1.mlp_post", neurons=j):
        ablated = logits_of(tiny, ids)
    saved = down.weight.detach().clone()
    try:
        with torch.no_grad():
            down.weight[:, j] = 0
        reference = logits_of(tiny, ids)
    finally:
        with torch.no_grad():
            down.weight.copy_(saved)
    assert close(ablated, reference)
    assert (ablated - logits_of(tiny, ids)).abs().max() > 1e-4


def test_mean_ablation_equals_bias(tiny, ids):
    """Mean-ablating neuron j = dropping column j of W_out and adding mean_j * W_out[:, j] as a bias."""
    j, mu = 5, torch.randn(48)
    down = H.layers(tiny)[0].mlp.down_proj
    with H.ablate(tiny, ["blocks.0.mlp_post"], neurons=[j], mode="mean", means=mu):
        ablated = logits_of(tiny, ids)
    saved = down.weight.detach().clone()
    try:
        with torch.no_grad():
            down.bias = torch.nn.Parameter(mu[j] * saved[:, j])
            down.weight[:, j] = 0
        reference = logits_of(tiny, ids)
    finally:
        down.bias = None
        with torch.no_grad():
            down.weight.copy_(saved)
    assert close(ablated, reference)
    # without means: the mean over the batch's tokens, on every neuron
    _, c = H.run_with_cache(tiny, ids, ["blocks.0.mlp_post"])
    with H.ablate(tiny, "blocks.0.mlp_post", mode="mean"):
        a = logits_of(tiny, ids)
    with H.patch(tiny, {"blocks.0.mlp_post": c["blocks.0.mlp_post"].mean(dim=(0, 1))}):
        assert close(a, logits_of(tiny, ids))


def test_scale(tiny, ids):
    base = logits_of(tiny, ids)
    with H.scale(tiny, {H.addr(L, s): 1.0 for L in range(3) for s in H.SITES}):
        assert close(logits_of(tiny, ids), base)
    with H.scale(tiny, {"blocks.2.mlp_gate": 0.0}, neurons=[1, 2]):
        scaled = logits_of(tiny, ids)
    with H.ablate(tiny, "blocks.2.mlp_gate", neurons=torch.tensor([1, 2])):
        assert close(scaled, logits_of(tiny, ids))
    with H.scale(tiny, {"blocks.0.attn_out": 2.0}):
        assert (logits_of(tiny, ids) - base).abs().max() > 1e-3


def test_add_at_last_layer_is_logit_lens_of_shifted_resid(tiny, ids):
    last = "blocks.2.resid_post"
    v = torch.randn(32)
    _, c = H.run_with_cache(tiny, ids, [last])
    with H.add(tiny, {last: v}):
        steered = logits_of(tiny, ids)
    assert close(steered, H.logit_lens(tiny, c[last] + v))
    with H.add(tiny, {last: v}, positions=-1):
        steered = logits_of(tiny, ids)
    base = logits_of(tiny, ids)
    assert close(steered[:, :-1], base[:, :-1])
    assert close(steered[:, -1], H.logit_lens(tiny, c[last][:, -1] + v))


def test_nesting_order_and_cleanup(tiny, ids):
    with H.patch(tiny, {"blocks.0.mlp_up": torch.ones(48)}):
        with H.capture(tiny, ["blocks.0.mlp_up", "blocks.0.mlp_post"]) as c:
            logits_of(tiny, ids)
        with H.add(tiny, {"blocks.0.mlp_up": torch.ones(48)}), H.capture(tiny, "blocks.0.mlp_up") as c2:
            logits_of(tiny, ids)
    assert torch.equal(c["blocks.0.mlp_up"], torch.ones(2, 7, 48))  # capture sees the outer patch
    _, ref = H.run_with_cache(tiny, ids, ["blocks.0.mlp_gate"])
    assert close(c["blocks.0.mlp_post"], act_by_hand(ref["blocks.0.mlp_gate"], "Gemma" in type(tiny).__name__))
    assert torch.equal(c2["blocks.0.mlp_up"], torch.full((2, 7, 48), 2.0))
    assert not _hooked(tiny)


def test_hooks_removed_on_exception(tiny, ids):
    base = logits_of(tiny, ids)
    with pytest.raises(RuntimeError, match="boom"):
        with H.ablate(tiny, all_addresses(tiny)), H.capture(tiny, ["blocks.1.resid_post"]):
            logits_of(tiny, ids)
            assert _hooked(tiny)
            raise RuntimeError("boom")
    assert not _hooked(tiny)
    assert torch.equal(logits_of(tiny, ids), base)


def test_hooked_custom_fn_and_argument_errors(tiny, ids):
    seen = []
    with H.hooked(tiny, {H.addr(L, "resid_pre"): lambda act, L=L: seen.append((L, act.shape)) for L in range(3)}):
        logits_of(tiny, ids)
    assert seen == [(L, (2, 7, 32)) for L in range(3)]  # called once per pass, in layer order, None = keep
    with pytest.raises(ValueError, match="zero.*mean"):
        with H.ablate(tiny, "blocks.0.mlp_post", mode="resample"):
            pass
    with pytest.raises(ValueError, match="address"):
        with H.ablate(tiny, ["blocks.0.mlp_post", "blocks.1.mlp_post"], mode="mean", means=torch.zeros(48)):
            pass
    assert not _hooked(tiny)


def test_capture_with_grad(tiny, ids):
    with H.capture(tiny, "blocks.1.mlp_post", detach=False) as c:
        tiny(input_ids=ids).logits[0, -1, 0].backward()
    assert c["blocks.1.mlp_post"].grad_fn is not None
    tiny.zero_grad(set_to_none=True)


def _hooked(model):
    """Is any mlbook hook left?  (transformers keeps its own output-capturing hooks.)"""
    return any(f.__qualname__.startswith("_register.") for m in model.modules()
               for f in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()])


# -- real checkpoints ------------------------------------------------------------------

def _load(name):


    model, tok = models.load_causal_lm(name)
    return model.eval(), tok


@pytest.fixture(scope="module")
def smollm2():
    return _load("HuggingFaceTB/SmolLM2-135M-Instruct")


def decomposes(c, L):
    """resid_post = resid_pre + attn_out + mlp_out, relative to the stream's size (it reaches 1e5 in Gemma)."""
    s = lambda site: c[H.addr(L, site)]
    err = (s("resid_post") - s("resid_pre") - s("attn_out") - s("mlp_out")).abs().max()
    return err <= 1e-6 * s("resid_post").abs().max()


def test_logit_lens_paris_smollm2(smollm2):
    model, tok = smollm2
    n = H.n_layers(model)
    enc = tok("The capital of France is", return_tensors="pt")
    out, c = H.run_with_cache(model, enc, [H.addr(L, s) for L in range(n) for s in H.SITES])
    paris = tok.encode(" Paris", add_special_tokens=False)
    assert len(paris) == 1
    lens = torch.stack([H.logit_lens(model, c[H.addr(L, "resid_post")][0, -1]) for L in range(n)])
    assert close(lens[-1], out.logits[0, -1], tol=1e-4)
    ranks = (lens > lens[:, paris]).sum(-1)  # rank of " Paris" per layer, 0 = top-1
    assert ranks[-1] == 0
    assert ranks[: n // 3].min() > 10  # far from the answer in the first third of the layers
    assert all(decomposes(c, L) for L in range(n))


def test_residual_identity_gemma3_270m():
    model, tok = _load("google/gemma-3-270m")
    assert H.n_layers(model) == 18 and "GELU" in type(H.act_fn(model)).__name__
    enc = tok("The capital of France is", return_tensors="pt")
    out, c = H.run_with_cache(model, enc, [H.addr(L, s) for L in range(18) for s in H.SITES])
    assert all(decomposes(c, L) for L in range(18))
    assert close(H.logit_lens(model, c["blocks.17.resid_post"]), out.logits, tol=1e-4)
