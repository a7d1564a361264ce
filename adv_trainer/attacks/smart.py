"""SMART: Jiang et al., "SMART: Robust and Efficient Fine-Tuning for Pre-trained Natural Language Models through
Principled Regularized Optimization", ACL 2020, https://arxiv.org/abs/1911.03437."""

from .base import SmoothnessRegularizer

__all__ = ["SMART"]


class SMART(SmoothnessRegularizer):
    r"""Smoothness-inducing adversarial regularisation on the word-embedding output.

    Update rule, per example, with D the symmetric KL between softmax predictions (squared error for a regression's
    single output) and p = f(e) the clean prediction, held fixed during the ascent:

        delta_0 ~ N(0, sigma^2) per coordinate                      (adv_noise="uniform": U(-sigma, sigma))
        delta_t = Proj_eps(delta_{t-1} + alpha * g_t / ||g_t||),    g_t = dD(p, f(e + delta_{t-1}))/d(delta)
                                                                    (L-inf: alpha * sign(g_t), clip to [-eps, eps])
        grad_theta = grad_theta [L(e) + lambda * D(f(e), f(e + delta_K))]    (gradients through both predictions)

    D is averaged over the micro-batch and scaled like a mean loss under gradient accumulation. The perturbation is
    added once, to the word-embedding output (mt-dnn's code adds it to the full embedding output and embeds that
    again, applying position/type embeddings and LayerNorm twice). The Bregman proximal term is not implemented.
    Cost per micro-batch: a clean forward whose graph is dropped (p), K input-gradient passes, the perturbed
    forward and backward, and the clean forward and backward again with the first one's dropout masks
    (N + 2F + K I): one graph is alive at a time, so the peak memory is PGD-K's (`PerturbedPasses.regularized_pass`).
    """

    def __init__(self, eps, alpha, steps, weight, noise, noise_scale):
        super().__init__(eps, weight, noise, noise_scale)
        self.alpha = alpha
        self.steps = steps

    def perturb(self, passes):
        space = passes.space
        delta = self.noise(passes)
        for _ in range(self.steps):
            delta = space.project(space.ascend(delta, passes.divergence_gradient(delta), self.alpha), self.eps)
        passes.regularized_pass(delta, self.weight)
        return passes.space.norms(delta)
