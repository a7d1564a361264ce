"""ASCC: Dong, Luu, Ji and Liu, "Towards Robustness Against Natural Language Word Substitutions", ICLR 2021,
https://openreview.net/forum?id=ks5nebunVn_ (adversarial sparse convex combination); code: dongxinshuai/ASCC."""

import torch

from ..prediction_divergence import kl_divergence
from ..synonym_hull import SynonymHull
from .base import TrainingAttack

__all__ = ["ASCC"]


class ASCC(TrainingAttack):
    r"""The worst point of the convex hull of each word's and its synonyms' embeddings, trained on with a KL term.

    Per example, with p = f(e) the clean prediction, c_0 each hull position's token, c_1..c_S its synonyms
    (`SynonymHull`), w = softmax(logits) over them and H(w) the entropy of a position's weights:

        logits_0 = 0 (the hull's centroid)
        logits_t = Adam-ascent step of size alpha on
                   KL(p || f(e(w))) - lambda * (1 / tokens) * sum_positions H(w),   t = 1..K, dropout off, p fixed
        e(w)     = sum_j w_j E[c_j] at hull positions, E[token] elsewhere
        grad_theta = grad_theta [L(e) + beta * KL(f(e) || f(e(w_K)))]     (neither side detached, and e(w_K) is
                                                                            made of embedding rows, so the synonyms'
                                                                            rows train too)

    This is the paper's objective (its Eq. for the ascent with the entropy term, and its training loss with
    beta = 4), with these choices: the ascent starts at the centroid instead of a random (Kaiming) initialisation
    of the logits, so that a step is the same however the batch is split; the entropy term is averaged per example
    over its tokens, `lambda` = 15/64 being the paper's 15 over the positions of its batch of 64 (the paper's code
    sums the KL over the batch but averages the entropy over the batch's positions); the Adam step has no weight
    decay (the paper's 2e-5 on the logits). The KL term is averaged over the micro-batch and scaled like a mean loss
    under gradient accumulation, as SMART's divergence is. A position without synonyms is not perturbed.

    Cost per micro-batch: 1 clean forward whose graph is dropped, 1 forward without gradients (the target p, dropout
    off), K input-gradient passes, the perturbed forward and backward, and the clean forward and backward again with
    the first one's dropout masks (2N + 2F + K I), one graph alive at a time (`PerturbedPasses.regularized_pass`).

    Args:
        alpha: Adam's learning rate on the logits (the paper's code: 1 for BERT).
        steps: K.
        sparsity: lambda.
        max_synonyms: S, the synonyms of a hull at most.
        weight: beta.
        synonyms: the tokenizer's `SynonymTable`.
    """

    def __init__(self, alpha, steps, sparsity, max_synonyms, weight, synonyms):
        super().__init__(weight)
        self.alpha = alpha
        self.steps = steps
        self.sparsity = sparsity
        self.max_synonyms = max_synonyms
        self.synonyms = synonyms

    def clean_pass(self, passes):
        return passes.clean_forward()

    def perturb(self, passes):
        hull = self.hull(passes)
        embedding = passes.hook.embedding
        with passes.without_dropout():
            target = passes.logits(None)
            with torch.no_grad():
                vertices = hull.vertices(embedding)
            logits = hull.zero_logits().requires_grad_()
            # Adam per coordinate: each example's logits move by their own gradient alone, as one large batch's would.
            optimizer = torch.optim.Adam([logits], lr=self.alpha, maximize=True)
            for _ in range(self.steps):
                weights = hull.weights(logits)
                perturbed = passes.logits(hull.delta(weights, vertices))
                objective = kl_divergence(target, perturbed) - self.sparsity * hull.entropy(weights)
                gradient = passes.gradient_of(objective.sum(), logits)
                finite = torch.isfinite(gradient).all(dim=-1)  # an fp16 overflow leaves its position where it is
                passes.space.skipped += (~finite).sum()
                logits.grad = torch.where(finite[:, None], gradient, 0.0)
                optimizer.step()
        # The final point, with the graph to the vertices' embedding rows.
        delta = hull.delta(hull.weights(logits.detach()), hull.vertices(embedding))
        passes.regularized_pass(delta, self.weight, divergence=kl_divergence, in_positions=True)
        return delta.detach().pow(2).sum(dim=(1, 2)).sqrt()

    def hull(self, passes):
        """The `SynonymHull` of the micro-batch."""
        input_ids = passes.input_ids()
        device = input_ids.device
        if self.synonyms.ids.device != device:
            self.synonyms = type(self.synonyms)(self.synonyms.ids.to(device), self.synonyms.counts.to(device))
        return SynonymHull(self.synonyms, input_ids, passes.space.position_mask, self.max_synonyms)
