"""Chapter 7 — COPSD vs GRPO: templated word problems in graded languages (``wordproblems``), the task's
prompts, ``\\boxed{}`` reward and sampling metrics (``task``), the model organism warmed up in the chapter
(``organism``), and the exercise checks (``exercises``).  The methods are ``mlbook.training.copsd`` and
``mlbook.training.grpo``."""
