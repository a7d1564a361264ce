"""What every attack on the word-embedding output shares."""

__all__ = ["EmbeddingAttack"]


class EmbeddingAttack:
    """An attack run once per micro-batch by `AdversarialTrainer`, after the clean forward and backward.

    `perturb(passes)` receives a `PerturbedPasses` whose clean pass has run: `passes.clean_gradient` is dL/d(delta)
    at delta = 0 and `passes.space` measures, steps and projects perturbations. It must end with exactly one
    `passes.parameter_pass(..., final=True)` and returns the last perturbation, for logging.

    Args:
        eps: the radius of the perturbation (FGM: its size).
        weight: w, the weight of the adversarial term in the parameter gradient.
    """

    def __init__(self, eps, weight):
        self.eps = eps
        self.weight = weight

    def perturb(self, passes):
        raise NotImplementedError


class IteratedEmbeddingAttack(EmbeddingAttack):
    """An attack of `steps` ascent steps of size `alpha`, optionally from a random start of size `init_mag`."""

    def __init__(self, eps, alpha, steps, init_mag, weight):
        super().__init__(eps, weight)
        self.alpha = alpha
        self.steps = steps
        self.init_mag = init_mag

    def start(self, passes):
        """delta_0 and the gradient there: the clean pass's, or that of one input-gradient pass at a random start."""
        if self.init_mag == 0:
            return passes.space.zeros(), passes.clean_gradient
        delta = passes.space.project(passes.space.random(self.init_mag), self.eps)
        return delta, passes.input_gradient(delta)
