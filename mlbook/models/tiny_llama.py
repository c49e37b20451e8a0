"""A freshly initialised ``LlamaForCausalLM`` of any small size: chapter 7's organism, and the random
models that the exercise checks and unit tests probe (real layout, seconds to build)."""
from __future__ import annotations


def tiny_llama(vocab_size: int, d_model: int = 128, n_layers: int = 4, n_heads: int = 4, *, n_kv_heads: int | None = None,
               d_ff: int | None = None, max_len: int = 512, seed: int = 0, **config):
    """``LlamaForCausalLM`` with ``n_layers`` layers of width ``d_model`` (MLP ``d_ff``, default 3 × d_model),
    initialised from ``torch.manual_seed(seed)``; ``config`` goes to ``LlamaConfig`` as it is (e.g.
    ``tie_word_embeddings``, ``eos_token_id``, ``pad_token_id``)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=d_model, intermediate_size=d_ff or 3 * d_model,
                      num_hidden_layers=n_layers, num_attention_heads=n_heads,
                      num_key_value_heads=n_kv_heads or n_heads, max_position_embeddings=max_len, **config)
    return LlamaForCausalLM(cfg)
