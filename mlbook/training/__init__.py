"""Training: one loop for every chapter that trains (``fit``), its resumable checkpoints
(``checkpoint``), train-once-into-the-cache (``cached``), supervised fine-tuning (``sft``), LoRA
(``lora``), contrastive alignment losses (``contrastive``: sentence and token InfoNCE), the geometry of two
losses' gradients (``gradient_geometry``: cosines, norms, per block), and the on-policy methods: the rollout loop (``onpolicy``), GRPO (``grpo``) and the COPSD
self-distillation loss (``copsd``).  The on-policy methods take a chapter's prompt builder and reward
as arguments; they know no task."""
