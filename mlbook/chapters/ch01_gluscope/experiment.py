"""Chapter 1's experiment: the neuron statistics table of a model over the chapter's corpus, cached,
and the statistics of the paper's claims (gate<0 shares, the cos(w_in, w_out) correlation, whether a
neuron's gate+in+ and gate-in- examples fire on different tokens)."""
from __future__ import annotations

from mlbook.core.cache import cached_folder, key_of
from mlbook.core.stats import binom_tail, correlation
from mlbook.interp.glu import SHORT, collect, column, to_dataset, weight_cosines

from .corpus import SHARES, STDLIB_MODULES, UDHR_LANGUAGES, corpus

VERSION = 2                 # bump when the statistics change: it is part of the cache key


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
