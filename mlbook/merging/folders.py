"""Merging whole checkpoints: one tensor by name with any method (``merge_tensor``), state dicts, and a
streaming merge of safetensors folders (one tensor of every model in memory at a time, read and written
tensor by tensor by :mod:`tensorfile`), with the language model of a multimodal (LLaVA-style) checkpoint
matched to the base LM's tensor names."""
from __future__ import annotations

from . import fast, tensorfile
from .methods import (
    METHODS,
    breadcrumbs_merge,
    dare_merge,
    dim3_merge_tensor,
    task_arithmetic,
    task_vector,
)


def merge_tensor(name, base, thetas, method, lambdas=None, density=None, lam=1.0, p=0.0, seed=0,
                 small=0.09, t=1.0, c=1.0, transpose_keys=("embed_tokens",), consume=False):
    """Merge one named tensor. Non-float tensors are copied from the base. dim3: 2-D → column rule
    (transposed when a key of transpose_keys is in `name`), 1-D → vector rule, else task arithmetic.
    dare: the generator is seeded with seed + crc32(name), so the result does not depend on order.
    TIES and DiM3's column rule run :mod:`fast`'s kernels (equal to :mod:`methods`' readable definitions);
    ``consume=True`` lets them overwrite ``thetas`` (a streamed merge's fresh reads) instead of copying."""
    import zlib

    if not base.is_floating_point():
        return base.clone()
    if method == "dim3":  # works on the weights themselves: no task vectors for 1-D and 2-D tensors
        if base.dim() == 2:
            tr = any(k in name for k in transpose_keys)
            return fast.dim3_merge_tensor_fast(base, thetas, t, c, transpose=tr, consume=consume)
        if base.dim() == 1:
            return dim3_merge_tensor(base, thetas, t, c)
        return task_arithmetic(base, [task_vector(th, base) for th in thetas], lambdas)
    if method == "ties":
        return fast.ties(base, thetas, 0.5 if density is None else density, lam, consume=consume)
    deltas = [task_vector(th, base) for th in thetas]
    if method == "task_arithmetic":
        return task_arithmetic(base, deltas, lambdas)
    if method == "dare":
        return dare_merge(base, deltas, p, lambdas, seed + zlib.crc32(name.encode()))
    if method == "breadcrumbs":
        return breadcrumbs_merge(base, deltas, lambdas, 0.7 if density is None else density, small)
    raise ValueError(f"unknown method {method!r}; one of {METHODS}")


def merge_state_dicts(base_sd, model_sds, method, **kw):
    """Merge every key of base_sd present in all model_sds (merge_tensor; **kw its options). Keys absent
    from the base (e.g. a vision tower) are copied from the first model holding them; base keys that some
    model lacks are copied from the base. Tied tensors (one storage under two names in the base, e.g. a
    tied LM head and token embedding) are merged once, under their first name, and stay tied."""
    out, first = {}, {}
    for name, b in base_sd.items():
        tie = (b.data_ptr(), tuple(b.shape), b.stride()) if b.numel() else None
        if tie is not None and tie in first:  # the same storage seen under another name
            out[name] = out[first[tie]]
            continue
        if tie is not None:
            first[tie] = name
        if all(name in sd for sd in model_sds):
            out[name] = merge_tensor(name, b, [sd[name] for sd in model_sds], method, **kw)
        else:
            out[name] = b.clone()
    for sd in model_sds:
        for name, v in sd.items():
            out.setdefault(name, v.clone())
    return out


# How multimodal checkpoints name their language model's tensors, and the plain causal-LM name
# (LLaVA in transformers ≥ 5 in memory, LLaVA on disk / older transformers, and a bare prefix).
LM_PREFIXES = (("model.language_model.", "model."), ("language_model.model.", "model."),
               ("language_model.lm_head.", "lm_head."), ("language_model.", ""))


def lm_name(name, base_names):
    """The base LM's name for tensor ``name`` of a (multimodal) checkpoint, or None when the tensor has no
    counterpart in the base (vision tower, projector). ``base_names``: a set of the base's tensor names."""
    if name in base_names:
        return name
    for old, new in LM_PREFIXES:
        if name.startswith(old) and new + name[len(old):] in base_names:
            return new + name[len(old):]
    return None


def lm_state_dict(sd, base_names):
    """The language-model part of state dict ``sd`` under the base LM's names (other tensors dropped)."""
    out = {}
    for name, v in sd.items():
        b = lm_name(name, base_names)
        if b is not None:
            out[b] = v
    return out


def weight_files(d):
    """{tensor name: safetensors file} for a model folder (single file or shards)."""
    from pathlib import Path

    files = sorted(Path(d).glob("*.safetensors"))
    assert files, f"no .safetensors files in {d}"
    return {k: f for f in files for k in tensorfile.read_header(f)[0]}


def merge_folders(base_dir, model_dirs, out_dir, method, copy_from=None, into=None, **kw):
    """Stream-merge safetensors folders tensor by tensor: one tensor of each model and the one merged from them
    are in memory at a time (:mod:`tensorfile` reads without mapping the files and writes each tensor at once).

    - ``into=None``: the output mirrors the base's tensor names and shard layout (tensors found only in the
      models go to an extra shard); non-weight files (config, tokenizer, …) come from copy_from or model_dirs[0].
    - ``into=i``: the output is a copy of ``model_dirs[i]`` (its names, shards and other files) in which
      every language-model tensor (matched to the base by :func:`lm_name`) is replaced by the merge of
      base and models; everything else — a vision tower, a projector — is copied untouched. This is how a
      multimodal model V receives a merged LM: ``merge_folders(B, [V, M], out, "dim3", into=0)``.

    Each merged tensor is computed under the base's name, so the result equals :func:`merge_state_dicts`
    on the base-named state dicts. An index json is written when there are several shards. Returns out_dir."""
    import json
    import shutil
    from contextlib import ExitStack
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bw, mws = weight_files(base_dir), [weight_files(d) for d in model_dirs]
    base_names = set(bw)
    # for each model: base name -> its own name
    own = [{b: n for n in mw if (b := lm_name(n, base_names)) is not None} for mw in mws]

    # the plan: output file -> [(output name, base name or None, where to copy from)]
    plan: dict[str, list] = {}
    if into is None:
        for name, f in bw.items():
            plan.setdefault(f.name, []).append((name, name, bw))
        extra = sorted({n for mw in mws for n in mw} - base_names)
        for name in extra:  # only in the models: copy from the first holding it
            plan.setdefault("model-extra.safetensors", []).append((name, None, next(mw for mw in mws if name in mw)))
        if len(plan) == 1:
            plan = {"model.safetensors": next(iter(plan.values()))}
        src = Path(copy_from or model_dirs[0])
    else:
        for name, f in mws[into].items():
            plan.setdefault(f.name, []).append((name, lm_name(name, base_names), mws[into]))
        src = Path(copy_from or model_dirs[into])

    with ExitStack() as stack:
        readers = {}

        def reader(where, name) -> tensorfile.Reader:
            f = where[name]
            if f not in readers:
                readers[f] = stack.enter_context(tensorfile.Reader(f))
            return readers[f]

        weight_map, total, files = {}, 0, {}
        for fname, entries in plan.items():
            # b stays only where the tensor is merged: it has a counterpart in the base and in every model
            entries = [(name, b if b is not None and b in bw and all(b in o for o in own) else None, where)
                       for name, b, where in entries]
            # every output tensor's dtype and shape is known before any is computed: a merged one has the base's
            specs = [(name, *(reader(bw, b).spec(b) if b else reader(where, name).spec(name)))
                     for name, b, where in entries]
            files[fname] = (entries, specs)
        # read into reused memory for the shapes that occur more than once (tensorfile.Buffers says why)
        buffers = tensorfile.Buffers.for_specs([s for _, specs in files.values() for s in specs])
        for fname, (entries, specs) in files.items():
            with tensorfile.Writer(out / fname, specs, metadata={"format": "pt"}) as w:
                for name, b, where in entries:  # one output tensor (and its inputs) alive at a time
                    if b:
                        ins = [reader(bw, b).get(b, buffers),
                               *(reader(mw, o[b]).get(o[b], buffers) for mw, o in zip(mws, own))]
                        # the reads are ours: the kernels may overwrite them (consume)
                        t = merge_tensor(b, ins[0], ins[1:], method, consume=True, **kw)
                    else:  # no counterpart in the base or in some model: copied untouched
                        ins = [t := reader(where, name).get(name, buffers)]
                    w.write(name, t)
                    weight_map[name] = fname
                    total += t.numel() * t.element_size()
                    buffers.give(t, *ins)  # written: nothing holds them any more
                    del t, ins
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors") and f.name not in ("model.safetensors.index.json",
                                                                                    "MANIFEST.json"):
            shutil.copy2(f, out / f.name)
    if len(plan) > 1:
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return out
