"""The four sign cases of gated-MLP neurons, and their statistics in one streaming pass.

A gated MLP (SwiGLU in Llama/SmolLM2, GeGLU in Gemma) computes, for neuron n and input x,

    gate = w_gate[n] . x     in = w_in[n] . x     swish = act(gate)     post = swish * in

and writes ``post`` along ``w_out[:, n]``.  Both ``gate`` and ``in`` can have either sign, so
every token falls in one of four *cases* per neuron (strict signs; a token where a sign is 0,
and padding, falls in none):

    0 "gate+in+"   1 "gate+in-"   2 "gate-in+"   3 "gate-in-"      (short: pp, pm, mp, mm)

``collect`` streams a corpus through the model once.  Hooks on ``gate_proj``, ``act_fn``,
``up_proj`` and the input of ``down_proj`` hand each layer's (B,S,d_mlp) activations to
:func:`layer_stats`, which reduces them at once to per-(case, neuron) counts, sums, maxima,
minima and per-text candidates for the top-k examples; nothing is stored per token.
``collect_cached`` is the readable TransformerLens-style path (cache every activation, then
reduce); the tests check that both agree with a brute-force reference.  ``to_dataset`` turns the
statistics into one row per neuron (the table GLUScope releases); chapter 1 builds its corpus and
caches the table (``mlbook.chapters.ch01_gluscope``).
"""
from __future__ import annotations

import warnings
from typing import Any, NamedTuple

from mlbook.models.layout import decoder
from mlbook.text.batching import right_pad

from . import hooks
from .hooks import mlp_weights, n_layers

CASES = ("gate+in+", "gate+in-", "gate-in+", "gate-in-")

SHORT = ("pp", "pm", "mp", "mm")

ACTS = ("post", "in", "gate", "swish")

POST_SIGN = (1, -1, -1, 1)  # sign of post = act(gate) * in in each case (act(g) has the sign of g)


def refactor_glu(model, flips=None):
    """Flip ``w_in[n]`` and ``w_out[:, n]`` wherever <w_gate[n], w_in[n]> < 0, in place.

    post' = act(gate) * (-in) and w_out' = -w_out, so every output is unchanged, and
    afterwards cos(w_gate, w_in) >= 0 for every neuron.  Returns the (layers, d_mlp) bool flips;
    ``refactor_glu(model, flips)`` flips exactly those neurons (so it undoes a refactoring).
    """
    import torch

    out = []
    with torch.no_grad():
        for layer in range(n_layers(model)):
            w_gate, w_in, w_out = mlp_weights(model, layer)
            flip = (w_gate * w_in).sum(1) < 0 if flips is None else flips[layer].to(w_in.device)
            w_in[flip] *= -1
            w_out[:, flip] *= -1
            out.append(flip.cpu())
    return torch.stack(out)


def weight_cosines(model) -> dict:
    """Per neuron (layers, d_mlp): cos(w_gate, w_in) and cos(w_in, w_out)."""
    import torch

    cg, co = [], []
    for layer in range(n_layers(model)):
        w_gate, w_in, w_out = (w.float() for w in mlp_weights(model, layer))
        cg.append(torch.nn.functional.cosine_similarity(w_gate, w_in, dim=1))
        co.append(torch.nn.functional.cosine_similarity(w_in, w_out.T, dim=1))
    return {"cos_gate_in": torch.stack(cg).cpu(), "cos_in_out": torch.stack(co).cpu()}


def case_index(gate, in_):
    """0..3 = gate+in+, gate+in-, gate-in+, gate-in- (bit 1: gate < 0, bit 0: in < 0); -1 where a sign is 0."""
    case = (gate < 0).long() * 2 + (in_ < 0).long()
    return case.masked_fill((gate == 0) | (in_ == 0), -1)


def layer_stats(gate, in_, swish, post, keep):
    """Reduce one layer's activations (B,S,N) over the tokens where ``keep`` (B,S) is set.

    Returns count (4,N); sum, max, min (4 cases, 4 acts, N); and, per text, the largest
    |post| of each case with its position: cand (4,B,N), cand_pos (4,B,N) (0 = no token).
    Written as plain masked reductions (the equations); ``torch.compile`` fuses them into
    one loop over the activations.
    """
    import torch

    keep = keep[..., None]
    g_pos, g_neg = (gate > 0) & keep, (gate < 0) & keep
    i_pos, i_neg = in_ > 0, in_ < 0
    count, sums, maxs, mins, cand, cand_pos = [], [], [], [], [], []
    for m in (g_pos & i_pos, g_pos & i_neg, g_neg & i_pos, g_neg & i_neg):
        count.append(m.sum((0, 1)))
        for v in (post, in_, gate, swish):
            sums.append(torch.where(m, v, 0.0).sum((0, 1)))
            maxs.append(torch.where(m, v, -torch.inf).amax((0, 1)))
            mins.append(torch.where(m, v, torch.inf).amin((0, 1)))
        best = torch.where(m, post.abs(), 0.0).max(1)       # per text: (B,N) values and positions
        cand.append(best.values)
        cand_pos.append(best.indices)
    n = gate.shape[-1]
    return (torch.stack(count), torch.stack(sums).view(4, 4, n), torch.stack(maxs).view(4, 4, n),
            torch.stack(mins).view(4, 4, n), torch.stack(cand), torch.stack(cand_pos))


_COMPILED = {}


def reducer(compile: bool = True):
    """``layer_stats``, compiled once per process (dynamic shapes) when ``compile``; eager otherwise."""
    if not compile:
        return layer_stats
    if "fn" not in _COMPILED:
        import torch

        _COMPILED["fn"] = torch.compile(layer_stats, dynamic=True)
    fn = _COMPILED["fn"]

    def safe(*args):
        try:
            return fn(*args)
        except Exception as e:  # no C++ compiler / triton: fall back, once, loudly
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); using the eager reducer")
            _COMPILED["fn"] = layer_stats
            return layer_stats(*args)
    return safe


class NeuronStats:
    """Running per-(layer, case, neuron) statistics and top-k examples; memory O(L*N*k), not O(tokens)."""

    def __init__(self, n_layers: int, d_mlp: int, top_k: int = 16, device="cpu"):
        import torch

        L, N, K, kw = n_layers, d_mlp, top_k, {"device": device}
        self.top_k, self.n_tokens = K, 0
        self.count = torch.zeros(L, 4, N, dtype=torch.long, **kw)
        self.sum = torch.zeros(L, 4, 4, N, dtype=torch.float64, **kw)
        self.max = torch.full((L, 4, 4, N), -torch.inf, **kw)
        self.min = torch.full((L, 4, 4, N), torch.inf, **kw)
        # the top-k, best first along the last dim (L,4,N,K): |post| (0 = empty slot), text, position
        self.top_val = torch.zeros(L, 4, N, K, **kw)
        self.top_text = torch.full((L, 4, N, K), -1, dtype=torch.long, **kw)
        self.top_pos = torch.zeros(L, 4, N, K, dtype=torch.long, **kw)
        self._cand = [None] * L

    def update(self, layer: int, stats) -> None:
        """Add one layer's :func:`layer_stats` of a batch; its top-k candidates wait for :meth:`merge`."""
        count, sums, maxs, mins, cand, cand_pos = stats
        self.count[layer] += count
        self.sum[layer] += sums.double()
        self.max[layer] = self.max[layer].maximum(maxs)
        self.min[layer] = self.min[layer].minimum(mins)
        self._cand[layer] = (cand, cand_pos)

    def merge(self, text_ids, n_tokens: int) -> None:
        """Fold the batch's per-text candidates into the top-k, for all layers x cases x neurons at once.

        Only the (layer, case, neuron) columns where a candidate beats the current k-th value
        are touched; for those, the new top-k is the first k of a stable sort of (kept k) ++
        (candidates), so equal values keep the earlier text whatever the batch size.
        """
        import torch

        K = self.top_k
        cand = torch.stack([c for c, _ in self._cand]).transpose(2, 3)    # (L,4,N,B)
        pos = torch.stack([p for _, p in self._cand]).transpose(2, 3)
        self._cand = [None] * len(self._cand)
        self.n_tokens += int(n_tokens)
        cols = (cand > self.top_val[..., -1:]).any(-1).flatten().nonzero().squeeze(1)   # active columns
        if len(cols) == 0:
            return
        B = cand.shape[-1]
        texts = torch.as_tensor(text_ids, dtype=torch.long, device=cand.device).expand(len(cols), B)
        flat = lambda t, k: t.reshape(-1, k)[cols]  # noqa: E731
        val = torch.cat([flat(self.top_val, K), flat(cand, B)], 1)                     # (M, K+B)
        order = val.sort(dim=1, descending=True, stable=True).indices[:, :K]
        new_val = val.gather(1, order)
        new_text = torch.cat([flat(self.top_text, K), texts], 1).gather(1, order).masked_fill(new_val == 0, -1)
        new_pos = torch.cat([flat(self.top_pos, K), flat(pos, B)], 1).gather(1, order)
        for buf, new in ((self.top_val, new_val), (self.top_text, new_text), (self.top_pos, new_pos)):
            buf.view(-1, K)[cols] = new

    def summary(self) -> dict:
        """freq (L,4,N); mean/max/min (L,4,4,N) (NaN for an empty case); top_* (L,4,K,N), values signed; on the CPU."""
        return (self if self.count.device.type == "cpu" else self.cpu())._summary()

    def cpu(self) -> "NeuronStats":
        new = object.__new__(NeuronStats)
        new.__dict__.update({k: v.cpu() if hasattr(v, "cpu") else v for k, v in self.__dict__.items()})
        return new

    def _summary(self) -> dict:
        import torch

        n = self.count.double().clamp(min=1)
        empty = (self.count == 0)[:, :, None, :]
        sign = torch.tensor(POST_SIGN, dtype=torch.float32).view(1, 4, 1, 1)             # (L,4,N,K) below
        return {"count": self.count, "freq": self.count.double() / max(self.n_tokens, 1),
                "mean": (self.sum / n[:, :, None, :]).float().masked_fill(empty, torch.nan),
                "max": self.max.masked_fill(empty, torch.nan), "min": self.min.masked_fill(empty, torch.nan),
                "top_values": torch.where(self.top_text >= 0, self.top_val * sign, torch.nan).transpose(2, 3),
                "top_texts": self.top_text.transpose(2, 3),
                "top_positions": self.top_pos.masked_fill(self.top_text < 0, -1).transpose(2, 3)}


class WindowBatch(NamedTuple):
    """A batch of corpus windows: their text ids, ``input_ids`` and ``attention_mask`` (B, S), right-padded, and
    ``keep`` (B, S): the text tokens (not the padding, not a window's leading BOS)."""

    text_ids: Any
    input_ids: Any
    attention_mask: Any
    keep: Any


def windows_batches(windows, batch_size: int, pad_id: int):
    """``WindowBatch`` after ``WindowBatch`` over ``windows`` (a corpus ``Dataset``), right-padded."""
    import torch

    for start in range(0, len(windows), batch_size):
        rows = windows[start:start + batch_size]
        x, mask = right_pad(rows["input_ids"], pad_id)
        keep = mask.bool() & (torch.arange(x.shape[1])[None] >= torch.tensor(rows["first"])[:, None])
        yield WindowBatch(rows["text"], x, mask, keep)


def collect(model, windows, batch_size: int = 8, top_k: int = 16, compile: bool = True,
            progress: bool = True) -> NeuronStats:
    """One streaming pass over ``windows`` (a :func:`corpus` Dataset); statistics reduced on the fly."""
    import torch
    from tqdm.auto import tqdm

    L, N = n_layers(model), mlp_weights(model, 0)[0].shape[0]
    device = next(model.parameters()).device
    stats, reduce = NeuronStats(L, N, top_k, device), reducer(compile)
    stash, handles, state = [dict() for _ in range(L)], [], {}

    def keep_output(layer, key):
        def hook(mod, args, out):
            stash[layer][key] = out
        return hook

    def reduce_layer(layer):
        def hook(mod, args):
            s = stash[layer]
            stats.update(layer, reduce(s["gate"], s["in"], s["swish"], args[0], state["keep"]))
            s.clear()
        return hook

    for layer, block in enumerate(hooks.layers(model)):
        mlp = block.mlp
        handles += [mlp.gate_proj.register_forward_hook(keep_output(layer, "gate")),
                    mlp.act_fn.register_forward_hook(keep_output(layer, "swish")),
                    mlp.up_proj.register_forward_hook(keep_output(layer, "in")),
                    mlp.down_proj.register_forward_pre_hook(reduce_layer(layer))]
    n_total = sum(len(x) - f for x, f in zip(windows["input_ids"], windows["first"]))
    bar = tqdm(total=n_total, unit="tok", disable=not progress, desc="statistics pass")
    try:
        with torch.inference_mode():
            for text_ids, x, mask, keep in windows_batches(windows, batch_size, pad_id(model)):
                state["keep"] = keep.to(device)
                decoder(model)(input_ids=x.to(device), attention_mask=mask.to(device))
                stats.merge(text_ids, keep.sum())
                bar.update(int(keep.sum()))
    finally:
        for h in handles:
            h.remove()
        bar.close()
    return stats


def collect_cached(model, windows, batch_size: int = 8, top_k: int = 16, compile: bool = False) -> NeuronStats:
    """The same statistics the TransformerLens way: cache gate, in and post of every layer, then reduce."""
    import torch

    L, N = n_layers(model), mlp_weights(model, 0)[0].shape[0]
    device = next(model.parameters()).device
    stats, reduce, act = NeuronStats(L, N, top_k, device), reducer(compile), hooks.act_fn(model)
    sites = ("mlp_gate", "mlp_up", "mlp_post")
    addresses = [hooks.addr(l, s) for l in range(L) for s in sites]
    for text_ids, x, mask, keep in windows_batches(windows, batch_size, pad_id(model)):
        _, cache = hooks.run_with_cache(decoder(model), {"input_ids": x, "attention_mask": mask}, addresses)
        with torch.inference_mode():
            for l in range(L):
                gate, in_, post = (cache[hooks.addr(l, s)] for s in sites)
                stats.update(l, reduce(gate, in_, act(gate), post, keep.to(device)))
        del cache
        stats.merge(text_ids, keep.sum())
    return stats


def pad_id(model) -> int:
    pad = getattr(model.config, "pad_token_id", None)
    return int(pad) if isinstance(pad, int) else 0


def to_dataset(stats: NeuronStats, cosines: dict | None = None, flips=None):
    """One row per neuron, like the paper's release: layer, neuron, n_tokens, [flipped, cos_*],
    and per case c in pp/pm/mp/mm: c_freq, c_count, c_{act}_{mean,max,min}, c_top_{values,texts,positions}."""
    import numpy as np
    import pyarrow as pa
    from datasets import Dataset

    s = stats.summary()
    L, _, N = s["count"].shape
    flat = lambda t: t.reshape(L * N, *t.shape[2:]).numpy()             # (L,N,...) -> (L*N,...)  # noqa: E731
    cols = {"layer": np.repeat(np.arange(L), N), "neuron": np.tile(np.arange(N), L),
            "n_tokens": np.full(L * N, stats.n_tokens)}
    if flips is not None:
        cols["flipped"] = flat(flips)
    for k, v in (cosines or {}).items():
        cols[k] = flat(v)
    for c, short in enumerate(SHORT):
        cols[f"{short}_freq"] = flat(s["freq"][:, c])
        cols[f"{short}_count"] = flat(s["count"][:, c])
        for a, act in enumerate(ACTS):
            for stat in ("mean", "max", "min"):
                cols[f"{short}_{act}_{stat}"] = flat(s[stat][:, c, a])
        for key in ("top_values", "top_texts", "top_positions"):
            cols[f"{short}_{key}"] = flat(s[key][:, c].transpose(1, 2).contiguous())   # (L*N, K)
    arrow = {k: pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), v.shape[1]) if v.ndim > 1 else pa.array(v)
             for k, v in cols.items()}
    return Dataset(pa.table(arrow))


def column(table, name: str):
    """A column of a statistics table as a numpy array, (rows,) or (rows, k); fast for a Dataset."""
    import numpy as np

    if hasattr(table, "data") and getattr(table, "_indices", None) is None:
        col = table.data.column(name).combine_chunks()
        if hasattr(col.type, "list_size"):
            return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        return col.to_numpy(zero_copy_only=False)
    return np.asarray(table[name])
