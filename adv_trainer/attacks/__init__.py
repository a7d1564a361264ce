"""Training attacks, one per file (AWP on the weights, the others on the word-embedding output); `build_attack`
makes the one the arguments name."""

from .awp import AWP
from .base import EmbeddingAttack, TrainingAttack
from .creat import CreAT
from .fgm import FGM
from .freelb import FreeLB
from .pgd import PGD
from .r3f import R3F
from .smart import SMART

__all__ = ["AWP", "CreAT", "EmbeddingAttack", "FGM", "FreeLB", "PGD", "R3F", "SMART", "TrainingAttack", "build_attack"]


def build_attack(args):
    """The attack of `AdversarialTrainingArguments` `args`, or None for `adv_method="none"`."""
    method = args.adv_method
    if method == "none":
        return None
    if method == "fgm":
        return FGM(eps=args.adv_epsilon, weight=args.adv_weight)
    if method == "awp":
        return AWP(gamma=args.adv_epsilon, alpha=args.adv_alpha, weight=args.adv_weight)
    if method == "r3f":
        return R3F(weight=args.adv_weight, noise=args.adv_noise, noise_scale=args.adv_init_mag)
    if method == "smart":
        return SMART(
            eps=args.adv_epsilon,
            alpha=args.adv_alpha,
            steps=args.adv_k,
            weight=args.adv_weight,
            noise=args.adv_noise,
            noise_scale=args.adv_init_mag,
        )
    if method == "creat":
        return CreAT(
            eps=args.adv_epsilon,
            alpha=args.adv_alpha,
            steps=args.adv_k,
            tau=args.adv_tau,
            noise_scale=args.adv_init_mag,
            weight=args.adv_weight,
        )
    iterated = {"pgd": PGD, "freelb": FreeLB}[method]
    return iterated(
        eps=args.adv_epsilon,
        alpha=args.adv_alpha,
        steps=args.adv_k,
        init_mag=args.adv_init_mag,
        weight=args.adv_weight,
    )
