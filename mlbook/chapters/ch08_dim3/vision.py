"""How chapter 8 teaches a language model to see, following LLaVA's recipe at toy scale: (1) a vision
tower learns the scenes' attributes by classification (LLaVA inherits CLIP instead; no licensed vision
weights ship offline); (2) a fresh projector is aligned to the LM's word embeddings (tower and LM frozen);
(3) projector and the whole language model learn English visual question answering (tower frozen) — so
the LM's weights move, and θ_V − θ_B is a real task vector.  Also the prompts, examples and the
answer-only loss of the visual conversations."""
from __future__ import annotations

from mlbook.models.llava import vision_config
from mlbook.text.batching import right_pad
from mlbook.training.fit import fit

from . import scenes


class AttributeProbe:
    """Pretraining head of the vision tower: mean-pooled patch features → one linear classifier per
    attribute (colour 4, shape 3, count 4, side 2); the loss is the sum of their cross-entropies."""

    def __init__(self, tower, n_classes: dict):
        import torch

        self.tower = tower
        self.heads = torch.nn.ModuleDict({k: torch.nn.Linear(tower.config.hidden_size, n)
                                          for k, n in n_classes.items()})
        self.module = torch.nn.ModuleDict({"tower": tower, "heads": self.heads})

    def logits(self, pixels) -> dict:
        feats = self.tower(pixel_values=pixels).last_hidden_state.mean(1)  # (n, d): the features LLaVA reads, pooled
        return {k: h(feats) for k, h in self.heads.items()}

    def loss(self, module, batch):
        import torch.nn.functional as F

        logits = self.logits(batch["pixels"])
        losses = {k: F.cross_entropy(v, batch[k]) for k, v in logits.items()}
        acc = {f"acc_{k}": (v.argmax(-1) == batch[k]).float().mean() for k, v in logits.items()}
        return sum(losses.values()), acc


def pretrain_vision(scenes_, pixels, steps: int, batch_size: int = 128, lr: float = 1e-3, seed: int = 0,
                    config=None, progress: bool = True):
    """Train a fresh vision tower on the scenes' attributes (``pixels``: (n, 3, H, W) from :func:`pixel_values`).
    Returns (tower, history, probe)."""
    import torch
    from transformers import SiglipVisionModel


    torch.manual_seed(seed)
    tower = SiglipVisionModel(config or vision_config(image_size=pixels.shape[-1]))
    attrs = scenes.templates()["attributes"]
    probe = AttributeProbe(tower, {k: len(v) for k, v in attrs.items()})
    labels = {k: torch.tensor([s.label(k) for s in scenes_]) for k in attrs}
    g = torch.Generator().manual_seed(seed)

    def batch(i):
        idx = torch.randint(len(scenes_), (batch_size,), generator=g)
        return {"pixels": pixels[idx], **{k: v[idx] for k, v in labels.items()}}

    hist = fit(probe.module, probe.loss, batch, steps=steps, lr=lr, weight_decay=0.01, warmup=steps // 10,
               schedule="cosine", seed=seed, progress=progress, desc="vision tower")
    return tower.eval(), hist, probe


def prompt_ids(tokenizer, question: str, context: str | None = None, n_image: int = 0, image_id: int | None = None,
               chat: bool = False, first: bool = True) -> list[int]:
    """Token ids of a prompt: BOS + [image placeholder line | context line] + question + newline, with the one
    image placeholder expanded to ``n_image`` copies (as ``LlavaProcessor`` does). ``first=False``: a later
    turn of a conversation (no BOS).

    ``chat=True`` wraps the same text in the tokenizer's chat template (real instruction-tuned checkpoints)."""
    placeholder = tokenizer.convert_ids_to_tokens(image_id) if n_image else None
    body = "\n".join(x for x in (placeholder, context, question) if x)
    if chat:
        text = tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                             add_generation_prompt=True)
    else:
        text = body + "\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if first and not chat and getattr(tokenizer, "bos_token_id", None) is not None:
        ids = [tokenizer.bos_token_id] + ids  # a first token to hold attention (the "sink"), as BOS does in LLaVA
    if n_image:
        if ids.count(image_id) != 1:
            raise ValueError(f"the prompt holds {ids.count(image_id)} image placeholders, expected 1: {text!r}")
        k = ids.index(image_id)
        ids = ids[:k] + [image_id] * n_image + ids[k + 1:]
    return ids


def answer_ids(tokenizer, answer: str) -> list[int]:
    return tokenizer(answer, add_special_tokens=False)["input_ids"]


def end_id(tokenizer) -> int:
    """The token that ends an answer (SmolLM2: ``<|im_end|>``)."""
    return tokenizer.eos_token_id


def collate(examples: list[dict], pad_id: int) -> dict:
    """Right-padded batch of ``{input_ids, loss_mask[, pixels]}`` examples (loss_mask marks answer tokens)."""
    import torch

    ids, att = right_pad([e["input_ids"] for e in examples], pad_id)
    lm, _ = right_pad([e["loss_mask"] for e in examples], 0)
    out = {"input_ids": ids, "attention_mask": att, "loss_mask": lm.bool()}
    if "pixels" in examples[0]:
        out["pixel_values"] = torch.stack([e["pixels"] for e in examples])
    return out


def example(prompt: list[int], answer: list[int], end: int, pixels=None) -> dict:
    """prompt + answer + end token; the loss is on answer and end only."""
    e = {"input_ids": prompt + answer + [end], "loss_mask": [0] * len(prompt) + [1] * (len(answer) + 1)}
    if pixels is not None:
        e["pixels"] = pixels
    return e


def answer_loss(model, batch: dict):
    """Next-token cross-entropy on the answer tokens only, with the LM head applied only where it is
    needed (the head is a fifth of SmolLM2's compute; answers are a tenth of the tokens).

    Works for a causal LM and for a LLaVA model (``model.model`` is the body, ``model.lm_head`` the head)."""
    import torch.nn.functional as F

    dev = next(model.parameters()).device
    kw = {k: batch[k].to(dev) for k in ("input_ids", "attention_mask", "pixel_values") if k in batch}
    h = model.model(**kw).last_hidden_state  # (b, T, d)
    target = batch["loss_mask"][:, 1:].to(dev)  # position t predicts token t + 1
    logits = model.lm_head(h[:, :-1][target])  # (n_answer_tokens, V)
    return F.cross_entropy(logits.float(), kw["input_ids"][:, 1:][target])


def conversation(turns: list[tuple[list[int], list[int]]], end: int, pixels=None) -> dict:
    """Several questions about one input in one sequence, as in LLaVA's multi-turn instruction data:
    (prompt₁ + answer₁ + end) (prompt₂ + answer₂ + end) …; the loss is on the answers and ends only.
    The first prompt carries the image placeholders or the context; the later ones only their question."""
    ids, mask = [], []
    for prompt, answer in turns:
        ids += prompt + answer + [end]
        mask += [0] * len(prompt) + [1] * (len(answer) + 1)
    e = {"input_ids": ids, "loss_mask": mask}
    if pixels is not None:
        e["pixels"] = pixels
    return e


def align_projector(model, tokenizer, scenes_, pixels, steps: int, lr: float = 1e-3, batch_size: int = 64,
                    seed: int = 0, progress: bool = True) -> dict:
    """Stage 1 of LLaVA (feature alignment), cheaply: train the projector alone so that the mean of an
    image's projected tokens points at the LM's embeddings of the words that describe the image.

    For each attribute k with English answer words c ∈ C_k (embedding e_c = mean of the word's token
    embeddings), logits_c = x̄ · e_c with x̄ = mean_t projector(tower(image))_t, and the loss is
    Σ_k cross-entropy(logits over C_k, the scene's word). The LM is not run: one matrix product per step."""
    import torch
    import torch.nn.functional as F


    emb = model.get_input_embeddings().weight.detach()
    words = {k: torch.stack([emb[answer_ids(tokenizer, c)].mean(0) for c in scenes.candidates("en", k)])
             for k in scenes.KINDS}  # k -> (|C_k|, d)
    labels = {k: torch.tensor([s.label(k) for s in scenes_]) for k in scenes.KINDS}
    tower, proj = model.model.vision_tower, model.model.multi_modal_projector
    with torch.no_grad():  # the frozen tower's features, once: (n, n_patches, d_vision)
        feats = torch.cat([tower(pixel_values=pixels[i : i + 256], output_hidden_states=True).hidden_states[-1]
                           for i in range(0, len(pixels), 256)])
    g = torch.Generator().manual_seed(seed)

    def batch(i):
        idx = torch.randint(len(feats), (batch_size,), generator=g)
        return {"feats": feats[idx], **{k: v[idx] for k, v in labels.items()}}

    def loss(_, b):
        x = proj(b["feats"]).mean(1)  # (b, d): the image's tokens, pooled
        logits = {k: x @ w.T for k, w in words.items()}
        acc = {f"acc_{k}": (v.argmax(-1) == b[k]).float().mean() for k, v in logits.items()}
        return sum(F.cross_entropy(v, b[k]) for k, v in logits.items()), acc

    return fit(proj, loss, batch, steps=steps, lr=lr, seed=seed, progress=progress, desc="V: projector alignment")
