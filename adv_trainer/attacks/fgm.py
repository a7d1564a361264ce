"""FGM: Miyato, Dai and Goodfellow, "Adversarial Training Methods for Semi-Supervised Text Classification",
ICLR 2017, https://arxiv.org/abs/1605.07725."""

from .base import EmbeddingAttack

__all__ = ["FGM"]


class FGM(EmbeddingAttack):
    r"""Fast gradient method on the word-embedding output.

    Update rule, with g = dL(e)/de from the clean pass:

        delta = eps * g / ||g||_2            (adv_norm="l2"; ||.|| over each sequence's non-padding positions)
        delta = eps * sign(g)                (adv_norm="linf")
        grad_theta = grad_theta L(e) + w * grad_theta L(e + delta)

    Cost per micro-batch: 2 forward, 2 backward passes.
    """

    def perturb(self, passes):
        delta = passes.space.ascend(passes.space.zeros(), passes.clean_gradient, self.eps)
        passes.parameter_pass(delta, self.weight, final=True)
        return passes.space.norms(delta)
