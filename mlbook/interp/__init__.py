"""Looking inside models.

- ``hooks``: read, patch, ablate, scale and steer activations by address (``blocks.{layer}.{site}``,
  per-head ``attn_z`` included); it finds the modules through ``mlbook.models.layout``;
- ``gradients``: an activation's gradient at any site (for attribution patching, EAP-IG and integrated
  gradients), with the weights frozen and only the last positions' logits where that is all one needs;
- ``patching``: activation patching (every patch a row of one batch), attribution patching and its
  integrated-gradients refinement, head patching;
- ``steering``: last-token states of many prompts and difference-of-means steering vectors;
- ``probe``: linear probes with a control task;
- ``lens``: the logit lens;
- ``circuits``: circuits as edges between heads and MLPs through the residual stream: EAP-IG scores of
  every edge, edge-patched runs of a circuit, IoU and faithfulness;
- ``neuron_ig``: integrated gradients of an MLP layer's neurons (every step a row of one batch);
- ``nlka``: neuron-level knowledge attribution -- log p(w | h + v) − log p(w | h) of every layer's attention
  and FFN write, and of every FFN neuron, with the final norm frozen at the real residual's scale;
- ``glu`` (the four sign cases of gated-MLP neurons and their streaming statistics) and ``neuronview``
  (their viewer);
- ``crosslingual``: per-layer similarity of the hidden states of parallel inputs.
"""
