"""Robustness evaluation: PGD on the word-embedding output, a gradient-guided word-substitution attack, and AdvGLUE."""
