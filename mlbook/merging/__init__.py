"""Training-free model merging: the methods on tensors (``methods``: task arithmetic, TIES, DARE,
Breadcrumbs and DiM3 = WIDEN's rule) and the streaming merge of safetensors folders, multimodal
checkpoints included (``folders``)."""
