"""Chapter 2's measurements: Locate (patching grids, head patching, probes), Steer (a
difference-of-means vector at a located layer) and Improve (zero-shot recall of capitals),
with the side cost on held-out text.

Every function takes token lists made by ``prompts`` and returns numbers per item, so that
the chapter's statistics have their resampling units.
"""
from __future__ import annotations

import random
import time

import numpy as np

from mlbook.interp import hooks, patching, probe, steering
from mlbook.text import likelihood
from mlbook.text.batching import left_pad, positions

from . import prompts as P

SITES = ("resid_pre", "attn_out", "mlp_out")


# -- next-token log-probabilities under an intervention ------------------------------------

def _interventions(model, steer=None, alpha: float = 1.0, last=None):
    """The hooks of one batch: ``hooks.add`` of ``alpha · v`` at every token for each ``steer`` entry, and
    ``hooks.patch`` of each row's own (d,) state at the last column for each ``last`` entry ((B, d))."""
    import contextlib

    stack = contextlib.ExitStack()
    if steer:
        stack.enter_context(hooks.add(model, {a: alpha * v for a, v in steer.items()}))
    if last:
        stack.enter_context(hooks.patch(model, {a: st[:, None, :] for a, st in last.items()}, positions=[-1]))
    return stack


def last_logprobs(model, seqs: list[list[int]], targets: list[int], pad_id: int = 0, steer=None, alpha: float = 1.0,
                  replace_last=None, batch_size: int = 64):
    """``(logp, correct)`` (numpy, per prompt): log p(target | prompt) of the next token and whether it
    is the argmax.  ``steer``: ``{address: (d,)}`` added (× ``alpha``) at every token; ``replace_last``:
    ``{address: (N, d)}``, row i's activation at its last token replaced by row i of the tensor.

    (Not ``text.choice.score``: that reorders prompts into buckets, and ``replace_last`` needs each batch's rows.)"""
    import torch

    if len(seqs) != len(targets):
        raise ValueError(f"{len(seqs)} prompts but {len(targets)} targets")
    dev = hooks._device(model)
    logp, correct = [], []
    for s in range(0, len(seqs), batch_size):
        ids, mask = left_pad(seqs[s:s + batch_size], pad_id)        # left padding: every last token in column −1
        last = {a: st[s:s + batch_size] for a, st in (replace_last or {}).items()}
        with torch.no_grad(), _interventions(model, steer, alpha, last):
            lg = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions(mask).to(dev),
                       logits_to_keep=1).logits[:, -1].float()
        t = torch.tensor(targets[s:s + batch_size], device=lg.device)
        lp = lg.log_softmax(-1)
        logp.append(lp[torch.arange(len(t)), t].cpu())
        correct.append((lg.argmax(-1) == t).cpu())
    return torch.cat(logp).numpy(), torch.cat(correct).numpy()


# -- Locate: the patching grids ---------------------------------------------------------------

def _pair(model, pair: dict):
    """``(metric, clean, corrupt, full)`` of a pair: the logit-difference metric, the (1,T) prompts and the
    full effect m(clean) − m(corrupted)."""
    import torch

    metric = patching.logit_difference(pair["right_id"], pair["wrong_id"])
    clean, corrupt = torch.tensor([pair["clean_ids"]]), torch.tensor([pair["corrupt_ids"]])
    dev = hooks._device(model)
    with torch.no_grad():
        full = float(metric(model(input_ids=clean.to(dev)).logits)[0] - metric(model(input_ids=corrupt.to(dev)).logits)[0])
    return metric, clean, corrupt, full


def grids(model, pair: dict, sites=SITES) -> dict:
    """For one clean/corrupted pair: per site the activation- and attribution-patching grids
    (layers × positions, as a fraction of the full effect m(clean) − m(corrupted)) and the wall time of each."""
    metric, clean, corrupt, full = _pair(model, pair)
    out = {"full": full, "act": {}, "attr": {}, "t_act": 0.0, "t_attr": 0.0}
    L = hooks.n_layers(model)
    every = [hooks.addr(layer, site) for site in sites for layer in range(L)]
    t0 = time.perf_counter()
    act = patching.activation_patching(model, clean, corrupt, metric, every)
    t1 = time.perf_counter()
    attr = patching.attribution_patching(model, clean, corrupt, metric, every)
    t2 = time.perf_counter()
    out["t_act"], out["t_attr"] = t1 - t0, t2 - t1
    for i, site in enumerate(sites):
        out["act"][site] = (act[i * L:(i + 1) * L] / full).numpy()
        out["attr"][site] = (attr[i * L:(i + 1) * L] / full).numpy()
    return out


def rank_agreement(g: dict, sites=SITES) -> float:
    """Spearman's ρ between the activation- and attribution-patching grids of one pair, mean over sites."""
    from scipy.stats import spearmanr

    return float(np.mean([spearmanr(g["act"][s].ravel(), g["attr"][s].ravel()).statistic for s in sites]))


def heads(model, pair: dict):
    """Head patching at every position: (layers × heads) Δ as a fraction of the full effect."""
    metric, clean, corrupt, full = _pair(model, pair)
    return (patching.head_patching(model, clean, corrupt, metric) / full).numpy()


def ablate_heads(model, pair_list: list[dict], chosen: list[tuple[int, int]]):
    """Per pair: the clean logit difference with the heads ``chosen`` ((layer, head) list) zeroed at every
    position, minus the intact one (nats)."""
    import torch

    H = hooks.n_heads(model)
    d_head = hooks.layers(model)[0].self_attn.o_proj.weight.shape[1] // H
    neurons: dict = {}
    for layer, h in chosen:
        neurons.setdefault(layer, []).extend(range(h * d_head, (h + 1) * d_head))
    dev = hooks._device(model)
    out = []
    for pr in pair_list:
        metric = patching.logit_difference(pr["right_id"], pr["wrong_id"])
        x = torch.tensor([pr["clean_ids"]], device=dev)
        with torch.no_grad():
            base = float(metric(model(input_ids=x).logits)[0])
            with _zero_features(model, neurons):
                out.append(float(metric(model(input_ids=x).logits)[0]) - base)
    return np.asarray(out)


def _zero_features(model, neurons: dict):
    """Zero ``attn_z`` features per layer: ``{layer: [feature indices]}``."""
    import contextlib

    stack = contextlib.ExitStack()
    for layer, idx in neurons.items():
        stack.enter_context(hooks.ablate(model, hooks.addr(layer, "attn_z"), neurons=idx))
    return stack


# -- Locate: a probe with its control task ----------------------------------------------------

def probe_layers(model, tok, rows, pad_id: int = 0, seed: int = 0, C: float = 0.1, stride: int = 1):
    """Per layer (every ``stride``-th, from 0): accuracy of a continent probe on ``resid_post`` at the country's last prompt token, and of
    the same probe on the control task.  Trained on two templates of every country, tested on the third."""
    L = hooks.n_layers(model)
    addresses = [hooks.addr(layer, "resid_post") for layer in range(0, L, stride)]
    items, labels, template, seqs = [], [], [], []
    for t, tpl in enumerate(P.CONTINENT_TEMPLATES):
        for c, _, continent in rows:
            items.append(c)
            labels.append(continent)
            template.append(t)
            seqs.append(P.encode(tok, tpl.format(c=c)))
    states = steering.last_states(model, seqs, addresses, pad_id)
    labels = np.asarray(labels)
    control = np.asarray(probe.control_labels(items, list(labels), seed))
    test = np.asarray(template) == len(P.CONTINENT_TEMPLATES) - 1
    real, ctrl = [], []
    for a in addresses:
        X = states[a].numpy()
        real.append(probe.probe_accuracy(X[~test], labels[~test], X[test], labels[test], C))
        ctrl.append(probe.probe_accuracy(X[~test], control[~test], X[test], control[test], C))
    majority = max(np.mean(labels[test] == v) for v in set(labels))
    return np.asarray(real), np.asarray(ctrl), float(majority)


# -- Steer and Improve ---------------------------------------------------------------------------

def fold_of(rows, seed: int):
    """A seeded split of ``rows`` into two halves (fit on one, evaluate on the other, then swap)."""
    order = rows[:]
    random.Random(1000 + seed).shuffle(order)
    h = len(order) // 2
    return order[:h], order[h:]


def recall_seed(model, tok, rows, seed: int, k_demos: int, pad_id: int = 0, alpha: float = 1.0,
                batch_size: int = 64, progress=None) -> dict:
    """One seed of the Improve experiment.

    1. demonstrations drawn per country (seeded); the countries the model answers few-shot are *known*;
    2. the known countries split in two folds; on each fit fold, per layer ℓ:
       - locate: patch the few-shot prompt's last-token ``resid_post[ℓ]`` — of *another* known country,
         so the state carries the task but not this answer — into the zero-shot prompt, Δ log p;
       - the steering vector v_ℓ = mean few-shot − mean zero-shot last-token state;
    3. on the other fold: log p(capital) of the zero-shot prompt steered at every layer (α v_ℓ at every token).
    """
    rng = random.Random(seed)
    L = hooks.n_layers(model)
    addresses = [hooks.addr(layer, "resid_post") for layer in range(L)]
    few = {r[0]: P.encode(tok, P.few_shot(r[0], P.draw_demos(rows, r[0], k_demos, rng))) for r in rows}
    zero = {r[0]: P.encode(tok, P.terse(r[0])) for r in rows}
    target = {r[0]: P.first_token(tok, r[1]) for r in rows}
    names = [r[0] for r in rows]
    lp_few, ok_few = last_logprobs(model, [few[c] for c in names], [target[c] for c in names], pad_id, batch_size=batch_size)
    lp_zero, ok_zero = last_logprobs(model, [zero[c] for c in names], [target[c] for c in names], pad_id, batch_size=batch_size)
    known = [r for r, ok in zip(rows, ok_few) if ok]
    unsteered = {c: (lp, ok) for c, lp, ok in zip(names, lp_zero, ok_zero)}
    out = {"seed": seed, "countries": names, "few_correct": ok_few, "zero_correct": ok_zero,
           "few_logp": lp_few, "zero_logp": lp_zero, "known": [r[0] for r in known],
           "eval": [], "locate": [], "located": [], "vectors": []}
    if len(known) < 4:
        return out
    half_a, half_b = fold_of(known, seed)
    for fit, ev in ((half_a, half_b), (half_b, half_a)):
        fit_few, fit_zero = [few[r[0]] for r in fit], [zero[r[0]] for r in fit]
        fit_t = [target[r[0]] for r in fit]
        states = steering.last_states(model, fit_few, addresses, pad_id, batch_size)
        base = np.array([unsteered[r[0]][0] for r in fit])
        loc = np.zeros((L, len(fit)))
        for layer, a in enumerate(addresses):
            other = states[a].roll(1, 0)                 # row i gets the few-shot state of country i − 1
            lp, _ = last_logprobs(model, fit_zero, fit_t, pad_id, replace_last={a: other}, batch_size=batch_size)
            loc[layer] = lp - base
        vec = steering.mean_difference(model, fit_few, fit_zero, addresses, pad_id, batch_size)
        ev_zero, ev_t = [zero[r[0]] for r in ev], [target[r[0]] for r in ev]
        curve = np.zeros((L + 1, len(ev)))              # row L: unsteered
        hits = np.zeros((L + 1, len(ev)), dtype=bool)
        curve[L], hits[L] = [unsteered[r[0]][0] for r in ev], [unsteered[r[0]][1] for r in ev]
        for layer, a in enumerate(addresses):
            curve[layer], hits[layer] = last_logprobs(model, ev_zero, ev_t, pad_id, steer={a: vec[a]}, alpha=alpha,
                                                      batch_size=batch_size)
            if progress is not None:
                progress.update(1)
        out["locate"].append(loc)
        out["located"].append(int(loc.mean(1).argmax()))
        out["vectors"].append(vec)
        out["eval"].append({"countries": [r[0] for r in ev], "logp": curve, "correct": hits})
    return out


def random_layer(n_layers: int, located: int, seed: int, fold: int) -> int:
    """The control layer: uniform among the layers other than the located one (seeded per seed and fold)."""
    return random.Random(7919 * seed + fold).choice([ell for ell in range(n_layers) if ell != located])


def side_cost(model, paragraphs: list[list[int]], address: str, vector, alpha: float = 1.0, base=None):
    """Per paragraph: NLL per token with ``alpha · vector`` added at ``address`` (every token) minus without.
    ``base``: the unsteered ``likelihood.paragraph_nll`` of the same paragraphs, if already computed."""
    base_nll, n = base if base is not None else likelihood.paragraph_nll(model, paragraphs)
    with hooks.add(model, {address: alpha * vector}):
        steered, _ = likelihood.paragraph_nll(model, paragraphs)
    return (np.asarray(steered) - np.asarray(base_nll)) / np.asarray(n)


def generate(model, tok, text: str, steer=None, alpha: float = 1.0, max_new_tokens: int = 12) -> str:
    """Greedy continuation of ``text``, optionally steered (for the playground)."""
    import torch

    dev = hooks._device(model)
    ids = torch.tensor([P.encode(tok, text)], device=dev)
    with torch.no_grad(), _interventions(model, steer, alpha):
        g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                           do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(g[0, ids.shape[1]:])
