"""Chapter 8's experiment: three checkpoints on one language-model backbone, merged, and evaluated.

- B: the base LM (SmolLM2-135M-Instruct at the cpu profile);
- V: B taught to see — a LLaVA-style model (``mlbook.vlm``) fine-tuned on English questions about
  synthetic scenes (``mlbook.scenes``), vision tower and projector included;
- M: B taught languages — fine-tuned on UDHR articles and on the scene questions asked in words
  (an English description of the scene, the question and the answer in each language).

Both fine-tunes are cached by everything that determines them (``cached_folder``: atomic, verified),
saved so that ``from_pretrained`` loads them, and resume from their last checkpoint if killed.
Every merged model is V's vision tower + projector + a merged language model (``merging``), and is
scored by multiple choice (``choice``) on held-out scenes: visual questions in every language,
the same questions in words (text only), and the cross-lingual similarity of its hidden states.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

VERSION = 2  # bump when training changes what a cached V or M holds
TRAIN_ARTICLES = range(1, 25)  # UDHR articles M is fine-tuned on; 25–30 are held out
HELDOUT_ARTICLES = range(25, 31)


def _lm_key(name: str):
    """What identifies a base LM in a cache key: the folder's config for a local folder, else the name
    (a bundled model's converted folder is itself keyed by its package versions)."""
    from . import models

    path = models.resolve(name, "causal_lm")
    cfg = json.loads((path / "config.json").read_text())
    return [models._canonical(name), path.name, cfg.get("num_hidden_layers"), cfg.get("hidden_size")]


def _templates_key():
    from . import scenes

    return json.dumps(scenes.templates(), sort_keys=True, ensure_ascii=False)


def _folder(kind: str, parts: dict, build) -> Path:
    from .cache import cache_dir, cached_folder, key_of

    key = key_of(kind, VERSION, parts, _templates_key())
    ckpt = cache_dir() / "dim3" / f".ckpt-{kind}-{key}"  # survives a killed run: training resumes there

    def builder(folder: Path):
        meta = build(folder, ckpt)
        import shutil

        shutil.rmtree(ckpt, ignore_errors=True)
        return meta

    return cached_folder(f"dim3/{kind}-{key}", builder)


# ------------------------------------------------------------------ V: the multimodal model


def train_vision_model(lm_name: str, seed: int, *, n_images: int, vision_steps: int, align_steps: int,
                       vqa_scenes: int, vqa_steps: int, batch_size: int, lr_projector: float, lr_lm: float,
                       vision_batch: int = 128, progress: bool = True) -> Path:
    """V, cached: (1) a vision tower pretrained on the scenes' attributes; (2) the projector aligned to the LM's
    word embeddings (``vlm.align_projector``, LM frozen); (3) projector + the whole LM trained on English visual
    conversations (tower frozen). Returns the folder (``LlavaForConditionalGeneration`` + ``LlavaProcessor``;
    ``train.json`` holds the curves and the tower's held-out attribute accuracy)."""
    parts = dict(lm=_lm_key(lm_name), seed=seed, n_images=n_images, vision_steps=vision_steps,
                 vision_batch=vision_batch, align_steps=align_steps, vqa_scenes=vqa_scenes, vqa_steps=vqa_steps,
                 batch_size=batch_size, lr_projector=lr_projector, lr_lm=lr_lm)

    def build(folder: Path, ckpt: Path):
        import torch

        from . import models, scenes, vlm
        from .run import pick_device
        from .train import fit

        dev = pick_device("auto")  # fit trains on the GPU when there is one: keep every tensor there
        lm, tok = models.load_causal_lm(lm_name, device=dev)
        # (1) the vision tower, on its own scenes
        pre = scenes.sample_scenes(n_images, seed=10_000 + seed)
        pre_px = vlm.pixel_values(scenes.draw_many(pre, 10_000 + seed)).to(dev)
        tower, vhist, probe = vlm.pretrain_vision(pre, pre_px, vision_steps, batch_size=vision_batch, seed=seed,
                                                  progress=progress)
        held = scenes.sample_scenes(400, seed=20_000 + seed)
        with torch.no_grad():
            logits = probe.logits(vlm.pixel_values(scenes.draw_many(held, 20_000 + seed)).to(dev))
        tower_acc = {k: float((v.argmax(-1).cpu() == torch.tensor([s.label(k) for s in held])).float().mean())
                     for k, v in logits.items()}
        # (2) LLaVA: a fresh projector, aligned to the LM's word embeddings (tower and LM frozen)
        V = vlm.build(lm, tower, tok)
        del lm
        for p in V.parameters():
            p.requires_grad_(False)
        for p in V.model.multi_modal_projector.parameters():
            p.requires_grad_(True)
        ahist = vlm.align_projector(V, tok, pre, pre_px, align_steps, lr=lr_projector, seed=seed, progress=progress)
        # (3) projector + the whole LM on English visual conversations about fresh scenes (tower frozen)
        for p in V.model.language_model.parameters():
            p.requires_grad_(True)
        sc = scenes.sample_scenes(vqa_scenes, seed=30_000 + seed)
        px = vlm.pixel_values(scenes.draw_many(sc, 30_000 + seed))
        examples = visual_conversations(tok, V, sc, px, seed)
        groups = [{"params": list(V.model.multi_modal_projector.parameters()), "lr": lr_projector},
                  {"params": list(V.model.language_model.parameters()), "lr": lr_lm}]
        hist = fit(V, vlm.answer_loss, shuffled_batches(examples, batch_size, seed, tok.pad_token_id),
                   steps=vqa_steps, lr=lr_lm, params=groups, warmup=max(1, vqa_steps // 10), grad_clip=1.0,
                   ckpt_dir=ckpt, save_every=10, save_last=False, seed=seed, progress=progress, desc="V: visual instructions",
                   fused=True)
        V.eval()
        for p in V.parameters():
            p.requires_grad_(True)
        V.save_pretrained(folder)
        vlm.processor(tok, image_size=V.config.vision_config.image_size,
                      patch=V.config.vision_config.patch_size).save_pretrained(folder)
        (folder / "train.json").write_text(json.dumps({"vision": vhist, "tower_heldout_accuracy": tower_acc,
                                                       "align": ahist, "vqa": hist}))
        return {"kind": "V", **{k: v for k, v in parts.items() if k != "lm"}}

    return _folder("V", parts, build)


# ------------------------------------------------------------------ M: the multilingual model


def _turns(tok, scene, lang: str, order, first_kw: dict) -> list:
    """The four questions about one scene in ``lang``, in ``order``: the first prompt with ``first_kw``
    (the image placeholders or the English description), the later ones as further turns."""
    from . import scenes, vlm

    return [(vlm.prompt_ids(tok, scenes.question(lang, k), first=j == 0, **(first_kw if j == 0 else {})),
             vlm.answer_ids(tok, scenes.answer(scene, lang, k))) for j, k in enumerate(order)]


def visual_conversations(tok, V, scenes_, pixels, seed: int) -> list[dict]:
    """V's training data: one conversation per scene — its image, then the four English questions in a
    seeded random order, each followed by its answer (LLaVA's multi-turn format)."""
    import random

    from . import scenes, vlm

    rng = random.Random(seed)
    kw = {"n_image": vlm.n_image_tokens(V), "image_id": V.config.image_token_id}
    out = []
    for i, s in enumerate(scenes_):
        order = rng.sample(scenes.KINDS, len(scenes.KINDS))
        out.append(vlm.conversation(_turns(tok, s, "en", order, kw), vlm.end_id(tok), pixels[i]))
    return out


def multilingual_examples(tok, langs: list[str], n_scenes: int, seed: int, chunk_tokens: int = 64):
    """M's two kinds of training examples: (a) UDHR articles 1–24 in every language, cut into chunks of
    ``chunk_tokens`` tokens, loss on every token; (b) scene questions in words — per scene and language a
    conversation: the English description, then the four questions in that language (seeded order), each
    followed by its answer in that language — loss on the answers."""
    import random

    from . import scenes, vlm

    end = vlm.end_id(tok)
    udhr = []
    for lang, paras in scenes.udhr_texts(langs, TRAIN_ARTICLES).items():
        ids = tok("\n".join(paras), add_special_tokens=False)["input_ids"]
        udhr += [vlm.example([], ids[i : i + chunk_tokens], end) for i in range(0, len(ids), chunk_tokens)]
    rng = random.Random(seed)
    words = []
    for s in scenes.sample_scenes(n_scenes, seed=40_000 + seed):
        for lang in langs:
            order = rng.sample(scenes.KINDS, len(scenes.KINDS))
            words.append(vlm.conversation(_turns(tok, s, lang, order, {"context": scenes.describe(s)}), end))
    return udhr, words


def train_multilingual_model(lm_name: str, langs: list[str], seed: int, *, text_scenes: int, steps: int,
                             batch_size: int, udhr_per_batch: int, lr_lm: float, progress: bool = True) -> Path:
    """M, cached: the LM fine-tuned on a mix of UDHR chunks (``udhr_per_batch`` per batch) and scene questions
    in words (the rest of the batch). Returns the folder (``LlamaForCausalLM``-style checkpoint + tokenizer)."""
    from . import scenes

    langs = scenes.check_languages(langs)
    parts = dict(lm=_lm_key(lm_name), langs=langs, seed=seed, text_scenes=text_scenes, steps=steps,
                 batch_size=batch_size, udhr_per_batch=udhr_per_batch, lr_lm=lr_lm)

    def build(folder: Path, ckpt: Path):
        import random

        from . import models, vlm
        from .train import fit

        lm, tok = models.load_causal_lm(lm_name)
        udhr, words = multilingual_examples(tok, langs, text_scenes, seed)
        rng = random.Random(seed)
        n_words = batch_size - udhr_per_batch
        batches = [vlm.collate(rng.sample(udhr, udhr_per_batch) + rng.sample(words, n_words), tok.pad_token_id)
                   for _ in range(steps)]
        hist = fit(lm, vlm.answer_loss, batches, steps=steps, lr=lr_lm, warmup=max(1, steps // 10), grad_clip=1.0,
                   ckpt_dir=ckpt, save_every=10, save_last=False, seed=seed, progress=progress, desc="M: languages",
                   fused=True)
        lm.eval()
        lm.save_pretrained(folder)
        tok.save_pretrained(folder)
        (folder / "train.json").write_text(json.dumps({"m": hist, "n_udhr_chunks": len(udhr),
                                                       "n_word_examples": len(words)}))
        return {"kind": "M", **{k: v for k, v in parts.items() if k != "lm"}}

    return _folder("M", parts, build)


def shuffled_batches(examples: list[dict], batch_size: int, seed: int, pad_id: int) -> "Callable":
    """A callable ``step -> batch``: epoch after epoch of the examples in a seeded random order."""
    import random

    order: list[int] = []
    rng = random.Random(seed)

    def get(i: int):
        from . import vlm

        while len(order) < (i + 1) * batch_size:
            idx = list(range(len(examples)))
            rng.shuffle(idx)
            order.extend(idx)
        return vlm.collate([examples[j] for j in order[i * batch_size : (i + 1) * batch_size]], pad_id)

    return get


# ------------------------------------------------------------------ the models as language-model weights


def load_three(lm_name: str, v_dir: Path, m_dir: Path, device: str = "cpu"):
    """(B, V, M, tokenizer): B a causal LM, V a ``LlavaForConditionalGeneration``, M a causal LM."""
    from transformers import AutoModelForCausalLM, LlavaForConditionalGeneration

    from . import models

    B, tok = models.load_causal_lm(lm_name, device=device)
    V = LlavaForConditionalGeneration.from_pretrained(v_dir, dtype="float32").to(device).eval()
    M = AutoModelForCausalLM.from_pretrained(m_dir, dtype="float32").to(device).eval()
    return B, V, M, tok


def lm_weights(model, base_names) -> dict:
    """The language-model weights of ``model`` (causal LM or LLaVA) under the base LM's tensor names."""
    from .merging import lm_state_dict

    copies: dict = {}  # a copy (set_lm writes into the live model in place), one per storage: ties stay tied
    return {k: copies.setdefault(v.data_ptr(), v.detach().clone())
            for k, v in lm_state_dict(model.state_dict(), base_names).items()}


def set_lm(vlm_model, weights: dict) -> None:
    """Load base-named LM ``weights`` into a LLaVA model's language model (vision parts untouched)."""
    import torch

    body = {k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")}
    missing, unexpected = vlm_model.model.language_model.load_state_dict(body, strict=False)
    if missing or unexpected:
        raise ValueError(f"LM weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if not vlm_model.config.text_config.tie_word_embeddings and "lm_head.weight" in weights:
        with torch.no_grad():
            vlm_model.lm_head.weight.copy_(weights["lm_head.weight"])


# ------------------------------------------------------------------ the evaluation suite


@dataclass
class Suite:
    """Held-out scenes of one seed, tokenised once: per split, pixel values and the items with their
    visual prompt, text prompt, candidates and gold answer; plus held-out UDHR paragraphs per language."""

    langs: list[str]
    splits: dict = field(default_factory=dict)
    udhr: dict = field(default_factory=dict)


def image_processor(v_dir):
    """The image processor saved with V (None if V has none: then ``vlm.pixel_values`` is used)."""
    if not (Path(v_dir) / "preprocessor_config.json").exists() and not (Path(v_dir) / "processor_config.json").exists():
        return None
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(v_dir).image_processor


def build_suite(tok, vlm_model, langs: list[str], n_val: int, n_test: int, seed: int, n_udhr: int,
                chat: bool = False, image_processor=None) -> Suite:
    """Held-out scenes (validation and test) asked in ``langs``; pixel values from ``image_processor`` (a real
    checkpoint's own) or, when None, ``vlm.pixel_values`` (the same numbers for the chapter's V)."""
    from . import scenes, vlm

    langs = scenes.check_languages(langs)
    img_id, n_img = vlm_model.config.image_token_id, vlm.n_image_tokens(vlm_model)
    suite = Suite(langs=langs)
    for split, n, s in (("val", n_val, 50_000 + seed), ("test", n_test, 60_000 + seed)):
        sc = scenes.sample_scenes(n, s)
        its = scenes.items(sc, langs)
        for it in its:
            q = it["question"]
            it["vqa_prompt"] = vlm.prompt_ids(tok, q, n_image=n_img, image_id=img_id, chat=chat)
            it["text_prompt"] = vlm.prompt_ids(tok, q, context=scenes.describe(sc[it["scene"]]), chat=chat)
            it["cand_ids"] = [vlm.answer_ids(tok, c) for c in it["candidates"]]
            it["n_question"] = len(tok(q + "\n", add_special_tokens=False)["input_ids"])
        imgs = scenes.draw_many(sc, s)
        px = vlm.pixel_values(imgs) if image_processor is None else \
            image_processor(images=list(imgs), return_tensors="pt")["pixel_values"]
        suite.splits[split] = {"scenes": sc, "pixels": px, "items": its}
    for lang, paras in scenes.udhr_texts(langs, HELDOUT_ARTICLES).items():
        suite.udhr[lang] = [tok(p, add_special_tokens=False)["input_ids"][:128] for p in paras[:n_udhr]]
    return suite


def evaluate(model, tok, suite: Suite, split: str, udhr: bool = False, batch_size: int = 64) -> dict:
    """Multiple-choice accuracy per language on visual questions (``vqa``) and on the same questions in
    words (``text``); with ``udhr``, the mean NLL per token of held-out UDHR paragraphs per language.
    Every language's items go through the model together (few large forward passes: on a CPU a pass over a
    handful of short prompts costs about as much as one over dozens — reading the weights dominates), and
    the prompts about one scene share one pass over their common head (``choice.score``'s ``groups``)."""
    import torch

    from . import choice, vlm

    data = suite.splits[split]
    its, px = data["items"], data["pixels"]
    end, pad = vlm.end_id(tok), tok.pad_token_id
    gold = [it["gold"] for it in its]
    cands = [it["cand_ids"] for it in its]
    pv = px[torch.tensor([it["scene"] for it in its])]
    out: dict = {}
    scene = [it["scene"] for it in its]  # a scene's prompts share their head: the image, or the description
    for kind, kw in (("vqa", {"pixel_values": pv}), ("text", {})):
        scores = choice.score(model, [it[f"{kind}_prompt"] for it in its], cands, end, pad, batch_size=batch_size,
                              groups=scene, **kw)
        out[kind] = {lang: choice.accuracy([s for s, it in zip(scores, its) if it["lang"] == lang],
                                           [g for g, it in zip(gold, its) if it["lang"] == lang])
                     for lang in suite.langs}
    if udhr:
        out["udhr_nll"] = {lang: udhr_nll(model, paras) for lang, paras in suite.udhr.items()}
    return out


def udhr_nll(model, paragraphs: list[list[int]]) -> float:
    """Mean next-token negative log-likelihood (nats per token) over tokenised paragraphs."""
    import torch

    dev = next(model.parameters()).device
    total, n = 0.0, 0
    with torch.no_grad():
        for ids in paragraphs:
            x = torch.tensor([ids], device=dev)
            logp = model(input_ids=x).logits[0, :-1].float().log_softmax(-1)
            total -= float(logp.gather(1, x[0, 1:, None]).sum())
            n += len(ids) - 1
    return total / max(n, 1)


def similarity(model, tok, suite: Suite, split: str = "test", n_scenes: int | None = None) -> dict:
    """Per-layer cross-lingual similarity (``crosslingual``): each item in a target language paired with
    the same scene and question kind in English, pooled over the question's tokens; for visual prompts
    (``vqa``, same image on both sides) and text prompts (``text``, same English description). ``n_scenes``:
    use the first n scenes of the split only."""
    from . import crosslingual as xl

    data = suite.splits[split]
    its, px = data["items"], data["pixels"]
    if n_scenes is not None:
        its = [it for it in its if it["scene"] < n_scenes]
    en = {it["scene"]: it for it in its if it["lang"] == "en"}
    pairs = [(en[it["scene"]], it) for it in its if it["lang"] != "en" and it["scene"] in en]
    if not pairs:
        raise ValueError("the cross-lingual similarity needs English and at least one other language")
    uniq = list({id(x): x for p in pairs for x in p}.values())  # each English item once, though it has a pair per language
    at = {id(x): i for i, x in enumerate(uniq)}
    out = {}
    for kind in ("vqa", "text"):
        ids = [x[f"{kind}_prompt"] for x in uniq]
        pool = [[0] * (len(t) - x["n_question"]) + [1] * x["n_question"] for t, x in zip(ids, uniq)]
        pv = px[[x["scene"] for x in uniq]] if kind == "vqa" else None
        states = xl.pooled_states(model, ids, pool, tok.pad_token_id, pixel_values=pv)
        out[kind] = xl.layer_similarity(*(states[[at[id(p[side])] for p in pairs]] for side in (0, 1)))
    return out


# ------------------------------------------------------------------ merging and the sweep

BASELINES = ("task_arithmetic", "ties", "dare", "breadcrumbs")


def grid(spec: dict) -> list[tuple[str, dict]]:
    """The merge configurations of a sweep from a compact spec (the chapter card's ``grid``):
    ``{"task_arithmetic": {"lambdas": [[1, 1], …]}, "ties": {"density": […], "lam": […]}, …}`` → every
    combination per method, as (method, kwargs)."""
    import itertools

    from .merging import METHODS

    out = []
    for method, options in spec.items():
        if method not in METHODS:
            raise ValueError(f"unknown merge method {method!r} in the grid; one of {METHODS}")
        keys = sorted(options)
        for values in itertools.product(*(options[k] for k in keys)):
            out.append((method, dict(zip(keys, values))))
    return out


def label(method: str, kw: dict) -> str:
    """A short readable name of a configuration, e.g. ``ties(density=0.5, lam=1)``."""
    args = ", ".join(f"{k}={v}" for k, v in sorted(kw.items()))
    return f"{method}({args})" if args else method


def multilingual(scores: dict) -> float:
    """Mean over the non-English languages of a {lang: accuracy} dict."""
    xs = [v for k, v in scores.items() if k != "en"]
    return sum(xs) / len(xs) if xs else float("nan")


def run_seed(lm_name: str, langs: list[str], seed: int, S, grid_spec: dict, v_dir, m_dir, dim3_kw: dict | None = None,
             chat: bool = False, device: str = "cpu", progress: bool = True) -> dict:
    """One seed of the experiment on the checkpoints B (``lm_name``), V (``v_dir``) and M (``m_dir``): evaluate
    B, V, M, sweep every baseline on the validation split and keep each method's best configuration (a method
    with a single configuration in the grid skips validation: there is nothing to choose), then
    evaluate those and DiM3 on the test split (held-out UDHR too for B, V, M and DiM3), and the per-layer
    cross-lingual similarity of B, V, M and DiM3.
    ``S``: the sizes (run.sizes). Returns the numbers, and the weights and suite for further use."""
    import time

    from tqdm.auto import tqdm

    from . import merging

    t0 = time.perf_counter()
    B, V, M, tok = load_three(lm_name, v_dir, m_dir, device)
    names = set(B.state_dict())
    W = {"B": lm_weights(B, names), "V": lm_weights(V, names), "M": lm_weights(M, names)}
    del B, M
    suite = build_suite(tok, V, langs, S.n_val, S.n_test, seed, S.n_udhr, chat=chat, image_processor=image_processor(v_dir))
    work = V  # one LLaVA container: V's vision tower + projector, any LM weights
    res = {"v_dir": str(v_dir), "m_dir": str(m_dir), "test": {}, "val": {}, "sim": {}}

    def score(name, weights, split, udhr=False):
        set_lm(work, weights)
        res[split][name] = evaluate(work, tok, suite, split, udhr=udhr)
        return res[split][name]

    configs = grid(grid_spec)
    n_of = {m: sum(1 for m_, _ in configs if m_ == m) for m, _ in configs}
    bar = tqdm(total=len(configs) + 6, desc=f"seed {seed}: merge + evaluate", disable=not progress)
    for name in ("B", "V", "M"):
        score(name, W[name], "test", udhr=True)
        bar.update()
    best = {}
    for method, kw in configs:  # the sweep: every baseline configuration on the validation split
        merged = merging.merge_state_dicts(W["B"], [W["V"], W["M"]], method, seed=seed, **kw)
        if n_of[method] == 1:  # nothing to choose between: no validation pass
            best[method] = (None, kw, merged)
        else:
            r = score(label(method, kw), merged, "val")
            val = 0.5 * (multilingual(r["vqa"]) + multilingual(r["text"]))
            if method not in best or val > best[method][0]:
                best[method] = (val, kw, merged)
        bar.update()
    res["best"] = {m: {"config": label(m, kw), "kw": kw, "val": v} for m, (v, kw, _) in best.items()}
    for method in list(best):
        score(method, best.pop(method)[2], "test")  # pop: one merged model in memory at a time
    bar.update()
    dim3 = merging.merge_state_dicts(W["B"], [W["V"], W["M"]], "dim3", **(dim3_kw or {}))
    score("dim3", dim3, "test", udhr=True)
    bar.update()
    for name, weights in (("B", W["B"]), ("V", W["V"]), ("M", W["M"]), ("dim3", dim3)):
        set_lm(work, weights)
        res["sim"][name] = {k: v.tolist() for k, v in similarity(work, tok, suite, n_scenes=S.n_sim).items()}
    bar.update()
    bar.close()
    res["seconds"] = time.perf_counter() - t0
    res["weights"], res["work"], res["tok"], res["suite"] = W | {"dim3": dim3}, work, tok, suite
    return res


# ------------------------------------------------------------------ the numbers the chapter records

SHORT = {"b": "B", "v": "V", "m": "M", "ta": "task_arithmetic", "ties": "ties", "dare": "dare",
         "breadcrumbs": "breadcrumbs", "dim3": "dim3"}


def summarise(results: dict) -> dict:
    """Mean and sd over seeds of every number the card records; ``results``: {seed: run_seed(...)}.

    mvqa / mtext: multilingual accuracy (non-English languages) on visual / text-only questions;
    en_vqa: English visual questions; udhr_nll: held-out UDHR, nats per token, mean over the non-English
    languages (B, V, M and DiM3 only)."""
    import numpy as np

    from .crosslingual import thirds

    seeds = sorted(results)
    m: dict = {"n_seeds": len(seeds)}

    def put(key, per_seed):
        xs = [float(per_seed(results[s])) for s in seeds]
        m[key], m[key + "_std"] = float(np.mean(xs)), float(np.std(xs))
        m[key + "_per_seed"] = xs

    for short, name in SHORT.items():
        put(f"{short}_mvqa", lambda r: multilingual(r["test"][name]["vqa"]))
        put(f"{short}_mtext", lambda r: multilingual(r["test"][name]["text"]))
        put(f"{short}_en_vqa", lambda r: r["test"][name]["vqa"]["en"])
        if "udhr_nll" in results[seeds[0]]["test"][name]:  # B, V, M and DiM3 (run_seed skips the baselines)
            put(f"{short}_udhr_nll", lambda r: np.mean([v for k, v in r["test"][name]["udhr_nll"].items() if k != "en"]))
    base = [SHORT[b] for b in ("ta", "ties", "dare", "breadcrumbs")]
    for task in ("mvqa", "mtext"):
        metric = "vqa" if task == "mvqa" else "text"
        put(f"best_baseline_{task}", lambda r: max(multilingual(r["test"][b][metric]) for b in base))
        put(f"dim3_margin_{task}", lambda r: multilingual(r["test"]["dim3"][metric])
            - max(multilingual(r["test"][b][metric]) for b in base))
        put(f"dim3_gain_{task}", lambda r: multilingual(r["test"]["dim3"][metric]) - multilingual(r["test"]["V"][metric]))
    put("dim3_en_vqa_retention", lambda r: r["test"]["dim3"]["vqa"]["en"] / max(r["test"]["V"]["vqa"]["en"], 1e-9))
    n_layers = len(results[seeds[0]]["sim"]["V"]["vqa"]) - 1
    parts = dict(zip(("lower", "middle", "upper"), thirds(n_layers)))
    for kind in ("vqa", "text"):
        for part, layers in parts.items():
            put(f"sim_gain_{part}_{kind}", lambda r: np.mean([r["sim"]["dim3"][kind][i] - r["sim"]["V"][kind][i]
                                                              for i in layers]))
    put("sim_gain_middle_minus_rest", lambda r: min(
        np.mean([r["sim"]["dim3"][k][i] - r["sim"]["V"][k][i] for i in parts["middle"]])
        - max(np.mean([r["sim"]["dim3"][k][i] - r["sim"]["V"][k][i] for i in parts[p]]) for p in ("lower", "upper"))
        for k in ("vqa", "text")))
    return m


def claims(m: dict) -> dict:
    """The card's four claims as booleans, from :func:`summarise`'s numbers (fixed before any cpu run):

    1. DiM3 beats every baseline (each at its best configuration on the validation split) on both
       multilingual tasks: mean margin over the best baseline > 0 for mvqa and for mtext;
    2. DiM3 ≫ V on both multilingual tasks: mean gain ≥ 0.10 and positive in every seed;
    3. DiM3 keeps ≥ 90 % of V's English visual-question accuracy (mean of the per-seed ratios);
    4. the cross-lingual similarity gain (DiM3 − V) is larger in the middle third of the layers than in
       the lower and the upper third, for visual and for text prompts (the mean of min over both > 0)."""
    gain_ok = all(m[f"dim3_gain_{t}"] >= 0.10 and min(m[f"dim3_gain_{t}_per_seed"]) > 0 for t in ("mvqa", "mtext"))
    return {"claim1_holds": m["dim3_margin_mvqa"] > 0 and m["dim3_margin_mtext"] > 0,
            "claim2_holds": gain_ok,
            "claim3_holds": m["dim3_en_vqa_retention"] >= 0.90,
            "claim4_holds": m["sim_gain_middle_minus_rest"] > 0}
