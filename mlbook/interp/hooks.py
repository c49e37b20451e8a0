"""Read, patch, ablate and steer the activations of a Hugging Face causal LM.

Every activation has an *address* ``"blocks.{layer}.{site}"`` (as in TransformerLens),
so the interpretability chapters speak one language across models.  Sites of layer L,
for B sequences of T tokens (d = d_model, d_mlp = the MLP width):

- ``resid_pre`` (B,T,d): the residual stream entering layer L; ``resid_post``: leaving it.
- ``attn_out`` (B,T,d): what attention *adds* to the stream; ``mlp_out``: what the MLP
  adds.  On Gemma-3 both are taken after the sublayer's output norm
  (``post_attention_layernorm``, ``post_feedforward_layernorm``), because that is what
  reaches the stream.
- ``attn_z`` (B,T,H·d_head): the heads' outputs side by side, before attention's output
  projection ``o_proj`` (TransformerLens's ``hook_z``, flattened).  ``split_heads`` makes it
  (B,T,H,d_head); ``head_writes`` gives each head's write ``z_h W_O[:, h]ᵀ`` (B,T,H,d),
  which sum over heads (plus any o_proj bias) to ``o_proj``'s output -- ``attn_out`` on
  Llama, the input of the output norm on Gemma-3.
- ``mlp_gate`` (B,T,d_mlp): ``gate_proj(x)``, before the activation; ``mlp_up``:
  ``up_proj(x)``, the "in" activation; ``mlp_post``: ``act(gate) * up``, the input of
  ``down_proj`` -- the "neurons" of a gated MLP.

so ``resid_post[L] = resid_pre[L] + attn_out[L] + mlp_out[L]`` and
``resid_pre[L+1] = resid_post[L]`` (unless something is patched in between).

Everything rests on one mechanism, ``hooked``: a PyTorch hook on the module that
produces the activation calls ``fn(act)`` and uses what it returns instead (None
keeps ``act``).  ``capture``, ``patch``, ``ablate``, ``scale`` and ``add`` only differ
in their ``fn``.  They nest; their hooks run in the order the ``with`` blocks were
entered (an inner ``capture`` sees an outer ``patch``); they are removed on exit, also
when an exception escapes.  ``output_hidden_states=True`` is recorded by transformers'
own hooks, which may run before ours: read patched states with ``capture``.

Supported layouts: Llama-style (SmolLM2, Llama, Qwen2, Mistral: ``model.model.layers``)
and Gemma-3 (text ``Gemma3ForCausalLM`` and the language model inside
``Gemma3ForConditionalGeneration``), whose layers carry the extra "sandwich" norms.
"""
from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from contextlib import contextmanager

from mlbook.models.layout import decoder_stack, soft_cap, softcapping

SITES = ("resid_pre", "attn_out", "mlp_out", "resid_post", "attn_z", "mlp_gate", "mlp_up", "mlp_post")
_ADDRESS = re.compile(r"blocks\.(\d+)\.(\w+)")
_FORMAT = "an address is 'blocks.{layer}.{site}'"


# -- addresses ----------------------------------------------------------------------

def addr(layer: int, site: str) -> str:
    """``addr(3, "mlp_post") == "blocks.3.mlp_post"``."""
    layer = operator.index(layer)
    if layer < 0 or site not in SITES:
        raise ValueError(f"bad address ({layer}, {site!r}): layer must be >= 0 and site one of {SITES}")
    return f"blocks.{layer}.{site}"


def parse(address: str) -> tuple[int, str]:
    """``"blocks.3.mlp_post" -> (3, "mlp_post")``; ValueError for anything else."""
    m = _ADDRESS.fullmatch(address) if isinstance(address, str) else None
    if m is None or m.group(2) not in SITES:
        raise ValueError(f"bad address {address!r}: {_FORMAT}, layer an integer >= 0, site one of {SITES}")
    return int(m.group(1)), m.group(2)


def _as_list(addresses) -> list[str]:
    return [addresses] if isinstance(addresses, str) else list(addresses)


# -- where the modules are ----------------------------------------------------------

def layers(model) -> list:
    """The decoder layer modules, in order."""
    return list(decoder_stack(model).layers)


def n_layers(model) -> int:
    return len(decoder_stack(model).layers)


def _sandwich(layer) -> bool:
    """Gemma-2/3 layers normalise each sublayer's output before adding it to the stream."""
    return hasattr(layer, "post_feedforward_layernorm")


def module_for(model, address: str):
    """``(module, how)``: the module whose hook sees the activation at ``address``.

    ``how == "output"``: the activation is the module's output (``output[0]`` if it
    returns a tuple, as attention does); ``how == "input"``: it is the module's first
    input (a forward pre-hook), used for ``resid_pre``, ``attn_z`` (input of o_proj) and
    ``mlp_post`` (input of down_proj).
    """
    layer, site = parse(address)
    n = n_layers(model)
    if layer >= n:
        raise ValueError(f"bad address {address!r}: this model has layers 0..{n - 1}; sites are {SITES}")
    block = decoder_stack(model).layers[layer]
    sandwich = _sandwich(block)
    module, how = {
        "resid_pre": (block, "input"),
        "resid_post": (block, "output"),
        "attn_out": (block.post_attention_layernorm if sandwich else block.self_attn, "output"),
        "mlp_out": (block.post_feedforward_layernorm if sandwich else block.mlp, "output"),
        "attn_z": (block.self_attn.o_proj, "input"),
        "mlp_gate": (getattr(block.mlp, "gate_proj", None), "output"),
        "mlp_up": (getattr(block.mlp, "up_proj", None), "output"),
        "mlp_post": (getattr(block.mlp, "down_proj", None), "input"),
    }[site]
    if module is None:
        raise TypeError(f"{address}: the MLP of {type(block).__name__} is not gated (no gate/up/down_proj)")
    return module, how


# -- the one mechanism: fn(act) -> new act or None ------------------------------------

def _register(model, address: str, fn):
    """Hook ``fn`` on the module of ``address``; returns the handle."""
    module, how = module_for(model, address)
    if how == "output":
        def hook(mod, args, out):
            # decoder layers return a tensor in transformers 5, attention a tuple
            act = out[0] if isinstance(out, tuple) else out
            new = fn(act)
            if new is None or new is act:
                return None
            return (new, *out[1:]) if isinstance(out, tuple) else new
        return module.register_forward_hook(hook)

    def pre_hook(mod, args, kwargs):
        act = args[0] if args else kwargs["hidden_states"]
        new = fn(act)
        if new is None or new is act:
            return None
        if args:
            return (new, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": new}
    return module.register_forward_pre_hook(pre_hook, with_kwargs=True)


@contextmanager
def hooked(model, fns: Mapping):
    """Run ``fns[address](act)`` at each address during forward passes in the block.

    ``fn`` returns a replacement tensor of the same shape, or None to leave ``act``.
    The building block of everything below; use it directly for custom interventions.
    """
    handles = []
    try:
        for address, fn in fns.items():
            handles.append(_register(model, address, fn))
        yield
    finally:
        for h in handles:
            h.remove()


def _mask(act, positions=None, neurons=None):
    """Boolean mask broadcastable to ``act`` (B,T,D): True at ``positions`` (on T) x ``neurons`` (on D)."""
    import torch

    def flags(n, index):  # index: int, list, slice or tensor; -1 is the last token / neuron
        f = torch.zeros(n, dtype=torch.bool, device=act.device)
        f[index.to(act.device) if isinstance(index, torch.Tensor) else index] = True
        return f

    mask = torch.ones((), dtype=torch.bool, device=act.device)
    if positions is not None:
        mask = flags(act.shape[-2], positions)[:, None]
    if neurons is not None:
        mask = mask & flags(act.shape[-1], neurons)
    return mask


def _like(x, act):
    """A number or tensor as a tensor on ``act``'s device and dtype."""
    import torch
    return torch.as_tensor(x).to(act.device, act.dtype)


def _edit(act, new, positions=None, neurons=None):
    """``new`` where the mask is set, ``act`` elsewhere (``new`` is broadcast to ``act``)."""
    import torch

    new = _like(new, act)
    if positions is None and neurons is None:
        return torch.broadcast_to(new, act.shape).contiguous()
    return torch.where(_mask(act, positions, neurons), new, act)


# -- reading --------------------------------------------------------------------------

@contextmanager
def capture(model, addresses, detach: bool = True):
    """Yield a dict ``address -> activation``, filled by the forward passes inside the block.

    Tensors are detached copies on the device where they were computed (the last pass
    wins, e.g. the last step of ``generate``).  ``detach=False`` keeps them in the
    autograd graph (for gradient x activation attributions).
    """
    addresses = _as_list(addresses)
    cache: dict = {}

    def saver(address):
        def fn(act):
            cache[address] = act.detach().clone() if detach else act
        return fn

    with hooked(model, {a: saver(a) for a in addresses}):
        yield cache


def _device(model):
    device = getattr(model, "device", None)
    return device if device is not None else next(model.parameters()).device


def run_with_cache(model, inputs, addresses, **kwargs):
    """One no-grad forward pass; returns ``(outputs, cache)``.

    ``inputs``: a tokenizer's output (dict / BatchEncoding) or a (B,T) tensor of ids,
    moved to the model's device.  ``kwargs`` go to ``model(...)``.
    """
    import torch

    if not isinstance(inputs, Mapping):
        inputs = {"input_ids": inputs}
    device = _device(model)
    inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    with torch.no_grad(), capture(model, addresses) as cache:
        outputs = model(**inputs, **kwargs)
    return outputs, cache


# -- writing --------------------------------------------------------------------------

@contextmanager
def patch(model, values: Mapping, positions=None):
    """Replace activations: ``{address: tensor}`` (broadcast to the activation, e.g. a
    cached (B,T,d) run or a (d,) vector) or ``{address: fn}`` with ``fn(act) -> new act``.
    ``positions`` (indices on T) restricts a tensor or fn's result to those tokens.
    """
    def make(v):
        def fn(act):
            new = v(act) if callable(v) else v
            return None if new is None else _edit(act, new, positions)
        return fn

    with hooked(model, {a: make(v) for a, v in values.items()}):
        yield


@contextmanager
def ablate(model, addresses, neurons=None, mode: str = "zero", means=None, positions=None):
    """Set activations (or only ``neurons``, indices on the last dim) to zero or to a mean.

    ``mode="mean"``: ``means`` is ``{address: tensor}`` (or one tensor for one address),
    broadcast to the activation, typically the (d,) mean over a reference corpus;
    without ``means``, the mean over batch and tokens of the current pass is used
    (padding included: pass ``means`` when the batch is padded).
    """
    import torch

    if mode not in ("zero", "mean"):
        raise ValueError(f"ablate mode must be 'zero' or 'mean', not {mode!r}")
    addresses = _as_list(addresses)
    if means is not None and not isinstance(means, Mapping):
        if len(addresses) != 1:
            raise ValueError("pass means as {address: tensor} when ablating several addresses")
        means = {addresses[0]: means}

    def make(address):
        def fn(act):
            if mode == "zero":
                new = torch.zeros((), dtype=act.dtype, device=act.device)
            elif means is None:
                new = act.mean(dim=tuple(range(act.dim() - 1)))  # (D,)
            else:
                new = means[address]
            return _edit(act, new, positions, neurons)
        return fn

    with hooked(model, {a: make(a) for a in addresses}):
        yield


@contextmanager
def scale(model, factors: Mapping, neurons=None, positions=None):
    """Multiply activations (or only ``neurons``) by ``{address: factor}`` (a number or
    a tensor broadcastable to the activation)."""
    def make(f):
        return lambda act: _edit(act, act * _like(f, act), positions, neurons)

    with hooked(model, {a: make(f) for a, f in factors.items()}):
        yield


@contextmanager
def add(model, vectors: Mapping, positions=None):
    """Steering: add ``{address: vector}`` (a (d,) vector or anything broadcastable) to
    the activation, at every token or only at ``positions`` (e.g. ``-1``)."""
    def make(v):
        return lambda act: _edit(act, act + _like(v, act), positions)

    with hooked(model, {a: make(v) for a, v in vectors.items()}):
        yield


# -- weights and the logit lens -------------------------------------------------------

def logit_lens(model, resid):
    """Read a residual vector (..., d) as the model reads its last one: final norm,
    unembedding and, if configured (Gemma), the final logit softcapping -> (..., vocab).

    ``logit_lens(model, resid_post[last layer])`` equals the model's logits.
    """
    norm, head = decoder_stack(model).norm, model.get_output_embeddings()
    return soft_cap(head(norm(resid.to(head.weight.device, head.weight.dtype))), softcapping(model))


def n_heads(model) -> int:
    """Attention heads per layer (query heads; grouped keys/values do not change ``attn_z``)."""
    return layers(model)[0].self_attn.config.num_attention_heads


def split_heads(model, z):
    """``attn_z`` (..., H·d_head) -> (..., H, d_head)."""
    h = n_heads(model)
    return z.unflatten(-1, (h, z.shape[-1] // h))


def head_writes(model, layer: int, z):
    """Each head's write into the stream, ``z_h W_O[:, h]ᵀ`` -> (..., H, d), from ``attn_z`` (..., H·d_head).

    Their sum over heads plus o_proj's bias (if any) is o_proj's output.  On Gemma-3 that
    output still passes the nonlinear ``post_attention_layernorm`` before reaching the stream.
    """
    w_o = layers(model)[layer].self_attn.o_proj.weight          # (d, H·d_head)
    zh = split_heads(model, z)                                   # (..., H, d_head)
    w = w_o.unflatten(1, (zh.shape[-2], zh.shape[-1]))           # (d, H, d_head)
    import torch
    return torch.einsum("...hk,dhk->...hd", zh.to(w.dtype), w)


def mlp_weights(model, layer: int):
    """``(w_gate (d_mlp,d), w_in (d_mlp,d), w_out (d,d_mlp))`` of layer ``layer``'s MLP:
    ``mlp(x) = w_out @ (act(w_gate @ x) * (w_in @ x))``.  Views of the live weights."""
    mlp = layers(model)[layer].mlp
    return mlp.gate_proj.weight.detach(), mlp.up_proj.weight.detach(), mlp.down_proj.weight.detach()


def act_fn(model):
    """The MLP's activation function (SiLU for Llama, GELU-tanh for Gemma-3)."""
    return layers(model)[0].mlp.act_fn


def unembed(model):
    """The (vocab, d) unembedding matrix (``lm_head.weight``; tied to the embedding in
    SmolLM2 and Gemma-3, where the embedding is scaled by sqrt(d) only on the way in)."""
    return model.get_output_embeddings().weight.detach()
