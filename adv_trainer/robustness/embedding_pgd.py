"""Robust accuracy under PGD on the word-embedding output, with the training attack's own code.

The attack is white-box and per example: for each batch, `PGD.perturb` runs on `EvaluationPasses`, whose passes
compute only the gradient with respect to the perturbation (never a parameter gradient) and whose final pass
records the logits at the perturbed embeddings instead of training on them.
"""

import numpy as np
import torch
from transformers import EvalPrediction

from ..attacks import PGD
from ..embedding_hook import EmbeddingOutputHook, input_embedding
from ..perturbation_space import PerturbationSpace
from ..sequence_layout import check_packing_is_honoured, packed_sequences, position_mask

__all__ = ["EvaluationPasses", "check_robustness_arguments", "metrics_of", "robust_predictions"]


class EvaluationPasses:
    """The passes `PGD.perturb` asks for, in evaluation: loss gradients with respect to delta only."""

    def __init__(self, model, inputs, hook, norm):
        self.model = model
        self.inputs = inputs
        self.hook = hook
        self.norm = norm
        self.space = None
        self.clean_gradient = None
        self.logits = None

    def clean(self):
        loss = self._loss(None)
        position_delta = self.hook.delta  # the zero leaf the hook created
        (gradient,) = torch.autograd.grad(loss, position_delta)
        shape = position_delta.shape
        mask, groups = position_mask(self.inputs, shape, position_delta.device), packed_sequences(self.inputs)
        self.space = PerturbationSpace(self.norm, "example", mask, None, shape[-1], groups)
        self.clean_gradient = self.space.gradient(gradient)

    def input_gradient(self, delta):
        position_delta = self.space.positions(delta).requires_grad_()
        (gradient,) = torch.autograd.grad(self._loss(position_delta), position_delta)
        return self.space.gradient(gradient)

    def parameter_pass(self, delta, weight, final, input_gradient=False):
        """The attack's final point: records the logits there; nothing is trained."""
        self.hook.start_pass(self.space.positions(delta), without_gradients=True)
        with torch.no_grad():
            self.logits = self.model(**self.inputs).logits

    def _loss(self, position_delta):
        self.hook.start_pass(position_delta)
        with torch.enable_grad():
            return self.model(**self.inputs).loss


def check_robustness_arguments(epsilons, steps):
    if not epsilons:
        raise ValueError("`epsilons` must list at least one radius, e.g. [0.25, 0.5, 1.0].")
    negative = [eps for eps in epsilons if not eps >= 0]
    if negative:
        raise ValueError(f"`epsilons` must be >= 0, got {negative}.")
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1, got {steps}.")


def robust_predictions(model, batches, eps, steps, norm, gather, alpha=None):
    """Logits and labels of every batch, passed through `gather`, under a K-step PGD of radius `eps` that maximises
    the model's loss (step alpha = 2.5 eps / K by default, Madry et al.'s rule). The model's mode, weights, `.grad`,
    `requires_grad` and hooks are as before afterwards."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    attack = PGD(eps=eps, alpha=alpha, steps=steps, init_mag=0.0, weight=0.0)
    was_training = model.training
    model.eval()
    logits, labels = [], []
    packing_checked = False
    try:
        for inputs in batches:
            groups = packed_sequences(inputs)
            if groups is not None and not packing_checked:  # before the hook: the check runs the model
                packing_checked = check_packing_is_honoured(model, inputs, groups)
            with EmbeddingOutputHook(input_embedding(model)) as hook:
                passes = EvaluationPasses(model, inputs, hook, norm)
                passes.clean()
                attack.perturb(passes)
            logits.append(gather(passes.logits.detach()))
            labels.append(gather(inputs["labels"]))
    finally:
        model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def metrics_of(logits, labels, compute_metrics, is_regression):
    """The task metric of gathered logits; accuracy when the trainer has no `compute_metrics`."""
    predictions, label_ids = logits.float().cpu().numpy(), labels.cpu().numpy()
    if compute_metrics is not None:
        return compute_metrics(EvalPrediction(predictions=predictions, label_ids=label_ids))
    if is_regression:
        raise ValueError("A regression model needs `compute_metrics` to report a metric under attack.")
    return {"accuracy": float((np.argmax(predictions, axis=-1) == label_ids).mean())}
