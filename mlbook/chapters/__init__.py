"""One folder per chapter (``chNN_slug``) for the code only that chapter uses: its experiment driver, its
synthetic data, its prompts, its exercise checks.  Code moves from here into a kind package (with its
tests) when a second chapter needs it.  A chapter folder imports kind packages, never another chapter."""
