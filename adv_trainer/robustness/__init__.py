"""Robustness evaluation: PGD on the word-embedding output, word-level attacks (PWWS, DeepWordBug, the
embedding-neighbour attack) and AdvGLUE."""

from .deepwordbug import DeepWordBug
from .embedding_neighbour import EmbeddingNeighbourAttack
from .pwws import PWWS

__all__ = ["WORD_ATTACKS", "DeepWordBug", "EmbeddingNeighbourAttack", "PWWS"]

# The word-level attacks by the names users know: `--attack_methods` of the scripts, `evaluate_word_attack`.
WORD_ATTACKS = {attack.name: attack for attack in (PWWS, DeepWordBug, EmbeddingNeighbourAttack)}
