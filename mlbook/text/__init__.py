"""Token sequences in and out of a causal LM: ``batching`` (padding to (ids, mask), position ids, a
seeded epoch order, joining prompts and completions), ``sampling`` (batched sampling with a KV cache,
stop tokens), ``choice`` (multiple-choice scoring)."""
