"""Chapter 8 — DiM3: synthetic scenes in nine languages (``scenes``), how the chapter teaches a language
model to see (``vision``: the tower, the projector, visual instructions), the two fine-tunes V and M
trained once into the cache (``training``), the evaluation suite (``evaluation``), the merges swept and
the claims (``experiment``), and the exercise checks (``exercises``).  The architecture is
``mlbook.models.llava``; the merge methods are ``mlbook.merging``."""
