"""R3F: Aghajanyan et al., "Better Fine-Tuning by Reducing Representational Collapse", ICLR 2021,
https://arxiv.org/abs/2008.03156."""

from .base import SmoothnessRegularizer

__all__ = ["R3F"]


class R3F(SmoothnessRegularizer):
    r"""Random noise on the word-embedding output and a symmetric-KL penalty on the change of prediction.

    Update rule, per example, with D the symmetric KL between softmax predictions (squared error for a regression's
    single output):

        delta ~ U(-sigma, sigma) per coordinate                     (adv_noise="normal": N(0, sigma^2))
        grad_theta = grad_theta [L(e) + lambda * D(f(e), f(e + delta))]     (gradients through both predictions)

    D is averaged over the micro-batch and scaled like a mean loss under gradient accumulation. No ascent step.
    Cost per micro-batch: a clean forward whose graph is dropped, then the perturbed and the clean forward and backward
    (N + 2F: FGM's cost and one forward more), one graph alive at a time (`PerturbedPasses.regularized_pass`).
    """

    def __init__(self, weight, noise, noise_scale):
        super().__init__(None, weight, noise, noise_scale)

    def perturb(self, passes):
        delta = self.noise(passes)
        passes.regularized_pass(delta, self.weight)
        return passes.space.norms(delta)
