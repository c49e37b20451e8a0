"""GLUScope: the four sign cases of gated-MLP neurons, and their statistics in one streaming pass.

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
reduce); the tests check that both agree with a brute-force reference.
"""
from __future__ import annotations

import warnings

from .stats import binom_tail, correlation

CASES = ("gate+in+", "gate+in-", "gate-in+", "gate-in-")
SHORT = ("pp", "pm", "mp", "mm")
ACTS = ("post", "in", "gate", "swish")
POST_SIGN = (1, -1, -1, 1)  # sign of post = act(gate) * in in each case (act(g) has the sign of g)
VERSION = 2                 # bump when the statistics change: it is part of the cache key

UDHR_LANGUAGES = ("eng", "deu_1996", "fra", "spa", "tur", "vie", "rus", "arb", "hin", "cmn_hans", "jpn", "kor")
STDLIB_MODULES = ("textwrap", "heapq", "bisect", "fractions", "statistics", "shlex", "difflib", "calendar",
                  "csv", "string", "colorsys", "json.decoder", "json.encoder", "fnmatch", "glob", "pprint")
SHARES = {"udhr": 0.5, "pydoc": 0.25, "code": 0.25}


# --------------------------------------------------------------------------- text
def documents(languages=UDHR_LANGUAGES) -> list[dict]:
    """Real offline text in three registers, as long documents: the UDHR, one document per
    language (``languages=None``: all 500+); Python's documentation topics (``pydoc_data``),
    one document; and Python source code, one document per stdlib module."""
    import importlib.util

    from pydoc_data.topics import topics

    from . import data

    udhr, docs = data.udhr(list(languages) if languages else None), {}
    for lang, text in zip(udhr["lang"], udhr["text"]):
        docs.setdefault(lang, []).append(text)
    out = [{"register": "udhr", "lang": lang, "name": f"UDHR {lang}", "text": "\n".join(t)} for lang, t in docs.items()]
    out.append({"register": "pydoc", "lang": "eng", "name": "pydoc topics",
                "text": "\n\n".join(topics[k] for k in sorted(topics))})
    for mod in STDLIB_MODULES:
        path = importlib.util.find_spec(mod).origin
        out.append({"register": "code", "lang": "python", "name": mod, "text": open(path, encoding="utf-8").read()})
    return out


def corpus(tokenizer, n_tokens: int, seed: int = 0, seq_len: int = 128, shares=None, languages=UDHR_LANGUAGES):
    """A seeded sample of token windows, ``shares`` of ``n_tokens`` per register -> ``datasets.Dataset``.

    Each document is tokenised and cut into windows of at most ``seq_len`` tokens (the
    tokenizer's BOS, if it adds one, opens every window and is not counted).  The seed
    chooses which windows are taken; it does not change the registers' shares.
    Columns: text (index), register, lang, name, input_ids, first (index of the first text token).
    """
    import random

    from datasets import Dataset

    shares = shares or SHARES
    prefix = tokenizer("", add_special_tokens=True)["input_ids"]
    room = seq_len - len(prefix)
    pools: dict[str, list] = {r: [] for r in shares}
    for d in documents(languages):
        if d["register"] not in pools:
            continue
        ids = tokenizer(d["text"], add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), room):
            chunk = ids[start:start + room]
            if len(chunk) >= 8:
                pools[d["register"]].append({**{k: d[k] for k in ("register", "lang", "name")},
                                             "input_ids": prefix + chunk, "first": len(prefix)})
    rng, rows = random.Random(seed), []
    for reg, share in shares.items():
        pool, budget = list(pools[reg]), int(round(share * n_tokens))
        rng.shuffle(pool)
        for w in pool:
            if budget <= 0:
                break
            rows.append(w)
            budget -= len(w["input_ids"]) - w["first"]
    rng.shuffle(rows)
    return Dataset.from_list([{"text": i, **r} for i, r in enumerate(rows)])


# --------------------------------------------------------------------------- weights
def refactor_glu(model, flips=None):
    """Flip ``w_in[n]`` and ``w_out[:, n]`` wherever <w_gate[n], w_in[n]> < 0, in place.

    post' = act(gate) * (-in) and w_out' = -w_out, so every output is unchanged, and
    afterwards cos(w_gate, w_in) >= 0 for every neuron.  Returns the (layers, d_mlp) bool flips;
    ``refactor_glu(model, flips)`` flips exactly those neurons (so it undoes a refactoring).
    """
    import torch

    from . import hooks

    out = []
    with torch.no_grad():
        for layer in range(hooks.n_layers(model)):
            w_gate, w_in, w_out = hooks.mlp_weights(model, layer)
            flip = (w_gate * w_in).sum(1) < 0 if flips is None else flips[layer].to(w_in.device)
            w_in[flip] *= -1
            w_out[:, flip] *= -1
            out.append(flip.cpu())
    return torch.stack(out)


def weight_cosines(model) -> dict:
    """Per neuron (layers, d_mlp): cos(w_gate, w_in) and cos(w_in, w_out)."""
    import torch

    from . import hooks

    cg, co = [], []
    for layer in range(hooks.n_layers(model)):
        w_gate, w_in, w_out = (w.float() for w in hooks.mlp_weights(model, layer))
        cg.append(torch.nn.functional.cosine_similarity(w_gate, w_in, dim=1))
        co.append(torch.nn.functional.cosine_similarity(w_in, w_out.T, dim=1))
    return {"cos_gate_in": torch.stack(cg).cpu(), "cos_in_out": torch.stack(co).cpu()}


# --------------------------------------------------------------------------- one layer
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


# --------------------------------------------------------------------------- running statistics
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


def _batches(windows, batch_size: int, pad_id: int):
    """(text ids, input_ids (B,S), attention_mask (B,S), keep (B,S)) with right padding."""
    import torch

    for start in range(0, len(windows), batch_size):
        rows = windows[start:start + batch_size]
        ids, firsts = rows["input_ids"], rows["first"]
        S = max(map(len, ids))
        x = torch.full((len(ids), S), pad_id, dtype=torch.long)
        mask = torch.zeros(len(ids), S, dtype=torch.long)
        for b, seq in enumerate(ids):
            x[b, :len(seq)] = torch.tensor(seq)
            mask[b, :len(seq)] = 1
        keep = mask.bool() & (torch.arange(S)[None] >= torch.tensor(firsts)[:, None])
        yield rows["text"], x, mask, keep


def _decoder(model):
    """The decoder stack without the LM head: only the MLP activations matter here."""
    return model.get_decoder() if hasattr(model, "get_decoder") else model


def collect(model, windows, batch_size: int = 8, top_k: int = 16, compile: bool = True,
            progress: bool = True) -> NeuronStats:
    """One streaming pass over ``windows`` (a :func:`corpus` Dataset); statistics reduced on the fly."""
    import torch
    from tqdm.auto import tqdm

    from . import hooks

    L, N = hooks.n_layers(model), hooks.mlp_weights(model, 0)[0].shape[0]
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
            for text_ids, x, mask, keep in _batches(windows, batch_size, _pad_id(model)):
                state["keep"] = keep.to(device)
                _decoder(model)(input_ids=x.to(device), attention_mask=mask.to(device))
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

    from . import hooks

    L, N = hooks.n_layers(model), hooks.mlp_weights(model, 0)[0].shape[0]
    device = next(model.parameters()).device
    stats, reduce, act = NeuronStats(L, N, top_k, device), reducer(compile), hooks.act_fn(model)
    sites = ("mlp_gate", "mlp_up", "mlp_post")
    addresses = [hooks.addr(l, s) for l in range(L) for s in sites]
    for text_ids, x, mask, keep in _batches(windows, batch_size, _pad_id(model)):
        _, cache = hooks.run_with_cache(_decoder(model), {"input_ids": x, "attention_mask": mask}, addresses)
        with torch.inference_mode():
            for l in range(L):
                gate, in_, post = (cache[hooks.addr(l, s)] for s in sites)
                stats.update(l, reduce(gate, in_, act(gate), post, keep.to(device)))
        del cache
        stats.merge(text_ids, keep.sum())
    return stats


def _pad_id(model) -> int:
    pad = getattr(model.config, "pad_token_id", None)
    return int(pad) if isinstance(pad, int) else 0


# --------------------------------------------------------------------------- the released table
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


def neuron_stats(model_name: str, model, tokenizer, n_tokens: int, seed: int = 0, seq_len: int = 128,
                 top_k: int = 16, batch_size: int = 8, flips=None, languages=UDHR_LANGUAGES, compile: bool = True,
                 progress: bool = True):
    """``(stats, texts, info)``: the statistics Dataset, the corpus windows and run facts, cached.

    Cached in the mlbook cache under (model, corpus, token count, seed, window length, top_k,
    refactored or not, VERSION).  ``flips``: what :func:`refactor_glu` returned if the model was
    refactored (stored as the column ``flipped``), None if not.  ``info["tokens_per_s"]`` is the
    throughput of the pass that built the entry.
    """
    import json
    import time
    from pathlib import Path

    from datasets import load_from_disk

    from .cache import cached_folder, key_of

    spec = dict(model=model_name, n_tokens=n_tokens, seed=seed, seq_len=seq_len, top_k=top_k, refactor=flips is not None,
                languages=languages, code=STDLIB_MODULES, shares=SHARES, version=VERSION,
                tokenizer=type(tokenizer).__name__, vocab=len(tokenizer))

    def build(folder: Path):
        texts = corpus(tokenizer, n_tokens, seed, seq_len, languages=languages)
        t0 = time.perf_counter()
        stats = collect(model, texts, batch_size, top_k, compile, progress)
        seconds = time.perf_counter() - t0
        ds = to_dataset(stats, weight_cosines(model), flips)
        ds.save_to_disk(str(folder / "stats"))
        texts.save_to_disk(str(folder / "texts"))
        info = {**spec, "tokens": stats.n_tokens, "seconds": seconds, "tokens_per_s": stats.n_tokens / seconds}
        (folder / "info.json").write_text(json.dumps(info, indent=1, default=str))
        return {"spec": spec}

    folder = cached_folder(f"gluscope/{model_name.replace('/', '--')}-{key_of(spec)}", build)
    info = json.loads((folder / "info.json").read_text())
    return load_from_disk(str(folder / "stats")), load_from_disk(str(folder / "texts")), info


# --------------------------------------------------------------------------- the claims' statistics
def summarise(stats, n_perm: int = 199, seed: int = 0) -> dict:
    """Claims 1 and 3 for one statistics table: gate<0 shares (of tokens, and of each neuron's
    sum of |post|), mean case frequencies, and the Spearman / Pearson correlation of
    cos(w_in, w_out) with freq(gate+) over all neurons."""
    import numpy as np

    freq = {c: column(stats, f"{c}_freq").astype(float) for c in SHORT}
    gate_neg, gate_pos = freq["mp"] + freq["mm"], freq["pp"] + freq["pm"]
    # sum of |post| per case = freq * |mean post| (post has one sign per case)
    mass = {c: freq[c] * np.nan_to_num(np.abs(column(stats, f"{c}_post_mean").astype(float))) for c in SHORT}
    neg_mass = (mass["mp"] + mass["mm"]) / np.maximum(sum(mass.values()), 1e-30)
    cos = column(stats, "cos_in_out").astype(float)
    sp, pe = correlation(cos, gate_pos, "spearman", n_perm, seed), correlation(cos, gate_pos, "pearson", 0)
    return {"gate_neg_share_median": float(np.median(gate_neg)), "gate_neg_majority_frac": float((gate_neg > 0.5).mean()),
            "gate_neg_mass_median": float(np.median(neg_mass)),
            **{f"freq_{c}": float(f.mean()) for c, f in freq.items()},
            "spearman": sp["r"], "spearman_p": sp["p_neg"], "pearson": pe["r"]}


def case_contrast(stats, texts, embeddings, cases=("pp", "mm"), n_neurons: int = 200, min_examples: int = 8,
                  n_perm: int = 200, seed: int = 0) -> dict:
    """Do a neuron's ``cases[0]`` and ``cases[1]`` examples fire on different kinds of tokens?

    For each tested neuron (``n_neurons`` drawn with ``seed`` among those with >= ``min_examples``
    examples in both cases) take the token at each example's peak, embed it (``embeddings``:
    (vocab, d)) and compare D = mean cosine within a case - mean cosine across the two cases
    with its permutation null (the case labels shuffled among the pooled examples).
    Also the Jaccard overlap of the two peak-token sets, observed and under the same null.
    (gate+in+ and gate-in- inputs lie on opposite sides of w_gate and w_in, so some difference
    is expected from the geometry alone; the test rules out "the same tokens, weaker".)
    """
    import numpy as np
    import torch

    a, b = cases
    ids, min_examples = texts["input_ids"], max(min_examples, 2)   # a within-case mean needs two examples
    ta, tb = column(stats, f"{a}_top_texts"), column(stats, f"{b}_top_texts")
    pa, pb = column(stats, f"{a}_top_positions"), column(stats, f"{b}_top_positions")
    ok = np.flatnonzero(((ta >= 0).sum(1) >= min_examples) & ((tb >= 0).sum(1) >= min_examples))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(ok, size=min(n_neurons, len(ok)), replace=False)) if len(ok) else ok
    emb = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    rows = []
    for r in chosen:
        toks = [ids[t][p] for t, p in zip(ta[r], pa[r]) if t >= 0] + [ids[t][p] for t, p in zip(tb[r], pb[r]) if t >= 0]
        n1 = int((ta[r] >= 0).sum())
        m = len(toks)
        e = emb[torch.tensor(toks)]
        C = (e @ e.T).double()
        g = torch.Generator().manual_seed(int(seed * 100003 + r))
        order = torch.cat([torch.arange(m)[None], torch.rand(n_perm, m, generator=g).argsort(1)])
        labels = (order < n1).double()       # row 0: the real cases; then shuffled labels, same group sizes
        other, diag = 1 - labels, C.diagonal()
        s1 = ((labels @ C) * labels).sum(1) - labels @ diag
        s2 = ((other @ C) * other).sum(1) - other @ diag
        cross = ((labels @ C) * other).sum(1)
        n2 = m - n1
        d = (s1 / (n1 * (n1 - 1)) + s2 / (n2 * (n2 - 1))) / 2 - cross / (n1 * n2)
        tok = torch.tensor(toks)
        jac = [_jaccard(tok[lab.bool()], tok[~lab.bool()]) for lab in labels[: min(n_perm, 50) + 1]]
        rows.append({"row": int(r), "D": float(d[0]), "p": float((1 + (d[1:] >= d[0]).sum()) / (n_perm + 1)),
                     "jaccard": jac[0], "jaccard_null": float(np.mean(jac[1:])) if n_perm else float("nan")})
    n_sig = sum(x["p"] < 0.05 for x in rows)
    return {"neurons": rows, "n_tested": len(rows), "n_candidates": len(ok),
            "share_significant": n_sig / max(len(rows), 1), "binom_p": binom_tail(n_sig, len(rows), 0.05),
            "mean_D": float(np.mean([x["D"] for x in rows])) if rows else float("nan"),
            "jaccard": float(np.mean([x["jaccard"] for x in rows])) if rows else float("nan"),
            "jaccard_null": float(np.mean([x["jaccard_null"] for x in rows])) if rows else float("nan")}


def _jaccard(x, y) -> float:
    sx, sy = set(x.tolist()), set(y.tolist())
    return len(sx & sy) / max(len(sx | sy), 1)
