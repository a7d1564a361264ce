"""CreAT: Wu et al., "Toward Adversarial Training on Contextualized Language Representation", ICLR 2023,
https://arxiv.org/abs/2305.04557; the authors' code: https://github.com/gingasan/CreAT (trainer/creat.py)."""

from .base import EmbeddingAttack

__all__ = ["CreAT"]


class CreAT(EmbeddingAttack):
    r"""Contextualised representation-adversarial training: the attack also pushes the encoder's output away.

    Update rule, per example, with h(e) the model's last hidden states `(T, H)` at the clean input (held fixed) and
    S(delta) = sum over the example's non-padding positions t of cos(h_t(e + delta), h_t(e)):

        delta_0 ~ N(0, sigma^2) per coordinate
        delta_t = Proj_eps(delta_{t-1} + alpha * g_t / ||g_t||),   g_t = d[L(e + delta) - tau * S(delta)]/d(delta)
                                                                   at delta_{t-1}, t = 1..K  (L-inf: sign, clip)
        grad_theta = grad_theta [L(e) + w * L(e + delta_K)] / (1 + w)     (no S in the parameter gradient)

    At w = 1 the parameters train on (L(e) + L(e + delta_K)) / 2, the paper's and the code's loss. S is averaged over
    the examples of the accumulated batch and L is the task loss as the trainer scales it, so each example's balance
    between the two is its large batch's (the code: the mean over its batch). S is at its maximum at delta = 0, where
    its gradient is exactly 0: hence the noise start (sigma = 1e-5 in the paper's code).
    The code at the paper's time summed S over the non-padding positions, as here (its last revision compares the
    first position only, with sigma = 1e-2), and with more than one step it added each step's delta on top of the
    already perturbed embedding, so the points went beyond eps; here, as in the paper's algorithm and the code's last
    revision, every pass runs at e + delta_t with delta_t in the ball. The code's `adv_steps=2` is K = 1.
    The hidden states are asked for with `output_hidden_states` and hidden from the user's `compute_loss`.
    Cost per micro-batch: 2 full forward+backward passes and K input-gradient passes (PGD's with a random start);
    the clean pass's graph is freed before the ascent, so the peak memory is one pass's.

    Args:
        eps: the radius of the ball (`adv_epsilon`).
        alpha: the ascent step (`adv_alpha`).
        steps: K, the number of ascent steps (`adv_k`).
        tau: the weight of the similarity S in the ascent objective (`adv_tau`).
        noise_scale: sigma, the standard deviation of the start per coordinate (`adv_init_mag`).
        weight: w, the weight of the adversarial loss against the clean loss (`adv_weight`).
    """

    def __init__(self, eps, alpha, steps, tau, noise_scale, weight):
        super().__init__(eps, weight)
        self.alpha = alpha
        self.steps = steps
        self.tau = tau
        self.noise_scale = noise_scale

    def clean_pass(self, passes):
        return passes.representation_clean(1.0 / (1.0 + self.weight))

    def noise(self, passes):
        return passes.space.noise("normal", self.noise_scale)

    def perturb(self, passes):
        space = passes.space
        delta = self.noise(passes)
        for _ in range(self.steps):
            gradient = passes.representation_gradient(delta, self.tau)
            delta = space.project(space.ascend(delta, gradient, self.alpha), self.eps)
        passes.parameter_pass(delta, self.weight / (1.0 + self.weight), final=True)
        return space.norms(delta)
