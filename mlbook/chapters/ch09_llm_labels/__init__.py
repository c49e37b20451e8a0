"""Chapter 9: LLM labels vs active learning."""
