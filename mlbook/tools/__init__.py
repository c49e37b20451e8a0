"""The book's tools: the ``mlbook`` command line (``cli``), executing chapters through papermill with
their parameters checked and their inputs digested (``notebooks``), building the HTML book (``book``),
and ``doctor`` (what is installed, cached and missing)."""
