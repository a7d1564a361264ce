"""What every training attack shares, and the families of attacks on the word-embedding output."""

__all__ = ["EmbeddingAttack", "IteratedEmbeddingAttack", "SmoothnessRegularizer", "TrainingAttack"]


class TrainingAttack:
    """What `AdversarialTrainer` runs once per micro-batch: `clean_pass(passes)`, then `perturb(passes)`.

    `clean_pass` runs the clean pass and returns its scaled loss; the default, `passes.clean()`, is a forward and
    backward that sets `passes.space` and `passes.clean_gradient` (dL/d(delta) at delta = 0). `perturb` must end
    with exactly one final pass (`passes.parameter_pass(..., final=True)` or `passes.regularized_pass`) and returns
    the norms of its final perturbation per group, for logging.

    Args:
        weight: w, the weight of the adversarial term in the parameter gradient.
    """

    def __init__(self, weight):
        self.weight = weight

    def clean_pass(self, passes):
        return passes.clean()

    def perturb(self, passes):
        raise NotImplementedError


class EmbeddingAttack(TrainingAttack):
    """An attack that adds a perturbation of radius `eps` (FGM: of size `eps`) to the word-embedding output."""

    def __init__(self, eps, weight):
        super().__init__(weight)
        self.eps = eps


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


class SmoothnessRegularizer(EmbeddingAttack):
    """A method whose adversarial term is lambda * D(f(e), f(e + delta)), D the divergence between predictions.

    The clean pass runs forward only, its graph dropped (`passes.clean_forward()`): D depends on the clean
    prediction too, so the final `passes.regularized_pass` backpropagates D through the perturbed forward and then
    runs the clean forward again, with the same dropout, to backpropagate the task loss and D's clean side. The
    start is per-coordinate noise of `noise_scale` (the gradient of D is 0 at delta = 0).
    """

    def __init__(self, eps, weight, noise, noise_scale):
        super().__init__(eps, weight)
        self.noise_distribution = noise
        self.noise_scale = noise_scale

    def clean_pass(self, passes):
        return passes.clean_forward()

    def noise(self, passes):
        return passes.space.noise(self.noise_distribution, self.noise_scale)
