"""AWP: Wu, Xia and Wang, "Adversarial Weight Perturbation Helps Robust Generalization", NeurIPS 2020,
https://arxiv.org/abs/2004.05884, in the relative-step form used by Kaggle NLP solutions."""

import torch
from torch import nn

from .base import TrainingAttack

__all__ = ["AWP", "perturbed_weights"]


def perturbed_weights(model):
    """The weights AWP moves: every trainable matrix (2 or more dimensions) that is not an embedding table.

    Embeddings (word, position, token type, and an output projection tied to them) are left alone, as are biases
    and LayerNorm weights (1-dimensional): the perturbation is meant for the layers' linear maps.
    """
    embedding_tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2 and id(p) not in embedding_tables]


class AWP(TrainingAttack):
    r"""Adversarial weight perturbation: the adversarial pass runs at weights moved up the loss, then restored.

    Update rule, for every tensor W of `perturbed_weights`, with G = dL/dW of this micro-batch's clean pass:

        V = clip(alpha * ||W|| * G / ||G||, -gamma * |W|, gamma * |W|)     (norms per tensor; the box per element)
        grad_theta = grad_theta L(W) + w * grad_theta L(W + V)             (W is then restored bit for bit)

    G is this micro-batch's alone: what earlier micro-batches accumulated in `.grad` is set aside during the clean
    backward and added back after, without a copy. Restoring W exactly needs a copy of the perturbed weights (about
    the model's size minus its embeddings, in the weights' dtype); the box is computed tensor by tensor from it. A
    tensor whose G is not finite or zero is not moved (non-finite ones are counted in `adv_skipped`). Under DDP each
    process perturbs from its own micro-batch gradient: reducing G first would cost one more all-reduce per step.
    So, like gradient accumulation, the update depends on how the batch is split.
    Cost per micro-batch: 2 forward + 2 backward passes (FGM's), plus the copy and the restore of the weights.

    Args:
        gamma: the box, relative to each element's magnitude (`adv_epsilon`).
        alpha: the step, relative to each tensor's norm (`adv_alpha`).
        weight: w, the weight of the adversarial loss.
    """

    def __init__(self, gamma, alpha, weight):
        super().__init__(weight)
        self.gamma = gamma
        self.alpha = alpha

    def clean_pass(self, passes):
        self._weights = perturbed_weights(passes.trainer.accelerator.unwrap_model(passes.model))
        return passes.clean(own_gradient_of=self._weights)

    def perturb(self, passes):
        originals = [w.detach().clone() for w in self._weights]
        try:
            perturbation_norm = self._move(passes.space)
            passes.add_back_accumulated_gradients()
            passes.parameter_pass(passes.space.zeros(), self.weight, final=True)
        finally:
            with torch.no_grad():
                for w, original in zip(self._weights, originals, strict=True):
                    w.copy_(original)
        return perturbation_norm

    @torch.no_grad()
    def _move(self, space):
        """Moves every weight by its V; returns ||V|| / ||W|| over all of them, as a 1-element tensor.

        Written without a host synchronisation: a tensor with a non-finite or zero G gets V = 0 by arithmetic.
        """
        moved = torch.zeros((), device=space.skipped.device)
        size = torch.zeros((), device=space.skipped.device)
        for w in self._weights:
            if w.grad is None:  # unused in this forward
                continue
            g_norm = w.grad.float().norm()
            finite = torch.isfinite(g_norm)
            space.skipped += (~finite).to(space.skipped.dtype)
            w_norm = w.float().norm()
            scale = torch.where(finite & (g_norm > 0), self.alpha * w_norm / g_norm.clamp_min(1e-30), 0.0)
            v = torch.where(finite, w.grad.float(), 0.0) * scale
            bound = self.gamma * w.float().abs()
            v = torch.minimum(torch.maximum(v, -bound), bound)
            w.add_(v.to(w.dtype))
            moved += v.pow(2).sum()
            size += w_norm.pow(2)
        return (moved.sqrt() / size.sqrt().clamp_min(torch.finfo(torch.float32).tiny))[None]
