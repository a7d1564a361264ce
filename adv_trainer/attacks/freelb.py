"""FreeLB: Zhu et al., "FreeLB: Enhanced Adversarial Training for Natural Language Understanding", ICLR 2020,
https://arxiv.org/abs/1909.11764."""

from .base import IteratedEmbeddingAttack

__all__ = ["FreeLB"]


class FreeLB(IteratedEmbeddingAttack):
    r"""K ascent steps whose parameter gradients are averaged along the path, each pass also giving the next step.

    Update rule, for t = 1..K, with g_1 from the clean pass (or the random start) and g_{t+1} from pass t:

        delta_t = Proj_eps(delta_{t-1} + alpha * g_t / ||g_t||)     (L-inf: alpha * sign(g_t), clip to [-eps, eps])
        grad_theta = grad_theta L(e) + (w / K) * sum_{t=1..K} grad_theta L(e + delta_t)

    The clean pass always counts once, with weight 1: the authors' fairseq code also adds it (there with weight
    1/(K+1), like each adversarial pass: w = K reproduces its direction), while their Hugging Face script drops it.
    With init_mag = 0, delta_0 = 0 is the clean pass itself, so no pass is run or counted twice; a random start
    costs one input-gradient pass at delta_0.
    Cost per micro-batch: K + 1 full forward+backward passes (+1 input-gradient pass with a random start).
    """

    def perturb(self, passes):
        space = passes.space
        delta, gradient = self.start(passes)
        for t in range(1, self.steps + 1):
            delta = space.project(space.ascend(delta, gradient, self.alpha), self.eps)
            last = t == self.steps
            gradient = passes.parameter_pass(delta, self.weight / self.steps, final=last, input_gradient=not last)
        return passes.space.norms(delta)
