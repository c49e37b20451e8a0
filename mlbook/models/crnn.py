"""A tiny CRNN-CTC line recogniser (Shi et al. 2015), as a transformers ``PreTrainedModel`` (so
``save_pretrained`` / ``from_pretrained`` work as for any checkpoint).

    CRNNForCTC(CRNNConfig(alphabet))  conv stack → (B, T, C) sequence → BiLSTM → per-step scores over
                                      the alphabet + the CTC blank (index 0)
    greedy_decode(logits, alphabet)   best path: argmax per step, merge repeats, drop blanks
    alphabet_of(texts)                the characters a model can emit: decomposed (NFD), no whitespace
    read_crops(model, crops)          line crops (``mlbook.ocr.lines``) → texts

Its outputs can only be characters of its alphabet: on a script it never saw, it necessarily
hallucinates characters of the scripts it knows (chapter 10's claim 2 made causal).  This module
imports torch and transformers: it is the model's file, imported on demand.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from mlbook.models.length_order import by_length


class CRNNConfig(PretrainedConfig):
    """alphabet: the characters the model can emit (class i + 1 = alphabet[i]; class 0 = CTC blank);
    scripts: the scripts it was trained on (ISO 15924), kept with the checkpoint."""
    model_type = "glotocr_crnn"

    def __init__(self, alphabet: str = "", height: int = 24, squeeze: float = 0.8,  # = mlbook.ocr.lines.HEIGHT, SQUEEZE
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


class torch_threads:  # noqa: N801 (a context manager used like a function)
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


def pad_crops(crops):
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
    texts = [None] * len(crops)
    dev = next(model.parameters()).device
    with torch.no_grad(), torch_threads(threads):
        for idx in by_length([c.shape[1] for c in crops], batch_size):   # similar widths batch together
            x, widths = pad_crops([crops[i] for i in idx])
            logits = model(x.to(dev))["logits"].cpu()
            for i, t in zip(idx, greedy_decode(logits, model.config.alphabet, [w // 4 for w in widths])):
                texts[i] = t
    return texts
