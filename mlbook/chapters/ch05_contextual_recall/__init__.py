"""Chapter 5 — contextually mediated factual recall: prompts, scoring experiment, claim statistics, exercises."""
