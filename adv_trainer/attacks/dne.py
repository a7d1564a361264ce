"""DNE: Zhou, Zheng, Hsieh, Chang and Huang, "Defense against Synonym Substitution-based Adversarial Attacks via
Dirichlet Neighborhood Ensemble", ACL 2021, https://aclanthology.org/2021.acl-long.426/; code: dugu9sword/dne, and
its BERT trainer in TextDefender (Li et al., EMNLP 2021)."""

import torch

from ..synonym_hull import SynonymHull
from ..synonym_neighbourhood import two_hop_neighbourhood
from .base import TrainingAttack

__all__ = ["DNE"]

# The concentration of the second-hop neighbours relative to the first hop's (TextDefender's `dir_decay` for AG News).
SECOND_HOP_DECAY = 0.5
# Added to the sampled weights before their log (the code's): a weight of 0 stays finite.
LOG_FLOOR = 1e-6


class DNE(TrainingAttack):
    r"""Training on Dirichlet mixtures of each word's two-hop synonym neighbourhood, refined by ascent.

    Per micro-batch, with N(v) the neighbourhood of token v (v, its synonyms, their synonyms; at most `size`
    vertices, `two_hop_neighbourhood`), e(w) = sum_j w_j E[c_j] at every position with a neighbourhood (`SynonymHull`)
    and L the task loss:

        w_0 ~ Dirichlet(a) per position, a_j = concentration (v and its synonyms), 0.5 * concentration (2nd hop)
        z_0 = log(w_0 + 1e-6)
        z_t = z_{t-1} + alpha * g_t / ||g_t||,   g_t = dL(e(softmax z_{t-1}))/dz per position, t = 1..K
        grad_theta = grad_theta L(e(w_0)) + w * sum_{t=1..K} grad_theta L(e(softmax z_t))

    as in TextDefender's DNE trainer (its code: K = 3 `adv_iteration`, step 10 `adv_steps`, Dirichlet alpha 1 and
    decay 0.5 for AG News, the losses summed): every pass trains the parameters, and its backward also gives the next
    ascent direction (FreeLB's free step). The model never trains on the clean embeddings of a word with neighbours:
    the first pass is at the sample, and its loss is the one logged as `loss`. The mixtures are made of embedding
    rows, so the neighbours' rows train too. Not implemented: DNE's inference-time ensemble (the prediction averaged
    over 16 samples); the model is evaluated on its clean embeddings like any other.

    The Dirichlet sample is drawn per micro-batch from torch's generator: gradient accumulation and DDP give the large
    batch's update in distribution (the tests fix the sample by each example's tokens to check it exactly).
    Cost per micro-batch: K + 1 full passes (FreeLB's with K steps).

    Args:
        alpha: the ascent step on the logits z (10 in the code).
        steps: K.
        concentration: the Dirichlet concentration of the word and its synonyms.
        size: the most vertices of a neighbourhood.
        weight: w.
        synonyms: the tokenizer's `SynonymTable` (one hop); the neighbourhoods are built from it once.
    """

    def __init__(self, alpha, steps, concentration, size, weight, synonyms):
        super().__init__(weight)
        self.alpha = alpha
        self.steps = steps
        self.concentration = concentration
        self.size = size
        self.neighbourhoods, self.first_second_hop = two_hop_neighbourhood(synonyms, size)
        self._state = None

    def clean_pass(self, passes):
        embedding = passes.hook.embedding
        hull = self.hull(passes, embedding)
        weights = self.sample(hull)
        logits = (weights + LOG_FLOOR).log()
        loss, gradient = self.train_at(passes, hull, embedding, logits, weight=1.0, final=False, adversarial=False)
        self._state = hull, logits, gradient
        return loss

    def perturb(self, passes):
        hull, logits, gradient = self._state
        self._state = None
        embedding = passes.hook.embedding
        for t in range(1, self.steps + 1):
            finite = torch.isfinite(gradient).all(dim=-1)  # an fp16 overflow leaves its position where it is
            passes.space.skipped += (~finite).sum()
            gradient = torch.where(finite[:, None], gradient, 0.0)
            norm = gradient.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
            logits = logits + self.alpha * gradient / norm
            _, gradient = self.train_at(passes, hull, embedding, logits, self.weight, final=t == self.steps)
        return self.norms

    def sample(self, hull):
        """`(P, 1 + S)` weights: a Dirichlet sample per position over its neighbourhood (normalised Gamma draws)."""
        tokens = hull.vertex_ids[:, 0]
        columns = torch.arange(hull.vertex_ids.shape[1], device=tokens.device)
        second_hop = columns >= self.first_second_hop.to(tokens.device)[tokens][:, None]
        concentration = torch.where(second_hop, SECOND_HOP_DECAY * self.concentration, self.concentration)
        draws = torch.distributions.Gamma(concentration, torch.ones_like(concentration)).sample()
        draws = torch.where(hull.vertex_mask, draws, 0.0)
        return draws / draws.sum(dim=-1, keepdim=True)

    def train_at(self, passes, hull, embedding, logits, weight, final, adversarial=True):
        """One parameter pass at e(softmax(logits)); returns its scaled loss and dL/d(logits) `(P, 1 + S)`, which
        the pass's own backward leaves on the logits (a leaf of its graph), so that no second backward through the
        mixture is needed."""
        leaf = logits.detach().requires_grad_()
        delta = hull.delta(hull.weights(leaf), hull.vertices(embedding))
        loss = passes.mixture_pass(delta, weight, final, adversarial)
        self.norms = delta.detach().pow(2).sum(dim=(1, 2)).sqrt()
        return loss, leaf.grad

    def hull(self, passes, embedding):
        """The `SynonymHull` of the micro-batch over the neighbourhoods, and `passes.space` set from the batch."""
        input_ids = passes.inputs.get("input_ids")
        width = embedding.forward(input_ids.flatten()[:1]).shape[-1] if input_ids is not None else None  # E
        passes.space_before_any_pass(width)
        input_ids = passes.input_ids()
        if self.neighbourhoods.ids.device != input_ids.device:
            table = self.neighbourhoods
            self.neighbourhoods = type(table)(table.ids.to(input_ids.device), table.counts.to(input_ids.device))
        return SynonymHull(self.neighbourhoods, input_ids, passes.space.position_mask, self.size - 1)
