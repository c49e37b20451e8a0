"""Tiny models with real layouts, built in milliseconds, that several test files share (one definition each)."""
from __future__ import annotations

import torch

from mlbook.models import llava as llava_arch


def causal_lm(kind="llama", seed=0, vocab=41):
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, max_position_embeddings=128, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    if kind == "gemma":
        return Gemma3ForCausalLM(Gemma3TextConfig(head_dim=16, sliding_window=4, **common)).eval()
    return LlamaForCausalLM(LlamaConfig(**common)).eval()


def llama(seed=0, vocab=64):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def llava(lm, seed=1, image_token_id=5):
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    cfg = LlavaConfig(vision_config=llava_arch.vision_config(hidden=16, layers=1, heads=2, image_size=24, patch=12).to_dict(),
                      text_config=lm.config.to_dict(), image_token_id=image_token_id,
                      vision_feature_select_strategy="full", vision_feature_layer=-1, image_seq_length=4)
    m = LlavaForConditionalGeneration(cfg)
    m.model.language_model.load_state_dict(lm.model.state_dict())
    m.tie_weights()
    return m.eval()


def glu_lm(kind: str, seed: int = 0):
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    common = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common)).eval()
    return Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=16, sliding_window=8)).eval()


def windows(n: int = 7, seed: int = 0):
    """Texts of different lengths (so batches are padded); odd texts open with a 'BOS' that is not counted."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        length = int(torch.randint(5, 20, (1,), generator=g))
        rows.append({"text": i, "input_ids": torch.randint(3, 97, (length,), generator=g).tolist(), "first": i % 2})
    return Dataset.from_list(rows)


class WordTokenizer:
    """A whitespace tokenizer over a fixed vocabulary, with the few methods the LLaVA prompts use."""

    def __init__(self):
        self.vocab = {w: i for i, w in enumerate(["<pad>", "<s>", "</s>", "<unk>", "\n", "<image>"] +
                                                 "what colour is the shape red blue context".split())}
        self.eos_token_id, self.unk_token_id, self.pad_token_id, self.bos_token_id = 2, 3, 0, 1

    def get_vocab(self):
        return self.vocab

    def convert_tokens_to_ids(self, t):
        return self.vocab.get(t, 3)

    def convert_ids_to_tokens(self, i):
        return {v: k for k, v in self.vocab.items()}[i]

    def __call__(self, text, add_special_tokens=False):
        out = []
        for line_i, line in enumerate(text.split("\n")):
            if line_i:
                out.append(4)
            out += [self.vocab.get(w, 3) for w in line.split()]
        return {"input_ids": out}
