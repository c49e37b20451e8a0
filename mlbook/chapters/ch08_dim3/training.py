"""Chapter 8's two fine-tunes of one language-model backbone, trained once into the cache.

- B: the base LM (SmolLM2-135M-Instruct at the cpu profile);
- V: B taught to see — a LLaVA-style model (``mlbook.models.llava``, taught by ``vision``) fine-tuned on English questions about
  synthetic scenes (``scenes``), vision tower and projector included;
- M: B taught languages — fine-tuned on UDHR articles and on the scene questions asked in words
  (an English description of the scene, the question and the answer in each language).

Both fine-tunes are cached by everything that determines them (``mlbook.training.cached``: atomic, verified),
saved so that ``from_pretrained`` loads them, and resume from their last checkpoint if killed.

On a CPU they train in a child process whose kernels are pinned to AVX2 (``PORTABLE_CPU``): torch and MKL
otherwise pick the widest instructions of the machine, the float rounding of a step differs between CPUs,
and 570 steps turn that into different parents (two x86 machines, same code and seed: V's held-out UDHR loss
4.08 on one, 4.46 on the other) and different verdicts. With the kernels pinned (and the same thread count), a
seed's V and M should round the same on every x86 CPU with AVX2: the pinned child's weights equal, bit for bit,
those of a Python started with the same pins (tested), while on an AVX-512 machine a forward and backward pass
rounds differently with and without them; a second machine has not yet trained the pinned parents.
The merges and their evaluation are in ``experiment`` and ``evaluation``.
"""
from __future__ import annotations

import codecs
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from mlbook.core.cache import cache_dir, key_of
from mlbook.core.context import pick_device
from mlbook.models import llava
from mlbook.models.loading import load_causal_lm
from mlbook.models.registry import canonical
from mlbook.models.resolve import resolve
from mlbook.text.batching import EpochOrder
from mlbook.training.cached import trained_folder
from mlbook.training.fit import fit

from . import scenes, vision

TRAIN_ARTICLES = range(1, 25)  # UDHR articles M is fine-tuned on; 25–30 are held out
HELDOUT_ARTICLES = range(25, 31)


def _lm_key(name: str):
    """What identifies a base LM in a cache key: the folder's config for a local folder, else the name
    (a bundled model's converted folder is itself keyed by its package versions)."""

    path = resolve(name, "causal_lm")
    cfg = json.loads((path / "config.json").read_text())
    return [canonical(name), path.name, cfg.get("num_hidden_layers"), cfg.get("hidden_size")]


# the code that determines V and M (the data, the models, the loops): their cache key; the chapter's evaluation,
# experiment and exercises are not in it, so editing how the merges are scored does not retrain the parents
TRAINING_MODULES = ("mlbook.chapters.ch08_dim3.training", "mlbook.chapters.ch08_dim3.vision",
                    "mlbook.chapters.ch08_dim3.scenes", "mlbook.models.llava", "mlbook.models.loading",
                    "mlbook.corpora.udhr", "data/08_dim3")


# the instruction set every x86 CPU of the last decade has: ATen's vectorised kernels, MKL's GEMMs (conditional
# numerical reproducibility) and oneDNN's, all at AVX2, so that training rounds the same on every such CPU
PORTABLE_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _folder(kind: str, args: dict, portable: bool) -> Path:
    """The cached folder of V or M: ``_BUILDS[kind](folder, ckpt, **args) -> training log``, trained once
    (resumable at ``ckpt``). ``portable`` on a CPU: trained in a child process with ``PORTABLE_CPU`` kernels
    (the cache key says which kernels trained it)."""
    child = portable and pick_device("auto") == "cpu"
    parts = {"lm": _lm_key(args["lm_name"]), "kernels": "avx2" if child else "native",
             **{k: v for k, v in args.items() if k not in ("lm_name", "progress")}}

    def build(folder: Path, ckpt: Path) -> dict:
        return _build_in_child(kind, args, folder, ckpt) if child else _built_here(kind, args, folder, ckpt)

    return trained_folder(f"dim3/{kind}-{key_of(kind, parts)}", build, code=TRAINING_MODULES)[0]


def _build_in_child(kind: str, args: dict, folder: Path, ckpt: Path) -> dict:
    """Run ``_BUILDS[kind]`` in a fresh Python with ``PORTABLE_CPU`` kernels and this process's thread count
    and cache; its output (progress bars) is relayed to this process's stderr. Returns the training log."""
    import torch

    env = {**os.environ, **PORTABLE_CPU, "MLBOOK_CACHE": str(cache_dir())}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.json"
        cmd = [sys.executable, "-c", "from mlbook.chapters.ch08_dim3.training import _child; _child()",
               kind, json.dumps(args), str(folder), str(ckpt), str(log), str(torch.get_num_threads())]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        tail, text = b"", codecs.getincrementaldecoder("utf-8")(errors="replace")  # a bar's █ may span two reads
        try:
            while chunk := proc.stdout.read1(4096):
                tail = (tail + chunk)[-4000:]
                sys.stderr.write(text.decode(chunk))
                sys.stderr.flush()
            rc = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted here: stop the child too (its checkpoints stay for a resume)
                proc.kill()
                proc.wait()
        if rc != 0:
            raise RuntimeError(f"training {kind} in the child process failed (exit {rc}); its last output:\n"
                               + tail.decode(errors="replace"))
        return json.loads(log.read_text())


def _built_here(kind: str, args: dict, folder: Path, ckpt: Path) -> dict:
    """``_BUILDS[kind]`` in this process; its log also says which CPU kernels trained it."""
    import torch

    return {**_BUILDS[kind](folder, ckpt, **args), "cpu_kernels": torch.backends.cpu.get_cpu_capability()}


def _child() -> None:
    """Entry point of :func:`_build_in_child`'s process."""
    import torch

    kind, args, folder, ckpt, log, threads = sys.argv[1:]
    torch.set_num_threads(int(threads))
    Path(log).write_text(json.dumps(_built_here(kind, json.loads(args), Path(folder), Path(ckpt))))


def train_vision_model(lm_name: str, seed: int, *, n_images: int, vision_steps: int, align_steps: int,
                       vqa_scenes: int, vqa_steps: int, batch_size: int, lr_projector: float, lr_lm: float,
                       vision_batch: int = 128, progress: bool = True, portable: bool = True) -> Path:
    """V, cached: (1) a vision tower pretrained on the scenes' attributes; (2) the projector aligned to the LM's
    word embeddings (``vision.align_projector``, LM frozen); (3) projector + the whole LM trained on English visual
    conversations (tower frozen). Returns the folder (``LlavaForConditionalGeneration`` + ``LlavaProcessor``;
    its training log holds the curves and the tower's held-out attribute accuracy). ``portable``: on a CPU, trained
    with ``PORTABLE_CPU`` kernels in a child process (the module's docstring says why)."""
    return _folder("V", dict(lm_name=lm_name, seed=seed, n_images=n_images, vision_steps=vision_steps,
                             vision_batch=vision_batch, align_steps=align_steps, vqa_scenes=vqa_scenes,
                             vqa_steps=vqa_steps, batch_size=batch_size, lr_projector=lr_projector, lr_lm=lr_lm,
                             progress=progress), portable)


def _build_vision(folder: Path, ckpt: Path, *, lm_name: str, seed: int, n_images: int, vision_steps: int,
                  align_steps: int, vqa_scenes: int, vqa_steps: int, batch_size: int, lr_projector: float,
                  lr_lm: float, vision_batch: int, progress: bool) -> dict:
    """V's training into ``folder`` (checkpoints in ``ckpt``); returns its training log."""
    import torch

    dev = pick_device("auto")  # fit trains on the GPU when there is one: keep every tensor there
    lm, tok = load_causal_lm(lm_name, device=dev)
    # (1) the vision tower, on its own scenes
    pre = scenes.sample_scenes(n_images, seed=10_000 + seed)
    pre_px = llava.pixel_values(scenes.draw_many(pre, 10_000 + seed)).to(dev)
    tower, vhist, probe = vision.pretrain_vision(pre, pre_px, vision_steps, batch_size=vision_batch, seed=seed,
                                              progress=progress)
    held = scenes.sample_scenes(400, seed=20_000 + seed)
    with torch.no_grad():
        logits = probe.logits(llava.pixel_values(scenes.draw_many(held, 20_000 + seed)).to(dev))
    tower_acc = {k: float((v.argmax(-1).cpu() == torch.tensor([s.label(k) for s in held])).float().mean())
                 for k, v in logits.items()}
    # (2) LLaVA: a fresh projector, aligned to the LM's word embeddings (tower and LM frozen)
    V = llava.build(lm, tower, tok)
    del lm
    for p in V.parameters():
        p.requires_grad_(False)
    for p in V.model.multi_modal_projector.parameters():
        p.requires_grad_(True)
    ahist = vision.align_projector(V, tok, pre, pre_px, align_steps, lr=lr_projector, seed=seed, progress=progress)
    # (3) projector + the whole LM on English visual conversations about fresh scenes (tower frozen)
    for p in V.model.language_model.parameters():
        p.requires_grad_(True)
    sc = scenes.sample_scenes(vqa_scenes, seed=30_000 + seed)
    px = llava.pixel_values(scenes.draw_many(sc, 30_000 + seed))
    examples = visual_conversations(tok, V, sc, px, seed)
    groups = [{"params": list(V.model.multi_modal_projector.parameters()), "lr": lr_projector},
              {"params": list(V.model.language_model.parameters()), "lr": lr_lm}]
    hist = fit(V, vision.answer_loss, shuffled_batches(examples, batch_size, seed, tok.pad_token_id),
               steps=vqa_steps, lr=lr_lm, params=groups, warmup=max(1, vqa_steps // 10), grad_clip=1.0,
               ckpt_dir=ckpt, save_every=10, save_last=False, seed=seed, progress=progress, desc="V: visual instructions",
               fused=True)
    V.eval()
    for p in V.parameters():
        p.requires_grad_(True)
    V.save_pretrained(folder)
    llava.processor(tok, image_size=V.config.vision_config.image_size,
                  patch=V.config.vision_config.patch_size).save_pretrained(folder)
    return {"vision": vhist, "tower_heldout_accuracy": tower_acc, "align": ahist, "vqa": hist}


def _turns(tok, scene, lang: str, order, first_kw: dict) -> list:
    """The four questions about one scene in ``lang``, in ``order``: the first prompt with ``first_kw``
    (the image placeholders or the English description), the later ones as further turns."""

    return [(vision.prompt_ids(tok, scenes.question(lang, k), first=j == 0, **(first_kw if j == 0 else {})),
             vision.answer_ids(tok, scenes.answer(scene, lang, k))) for j, k in enumerate(order)]


def visual_conversations(tok, V, scenes_, pixels, seed: int) -> list[dict]:
    """V's training data: one conversation per scene — its image, then the four English questions in a
    seeded random order, each followed by its answer (LLaVA's multi-turn format)."""


    rng = random.Random(seed)
    kw = {"n_image": llava.n_image_tokens(V), "image_id": V.config.image_token_id}
    out = []
    for i, s in enumerate(scenes_):
        order = rng.sample(scenes.KINDS, len(scenes.KINDS))
        out.append(vision.conversation(_turns(tok, s, "en", order, kw), vision.end_id(tok), pixels[i]))
    return out


def multilingual_examples(tok, langs: list[str], n_scenes: int, seed: int, chunk_tokens: int = 64):
    """M's two kinds of training examples: (a) UDHR articles 1–24 in every language, cut into chunks of
    ``chunk_tokens`` tokens, loss on every token; (b) scene questions in words — per scene and language a
    conversation: the English description, then the four questions in that language (seeded order), each
    followed by its answer in that language — loss on the answers."""


    end = vision.end_id(tok)
    udhr = []
    for lang, paras in scenes.udhr_texts(langs, TRAIN_ARTICLES).items():
        ids = tok("\n".join(paras), add_special_tokens=False)["input_ids"]
        udhr += [vision.example([], ids[i : i + chunk_tokens], end) for i in range(0, len(ids), chunk_tokens)]
    rng = random.Random(seed)
    words = []
    for s in scenes.sample_scenes(n_scenes, seed=40_000 + seed):
        for lang in langs:
            order = rng.sample(scenes.KINDS, len(scenes.KINDS))
            words.append(vision.conversation(_turns(tok, s, lang, order, {"context": scenes.describe(s)}), end))
    return udhr, words


def train_multilingual_model(lm_name: str, langs: list[str], seed: int, *, text_scenes: int, steps: int,
                             batch_size: int, udhr_per_batch: int, lr_lm: float, progress: bool = True,
                             portable: bool = True) -> Path:
    """M, cached: the LM fine-tuned on a mix of UDHR chunks (``udhr_per_batch`` per batch) and scene questions
    in words (the rest of the batch). Returns the folder (``LlamaForCausalLM``-style checkpoint + tokenizer).
    ``portable``: as for :func:`train_vision_model`."""

    langs = scenes.check_languages(langs)
    return _folder("M", dict(lm_name=lm_name, langs=langs, seed=seed, text_scenes=text_scenes, steps=steps,
                             batch_size=batch_size, udhr_per_batch=udhr_per_batch, lr_lm=lr_lm, progress=progress),
                   portable)


def _build_multilingual(folder: Path, ckpt: Path, *, lm_name: str, langs: list[str], seed: int, text_scenes: int,
                        steps: int, batch_size: int, udhr_per_batch: int, lr_lm: float, progress: bool) -> dict:
    """M's training into ``folder`` (checkpoints in ``ckpt``); returns its training log."""
    lm, tok = load_causal_lm(lm_name)
    udhr, words = multilingual_examples(tok, langs, text_scenes, seed)
    rng = random.Random(seed)
    n_words = batch_size - udhr_per_batch
    batches = [vision.collate(rng.sample(udhr, udhr_per_batch) + rng.sample(words, n_words), tok.pad_token_id)
               for _ in range(steps)]
    hist = fit(lm, vision.answer_loss, batches, steps=steps, lr=lr_lm, warmup=max(1, steps // 10), grad_clip=1.0,
               ckpt_dir=ckpt, save_every=10, save_last=False, seed=seed, progress=progress, desc="M: languages",
               fused=True)
    lm.eval()
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)
    return {"m": hist, "n_udhr_chunks": len(udhr), "n_word_examples": len(words)}



def shuffled_batches(examples: list[dict], batch_size: int, seed: int, pad_id: int) -> Callable:
    """A callable ``step -> batch``: epoch after epoch of the examples in a seeded random order."""
    order = EpochOrder(len(examples), seed)
    return lambda i: vision.collate([examples[j] for j in order.batch(i, batch_size)], pad_id)


_BUILDS = {"V": _build_vision, "M": _build_multilingual}
