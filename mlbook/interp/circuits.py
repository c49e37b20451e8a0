"""Circuits as edges between components: EAP-IG scores and edge-patched runs.

The residual stream is a sum.  Every component *writes* into it (a sender) and later components
*read* the sum (receivers), so the input of a receiver v is the sum of the senders before it,
``x_v = Σ_{u before v} z_u``.  An *edge* u → v is the part ``z_u`` of ``x_v``.  Senders and
receivers of a Llama-style model with L layers of H heads (``Graph``):

- senders:   ``embed`` (the token embeddings), ``head l.h`` (its write ``z_h W_O[:, h]ᵀ``), ``mlp l``;
- receivers: ``attn l`` (the input of layer l's attention norm: all its heads read it), ``mlp l``
  (the input of the MLP's norm), ``logits`` (the input of the final norm).

With a clean input (activations ``z``) and a corrupted one (``z'``) and a metric ``L`` of the logits,
**EAP-IG** (Hanna et al. 2024) scores every edge at once:

    s(u → v) = (z_u − z'_u) · (1/m) Σ_{k=1..m} ∂L/∂x_v |_{e' + (k/m)(e − e')}

the gradients taken along the straight path from the corrupted to the clean input embeddings
(``e'`` to ``e``), summed over positions and averaged over the items.  ``m = 1`` takes the
gradient at the clean run: edge attribution patching (EAP, Syed et al. 2023).  ``s(u → v)``
estimates ``L(clean) − L(clean with that one edge corrupted)``.

A **circuit** C is a set of edges; running it (``circuit_metric``) feeds the clean input and, at
every receiver, swaps the edges outside C for their corrupted values:

    x_v ← x_v − Σ_{u → v ∉ C} (z_u − z'_u)      (z_u from this run, z'_u from the corrupted run)

so the full graph is the clean run and the empty circuit is the corrupted run.  Faithfulness is
``(L(C) − L(∅)) / (L(G) − L(∅))``.  Attention patterns are not frozen: a corrupted edge into
``attn l`` changes that layer's queries, keys and values alike.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from mlbook.models.layout import decoder_stack

from . import gradients, hooks


@dataclass(frozen=True)
class Graph:
    """The senders and receivers of a model and which edges exist (``valid[s, r]``: s writes before r reads)."""

    n_layers: int
    n_heads: int

    @classmethod
    def of(cls, model) -> Graph:
        if hooks._sandwich(hooks.layers(model)[0]):
            raise NotImplementedError("circuits: Gemma-style sandwich norms are not supported (a sender's write passes "
                                      "a nonlinear output norm before it reaches the stream); use a Llama-style model")
        return cls(hooks.n_layers(model), hooks.n_heads(model))

    # senders: 0 = embed, then per layer its H heads and its MLP
    @property
    def n_senders(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    def head(self, layer: int, h: int) -> int:
        return 1 + layer * (self.n_heads + 1) + h

    def mlp(self, layer: int) -> int:
        return 1 + layer * (self.n_heads + 1) + self.n_heads

    # receivers: attn l = 2l, mlp l = 2l + 1, logits = 2L
    @property
    def n_receivers(self) -> int:
        return 2 * self.n_layers + 1

    def sender_names(self) -> list[str]:
        names = ["embed"]
        for layer in range(self.n_layers):
            names += [f"head {layer}.{h}" for h in range(self.n_heads)] + [f"mlp {layer}"]
        return names

    def receiver_names(self) -> list[str]:
        return [f"{kind} {layer}" for layer in range(self.n_layers) for kind in ("attn", "mlp")] + ["logits"]

    def valid(self):
        """(S, R) bool: sender s writes before receiver r reads (write time < read time)."""
        import torch

        L, H = self.n_layers, self.n_heads
        write = torch.tensor([-1.0] + [t for layer in range(L) for t in [3 * layer + 0.5] * H + [3 * layer + 1.5]])
        read = torch.tensor([t for layer in range(L) for t in (3 * layer, 3 * layer + 1)] + [3 * L])
        return write[:, None] < read[None, :]

    @property
    def n_edges(self) -> int:
        return int(self.valid().sum())

    def edge_names(self, edges) -> list[str]:
        s, r = self.sender_names(), self.receiver_names()
        return [f"{s[i]} → {r[j]}" for i, j in edges]


@contextmanager
def _graph_hooks(model, graph: Graph, on_send, on_receive, embed=None):
    """Call ``on_send(s, z)`` for each sender's write (``z`` (B,T,d)) and replace each receiver's input
    ``x`` by ``on_receive(r, x)`` during forward passes; ``embed`` (B,T,d), if given, replaces the
    embeddings (the stream entering layer 0) before anything reads them."""
    stack = decoder_stack(model)
    blocks = hooks.layers(model)

    def send_embed(x):
        x = embed if embed is not None else x
        on_send(0, x)
        return x

    def heads_of(layer):
        def fn(z):
            w = hooks.head_writes(model, layer, z)                       # (B,T,H,d)
            for h in range(graph.n_heads):
                on_send(graph.head(layer, h), w[:, :, h])
        return fn

    def mlp_of(layer):
        def fn(out):
            on_send(graph.mlp(layer), out)
        return fn

    fns = {hooks.addr(0, "resid_pre"): send_embed}
    for layer in range(graph.n_layers):
        fns[hooks.addr(layer, "attn_z")] = heads_of(layer)
        fns[hooks.addr(layer, "mlp_out")] = mlp_of(layer)

    def pre(r):
        def hook(mod, args):
            new = on_receive(r, args[0])
            return None if new is None else (new, *args[1:])
        return hook

    norms = [(2 * i + k, m) for i, b in enumerate(blocks)
             for k, m in ((0, b.input_layernorm), (1, b.post_attention_layernorm))] + [(2 * graph.n_layers, stack.norm)]
    handles = [m.register_forward_pre_hook(pre(r)) for r, m in norms]
    try:
        with hooks.hooked(model, fns):
            yield
    finally:
        for h in handles:
            h.remove()


def sender_writes(model, ids, graph: Graph | None = None):
    """(S, B, T, d): every sender's write in the run of ``ids`` (B,T)."""
    import torch

    graph = graph or Graph.of(model)
    out: dict = {}
    with torch.no_grad(), _graph_hooks(model, graph, lambda s, z: out.__setitem__(s, z.detach()), lambda r, x: None):
        model(input_ids=ids.to(hooks._device(model)), logits_to_keep=1)   # the writes are all it needs
    return torch.stack([out[s] for s in range(graph.n_senders)])


def _metric(metric, logits):
    m = metric(logits)
    if m.dim() != 1 or m.shape[0] != logits.shape[0]:
        raise ValueError(f"metric must map logits (B,T,V) to one value per row (B,), got shape {tuple(m.shape)}")
    return m


def _pair(clean, corrupted):
    import torch

    clean, corrupted = torch.as_tensor(clean), torch.as_tensor(corrupted)
    if clean.dim() != 2 or clean.shape != corrupted.shape:
        raise ValueError(f"clean and corrupted must be (B,T) token ids of one shape (group items by length): got "
                         f"{tuple(clean.shape)} and {tuple(corrupted.shape)}")
    return clean, corrupted


def eap_ig(model, clean, corrupted, metric, steps: int = 5, graph: Graph | None = None, logits_to_keep: int = 0):
    """EAP-IG scores (S, R) of every edge (0 where no edge exists), summed over positions and averaged
    over the B items of ``clean`` / ``corrupted`` (B,T).  ``metric(logits) -> (B,)``; ``steps = 1`` is EAP.
    ``logits_to_keep = 1`` computes only the last position's logits (for a metric that reads only those)."""
    import torch

    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    clean, corrupted = _pair(clean, corrupted)
    graph = graph or Graph.of(model)
    dev = hooks._device(model)
    z, z_corr = sender_writes(model, clean, graph), sender_writes(model, corrupted, graph)
    diff = (z - z_corr).float()                                            # (S,B,T,d)
    e, e_corr = z[0], z_corr[0]
    keep = gradients.keep_logits(logits_to_keep, clean.shape[1])
    gsum = None
    for k in range(1, steps + 1):
        point = (e_corr + (k / steps) * (e - e_corr)).detach().requires_grad_(True)
        xs: dict = {}

        def receive(r, x, xs=xs):
            x = x.clone()                 # its own node: the gradient that reaches it is the one through receiver r
            x.retain_grad()
            xs[r] = x
            return x
        with torch.enable_grad(), gradients.frozen(model), _graph_hooks(model, graph, lambda s, z_: None, receive, embed=point):
            _metric(metric, model(input_ids=clean.to(dev), logits_to_keep=keep).logits).sum().backward()
        g = torch.stack([xs[r].grad.float() for r in range(graph.n_receivers)])     # (R,B,T,d)
        gsum = g if gsum is None else gsum + g
    scores = torch.einsum("sbtd,rbtd->sr", diff, gsum / steps) / clean.shape[0]
    return (scores * graph.valid()).cpu()


def circuit_metric(model, clean, corrupted, metric, circuit, graph: Graph | None = None, logits_to_keep: int = 0):
    """``metric`` (B,) of the clean run in which every edge outside ``circuit`` ((S,R) bool) carries its
    corrupted value.  ``circuit = graph.valid()`` is the clean run, all False the corrupted run.  A list of
    circuits gives (C, B), one row per circuit, from one corrupted run."""
    import torch

    clean, corrupted = _pair(clean, corrupted)
    graph = graph or Graph.of(model)
    valid = graph.valid()
    many = isinstance(circuit, (list, tuple))
    z_corr = sender_writes(model, corrupted, graph)
    out = []
    for c in (circuit if many else [circuit]):
        off = (valid & ~torch.as_tensor(c, dtype=torch.bool)).float()             # (S,R): edges to corrupt
        delta = torch.zeros_like(z_corr)                                           # z_u − z'_u of this run

        def send(s, z, delta=delta):
            delta[s] = z - z_corr[s]

        def receive(r, x, off=off, delta=delta):
            w = off[:, r].to(x.device)
            if not w.any():
                return None
            return x - torch.einsum("s,sbtd->btd", w.to(delta.dtype), delta).to(x.dtype)
        with torch.no_grad(), _graph_hooks(model, graph, send, receive):
            logits = model(input_ids=clean.to(hooks._device(model)),
                           logits_to_keep=gradients.keep_logits(logits_to_keep, clean.shape[1])).logits
        out.append(_metric(metric, logits).float().cpu())
    return torch.stack(out) if many else out[0]


def top_edges(scores, n: int, graph: Graph | None = None):
    """The circuit of the ``n`` edges of largest |score| ((S,R) bool)."""
    import torch

    flat = scores.abs().flatten()
    if graph is not None:
        flat = torch.where(graph.valid().flatten(), flat, torch.full_like(flat, -1.0))
    n = min(int(n), int((flat >= 0).sum()))
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.topk(flat, n).indices] = True
    return keep.view(scores.shape)


def random_circuit(graph: Graph, n: int, seed: int = 0):
    """``n`` edges drawn uniformly among the graph's edges ((S,R) bool): the baseline of the same size."""
    import torch

    valid = graph.valid().flatten()
    idx = torch.nonzero(valid).flatten()
    pick = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))[:n]]
    keep = torch.zeros_like(valid)
    keep[pick] = True
    return keep.view(graph.n_senders, graph.n_receivers)


def iou(a, b) -> float:
    """|A ∩ B| / |A ∪ B| of two edge sets ((S,R) bool)."""
    import torch

    a, b = torch.as_tensor(a, dtype=torch.bool), torch.as_tensor(b, dtype=torch.bool)
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def faithfulness(circuit_value: float, full_value: float, empty_value: float) -> float:
    """(L(C) − L(∅)) / (L(G) − L(∅)): 1 when the circuit recovers the clean metric, 0 when it adds nothing."""
    gap = full_value - empty_value
    if gap == 0:
        raise ValueError("faithfulness is undefined when the clean and the corrupted metric are equal")
    return (circuit_value - empty_value) / gap
