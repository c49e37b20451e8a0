"""A tiny CRNN-CTC line recogniser (Shi et al. 2015), trained in the GlotOCR chapter on two scripts.

    line_crops(image)                 deskew, split into text lines, crop, resize to height 32 → ink arrays
    CRNNForCTC(CRNNConfig(alphabet))  conv stack → (B, T, C) sequence → BiLSTM → per-step scores over
                                      the alphabet + the CTC blank (index 0)
    greedy_decode(logits, alphabet)   best path: argmax per step, merge repeats, drop blanks
    train(samples, alphabet, ...)     CTC loss, AdamW, seeded; returns the model
    trained_crnn(...)                 the same, cached in the mlbook cache by every input; saved so that
                                      CRNNForCTC.from_pretrained(folder) loads it
    alphabet_of(texts)                the characters a model can emit: decomposed (NFD), no whitespace
    read(model, image)                line_crops → model → greedy_decode, lines joined by newlines

The model is a transformers PreTrainedModel, so save_pretrained / from_pretrained work as for any
checkpoint (this module imports torch and transformers: it is the model's file, imported on demand). Its outputs can only be characters of its alphabet: on a script it never saw, it
necessarily hallucinates characters of the scripts it knows (the chapter's claim 2 made causal).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

HEIGHT = 24    # px: every line crop is resized to this height (the model's input height) ...
SQUEEZE = 0.8  # ... and its width to SQUEEZE x the aspect-preserving width: 20 % fewer steps, still ≥ 2 per character


# ---------------------------------------------------------------------------------- line finding


def _otsu(a) -> float:
    """Otsu's threshold of a uint8-valued array."""
    import numpy as np
    hist = np.bincount(a.astype(np.uint8).ravel(), minlength=256).astype(float)
    p = hist / hist.sum()
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(256))
    between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega) + 1e-12)
    return float(np.argmax(between))


def deskew_angle(mask, max_deg: float = 3.0) -> float:
    """The rotation (degrees, counter-clockwise as PIL's Image.rotate) that makes the text rows of an
    ink mask horizontal: the angle whose row profile is most peaked (largest sum of squared row
    counts), searched coarse (0.5°) then fine (0.1°). The profile of a rotation is a histogram of the
    rotated y coordinates of the ink pixels (y' = −x sin θ + y cos θ), no image is rotated."""
    import numpy as np

    ys, xs = np.nonzero(mask[::2, ::2])  # every second row and column: plenty for a profile
    if len(ys) == 0:
        return 0.0
    ys, xs = ys - ys.mean(), xs - xs.mean()

    def score(deg):
        t = np.deg2rad(deg)
        yr = np.round(-xs * np.sin(t) + ys * np.cos(t)).astype(int)
        counts = np.bincount(yr - yr.min())
        return float((counts.astype(float) ** 2).sum())
    coarse = max(np.arange(-max_deg, max_deg + 1e-9, 0.5), key=score)
    return float(max(np.arange(coarse - 0.4, coarse + 0.41, 0.1), key=score))


def line_crops(image, height: int = HEIGHT, squeeze: float = SQUEEZE, max_width: int = 1024, return_boxes: bool = False):
    """Text lines of a page image as ink arrays (float32 in [0, 1], 1 = ink) of the given height.
    Steps: Otsu binarisation, deskew (±3°), row profile of the ink, runs of inked rows = lines (runs
    thinner than a third of the tallest, e.g. a row of accents, join their nearest neighbour), crop
    each line to its ink columns with a small pad, resize to the height (width: the aspect-preserving
    width times squeeze)."""
    import numpy as np
    from PIL import Image

    g = np.asarray(image.convert("L"), dtype=np.float32)
    t = _otsu(g)
    if g.max() - g.min() < 40:  # a blank page: no lines
        return ([], []) if return_boxes else []
    angle = deskew_angle(g < t)
    bg = float(np.median(g))
    g = np.asarray(Image.fromarray(g.astype(np.uint8)).rotate(angle, resample=Image.BILINEAR, expand=True,
                                                              fillcolor=int(bg)), dtype=np.float32)
    ink = np.clip((bg - g) / max(bg - min(t, bg - 1), 1.0), 0, 1)  # 0 on paper, 1 at the threshold and darker
    mask = g < t
    rows = mask.sum(1) > max(2, 0.002 * mask.shape[1])
    runs, start = [], None
    for y, on in enumerate(list(rows) + [False]):
        if on and start is None:
            start = y
        elif not on and start is not None:
            runs.append([start, y])
            start = None
    if not runs:
        return ([], []) if return_boxes else []
    tallest = max(b - a for a, b in runs)
    merged = True
    while merged and len(runs) > 1:  # join thin runs (accents, dots, descender fragments) to a neighbour
        merged = False
        for i, (a, b) in enumerate(runs):
            if b - a < tallest / 3:
                gaps = [(a - runs[i - 1][1], i - 1) if i > 0 else (1e9, -1),
                        (runs[i + 1][0] - b, i + 1) if i + 1 < len(runs) else (1e9, -1)]
                _, j = min(gaps)
                lo, hi = min(i, j), max(i, j)
                runs[lo] = [runs[lo][0], runs[hi][1]]
                del runs[hi]
                merged = True
                break
    crops, boxes = [], []
    for a, b in runs:
        pad = max(2, (b - a) // 8)
        y0, y1 = max(0, a - pad), min(g.shape[0], b + pad)
        cols = np.flatnonzero(mask[y0:y1].any(0))
        x0, x1 = max(0, cols[0] - pad), min(g.shape[1], cols[-1] + 1 + pad)
        crop = ink[y0:y1, x0:x1]
        w = int(min(max_width, max(height, round(crop.shape[1] * height / crop.shape[0] * squeeze))))
        crops.append(np.asarray(Image.fromarray(crop, mode="F").resize((w, height), Image.BILINEAR), dtype=np.float32))
        boxes.append((x0, y0, x1, y1))
    return (crops, boxes) if return_boxes else crops


# ------------------------------------------------------------------------------------------ model


class CRNNConfig(PretrainedConfig):
    """alphabet: the characters the model can emit (class i + 1 = alphabet[i]; class 0 = CTC blank);
    scripts: the scripts it was trained on (ISO 15924), kept with the checkpoint."""
    model_type = "glotocr_crnn"

    def __init__(self, alphabet: str = "", height: int = HEIGHT, squeeze: float = SQUEEZE,
                 channels=(16, 32, 64, 64, 96), hidden: int = 96, scripts=(), **kw):
        self.alphabet, self.height, self.squeeze, self.channels = alphabet, height, squeeze, list(channels)
        self.hidden, self.scripts = hidden, list(scripts)
        super().__init__(**kw)


def _conv(i: int, o: int, stride):
    return [nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


class CRNNForCTC(PreTrainedModel):
    """Ink (B, 1, H, W) in [0, 1] (H = 24 or 32) → logits (B, W/4, 1 + len(alphabet)); class 0 is the
    CTC blank. Strided convolutions instead of conv + pooling: the same receptive field at a third
    of the cost on a CPU."""
    config_class = CRNNConfig
    main_input_name = "pixel_values"

    def __init__(self, config: CRNNConfig):
        super().__init__(config)
        c1, c2, c3, c4, c5 = config.channels
        self.conv = nn.Sequential(*_conv(1, c1, 2),           # 24 x W   -> 12 x W/2
                                  *_conv(c1, c2, 2),          # 12 x W/2 ->  6 x W/4
                                  *_conv(c2, c3, (2, 1)),     #  6       ->  3   (time stays W/4)
                                  *_conv(c3, c4, (2, 1)),     #  3       ->  2
                                  nn.Conv2d(c4, c5, (2, 1)),  #  2       ->  1
                                  nn.ReLU(inplace=True))
        self.rnn = nn.LSTM(c5, config.hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * config.hidden, 1 + len(config.alphabet))
        self.post_init()

    def _init_weights(self, module):
        pass  # torch's own default initialisation, seeded by the caller

    def forward(self, pixel_values, labels=None, label_lengths=None, input_widths=None):
        """labels: the targets of the batch concatenated (class ids), label_lengths their lengths,
        input_widths the unpadded widths (px) of the crops; with labels, also the CTC loss."""
        f = self.conv(pixel_values).squeeze(2).transpose(1, 2)       # (B, T, c5), T = W/4
        logits = self.head(self.rnn(f)[0])                           # (B, T, C)
        out = {"logits": logits}
        if labels is not None:
            T, dev = logits.shape[1], logits.device
            steps = torch.full((logits.shape[0],), T, dtype=torch.long) if input_widths is None \
                else torch.clamp(torch.as_tensor(input_widths) // 4, 1, T)
            logp = logits.float().log_softmax(-1).transpose(0, 1)     # (T, B, C), as ctc_loss wants
            out["loss"] = nn.functional.ctc_loss(logp, labels.to(dev), steps.to(dev), label_lengths.to(dev),
                                                 blank=0, zero_infinity=True)
        return out


# ---------------------------------------------------------------------------------------- decoding


class _threads:
    """Run torch on n CPU threads inside the block. A model this small gains little from a second
    thread on an idle machine and loses a lot on a shared one: with the cores busy, two OpenMP
    threads wait for each other at every barrier (measured: a training step 7x slower)."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def greedy_decode(logits, alphabet: str, lengths=None) -> list[str]:
    """Best-path CTC decoding of (B, T, C) scores: argmax per step, merge runs of the same class,
    drop the blank (0); class i > 0 is alphabet[i - 1]. The result is NFC-composed (the model
    emits decomposed text: a base letter, then its combining marks)."""
    import unicodedata
    best = torch.as_tensor(logits).argmax(-1)
    out = []
    for b, row in enumerate(best.tolist()):
        if lengths is not None:
            row = row[:int(lengths[b])]
        chars, prev = [], 0
        for k in row:
            if k != prev and k != 0:
                chars.append(alphabet[k - 1])
            prev = k
        out.append(unicodedata.normalize("NFC", "".join(chars)))
    return out


def alphabet_of(texts) -> str:
    """The characters of the texts, decomposed (NFD: é = e + U+0301, so that accented letters share
    their base letter's class), whitespace left out (CER ignores it), sorted."""
    import unicodedata
    return "".join(sorted({c for t in texts for c in unicodedata.normalize("NFD", t) if not c.isspace()}))


def encode(text: str, alphabet: str) -> list[int]:
    """Class ids of text's characters after NFD (characters outside the alphabet, e.g. spaces, are skipped)."""
    import unicodedata
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    return [index[c] for c in unicodedata.normalize("NFD", text) if c in index]


def _batch(crops):
    """Pad (32, w_i) crops to the widest with no ink: (B, 1, 32, W) and the widths."""
    import numpy as np
    W = max(c.shape[1] for c in crops)
    W += (-W) % 4
    x = np.zeros((len(crops), 1, crops[0].shape[0], W), dtype=np.float32)
    for i, c in enumerate(crops):
        x[i, 0, :, :c.shape[1]] = c
    return torch.from_numpy(x), [c.shape[1] for c in crops]


def read_crops(model, crops, batch_size: int = 32, threads: int | None = 1) -> list[str]:
    """Greedy readings of line crops, batched by similar width."""
    if not crops:
        return []
    model.eval()
    order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1])  # similar widths batch together
    texts = [None] * len(crops)
    dev = next(model.parameters()).device
    with torch.no_grad(), _threads(threads):
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            x, widths = _batch([crops[i] for i in idx])
            logits = model(x.to(dev))["logits"].cpu()
            for i, t in zip(idx, greedy_decode(logits, model.config.alphabet, [w // 4 for w in widths])):
                texts[i] = t
    return texts


def read(model, image) -> str:
    """Read a page image: its lines, top to bottom, joined by newlines."""
    return "\n".join(read_crops(model, line_crops(image, model.config.height, model.config.squeeze)))


# ---------------------------------------------------------------------------------------- training


def samples_from_pages(pages, height: int = HEIGHT, squeeze: float = SQUEEZE) -> list:
    """(crop, text) pairs from (image, line texts) pages: a page is kept when line_crops finds as
    many lines as were rendered (so that each crop gets its own text)."""
    out = []
    for image, lines in pages:
        crops = line_crops(image, height, squeeze)
        if len(crops) == len(lines):
            out += list(zip(crops, lines))
    return out


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
    with _threads(threads):
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
        x, widths = _batch([samples[i][0] for i in idx])
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
    import json
    import time

    from .cache import cached_folder, key_of
    state = {}

    def build(folder: Path):
        t0 = time.perf_counter()
        samples = make_samples()
        model, losses = train(samples, alphabet, **train_kw)
        model.save_pretrained(folder)
        (folder / "training.json").write_text(json.dumps({"losses": losses, "n_samples": len(samples),
                                                          "seconds": time.perf_counter() - t0}))
        state["built"] = True
        return {"n_samples": len(samples)}
    folder = cached_folder(f"models/glotocr-crnn-{key_of(key, alphabet, train_kw, HEIGHT, SQUEEZE, 3)}", build)
    model = CRNNForCTC.from_pretrained(folder).eval()
    info = json.loads((folder / "training.json").read_text())
    return model, {"folder": str(folder), "cached": not state.get("built"), **info}
