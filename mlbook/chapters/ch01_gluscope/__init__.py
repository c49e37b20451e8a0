"""Chapter 1 — GLUScope: the corpus it streams (``corpus``), the cached neuron table and the claims'
statistics (``experiment``), and the exercise checks (``exercises``).  The method itself — the four
sign cases and their streaming statistics — is ``mlbook.interp.glu``."""
