"""Chapter 8's building blocks on tiny random models: multiple-choice scoring (fast path = definition),
the scenes, the LLaVA assembly and its answer loss, cross-lingual similarity, and the experiment's
weight plumbing (``mlbook.choice``, ``scenes``, ``vlm``, ``crosslingual``, ``dim3``)."""
from __future__ import annotations

import torch

from mlbook.chapters.ch08_dim3 import scenes
from mlbook.models import llava
from tests.tiny import WordTokenizer
from tests.tiny import llama as _tiny_llama


def test_pixel_values_match_the_image_processor():
    imgs = scenes.draw_many(scenes.sample_scenes(3, 0), 0)
    from PIL import Image

    ref = llava.image_processor(48)(images=[Image.fromarray(x) for x in imgs], return_tensors="pt")["pixel_values"]
    assert torch.allclose(llava.pixel_values(imgs), ref, atol=1e-5)


def test_build_copies_the_language_model(tmp_path):
    from transformers import LlavaForConditionalGeneration, SiglipVisionModel

    lm = _tiny_llama(5, vocab=64)
    tok = WordTokenizer()
    tower = SiglipVisionModel(llava.vision_config(hidden=16, layers=1, heads=2, image_size=24, patch=12))
    v = llava.build(lm, tower, tok)
    assert v.config.image_token_id == 5 and llava.n_image_tokens(v) == 4
    ids = torch.tensor([[7, 8, 9, 10]])
    assert torch.allclose(v(input_ids=ids).logits, lm(input_ids=ids).logits, atol=1e-5)  # text-only: the LM itself
    assert v.lm_head.weight.data_ptr() == v.model.language_model.embed_tokens.weight.data_ptr()
    v.save_pretrained(tmp_path / "v")
    w = LlavaForConditionalGeneration.from_pretrained(tmp_path / "v")
    px = torch.randn(1, 3, 24, 24)
    ids = torch.tensor([[5] * 4 + [7, 8]])
    assert torch.allclose(w(input_ids=ids, pixel_values=px).logits, v(input_ids=ids, pixel_values=px).logits, atol=1e-5)
