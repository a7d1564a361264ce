"""PGD: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018,
https://arxiv.org/abs/1706.06083, on word embeddings as in the FGM/PGD recipes for BERT."""

from .base import IteratedEmbeddingAttack

__all__ = ["PGD"]


class PGD(IteratedEmbeddingAttack):
    r"""Projected gradient ascent on the word-embedding output; only the last point trains the parameters.

    Update rule, for t = 1..K, with g_t = dL(e + delta_{t-1})/d(delta) (g_1 from the clean pass when delta_0 = 0):

        delta_0 = 0, or random with ||delta_0|| <= init_mag
        delta_t = Proj_eps(delta_{t-1} + alpha * g_t / ||g_t||)     (L-inf: alpha * sign(g_t), clip to [-eps, eps])
        grad_theta = grad_theta L(e) + w * grad_theta L(e + delta_K)

    The K - 1 intermediate passes compute only dL/d(delta), never parameter gradients.
    Cost per micro-batch: 2 full forward+backward passes, K - 1 input-gradient passes (K with a random start).
    With K = 1, alpha = eps and no random start, PGD is FGM.
    """

    def perturb(self, passes):
        space = passes.space
        delta, gradient = self.start(passes)
        for t in range(1, self.steps + 1):
            delta = space.project(space.ascend(delta, gradient, self.alpha), self.eps)
            if t < self.steps:
                gradient = passes.input_gradient(delta)
        passes.parameter_pass(delta, self.weight, final=True)
        return passes.space.norms(delta)
