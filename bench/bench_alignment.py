"""Chapter 6's alignment step and encoding pass: mlbook vs sentence-transformers 6.2, side by side in one run.

    .venv/bin/pip install -e '.[bench]'                  # sentence-transformers==6.2.0 (once)
    .venv/bin/python bench/bench_alignment.py             # B = 32, best of 5
    .venv/bin/python bench/bench_alignment.py --quick     # a smoke run (< 1 min idle): B = 8, 1 round, 64 sentences,
                                                          # 2 processes at a time of 1 thread each (--jobs 2 --threads 1)
    .venv/bin/python bench/bench_alignment.py --train-top 4 --rounds 10 --json /tmp/align.json

Both sides run the same encoder (multilingual-e5-small, the local folder ``resolve("intfloat/multilingual-e5-small",
"encoder")``, float32, CPU, ``--threads`` threads) on the same batch: the first ``B`` parallel UDHR sentence pairs
of chapter 6's ``data.udhr_pairs("eng", "deu_1996")``.  The word embeddings (e5's 250,037 × 384 matrix) are frozen
and everything else is trained (``--train-top K``: only the top K layers), AdamW with the same ``--lr``, τ = 0.1.

- ``mlbook_step``  plain code on mlbook's functions: the tokenizer on each side of the pairs → ``model(...)`` (the
                   encoder of ``mlbook.models.loading.load_encoder``) → ``ch06_alignment.encoder.mean_pool`` over the
                   attention mask → ``mlbook.training.contrastive.info_nce(u, v, tau=0.1)`` → backward → AdamW step;
- ``st_step``      a ``SentenceTransformer`` of ``Transformer(folder)`` + ``Pooling(384, pooling_mode="mean")`` (no
                   Normalize module; ``sentence_transformers.sentence_transformer.modules``, the classes that the
                   deprecated ``sentence_transformers.models`` names) and ``MultipleNegativesRankingLoss(model,
                   scale=1/0.1)`` (its default similarity is ``cos_sim``: asserted), one step the way its fit loop
                   does it: ``model.preprocess`` on each column (its data collator), ``loss([features_a, features_b],
                   None)`` (its ``compute_loss``), backward, AdamW step.  No ``fit()`` / Trainer around either side.
                   The folder has no pooler (e5 mean-pools); ``Transformer`` is given ``add_pooling_layer=False``, as
                   ``load_encoder`` does, else it would add a randomly initialised pooler that nothing reads.

The encoding pass, on ``--n-encode`` UDHR sentences of eight languages (eng, deu_1996, fra, rus, arb, cmn_hans, hin,
swh, taken round-robin so that the input order mixes languages and lengths): ``mlbook.models.embedding.embed(model,
tok, texts)`` (``mlbook_encode``: it batches texts of similar token counts, ``mlbook.models.length_order``) vs
``SentenceTransformer.encode(texts, normalize_embeddings=True, batch_size=32)`` (``st_encode``: it sorts by
character count), both batches of 32.

A ``check`` process first loads both models (same weights: asserted), puts both in eval mode (no dropout) and
compares the loss of the batch (|Δ|), the gradient of one parameter after ``backward`` (max |Δ|; also over every
trainable parameter), the weights after one AdamW step from that gradient, and the embeddings of the encoding pass
(max |Δ|).  Then every row runs in its own process (under ``bench_dim3_merge.timed``'s small launcher): it loads
its side, does one warm-up step (or pass) and ``--rounds`` timed ones in train mode (the encoding pass in eval mode);
the best counts (``bench_neuron_ig._best``).  ``--repeats R`` runs the set of processes R times, interleaved, and
keeps each row's best time.  ``--jobs N`` runs N processes at a time (``--quick``: 2): each row's memory is
still its own, its time is not a benchmark.

Memory, from ``/proc/self/status`` in each row's process: ``peak above interpreter`` is the process's peak resident
set (VmHWM: imports, loading, the timed work) minus that of ``interpreter``, a process that only does the imports.
Every row imports both sides' modules (torch, transformers, mlbook's, sentence_transformers), so the rows differ
only in what they load and run: importing sentence_transformers alone costs about +280 MB and +3-7 s (mostly
scikit-learn and transformers' Trainer), printed from ``interpreter_mlbook`` (mlbook's imports only) and counted in
neither side; with separate floors, transformers' BERT and tokenizer modules, which sentence_transformers imports
up front and mlbook on first use, would land in mlbook's rows only (~90 MB).  ``own peak`` is the peak of the timed
work alone (warm-up included) above the resident set of the loaded model just before it (the peak is reset with
``/proc/self/clear_refs`` after loading, so loading's transient peak does not hide the step's memory).  The weights
are mmapped from the safetensors file (transformers 5), so pages that the work touches first count in it too.

Targets: ours at least as fast and no more memory, for the step and for the encoding pass (✔/✘; a time within
``--tolerance`` of theirs, default 3 %, and a peak within ``--tolerance-mem`` of theirs, default 5 %, count as
equal: a 2-core machine's times move by a few % between identical runs, and so does a step's peak RSS (glibc's
allocator keeps or returns freed blocks depending on the order of the frees: the same B = 32 step child, run six
times in a row, peaked 2664-2750 MB above its loaded model, and the two sides' ranges overlap).  Over ``--repeats``
a row keeps its best time and its largest peaks; every repeat's values are in the JSON (``runs``).  Contention: each row's ``others' cpu/wall`` is the
CPU seconds that other processes used while it ran (``/proc/stat`` busy time minus this bench's own, per wall
second): 0 is an idle machine.  Another 2-thread job on a 2-core machine makes torch's OpenMP threads wait for each
other at every parallel region (cpu/wall drops to ~1), and a B = 8 step that takes 1 s idle then takes 8-18 s: such
a run's times say nothing about either side, and the summary line says so.  The load averages are printed too.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

MODEL = "intfloat/multilingual-e5-small"
TAU = 0.1
ENCODE_LANGS = ("eng", "deu_1996", "fra", "rus", "arb", "cmn_hans", "hin", "swh")
ROWS = ("interpreter_mlbook", "interpreter", "mlbook_step", "st_step", "mlbook_encode", "st_encode")
CHECK_PARAM = "encoder.layer.{top}.attention.self.query.weight"   # trainable whatever --train-top is


# ---------------------------------------------------------------- the two sides, shared by the check and the rows

def _imports(side: str):
    """The modules of ``side`` ("mlbook", or "both": every row imports both sides', so that neither side's import
    memory counts in its row)."""
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import mlbook.chapters.ch06_alignment.data  # noqa: F401
    import mlbook.chapters.ch06_alignment.encoder  # noqa: F401
    import mlbook.models.embedding  # noqa: F401
    import mlbook.models.loading  # noqa: F401
    import mlbook.training.contrastive  # noqa: F401
    if side == "both":
        import sentence_transformers  # noqa: F401
        import sentence_transformers.sentence_transformer.losses  # noqa: F401
        import sentence_transformers.sentence_transformer.modules  # noqa: F401


def batch(b: int) -> tuple[list[str], list[str]]:
    from mlbook.chapters.ch06_alignment.data import udhr_pairs

    pairs = udhr_pairs("eng", "deu_1996")[:b]
    if len(pairs) < b:
        raise SystemExit(f"udhr_pairs('eng', 'deu_1996') has {len(pairs)} pairs, fewer than B = {b}")
    return [p["src"] for p in pairs], [p["tgt"] for p in pairs]


def encode_texts(n: int) -> list[str]:
    """``n`` UDHR sentences, round-robin over ENCODE_LANGS (each language's side of its pairs with English)."""
    from mlbook.chapters.ch06_alignment.data import udhr_pairs

    per = -(-n // len(ENCODE_LANGS))
    cols = [[p["src"] for p in udhr_pairs("eng", "deu_1996")[:per]]]
    cols += [[p["tgt"] for p in udhr_pairs("eng", code)[:per]] for code in ENCODE_LANGS[1:]]
    texts = [c[i] for i in range(per) for c in cols if i < len(c)]
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} UDHR sentences for --n-encode {n}")
    return texts[:n]


def freeze(bert, train_top: int | None) -> list:
    """Word embeddings frozen, the rest trainable (or only the top ``train_top`` layers); the trainable params."""
    for p in bert.parameters():
        p.requires_grad_(train_top is None)
    if train_top is None:
        bert.embeddings.word_embeddings.weight.requires_grad_(False)
    else:
        for layer in bert.encoder.layer[len(bert.encoder.layer) - train_top:]:
            layer.requires_grad_(True)
    return [p for p in bert.parameters() if p.requires_grad]


def load_ours():
    from mlbook.models.loading import load_encoder

    return load_encoder(MODEL)


def load_st():
    """The peer: Transformer(folder) + mean Pooling, no Normalize; and its MultipleNegativesRankingLoss."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses, modules
    from sentence_transformers.util import cos_sim

    from mlbook.models.resolve import resolve

    folder = str(resolve(MODEL, "encoder"))
    tr = modules.Transformer(folder, model_kwargs={"add_pooling_layer": False})
    st = SentenceTransformer(modules=[tr, modules.Pooling(tr.get_embedding_dimension(), pooling_mode="mean")],
                             device="cpu")
    loss = losses.MultipleNegativesRankingLoss(st, scale=1 / TAU)
    assert loss.similarity_fct is cos_sim, loss.similarity_fct          # cosine, as info_nce
    assert loss.directions == ("query_to_doc",), loss.directions        # one-way, as info_nce(symmetric=False)
    return st, loss


def ours_loss(model, tok, src, tgt):
    """mlbook's step up to the loss: tokenizer → model → mean_pool → info_nce."""
    from mlbook.chapters.ch06_alignment.encoder import mean_pool
    from mlbook.training.contrastive import info_nce

    pooled = []
    for texts in (src, tgt):
        enc = tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        pooled.append(mean_pool(h, enc["attention_mask"]))
    return info_nce(*pooled, tau=TAU)


def st_loss(st, loss, src, tgt):
    """sentence-transformers' step up to the loss: preprocess each column (its collator), call the loss."""
    return loss([st.preprocess(src), st.preprocess(tgt)], None)


def step_fn(loss_fn, opt):
    def step():
        loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)
    return step


# ---------------------------------------------------------------- child processes

def _status_mb() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kb = line.split()[:2]
                out[key[:-1]] = int(kb) / 1024
    return out


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux ≥ 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _measure(fn, rounds: int) -> dict:
    from bench_neuron_ig import _best

    ready = _status_mb()          # VmHWM: imports and loading; VmRSS: the loaded model, just before the work
    reset = _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    out, best = _best(fn, rounds)  # one warm-up call, then `rounds` timed ones
    cpu_per_wall = (time.process_time() - c0) / (time.perf_counter() - t0)
    done = _status_mb()
    return {"seconds": best, "cpu_per_wall": cpu_per_wall, "value": out,
            "peak_mb": max(ready["VmHWM"], done["VmHWM"]), "setup_peak_mb": ready["VmHWM"], "ready_rss_mb": ready["VmRSS"],
            "own_peak_mb": done["VmHWM"] - ready["VmRSS"] if reset else None}


def child(row: str, a) -> dict:
    side = "st" if row.startswith("st_") else "mlbook"
    t0 = time.perf_counter()
    _imports("mlbook" if row == "interpreter_mlbook" else "both")
    import_s = time.perf_counter() - t0
    if row.startswith("interpreter"):
        return {"row": row, "import_seconds": import_s, "peak_mb": _status_mb()["VmHWM"]}
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if row.endswith("_step"):
        src, tgt = batch(a.batch)
        if side == "mlbook":
            model, tok = load_ours()
            bert, loss_fn = model, lambda: ours_loss(model, tok, src, tgt)
        else:
            st, mnrl = load_st()
            bert, loss_fn = st[0].auto_model, lambda: st_loss(st, mnrl, src, tgt)
        opt = torch.optim.AdamW(freeze(bert, a.train_top), lr=a.lr)
        (st if side == "st" else model).train()
        res = _measure(step_fn(loss_fn, opt), a.rounds)
    else:
        from mlbook.models.embedding import embed

        texts = encode_texts(a.n_encode)
        if side == "mlbook":
            model, tok = load_ours()

            def encode():
                return embed(model, tok, texts, batch_size=a.encode_batch)
        else:
            st, _ = load_st()

            def encode():
                return st.encode(texts, normalize_embeddings=True, batch_size=a.encode_batch, show_progress_bar=False)
        res = _measure(encode, a.rounds)
        res["value"] = None
    return {"row": row, "import_seconds": import_s, **res}


def check(a) -> dict:
    """Same weights, eval mode: the loss, one parameter's gradient, the weights after one step, the embeddings."""
    import numpy as np
    import torch

    from mlbook.models.embedding import embed

    torch.set_num_threads(a.threads)
    model, tok = load_ours()
    st, mnrl = load_st()
    bert = st[0].auto_model
    ours_sd, st_sd = model.state_dict(), bert.state_dict()
    assert set(ours_sd) == set(st_sd), set(ours_sd) ^ set(st_sd)
    assert all(torch.equal(ours_sd[k], st_sd[k]) for k in ours_sd), "the two loads differ"
    tok_st = st[0].tokenizer
    src, tgt = batch(a.batch)
    assert all(torch.equal(tok(s, padding=True, truncation=True, max_length=512, return_tensors="pt")["input_ids"],
                           st.preprocess(s)["input_ids"]) for s in (src, tgt)), "the two tokenisations differ"

    texts = encode_texts(a.n_encode)
    e_ours = embed(model, tok, texts, batch_size=a.encode_batch).numpy()
    e_st = st.encode(texts, normalize_embeddings=True, batch_size=a.encode_batch, show_progress_bar=False)
    emb = float(np.abs(e_ours - e_st).max())

    model.eval()
    st.eval()
    params = dict(model.named_parameters()), dict(bert.named_parameters())
    opts = [torch.optim.AdamW(freeze(m, a.train_top), lr=a.lr) for m in (model, bert)]
    l_ours = ours_loss(model, tok, src, tgt)
    l_st = st_loss(st, mnrl, src, tgt)
    l_ours.backward()
    l_st.backward()
    name = CHECK_PARAM.format(top=model.config.num_hidden_layers - 1)
    grad = float((params[0][name].grad - params[1][name].grad).abs().max())
    trainable = [n for n, p in params[0].items() if p.requires_grad]
    grad_all = max(float((params[0][n].grad - params[1][n].grad).abs().max()) for n in trainable)
    grad_scale = float(params[0][name].grad.abs().max())
    for o in opts:
        o.step()
    after = max(float((params[0][n] - params[1][n]).abs().max()) for n in params[0])
    return {"loss_mlbook": float(l_ours), "loss_st": float(l_st), "loss_abs_diff": abs(float(l_ours) - float(l_st)),
            "grad_param": name, "grad_max_abs_diff": grad, "grad_max_abs": grad_scale,
            "grad_max_abs_diff_all_trainable": grad_all, "trainable_params": sum(params[0][n].numel() for n in trainable),
            "weights_max_abs_diff_after_step": after, "embed_max_abs_diff": emb, "n_encode": len(texts),
            "tokenizer": type(tok).__name__, "tokenizer_st": type(tok_st).__name__}


# ---------------------------------------------------------------- the parent

def _run(role: str, a, work: Path, tag: int = 0) -> dict:
    from bench_dim3_merge import timed

    out = work / f"{role}-{tag}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", role, "--out", str(out),
           "--batch", str(a.batch), "--rounds", str(a.rounds), "--threads", str(a.threads), "--lr", str(a.lr),
           "--n-encode", str(a.n_encode), "--encode-batch", str(a.encode_batch)]
    if a.train_top is not None:
        cmd += ["--train-top", str(a.train_top)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")]))
    busy0, ours0 = _cpu_seconds()
    wall, launcher_peak_mb, _ = timed(cmd, env=env)
    busy1, ours1 = _cpu_seconds()
    res = json.loads(out.read_text())
    res.update(process_seconds=wall, launcher_peak_mb=launcher_peak_mb,
               foreign_cpu_per_wall=max(0.0, (busy1 - busy0) - (ours1 - ours0)) / wall)
    return res


def _cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, those of this process and its finished children)."""
    import resource

    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]   # user nice system idle iowait irq softirq steal
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    ours = sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
    return busy, ours


def _versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("torch", "transformers", "sentence-transformers", "tokenizers")}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", "-B", type=int, default=32, help="parallel pairs in the batch (default 32)")
    p.add_argument("--rounds", type=int, default=5, help="timed steps/passes per row after a warm-up; the best counts")
    p.add_argument("--repeats", type=int, default=1, help="run the set of row processes this many times, interleaved")
    p.add_argument("--train-top", type=int, default=None, metavar="K",
                   help="train only the top K layers (default: all but the word embeddings)")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every process")
    p.add_argument("--n-encode", type=int, default=256, help="sentences of the encoding pass")
    p.add_argument("--encode-batch", type=int, default=32)
    p.add_argument("--tolerance", type=float, default=0.03, help="a time within this fraction of theirs counts as equal")
    p.add_argument("--tolerance-mem", type=float, default=0.05, help="a peak within this fraction of theirs counts as equal")
    p.add_argument("--jobs", type=int, default=1, help="row processes at a time (>1: the times are a smoke test only)")
    p.add_argument("--quick", action="store_true",
                   help="B = 8, 1 round, 64 sentences, 2 processes at a time of 1 thread each: a smoke run (< 1 min)")
    p.add_argument("--json", default=None, help="write the results here too")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.quick:
        a.batch, a.rounds, a.repeats, a.n_encode, a.jobs, a.threads = 8, 1, 1, 64, 2, 1
    if a.child:
        res = check(a) if a.child == "check" else child(a.child, a)
        Path(a.out).write_text(json.dumps(res))
        return res

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-align-"))
    # the check, then the rows, repeats interleaved (a machine that gets busier slows every row alike);
    # --jobs > 1 runs that many processes at a time (--quick: 2, of 1 thread each)
    from concurrent.futures import ThreadPoolExecutor

    def one(job):
        i, role = job
        print(f"  {role} ...", file=sys.stderr, flush=True)
        return role, _run(role, a, work, i)
    jobs = list(enumerate(["check"] + list(ROWS) * a.repeats))
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        done = list(pool.map(one, jobs))
    chk = done[0][1]
    best: dict = {}
    for row, r in done[1:]:
        if a.jobs > 1:
            r["foreign_cpu_per_wall"] = None   # the bench's own concurrent rows would count as others
        run = {k: r.get(k) for k in ("seconds", "peak_mb", "own_peak_mb", "cpu_per_wall", "foreign_cpu_per_wall")}
        b = best.get(row)
        if b is None or r.get("seconds", 0) < b.get("seconds", 0):
            best[row] = r | {"runs": (b["runs"] if b else [])}
        b = best[row]
        b["runs"].append(run)
        for k in ("peak_mb", "own_peak_mb"):    # the largest peak over the repeats
            if b.get(k) is not None:
                b[k] = max(x[k] for x in b["runs"])
    rows = best
    for row, r in rows.items():
        if not row.startswith("interpreter"):
            r["peak_above_interpreter_mb"] = r["peak_mb"] - rows["interpreter"]["peak_mb"]
    rows["interpreter"]["above_interpreter_mlbook_mb"] = rows["interpreter"]["peak_mb"] - rows["interpreter_mlbook"]["peak_mb"]

    def target(ours: str, theirs: str) -> dict:
        o, t = rows[ours], rows[theirs]
        fast = o["seconds"] <= t["seconds"] * (1 + a.tolerance)
        mem = o["peak_above_interpreter_mb"] <= t["peak_above_interpreter_mb"] * (1 + a.tolerance_mem)
        if o["own_peak_mb"] is not None and t["own_peak_mb"] is not None:
            mem = mem and o["own_peak_mb"] <= t["own_peak_mb"] * (1 + a.tolerance_mem)
        return {"time_ratio_ours_over_theirs": o["seconds"] / t["seconds"], "at_least_as_fast": fast,
                "peak_ratio_ours_over_theirs": o["peak_above_interpreter_mb"] / t["peak_above_interpreter_mb"],
                "no_more_memory": mem}

    targets = {"step": target("mlbook_step", "st_step"), "encode": target("mlbook_encode", "st_encode")}
    load_after = os.getloadavg()
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": a.threads,
                          "load_before": load_before, "load_after": load_after},
              "versions": _versions(),
              "settings": {"batch": a.batch, "rounds": a.rounds, "repeats": a.repeats, "lr": a.lr, "tau": TAU,
                           "train_top": a.train_top, "trainable_params": chk["trainable_params"],
                           "n_encode": a.n_encode, "encode_batch": a.encode_batch, "quick": a.quick, "jobs": a.jobs},
              "check": chk, "rows": rows, "targets": targets, "wall_seconds": time.perf_counter() - t_start}

    trained = "all but the word embeddings" if a.train_top is None else f"the top {a.train_top} layers"
    print(f"\n{MODEL} (float32, CPU, {a.threads} threads), B = {a.batch} UDHR eng–deu pairs, τ = {TAU}, AdamW lr "
          f"{a.lr:g}, {trained} trained ({chk['trainable_params']:,} parameters); encoding pass: {a.n_encode} "
          f"sentences of {len(ENCODE_LANGS)} languages, batches of {a.encode_batch}; best of {a.rounds} after a "
          f"warm-up{f', {a.repeats} interleaved repeats' if a.repeats > 1 else ''}\n")
    print("| row | seconds (best of N) | peak MB above interpreter | own peak MB (the timed work) | loss / max \\|Δ\\| | "
          "cpu/wall | others' cpu/wall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    shown = {"mlbook_step": f"loss {chk['loss_mlbook']:.6f}", "st_step": f"loss {chk['loss_st']:.6f}",
             "mlbook_encode": "—", "st_encode": f"{chk['embed_max_abs_diff']:.1e} vs ours"}
    for row in ROWS[2:]:
        r = rows[row]
        own = "—" if r["own_peak_mb"] is None else f"{r['own_peak_mb']:.0f}"
        print(f"| {row} | {r['seconds']:.3f} | {r['peak_above_interpreter_mb']:.0f} | {own} | {shown[row]} | "
              f"{r['cpu_per_wall']:.2f} | {'—' if a.jobs > 1 else format(r['foreign_cpu_per_wall'], '.2f')} |")
    i_m, i_s = rows["interpreter_mlbook"], rows["interpreter"]
    print(f"\ninterpreter (every row's imports, both sides'): {i_s['peak_mb']:.0f} MB, {i_s['import_seconds']:.1f} s; "
          f"mlbook's alone {i_m['peak_mb']:.0f} MB, {i_m['import_seconds']:.1f} s: importing sentence_transformers "
          f"costs +{i_s['above_interpreter_mlbook_mb']:.0f} MB and +{i_s['import_seconds'] - i_m['import_seconds']:.1f} s, "
          "counted in neither side's rows")
    print(f"agreement (eval mode, same weights): loss |Δ| {chk['loss_abs_diff']:.1e} ({chk['loss_mlbook']:.6f}); "
          f"grad of {chk['grad_param']} max |Δ| {chk['grad_max_abs_diff']:.1e} (its largest entry "
          f"{chk['grad_max_abs']:.1e}), over all trainable {chk['grad_max_abs_diff_all_trainable']:.1e}; weights "
          f"after one AdamW step {chk['weights_max_abs_diff_after_step']:.1e}; embeddings {chk['embed_max_abs_diff']:.1e}")

    def mark(ok: bool) -> str:
        return "✔" if ok else "✘"
    for what, t in targets.items():
        print(f"target, {what}: ours at least as fast ({t['time_ratio_ours_over_theirs']:.2f}× theirs) "
              f"{mark(t['at_least_as_fast'])}; no more memory ({t['peak_ratio_ours_over_theirs']:.2f}× theirs) "
              f"{mark(t['no_more_memory'])}")
    if a.jobs > 1:
        verdict = f"{a.jobs} of the bench's processes at a time (--jobs): the times are a smoke test only"
    else:
        others = max(r["foreign_cpu_per_wall"] for r in rows.values() if "seconds" in r)   # those whose times count
        verdict = (f"other processes' CPU seconds per wall second while a row's kept process ran: at most {others:.2f} "
                   f"({'idle' if others < 0.2 else 'contended: the times are not comparable'})")
    result["machine"]["verdict"] = verdict
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1-minute; the bench adds "
          f"~{a.threads * a.jobs}); {verdict}; {result['wall_seconds']:.0f} s in all")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))   # the helpers of bench_dim3_merge, bench_neuron_ig
    main()
