"""MEGA-style steering, reconstructed: edit a fact at inference, in the attention outputs of chosen layers.

The paper's map is not public; this is the reconstruction its lineage (SAKE) suggests, built from parts
whose every line is here:

1. **source and target activations**: the attention output ``a_l`` (``attn_out``) at the last token of
   the edit prompt and its fit phrasings (source), and of the same prompts after the counterfactual is
   said once in context ("The capital of Greece is Managua. The capital of Greece is") (target) -- the
   activations the model has when it *believes* the new fact;
2. **a map per edit and layer**: T(a) = a + (μ_t − μ_s) + U (A − I) Uᵀ (a − μ_s), with U the top ``rank``
   principal directions of the source activations and A the least-squares map between the two clouds in
   that subspace (``fit_map``); ``rank=0`` is the difference of means, a steering vector;
3. **a gate**: T is applied only when the prompt is close to the edit -- cosine of MiniLM sentence
   embeddings with the edit prompt ≥ τ (``gate``) -- so that other subjects' prompts run unchanged.

What MEGA adds to SAKE is *where*: the layers whose attention the attribution contrast ranks highest.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from mlbook.interp import hooks, steering
from mlbook.models.embedding import embed

from . import counterfact as cf


@dataclass
class Map:
    """T(a) = a + shift + U (A − I) Uᵀ (a − μ_s); ``U`` None for a pure shift."""

    shift: "object"
    mu: "object" = None
    U: "object" = None
    A: "object" = None

    def __call__(self, a):
        out = a + self.shift.to(a.dtype)
        if self.U is not None:
            U, A, mu = (t.to(a.dtype) for t in (self.U, self.A, self.mu))
            z = (a - mu) @ U
            out = out + (z @ A.T - z) @ U.T
        return out


def fit_map(source, target, rank: int = 0) -> Map:
    """The map from ``source`` (n, d) to ``target`` (n, d) activations of the same prompts: their mean
    difference, plus with ``rank`` > 0 a least-squares linear map in the top-``rank`` principal subspace
    of the source (centred); ``rank`` ≤ n − 1."""
    import torch

    source, target = source.double(), target.double()
    mu_s, mu_t = source.mean(0), target.mean(0)
    if rank <= 0:
        return Map((mu_t - mu_s).float())
    if rank > len(source) - 1:
        raise ValueError(f"rank {rank} needs at least {rank + 1} prompts, got {len(source)}")
    U = torch.linalg.svd(source - mu_s, full_matrices=False).Vh[:rank].T        # (d, r)
    zs, zt = (source - mu_s) @ U, (target - mu_t) @ U
    A = torch.linalg.lstsq(zs, zt).solution.T                                  # zt ≈ zs Aᵀ
    return Map((mu_t - mu_s).float(), mu_s.float(), U.float(), A.float())


def fit(model, tokenizer, edit: dict, layers, rank: int = 0) -> dict:
    """``{layer: Map}`` for one edit: source = the edit prompt and its fit phrasings, target = the same
    after the counterfactual in context; the attention output at the last token of each."""
    src = [edit["prompt"], *edit["fit"]]
    tgt = [f"{edit['context']} {p}" for p in src]
    addresses = [hooks.addr(layer, "attn_out") for layer in layers]
    if rank <= 0:   # the difference of means, exactly as a steering vector is built
        v = steering.mean_difference(model, [cf.encode(tokenizer, t) for t in tgt],
                                     [cf.encode(tokenizer, s) for s in src], addresses)
        return {layer: Map(v[a]) for layer, a in zip(layers, addresses)}
    st = steering.last_states(model, [cf.encode(tokenizer, p) for p in src + tgt], addresses)
    n = len(src)
    return {layer: fit_map(st[a][:n], st[a][n:], rank) for layer, a in zip(layers, addresses)}


@contextmanager
def steered(model, maps: dict, alpha: float = 1.0):
    """Inside the block, every layer's attention output at the *last* position becomes
    a + α (T(a) − a) (batches must be left-padded, ``counterfact.last_logits``)."""
    def make(m):
        def fn(act):
            last = act[:, -1]
            new = act.clone()
            new[:, -1] = last + alpha * (m(last) - last)
            return new
        return fn

    with hooks.hooked(model, {hooks.addr(layer, "attn_out"): make(m) for layer, m in maps.items()}):
        yield


def gate(encoder, enc_tokenizer, anchor: str, prompts: list[str], tau: float):
    """``(passes, cosines)``: which prompts are close enough to the edit prompt ``anchor`` to be steered."""
    e = embed(encoder, enc_tokenizer, [anchor, *prompts])
    cos = (e[1:] @ e[0]).tolist()
    return [c >= tau for c in cos], cos


def choose_tau(pos_cos: list[float], neg_cos: list[float]) -> float:
    """The threshold that best separates prompts that should be steered (``pos_cos``: paraphrases of an edit)
    from those that should not (``neg_cos``: other subjects' prompts): the midpoint between consecutive
    sorted cosines that maximises the balanced accuracy (ties: the lowest such threshold)."""
    import numpy as np

    values = np.unique(np.concatenate([pos_cos, neg_cos]))
    cuts = np.concatenate([[values[0] - 1e-6], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-6]])
    pos, neg = np.asarray(pos_cos), np.asarray(neg_cos)
    acc = [((pos >= c).mean() + (neg < c).mean()) / 2 for c in cuts]
    return float(cuts[int(np.argmax(acc))])


def logits_with(model, tokenizer, prompts: list[str], maps: dict | None, passes: list[bool], alpha: float = 1.0):
    """(len(prompts), vocab): each prompt's next-token logits, steered by ``maps`` where ``passes``."""
    import torch

    ids = [cf.encode(tokenizer, p) for p in prompts]
    on = [i for i, ok in enumerate(passes) if ok and maps]
    off = [i for i in range(len(ids)) if i not in on]
    out = torch.zeros(len(ids), hooks.unembed(model).shape[0])
    if off:
        out[off] = cf.last_logits(model, [ids[i] for i in off])
    if on:
        with steered(model, maps, alpha):
            out[on] = cf.last_logits(model, [ids[i] for i in on])
    return out
