"""Training attacks, one per file (AWP on the weights, the others on the word-embedding output); `build_attack`
makes the one the arguments name."""

from ..defaults import FOLLOW_EPSILON
from .a2t import A2T
from .ascc import ASCC
from .awp import AWP
from .base import EmbeddingAttack, TrainingAttack
from .creat import CreAT
from .dne import DNE
from .fgm import FGM
from .freelb import FreeLB
from .pgd import PGD
from .r3f import R3F
from .smart import SMART

__all__ = [
    "A2T",
    "ASCC",
    "AWP",
    "CreAT",
    "DNE",
    "EmbeddingAttack",
    "FGM",
    "FreeLB",
    "PGD",
    "R3F",
    "SMART",
    "TrainingAttack",
    "build_attack",
]


def build_attack(args, epsilon_scale=1.0, synonyms=None):
    """The attack of `AdversarialTrainingArguments` `args`, or None for `adv_method="none"`.

    `epsilon_scale` multiplies eps and the hyperparameters that follow it by default (`FOLLOW_EPSILON`: alpha,
    FreeLB's random start): the size of the perturbation at one step of an `adv_epsilon_warmup`. `synonyms`: the
    tokenizer's `SynonymTable`, which the synonym-aware methods (`ascc`, `a2t`, `dne`) need.
    """
    method = args.adv_method
    if method == "none":
        return None
    if method == "a2t":
        return A2T(
            fraction=args.adv_fraction, max_synonyms=args.adv_synonyms, weight=args.adv_weight, synonyms=synonyms
        )
    if method == "ascc":
        return ASCC(
            alpha=args.adv_alpha,
            steps=args.adv_k,
            sparsity=args.adv_sparsity,
            max_synonyms=args.adv_synonyms,
            weight=args.adv_weight,
            synonyms=synonyms,
        )
    follows = FOLLOW_EPSILON.get(method, ())
    eps = None if args.adv_epsilon is None else args.adv_epsilon * epsilon_scale
    alpha = args.adv_alpha * epsilon_scale if "alpha" in follows else args.adv_alpha
    init_mag = args.adv_init_mag * epsilon_scale if "init_mag" in follows else args.adv_init_mag
    if method == "dne":
        return DNE(
            alpha=args.adv_alpha,
            steps=args.adv_k,
            concentration=args.adv_concentration,
            size=1 + args.adv_synonyms,
            weight=args.adv_weight,
            synonyms=synonyms,
        )
    if method == "fgm":
        return FGM(eps=eps, weight=args.adv_weight)
    if method == "awp":
        return AWP(gamma=eps, alpha=alpha, weight=args.adv_weight)
    if method == "r3f":
        return R3F(weight=args.adv_weight, noise=args.adv_noise, noise_scale=init_mag)
    if method == "smart":
        return SMART(
            eps=eps,
            alpha=alpha,
            steps=args.adv_k,
            weight=args.adv_weight,
            noise=args.adv_noise,
            noise_scale=init_mag,
        )
    if method == "creat":
        return CreAT(
            eps=eps,
            alpha=alpha,
            steps=args.adv_k,
            tau=args.adv_tau,
            noise_scale=init_mag,
            weight=args.adv_weight,
        )
    iterated = {"pgd": PGD, "freelb": FreeLB}[method]
    return iterated(eps=eps, alpha=alpha, steps=args.adv_k, init_mag=init_mag, weight=args.adv_weight)
