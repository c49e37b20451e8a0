"""Training only the top k layers of a BERT-style encoder, on cached states of the frozen layers below.

The chapter fine-tunes the last ``k`` of e5-small's 12 layers (and freezes the 250k-token embedding and
everything under layer 12 − k). What enters layer 12 − k never changes, so it is computed once per text
(:func:`encode`) and every training step runs ``k`` layers only (:class:`Top`):

    h_{L−k} = frozen(x)   (cached)        h_L = Top(h_{L−k})        pool(h) = Σ_t m_t h_t / Σ_t m_t

with m the attention mask (e5's mean pooling). ``Top`` equals the full model's output exactly (tested).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from mlbook.models.length_order import by_length, input_order


@dataclass
class States:
    """Cached inputs of the top layers for n texts, right-padded: ``h`` (n, T, d) the states entering layer
    L − k, ``att`` (n, T) the attention mask, ``pooled`` (n, L + 1, d) the mean-pooled state at every layer
    of the unchanged model (0 = embeddings), ``word_ids`` per text (None for special tokens)."""

    h: object
    att: object
    pooled: object
    word_ids: list

    def __len__(self):
        return len(self.word_ids)

    def subset(self, idx) -> States:
        """The texts ``idx`` (a list of row numbers), as their own States."""
        return States(self.h[idx], self.att[idx], self.pooled[idx], [self.word_ids[i] for i in idx])

    def rows(self, idx):
        """``(h, att, word_ids)`` of the rows ``idx``, trimmed to their longest text."""
        width = int(self.att[idx].sum(1).max())
        return self.h[idx, :width], self.att[idx, :width], [self.word_ids[i][:width] for i in idx]


def mean_pool(h, att):
    """e5's sentence vector: the mean of the states over real tokens."""
    m = att.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


def encode(model, tok, texts: list[list[str]], k: int, max_length: int = 128, batch_size: int = 64,
           progress: bool = False) -> States:
    """Run the frozen model once over ``texts`` (each a list of words) and keep what the top ``k`` layers need."""
    from tqdm.auto import tqdm

    n_layers, device = model.config.num_hidden_layers, next(model.parameters()).device   # states stay on the model's device
    if not 1 <= k <= n_layers:
        raise ValueError(f"k must be 1..{n_layers} (the layers trained), got {k}")
    batches = by_length([len(t) for t in texts], batch_size)          # batches of similar lengths pad little
    hs, atts, pooled, wids = [], [], [], []
    for idx in tqdm(batches, desc="encoding (frozen layers)", disable=not progress):
        enc = tok([texts[i] for i in idx], is_split_into_words=True, truncation=True,
                  max_length=max_length, padding=True, return_tensors="pt")
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        hid = out.hidden_states
        hs += list(hid[n_layers - k])
        atts += list(mask)
        pooled.append(torch.stack([mean_pool(x, mask) for x in hid], 1))
        wids += [enc.word_ids(r) for r in range(len(ids))]
    width = max(len(a) for a in atts)
    h = torch.zeros(len(hs), width, model.config.hidden_size, device=device)
    att = torch.zeros(len(hs), width, dtype=torch.long, device=device)
    for r, (x, a) in enumerate(zip(hs, atts)):
        n = int(a.sum())
        h[r, :n], att[r, :n] = x[:n], 1
    back = input_order(batches)                                       # row of text i
    return States(h[back], att[back], torch.cat(pooled)[back], [wids[r] + [None] * (width - len(wids[r])) for r in back])


class TopLayers(torch.nn.Module):
    """A fresh, trainable copy of the last ``k`` layers of ``model``: ``top(h, att)`` gives the final states,
    ``top(h, att, every=True)`` the output of each of the k layers (layers L − k + 1 … L)."""

    def __init__(self, model, k: int):
        super().__init__()
        self.layers = torch.nn.ModuleList(copy.deepcopy(model.encoder.layer[-k:]))
        self.config = model.config
        self.first = model.config.num_hidden_layers - k
        for p in self.parameters():
            p.requires_grad_(True)

    def forward(self, h, att, every: bool = False):
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.config, inputs_embeds=h, attention_mask=att)
        outs = []
        for layer in self.layers:
            h = layer(h, mask)
            outs.append(h)
        return outs if every else h
