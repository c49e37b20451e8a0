"""NLKA against direct computations on tiny random Llama and Gemma-3 models (float64): the frozen read-out
is the model's own at the real final residual; layer-level importance equals log p(w | h + v) − log p(w | h)
computed by hand from hooked states; the fast neuron-level path equals the per-neuron definition."""
import pytest
import torch

from mlbook.interp import hooks, nlka
from tests.interp.test_hooks import _tiny


@pytest.fixture(scope="module", params=["llama", "gemma"])
def model(request):
    return _tiny(request.param).double()


PROMPTS = [[5, 17, 33, 8, 21], [9, 4, 60], [70, 71, 72, 73]]


def _by_hand_logp(model, x, s, w):
    """log p(w | x) through the final norm frozen at s, written out for each architecture."""
    with torch.no_grad():
        return _logp(model, x, s, w)


def _logp(model, x, s, w):
    norm = model.model.norm
    g = (1.0 + norm.weight) if "Gemma" in type(norm).__name__ else norm.weight
    z = model.lm_head(g * x / s)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        z = cap * torch.tanh(z / cap)
    return torch.log_softmax(z, -1)[..., w]


def test_frozen_read_out_of_the_final_residual_is_the_model(model):
    st = nlka.last_position_states(model, PROMPTS)
    s = nlka.frozen_scale(model, st["final"])
    mine = torch.log_softmax(nlka.frozen_logits(model, st["final"], s), -1)
    for n, p in enumerate(PROMPTS):
        with torch.no_grad():
            ref = torch.log_softmax(model(input_ids=torch.tensor([p])).logits[0, -1].double(), -1)
        assert torch.allclose(mine[n], ref, atol=1e-9)


def test_states_add_up_to_the_stream(model):
    st = nlka.last_position_states(model, PROMPTS)
    if "Gemma" not in type(model).__name__:          # Gemma's sandwich norms: the sites are what reaches the stream
        nxt = st["resid_pre"][:, 1:]
        assert torch.allclose(st["resid_pre"][:, :-1] + st["attn_out"][:, :-1] + st["mlp_out"][:, :-1], nxt, atol=1e-9)


def test_layer_importance_is_the_definition(model):
    targets = [[3, 11], [7, 7], [50, 1]]
    imp = nlka.layer_importance(model, PROMPTS, targets)
    L = hooks.n_layers(model)
    for n, p in enumerate(PROMPTS):
        addresses = [hooks.addr(l_, s) for l_ in range(L) for s in ("resid_pre", "attn_out", "mlp_out")]
        addresses.append(hooks.addr(L - 1, "resid_post"))
        with torch.no_grad(), hooks.capture(model, addresses) as c:
            model(input_ids=torch.tensor([p]))
        final = c[hooks.addr(L - 1, "resid_post")][0, -1]
        s = (final.pow(2).mean() + model.model.norm.variance_epsilon if hasattr(model.model.norm, "variance_epsilon")
             else final.pow(2).mean() + model.model.norm.eps).sqrt()
        for l_ in range(L):
            h = c[hooks.addr(l_, "resid_pre")][0, -1]
            a = c[hooks.addr(l_, "attn_out")][0, -1]
            m = c[hooks.addr(l_, "mlp_out")][0, -1]
            for j, w in enumerate(targets[n]):
                want_attn = _by_hand_logp(model, h + a, s, w) - _by_hand_logp(model, h, s, w)
                want_ffn = _by_hand_logp(model, h + a + m, s, w) - _by_hand_logp(model, h + a, s, w)
                assert abs(float(imp["attn"][n, l_, j]) - float(want_attn)) < 1e-8
                assert abs(float(imp["ffn"][n, l_, j]) - float(want_ffn)) < 1e-8


def test_neuron_importance_fast_path_is_the_definition(model):
    st = nlka.last_position_states(model, PROMPTS[:1])
    s = nlka.frozen_scale(model, st["final"])[0]
    layer = 1
    h = st["resid_pre"][0, layer] + st["attn_out"][0, layer]
    m = st["mlp_post"][0, layer]
    got = nlka.neuron_importance(model, layer, h, m, s, [3, 40], chunk=7)
    w_down = hooks.mlp_weights(model, layer)[2]
    for i in range(m.shape[0]):
        v = m[i] * w_down[:, i]
        for j, w in enumerate([3, 40]):
            want = _by_hand_logp(model, h + v, s, w) - _by_hand_logp(model, h, s, w)
            assert abs(float(got[i, j]) - float(want)) < 1e-8
    # a neuron's write summed over all neurons is the MLP's output (what the layer level reads)
    if "Gemma" not in type(model).__name__:
        assert torch.allclose((m[None] * w_down).sum(1), st["mlp_out"][0, layer], atol=1e-9)
