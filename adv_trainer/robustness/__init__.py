"""Robustness evaluation: PGD on the word-embedding output, and a gradient-guided word-substitution attack."""
