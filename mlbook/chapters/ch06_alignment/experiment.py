"""Chapter 6's experiment: align the top layers on one language pair, fine-tune them for a task on English,
test the task zero-shot in other languages, and read distances and gradient geometry on the way.

Everything trains the same module, :class:`~.encoder.TopLayers` (the last k layers, on cached states of
the frozen layers below), with the book's one training loop (``mlbook.training.fit``):

    align(top, pair_states, ...)       L_align: sentence InfoNCE on mean-pooled pairs, or token InfoNCE on
                                       simalign's word pairs (``mlbook.training.contrastive``), τ = 0.1
    fine_tune(top, task, ...)          L_task: cross-entropy of a linear head, on English only
    correct(top, head, task, states)   per test sentence: 1/0 (topic) or the share of words tagged right (POS)
    pair_distances(top, en, x)         d_ℓ = 1 − cos(pool_ℓ(en), pool_ℓ(x)) per layer and test pair, raw and
                                       relative to non-translations
    gradient_cosines(...)              cos(∇L_align, ∇L_task) on the top layers, and the task-vs-task null
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from mlbook.training import contrastive
from mlbook.training.fit import fit
from mlbook.training.gradient_geometry import geometry, loss_gradients

from .encoder import States, TopLayers, mean_pool

TASKS = ("topic", "pos")


def batch_of(n: int, size: int, seed: int):
    """``i -> the i-th batch`` of indices 0..n-1: a fresh seeded permutation per pass (the last short batch dropped)."""
    size = min(size, n)
    per = n // size

    def get(i: int) -> list[int]:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + i // per)).tolist()
        j = i % per
        return perm[j * size : (j + 1) * size]

    return get


class Head(torch.nn.Module):
    """A task's linear read-out: from the mean-pooled sentence (topic) or each word's mean sub-word state (POS)."""

    def __init__(self, task: str, d: int, n_labels: int, seed: int):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task is one of {TASKS}, not {task!r}")
        self.task = task
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(d, n_labels)

    def forward(self, h, att, word_ids):
        if self.task == "topic":
            return self.linear(mean_pool(h, att))                                   # (b, labels)
        return [self.linear(w) for w in contrastive.word_vectors(h, word_ids)]     # per row (words, labels)


def task_loss(top, head, states: States, labels, idx):
    """Mean cross-entropy of the batch ``idx`` (per sentence for topic, per word for POS)."""
    h, att, wid = states.rows(idx)
    out = head(top(h, att), att, wid)
    if head.task == "topic":
        return F.cross_entropy(out, torch.tensor([labels[i] for i in idx], device=out.device))
    logits, gold = [], []
    for o, i in zip(out, idx):
        n = min(len(o), len(labels[i]))          # a text cut by the tokenizer's max_length loses its last words
        logits.append(o[:n])
        gold += labels[i][:n]
    return F.cross_entropy(torch.cat(logits), torch.tensor(gold, device=out[0].device))


def align_loss(top, src: States, tgt: States, kind: str, idx, alignments=None, tau: float = 0.1):
    """L_align of the parallel batch ``idx``: ``sentence`` (InfoNCE of the pooled pairs, as sentence-transformers'
    MultipleNegativesRankingLoss) or ``token`` (InfoNCE of the aligned words, same-language negatives masked)."""
    hs, as_, ws = src.rows(idx)
    ht, at, wt = tgt.rows(idx)
    if kind == "sentence":
        return contrastive.info_nce(mean_pool(top(hs, as_), as_), mean_pool(top(ht, at), at), tau)
    if kind == "token":
        sw, tw = contrastive.word_vectors(top(hs, as_), ws), contrastive.word_vectors(top(ht, at), wt)
        links = [[(a, b) for a, b in alignments[i] if a < len(s) and b < len(t)]   # words cut by max_length drop out
                 for i, s, t in zip(idx, sw, tw)]
        return contrastive.token_info_nce(sw, tw, links, tau)
    raise ValueError(f"the alignment loss is 'sentence' or 'token', not {kind!r}")


def align(base: TopLayers, src: States, tgt: States, kind: str, *, steps: int, lr: float, batch: int, seed: int,
          alignments=None, tau: float = 0.1, progress: bool = False) -> TopLayers:
    """A copy of ``base`` trained on ``steps`` batches of L_align."""
    top = copy.deepcopy(base).train()
    get = batch_of(len(src), batch, seed)
    fit(top, lambda m, idx: align_loss(m, src, tgt, kind, idx, alignments, tau), get, steps=steps, lr=lr,
        seed=seed, progress=progress, desc=f"align ({kind})")
    return top.eval()


def fine_tune(base: TopLayers, task: str, states: States, labels, n_labels: int, *, steps: int, lr: float,
              head_lr: float, batch: int, seed: int, progress: bool = False) -> tuple[TopLayers, Head]:
    """A copy of ``base`` and a new head trained on ``steps`` English batches of L_task."""
    top = copy.deepcopy(base).train()
    head = Head(task, top.config.hidden_size, n_labels, seed)
    both = torch.nn.ModuleDict({"top": top, "head": head})
    groups = [{"params": list(top.parameters()), "lr": lr}, {"params": list(head.parameters()), "lr": head_lr}]
    get = batch_of(len(states), batch, seed + 1)
    fit(both, lambda m, idx: task_loss(m["top"], m["head"], states, labels, idx), get, steps=steps, lr=lr,
        params=groups, seed=seed, progress=progress, desc=f"fine-tune ({task})")
    return top.eval(), head.eval()


@torch.no_grad()
def correct(top, head, states: States, labels, batch: int = 64) -> list[float]:
    """Per sentence: 1.0 / 0.0 for its topic, or the share of its words tagged right (POS)."""
    out = []
    for s in range(0, len(states), batch):
        idx = list(range(s, min(s + batch, len(states))))
        h, att, wid = states.rows(idx)
        pred = head(top(h, att), att, wid)
        if head.task == "topic":
            out += [float(p == labels[i]) for p, i in zip(pred.argmax(-1).tolist(), idx)]
        else:
            for p, i in zip(pred, idx):
                gold = labels[i][: len(p)]
                out.append(sum(int(a == b) for a, b in zip(p.argmax(-1).tolist(), gold)) / max(1, len(gold)))
    return out


def relative_distance(d) -> torch.Tensor:
    """Per pair i and layer: d_ii / mean_{j≠i} d_ij — a translation's distance over that of the other sentences
    of the same two languages (1: no closer than a non-translation; 0: the same vector).

    ``d``: (n, n, layers) distances 1 − cos(src_i, tgt_j). Raw distances are not comparable across models:
    InfoNCE spreads *all* sentences apart (it undoes the encoder's anisotropy), so a translation's raw
    distance can grow while it becomes the nearest neighbour."""
    n = d.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=d.device)
    return torch.diagonal(d, dim1=0, dim2=1).T / torch.stack([d[i][off[i]].mean(0) for i in range(n)])


@torch.no_grad()
def pooled_layers(top: TopLayers | None, st: States) -> torch.Tensor:
    """(n, L + 1, d) mean-pooled states at every layer; with ``top``, its layers' outputs replace the top ones."""
    pooled = st.pooled.clone()
    if top is not None:
        for j, h in enumerate(top(st.h, st.att, every=True)):
            pooled[:, top.first + 1 + j] = mean_pool(h, st.att)
    return pooled


def pair_distances(top: TopLayers | None, src: States, tgt: States) -> dict:
    """Per test pair and layer: the raw distance 1 − cos(pool_ℓ(src_i), pool_ℓ(tgt_i)) and :func:`relative_distance`."""
    a, b = F.normalize(pooled_layers(top, src), dim=-1), F.normalize(pooled_layers(top, tgt), dim=-1)
    d = 1 - torch.einsum("ild,jld->ijl", a, b)                  # (n, n, L + 1)
    return {"raw": torch.diagonal(d, dim1=0, dim2=1).T.cpu(), "relative": relative_distance(d).cpu()}


def _rng_state():
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def _set_rng_state(state):
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def gradient_cosines(top: TopLayers, head, task_states: States, labels, alignments: dict, *, n_batches: int,
                     batch: int, seed: int, tau: float = 0.1) -> dict:
    """Per alignment and batch b: the geometry (``mlbook.training.gradient_geometry``) of ∇θ L_align(parallel batch
    b) against ∇θ L_task(English batch b), and of ∇θ L_task(b) against ∇θ L_task(b′) on a disjoint English batch
    (the null), θ the top layers' parameters.

    ``alignments``: key → ``(src, tgt, kind, word links or None)``; returns key → one dict per batch.  The task's
    two gradients of batch b are computed once for every key, and each key's alignment gradient starts from the
    same random state (dropout), so a key's numbers do not depend on which other keys are asked for."""
    batch = min(batch, len(task_states) // 2)     # the null's two batches are disjoint
    if batch < 2:
        raise ValueError(f"the null needs two disjoint English batches: there are {len(task_states)} sentences")
    params = dict(top.named_parameters())
    top.train()
    out = {key: [] for key in alignments}
    for b in range(n_batches):
        perm = torch.randperm(len(task_states), generator=torch.Generator().manual_seed(seed * 1000 + b)).tolist()
        torch.manual_seed(seed * 1000 + b)   # dropout
        g_task = loss_gradients(task_loss(top, head, task_states, labels, perm[:batch]), params)
        g_other = loss_gradients(task_loss(top, head, task_states, labels, perm[batch : 2 * batch]), params)
        null, state = geometry(g_other, g_task), _rng_state()
        for key, (src, tgt, kind, links) in alignments.items():
            _set_rng_state(state)
            idx = batch_of(len(src), batch, seed + 11)(b)
            g_align = loss_gradients(align_loss(top, src, tgt, kind, idx, links, tau), params)
            out[key].append({"align_task": geometry(g_align, g_task), "task_task": null})
    top.eval()
    return out
