"""The chapter's CRNN: short training phrases from text disjoint from the test lines (UDHR articles 16–30
of the scripts it is told about), rendered as pages, cut into line crops, and a CRNN-CTC trained on them
(AdamW, one-cycle learning rate, a width curriculum), built once into the mlbook cache."""
from __future__ import annotations

import torch

from mlbook.core.cache import key_of
from mlbook.models.crnn import CRNNConfig, CRNNForCTC, encode, pad_crops, torch_threads
from mlbook.ocr import render, typeset
from mlbook.ocr.fonts import clean_ground_truth
from mlbook.ocr.lines import HEIGHT, SQUEEZE
from mlbook.training.cached import trained_folder

from .benchmark import boundary, rng_of, script_font, script_sources


def crnn_phrases(scripts, n_per_script: int, seed: int) -> list[tuple[str, str]]:
    """(font, phrase) pairs to train the CRNN on: phrases of 1–3 words (2–24 characters, cleaned for
    the script's font) from UDHR articles 16–30 of the scripts' UDHR languages — never test text. For
    a script written without spaces, a random run of 2–12 characters. Short phrases because CTC
    finds its alignment sooner on short sequences and narrow crops are cheap; the CRNN still reads
    whole lines at test time."""
    out = []
    for script in scripts:
        font = script_font(script)
        texts = [t for v in script_sources()[script].values() for t in v["train"]]
        if not texts or font is None:
            raise ValueError(f"no training text or font for script {script!r}")
        rng = rng_of(seed, script, "phrases")
        got, tries = 0, 0
        while got < n_per_script and tries < 50 * n_per_script:
            tries += 1
            text = texts[int(rng.integers(len(texts)))]
            words = text.split()
            if len(words) >= len(text) / 25:
                k = int(rng.integers(1, 4))
                i = int(rng.integers(0, max(1, len(words) - k + 1)))
                phrase = " ".join(words[i:i + k])
            else:
                n = int(rng.integers(2, 13))
                i = int(rng.integers(0, max(1, len(text) - n)))
                while 0 < i < len(text) and not boundary(text, i):
                    i -= 1
                phrase = text[i:i + n]
            phrase = clean_ground_truth(phrase, font)
            if 2 <= len(phrase) <= 24:
                out.append((font, phrase))
                got += 1
    return out


def crnn_pages(phrases, seed: int = 0):
    """Each phrase drawn in the PLAIN profile on a canvas just wide enough: (image, [phrase])."""
    import math

    pages = []
    for i, (font, phrase) in enumerate(phrases):
        lay = typeset.layout(phrase, font)
        width = max(200, math.ceil(max(ln.width for ln in lay.lines)) + 2 * typeset.MARGIN)
        lay = typeset.layout(phrase, font, width=min(width, typeset.WIDTH))
        pages.append((render.draw(lay, render.PLAIN, seed=int(rng_of(seed, i, "page").integers(2 ** 31))),
                      [ln.text for ln in lay.lines]))
    return pages


def training_texts(scripts) -> list[str]:
    """Every text the CRNN's phrases are drawn from (for the disjointness check)."""
    return [t for s in scripts for v in script_sources()[s].values() for t in v["train"]]


def disjoint(train_texts, test_texts, k: int = 30) -> int:
    """How many test texts share a k-character substring (whitespace ignored) with any training text:
    0 = no test line (≥ 30 characters) occurs in the text the CRNN was trained from."""
    def shingles(t):
        t = "".join(t.split())
        return {t[i:i + k] for i in range(max(1, len(t) - k + 1))}
    train = set().union(*(shingles(t) for t in train_texts)) if train_texts else set()
    return sum(bool(shingles(t) & train) for t in test_texts)


def _fits(n_steps: int, ids: list[int]) -> bool:
    """CTC can emit the label in n_steps: one step per character and one blank between repeats."""
    return n_steps >= len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


def train(samples, alphabet: str, scripts=(), steps: int = 1000, batch_size: int = 8, lr: float = 4e-3,
          seed: int = 0, channels=(16, 32, 64, 64, 96), hidden: int = 96, device: str = "cpu", progress: bool = True,
          threads: int | None = 1):
    """Train a CRNNForCTC on (crop, text) samples with the CTC loss: AdamW, one-cycle learning rate.
    A batch is batch_size crops of similar width (a window over the crops sorted by width: little
    padding) drawn with the seed, which also seeds the initialisation. Curriculum: the window starts
    among the narrowest quarter of the crops (short words: CTC finds its alignment sooner) and
    widens to all of them by 30 % of the steps. threads: torch CPU threads (None = torch's setting).
    Returns (model, losses)."""
    import numpy as np

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    height = samples[0][0].shape[0]
    cfg = CRNNConfig(alphabet=alphabet, height=height, channels=channels, hidden=hidden, scripts=list(scripts))
    model = CRNNForCTC(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    enc = [encode(t, alphabet) for _, t in samples]
    keep = [i for i, e in enumerate(enc) if e and _fits(samples[i][0].shape[1] // 4, e)]
    keep.sort(key=lambda i: samples[i][0].shape[1])
    bs = min(batch_size, len(keep))
    model.train()
    with torch_threads(threads):
        losses = _loop(model, opt, sched, samples, enc, keep, bs, steps, rng, device, progress)
    model.eval()
    return model, losses


def _loop(model, opt, sched, samples, enc, keep, bs, steps, rng, device, progress):
    """The training steps of train(): a width-sorted window per batch, CTC loss, AdamW, clipped gradients."""
    from tqdm.auto import tqdm
    losses = []
    for step in tqdm(range(steps), desc="CRNN training", disable=not progress):
        reach = min(1.0, 0.25 + 0.75 * step / (0.3 * steps))  # share of the width-sorted crops in reach
        start = int(rng.integers(0, int(reach * (len(keep) - bs)) + 1))
        idx = keep[start:start + bs]
        x, widths = pad_crops([samples[i][0] for i in idx])
        labels = torch.tensor([k for i in idx for k in enc[i]], dtype=torch.long)
        lengths = torch.tensor([len(enc[i]) for i in idx], dtype=torch.long)
        out = model(x.to(device), labels=labels, label_lengths=lengths, input_widths=widths)
        opt.zero_grad()
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        losses.append(out["loss"].item())
    return losses


def trained_crnn(make_samples, alphabet: str, key, **train_kw):
    """A CRNN trained by train(make_samples(), alphabet, **train_kw), built once into the mlbook cache
    under a key of every input (key must describe what make_samples renders; it runs only when the
    model is not cached). Returns (model, info) with info = {'folder', 'losses', 'n_samples', 'cached',
    'seconds'}; CRNNForCTC.from_pretrained(info['folder']) loads the model again."""
    import time

    state = {}

    def build(folder, ckpt):
        t0 = time.perf_counter()
        samples = make_samples()
        model, losses = train(samples, alphabet, **train_kw)
        model.save_pretrained(folder)
        state["built"] = True
        return {"losses": losses, "n_samples": len(samples), "seconds": time.perf_counter() - t0}

    folder, log = trained_folder(f"models/glotocr-crnn-{key_of(key, alphabet, train_kw, HEIGHT, SQUEEZE, 3)}", build,
                                 code=("mlbook.chapters.ch10_glotocr", "mlbook.models.crnn", "mlbook.ocr"))
    model = CRNNForCTC.from_pretrained(folder).eval()
    return model, {"folder": str(folder), "cached": not state.get("built"), **log}
