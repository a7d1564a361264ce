"""Attacks on the word-embedding output, one per file; `build_attack` makes the one the arguments name."""

from .base import EmbeddingAttack
from .fgm import FGM
from .freelb import FreeLB
from .pgd import PGD

__all__ = ["EmbeddingAttack", "FGM", "FreeLB", "PGD", "build_attack"]


def build_attack(args):
    """The attack of `AdversarialTrainingArguments` `args`, or None for `adv_method="none"`."""
    if args.adv_method == "fgm":
        return FGM(eps=args.adv_epsilon, weight=args.adv_weight)
    iterated = {"pgd": PGD, "freelb": FreeLB}.get(args.adv_method)
    if iterated is None:
        return None
    return iterated(
        eps=args.adv_epsilon,
        alpha=args.adv_alpha,
        steps=args.adv_k,
        init_mag=args.adv_init_mag,
        weight=args.adv_weight,
    )
