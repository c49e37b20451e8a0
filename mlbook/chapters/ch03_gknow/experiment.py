"""Chapter 3's experiment: score the benchmark, find circuits and neurons, ablate.

Prompts of one token length run as one batch without padding (``by_length``): every item's prediction
sits at the last position, and a clean prompt and its corrupted twin (the trigger swapped for a word of
the other gender with as many tokens) line up position by position, as EAP-IG needs.
"""
from __future__ import annotations

import random
from contextlib import ExitStack

import numpy as np

from mlbook.chapters.ch03_gknow import scores as sc
from mlbook.chapters.ch03_gknow.benchmark import TYPES
from mlbook.interp import circuits, hooks, neuron_ig
from mlbook.text.sampling import encode as encode_text


def single_token(tok, word: str) -> int:
    ids = encode_text(tok, word)
    if len(ids) != 1:
        raise ValueError(f"target {word!r} is {len(ids)} tokens for this tokenizer: the benchmark compares single "
                         "next tokens (pick a model whose tokenizer keeps ' he', ' she', ... whole)")
    return ids[0]


def encode(tok, ds, unrelated: list[str], seed: int = 0) -> dict:
    """Token ids of every prompt, its (male, female, unrelated) next tokens, and a corrupted twin: the first
    counterpart (in a seeded order) with as many tokens, or None."""
    ids = [encode_text(tok, p) for p in ds["prompt"]]
    unrel = [w for w in unrelated if len(encode_text(tok, w)) == 1]
    if not unrel:
        raise ValueError(f"none of the unrelated words {unrelated} is a single token")
    tokens = np.array([[single_token(tok, m), single_token(tok, f), encode_text(tok, unrel[i % len(unrel)])[0]]
                       for i, (m, f) in enumerate(zip(ds["male"], ds["female"]))])
    corrupt = []
    for i, (cands, item) in enumerate(zip(ds["counterparts"], ds["id"])):
        cands = list(cands)
        random.Random(f"{seed}:{item}").shuffle(cands)
        twin = next((c for c in (encode_text(tok, c) for c in cands) if len(c) == len(ids[i])), None)
        corrupt.append(twin)
    return {"ids": ids, "tokens": tokens, "corrupt": corrupt}


def by_length(rows, ids) -> dict:
    """``{T: [row, ...]}`` for the rows whose prompt has T tokens."""
    out: dict = {}
    for r in rows:
        out.setdefault(len(ids[r]), []).append(r)
    return dict(sorted(out.items()))


def ablated(model, neurons: dict | None):
    """A context that zeroes ``{layer: [neuron, ...]}`` of ``mlp_post`` at every position."""
    stack = ExitStack()
    for layer, idx in (neurons or {}).items():
        if len(idx):
            stack.enter_context(hooks.ablate(model, hooks.addr(layer, "mlp_post"), neurons=list(idx)))
    return stack


def last_logits(model, enc: dict, rows, neurons: dict | None = None, batch_size: int = 128) -> np.ndarray:
    """(len(rows), 3): the logits of each row's (male, female, unrelated) token after its prompt, with
    ``neurons`` ablated."""
    import torch

    ids, tokens = enc["ids"], enc["tokens"]
    out = np.zeros((len(rows), 3))
    where = {r: k for k, r in enumerate(rows)}
    dev = hooks._device(model)
    with torch.no_grad(), ablated(model, neurons):
        for _, group in by_length(rows, ids).items():
            for s in range(0, len(group), batch_size):
                chunk = group[s:s + batch_size]
                x = torch.tensor([ids[r] for r in chunk], device=dev)
                logits = model(input_ids=x, logits_to_keep=1).logits[:, -1].float().cpu()
                tk = torch.as_tensor(tokens[chunk])
                vals = logits.gather(1, tk).numpy()
                for k, r in enumerate(chunk):
                    out[where[r]] = vals[k]
    return out


def _targets(enc, rows, genders):
    """The (right, wrong) token of each row: its gender's token first."""
    import torch

    t = enc["tokens"]
    right = [t[r, 0] if genders[r] == "m" else t[r, 1] for r in rows]
    wrong = [t[r, 1] if genders[r] == "m" else t[r, 0] for r in rows]
    return torch.tensor(right), torch.tensor(wrong)


def _diff_metric(right, wrong):
    import torch

    def metric(logits):
        ar = torch.arange(logits.shape[0])
        return logits[ar, -1, right.to(logits.device)] - logits[ar, -1, wrong.to(logits.device)]
    return metric


def _pairs(enc, rows):
    return [r for r in rows if enc["corrupt"][r] is not None]


def circuit_scores(model, graph, enc, rows, genders, steps: int = 5) -> tuple:
    """EAP-IG scores (S,R) over ``rows`` (those with a corrupted twin), the item-weighted mean of the
    length groups' scores; and the number of items used.  L = logit(gender's token) − logit(other)."""
    import torch

    rows = _pairs(enc, rows)
    total, n = None, 0
    for _, group in by_length(rows, enc["ids"]).items():
        clean = torch.tensor([enc["ids"][r] for r in group])
        corr = torch.tensor([enc["corrupt"][r] for r in group])
        s = circuits.eap_ig(model, clean, corr, _diff_metric(*_targets(enc, group, genders)), steps=steps, graph=graph,
                            logits_to_keep=1)
        total = s * len(group) if total is None else total + s * len(group)
        n += len(group)
    if not n:
        raise ValueError("no item with a corrupted twin of the same length: a circuit needs clean/corrupted pairs")
    return total / n, n


def circuit_value(model, graph, enc, rows, genders, circuit) -> dict:
    """Mean L of the circuit run (or of each circuit of a list), the clean run (full graph) and the corrupted
    run (empty circuit), and the faithfulness (L(C) − L(∅)) / (L(G) − L(∅)), pooled over the rows' length
    groups.  With a list, ``"circuit"`` and ``"faithfulness"`` are lists in its order."""
    import torch

    many = isinstance(circuit, (list, tuple))
    cs = list(circuit) if many else [circuit]
    rows = _pairs(enc, rows)
    sums = {"full": 0.0, "empty": 0.0, "circuit": [0.0] * len(cs)}
    for _, group in by_length(rows, enc["ids"]).items():
        clean = torch.tensor([enc["ids"][r] for r in group])
        corr = torch.tensor([enc["corrupt"][r] for r in group])
        metric = _diff_metric(*_targets(enc, group, genders))
        vals = circuits.circuit_metric(model, clean, corr, metric, [graph.valid(), torch.zeros_like(graph.valid()), *cs],
                                       graph, logits_to_keep=1).sum(1).tolist()          # one corrupted run for all
        sums["full"] += vals[0]
        sums["empty"] += vals[1]
        sums["circuit"] = [acc + v for acc, v in zip(sums["circuit"], vals[2:])]
    full, empty = sums["full"] / len(rows), sums["empty"] / len(rows)
    vals = [v / len(rows) for v in sums["circuit"]]
    faith = [circuits.faithfulness(v, full, empty) for v in vals]
    return {"full": full, "empty": empty, "circuit": vals if many else vals[0],
            "faithfulness": faith if many else faith[0]}


def mlp_importance(graph, scores_list) -> np.ndarray:
    """Per layer, the summed |EAP-IG score| of the edges out of its MLP, over the given circuits' scores."""
    imp = np.zeros(graph.n_layers)
    for s in scores_list:
        a = s.abs().numpy()
        imp += np.array([a[graph.mlp(layer)].sum() for layer in range(graph.n_layers)])
    return imp


def neuron_attributions(model, enc, rows, genders, layers, steps: int = 20, batch_size: int = 160) -> dict:
    """``{layer: (d_mlp,) mean IG over rows}`` of F = P(gender's token), and the mean completeness error
    relative to |F(a) − F(0)| (``"completeness"``)."""
    import torch

    right, _ = _targets(enc, list(range(len(enc["ids"]))), {r: g for r, g in enumerate(genders)})
    out, errs, gaps = {}, [], []
    for layer in layers:
        acc, n = None, 0
        for _, group in by_length(rows, enc["ids"]).items():
            ids = torch.tensor([enc["ids"][r] for r in group])
            target = right[group]

            def prob(logits, idx, target=target):
                return torch.softmax(logits[:, -1].float(), -1)[torch.arange(len(idx)), target[idx.cpu()]]
            attr, full, zero = neuron_ig.neuron_ig(model, ids, layer, prob, steps=steps, batch_size=batch_size,
                                                   logits_to_keep=1)
            errs.append(neuron_ig.completeness_error(attr, full, zero))
            gaps.append((full - zero).abs())
            acc = attr.sum(0) if acc is None else acc + attr.sum(0)
            n += len(group)
        out[layer] = (acc / n).numpy()
    out["completeness"] = float(torch.cat(errs).mean() / torch.cat(gaps).mean())
    return out


def top_neurons(attr: dict, k: int) -> dict:
    """The ``k`` neurons of largest mean attribution over all scored layers: ``{layer: [neuron, ...]}``."""
    flat = [(float(v), layer, i) for layer, a in attr.items() if layer != "completeness" for i, v in enumerate(a)]
    flat.sort(key=lambda x: (-x[0], x[1], x[2]))
    out: dict = {}
    for _, layer, i in flat[:k]:
        out.setdefault(layer, []).append(i)
    return out


def random_neurons(layers, d_mlp: int, k: int, seed: int = 0) -> dict:
    pool = [(layer, i) for layer in layers for i in range(d_mlp)]
    out: dict = {}
    for layer, i in random.Random(seed).sample(pool, k):
        out.setdefault(layer, []).append(i)
    return out


def overlap(a: dict, b: dict) -> int:
    """Neurons that two ``{layer: [neuron]}`` sets share."""
    return len({(l_, i) for l_, v in a.items() for i in v} & {(l_, i) for l_, v in b.items() for i in v})


# ---------------------------------------------------------------- one seed of the chapter, step by step

def where(ds, **conds) -> list[int]:
    """Rows of ``ds`` whose columns equal ``conds`` (e.g. ``cls="factual", split="test"``)."""
    cols = {k: ds[k] for k in conds}
    return [i for i in range(len(ds)) if all(cols[k][i] == v for k, v in conds.items())]


def sample(rows, n: int | None, seed: int) -> list[int]:
    """``n`` of ``rows`` in a seeded order (all of them when ``n`` is None)."""
    rows = list(rows)
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order[: len(rows) if n is None else n]]


def bias_scores(logits: np.ndarray, ds, fact, stereo, neutral) -> dict:
    """The benchmarks' scores of one run's logits (N,3) on the given rows: factual accuracy; SS, LMS, ICAT
    (StereoSet-style, stereotypical rows); GIS (DiFair-style: factual rows gender-specific, neutral and
    stereotypical rows gender-neutral); the mean logit margin towards the stereotype."""
    g = np.array(ds["gender"])
    m, f, u = logits[:, 0], logits[:, 1], logits[:, 2]
    neu = list(stereo) + list(neutral)
    ss_, lms_ = sc.ss(m[stereo], f[stereo], g[stereo]), sc.lms(m[stereo], f[stereo], u[stereo])
    return {"accuracy": float(sc.correct(m[fact], f[fact], g[fact]).mean()), "SS": ss_, "LMS": lms_,
            "ICAT": sc.icat(lms_, ss_), "GIS": sc.gis(m[fact], f[fact], m[neu], f[neu]),
            "bias": float(sc.toward(m[stereo], f[stereo], g[stereo]).mean())}


def find_circuits(model, graph, enc, ds, seed: int, n_items: int, steps: int, progress=None) -> dict:
    """``{(class, type): (scores, rows)}``: EAP-IG over ``n_items`` training items with a corrupted twin, for
    the factual and the stereotypical class of every prediction type."""
    genders = list(ds["gender"])
    out = {}
    for cls in ("factual", "stereotypical"):
        for typ in TYPES:
            rows = sample(_pairs(enc, where(ds, cls=cls, type=typ, split="train")), n_items, seed)
            out[(cls, typ)] = (circuit_scores(model, graph, enc, rows, genders, steps)[0], rows)
            if progress is not None:
                progress.update()
    return out


def ig_layers(graph, circuits_: dict, n: int) -> list[int]:
    """The ``n`` MLP layers that the stereotypical circuits lean on most (summed |EAP-IG| out of each MLP)."""
    imp = mlp_importance(graph, [s for (cls, _), (s, _) in circuits_.items() if cls == "stereotypical"])
    return sorted(int(x) for x in np.argsort(-imp, kind="stable")[:n])


def per_trigger(ds, rows: dict, values: dict) -> list[float]:
    """One resampling unit per trigger word: the mean of its items' values over its templates and over the
    seeds that held it out.  ``rows[seed]`` are item rows, ``values[seed]`` their values in the same order.
    The items of one trigger are not independent draws (ten templates of one word), nor are a word's runs
    at different seeds; a bootstrap over items or over (seed, item) would count them as such."""
    trig = ds["trigger"]
    acc: dict = {}
    for s in rows:
        if len(rows[s]) != len(values[s]):
            raise ValueError(f"seed {s}: {len(rows[s])} rows but {len(values[s])} values")
        per: dict = {}
        for r, v in zip(rows[s], values[s]):
            per.setdefault(trig[r], []).append(float(v))
        for t, vs in per.items():
            acc.setdefault(t, []).append(float(np.mean(vs)))
    return [float(np.mean(acc[t])) for t in sorted(acc)]
