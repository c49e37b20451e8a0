"""Chapter 2, Locate → Steer → Improve: the prompts (``prompts``), the pipeline's measurements
(``experiment``), the taxonomy figure (``taxonomy``) and the exercises' checks (``exercises``)."""
