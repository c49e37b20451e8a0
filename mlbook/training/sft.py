"""Supervised fine-tuning: token ids and labels that train on the completion only (or on every token),
shuffled length-bucketed batches over epochs, and the next-token loss on the labelled tokens."""
from __future__ import annotations

import random

from mlbook.text.batching import EpochOrder, right_pad


def sft_example(tokenizer, prompt: str, completion: str, max_len: int | None = None,
                prompt_loss: bool = False) -> dict:
    """Token ids of ``prompt + completion`` and labels that train on the completion only (-100 elsewhere),
    or on every token when ``prompt_loss`` (plain language-model pre-training on the whole document).

    ``prompt`` is already formatted (chat template applied); ``completion`` should end with the
    tokenizer's end-of-turn text, so that the model learns to stop.
    """
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = (p + c)[:max_len] if max_len else p + c
    labels = ((p if prompt_loss else [-100] * len(p)) + c)[: len(ids)]
    return {"input_ids": ids, "labels": labels}


def sft_batches(examples: list[dict], batch_size: int, *, epochs: float = 1.0, seed: int = 0, pad_id: int = 0):
    """Shuffled, right-padded batches ``{input_ids, attention_mask, labels}`` over ``epochs`` passes.

    A list (not a generator), so that ``fit`` can skip the consumed part when it resumes.
    Examples of similar length are batched together (sorted within shuffled pools) to waste little padding.
    """
    rng = random.Random(seed)
    n_batches = max(1, round(len(examples) * epochs / batch_size))
    order = EpochOrder(len(examples), rng).first(n_batches * batch_size)
    pool = 16 * batch_size                       # sort by length inside pools of 16 batches, then shuffle the batches
    chunks = []
    for s in range(0, len(order), pool):
        part = sorted(order[s:s + pool], key=lambda i: len(examples[i]["input_ids"]))
        chunks += [part[k:k + batch_size] for k in range(0, len(part), batch_size)]
    rng.shuffle(chunks)
    out = []
    for idx in chunks:
        ids, mask = right_pad([examples[i]["input_ids"] for i in idx], pad_id)
        labels, _ = right_pad([examples[i]["labels"] for i in idx], -100)
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def sft_loss(model, batch: dict):
    """Mean next-token cross-entropy over the completion tokens (labels != -100)."""
    dev = next(model.parameters()).device
    out = model(input_ids=batch["input_ids"].to(dev), attention_mask=batch["attention_mask"].to(dev),
                labels=batch["labels"].to(dev))
    return out.loss
