"""A LLaVA-style vision-language model as a Hugging Face ``LlavaForConditionalGeneration`` (so
``from_pretrained`` loads it, and real LLaVA checkpoints use the same code): a vision tower (SigLIP
layout), an MLP projector and a real language model.

    image ─► vision tower (ViT, SigLIP layout) ─► patch features (16 × d_v)
          ─► projector (Linear, GELU, Linear) ─► 16 "image tokens" (16 × d_lm) ─► in place of the
             16 image placeholders in the prompt ─► language model ─► answer

The LM has no image token of its own; a never-used special token stands in as the placeholder, so
the LLaVA model's vocabulary (and its embedding matrix) keeps the LM's shape and the two can be merged.
How chapter 8 trains one is in ``mlbook.chapters.ch08_dim3.vision``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

IMAGE_TOKENS = ("<image>", "<jupyter_output>")  # the first one the tokenizer knows as a single token


def image_token(tokenizer) -> str:
    """A placeholder token for images: ``<image>`` if the tokenizer has it, else a special token that
    text never produces (SmolLM2: ``<jupyter_output>``)."""
    for t in IMAGE_TOKENS:
        ids = tokenizer.convert_tokens_to_ids(t)
        if ids is not None and ids != tokenizer.unk_token_id and t in tokenizer.get_vocab():
            return t
    raise ValueError(f"the tokenizer has none of {IMAGE_TOKENS}: add an image token first")


def vision_config(hidden: int = 128, layers: int = 2, heads: int = 4, image_size: int = 48, patch: int = 12):
    """A small SigLIP-layout ViT: (image_size / patch)² patch tokens of width ``hidden``, no pooling head."""
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                              num_attention_heads=heads, image_size=image_size, patch_size=patch,
                              num_channels=3, vision_use_head=False)


def pixel_values(images) -> "torch.Tensor":
    """uint8 images (n, H, W, 3) → float (n, 3, H, W) scaled to [−1, 1] (SigLIP's normalisation)."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float().permute(0, 3, 1, 2)
    return (x / 255.0 - 0.5) / 0.5


def image_processor(image_size: int = 48):
    """The matching ``transformers`` image processor (PIL backend: no torchvision needed)."""
    from transformers import SiglipImageProcessorPil

    return SiglipImageProcessorPil(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3)


def build(lm, tower, tokenizer, projector_act: str = "gelu"):
    """A ``LlavaForConditionalGeneration`` holding ``tower`` (copied), a fresh projector and ``lm``'s weights."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    tok_id = tokenizer.convert_tokens_to_ids(image_token(tokenizer))
    n_img = (tower.config.image_size // tower.config.patch_size) ** 2
    cfg = LlavaConfig(vision_config=tower.config.to_dict(), text_config=lm.config.to_dict(), image_token_id=tok_id,
                      vision_feature_select_strategy="full", vision_feature_layer=-1,
                      projector_hidden_act=projector_act, image_seq_length=n_img)
    with torch.device("cpu"):
        vlm = LlavaForConditionalGeneration(cfg)
    vlm.model.vision_tower.load_state_dict(tower.state_dict())
    vlm.model.language_model.load_state_dict(lm.model.state_dict())
    if not lm.config.tie_word_embeddings:
        vlm.lm_head.load_state_dict(lm.lm_head.state_dict())
    vlm.tie_weights()
    return vlm.to(next(lm.parameters()).device).eval()


def processor(tokenizer, image_size: int = 48, patch: int = 12):
    """A ``LlavaProcessor`` (image processor + tokenizer) that ``AutoProcessor.from_pretrained`` reloads."""
    from transformers import LlavaProcessor

    return LlavaProcessor(image_processor=image_processor(image_size), tokenizer=tokenizer, patch_size=patch,
                          vision_feature_select_strategy="full", image_token=image_token(tokenizer),
                          num_additional_image_tokens=0)


def n_image_tokens(model) -> int:
    c = model.config
    return getattr(c, "image_seq_length", None) or (c.vision_config.image_size // c.vision_config.patch_size) ** 2
