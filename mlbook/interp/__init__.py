"""Looking inside models: ``hooks`` (read, patch, ablate and steer activations by address; it finds the
modules through ``mlbook.models.layout``), ``lens`` (the logit lens), ``glu`` (the four sign cases of
gated-MLP neurons and their streaming statistics) and ``neuronview`` (their viewer), ``crosslingual``
(per-layer similarity of the hidden states of parallel inputs)."""
