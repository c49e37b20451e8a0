"""Chapter 10 — GlotOCR: the benchmark rebuilt from real text (``benchmark``), the chapter's CRNN and its
training data (``crnn_training``), the engines' evaluation and the claims (``evaluation``), and the
exercise checks (``exercises``)."""
