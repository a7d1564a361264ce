"""The forward/backward passes an attack may run on one micro-batch."""

import contextlib

import torch

from .perturbation_space import PerturbationSpace

__all__ = ["PerturbedPasses"]


class PerturbedPasses:
    """Runs the clean pass of a micro-batch, then the perturbed passes an attack asks for.

    Every pass computes its loss exactly like the clean one: the trainer's `compute_loss` under its autocast context,
    multiplied by the same `loss_scale`, and goes through `accelerator.backward` (so fp16 loss scaling applies).
    DDP decides at the forward whether a backward all-reduces, so every forward runs under `no_sync` except the
    attack's final parameter pass, which inherits the Trainer's choice for this micro-batch: one gradient reduction
    per optimizer step, however many passes.

    Args:
        trainer: the `AdversarialTrainer`.
        model: the (possibly DDP-wrapped) model of `training_step`.
        inputs: the prepared micro-batch.
        num_items_in_batch: passed on to `compute_loss`.
        loss_scale: the factor that makes this micro-batch's loss its share of the accumulated batch.
        hook: an entered `EmbeddingOutputHook` on the model's input embedding.
    """

    def __init__(self, trainer, model, inputs, num_items_in_batch, loss_scale, hook):
        self.trainer = trainer
        self.model = model
        self.inputs = inputs
        self.num_items_in_batch = num_items_in_batch
        self.loss_scale = loss_scale
        self.hook = hook
        self.space = None
        self.clean_gradient = None
        self.adversarial_losses = []
        self.final_pass_done = False

    def clean(self):
        """Forward and backward at delta = 0; sets `space` and `clean_gradient`. Returns the scaled clean loss."""
        loss = self._loss(None, final=False)
        self.trainer.accelerator.backward(loss)
        position_delta = self.hook.delta  # (B, T, E)
        args = self.trainer.args
        self.space = PerturbationSpace(
            args.adv_norm,
            args.adv_scope,
            self._attention_mask(position_delta.shape),
            self._input_ids(),
            position_delta.shape[-1],
        )
        self.clean_gradient = self.space.gradient(position_delta.grad)
        return loss.detach()

    def input_gradient(self, delta):
        """dL/d(delta) at `delta`: a forward and a backward that computes no parameter gradient."""
        position_delta = self.space.positions(delta).requires_grad_()
        loss = self._loss(position_delta, final=False)
        self.trainer.accelerator.backward(loss, inputs=[position_delta])
        return self.space.gradient(position_delta.grad)

    def parameter_pass(self, delta, weight, final, input_gradient=False):
        """Adds `weight` * grad_theta L(e + delta) to the parameter gradients.

        `final` marks the attack's last pass, the one that carries the DDP gradient reduction. With
        `input_gradient=True` the same backward also returns dL/d(delta) (FreeLB's free ascent step).
        """
        if self.final_pass_done:
            raise RuntimeError("An attack ran a parameter pass after its final one.")
        position_delta = self.space.positions(delta).requires_grad_(input_gradient)
        loss = self._loss(position_delta, final=final)
        self.adversarial_losses.append(loss.detach())
        self.trainer.accelerator.backward(loss * weight)
        self.final_pass_done = final
        return self.space.gradient(position_delta.grad) if input_gradient else None

    def _loss(self, position_delta, final):
        self.hook.start_pass(position_delta)
        sync_context = contextlib.nullcontext() if final else self.trainer.accelerator.no_sync(self.model)
        with sync_context, self.trainer.compute_loss_context_manager():
            # `compute_loss` may pop `labels` from the dict it gets, so each pass gets its own.
            loss = self.trainer.compute_loss(self.model, dict(self.inputs), num_items_in_batch=self.num_items_in_batch)
        if self.hook.calls == 0:
            raise ValueError(
                "The model's input embedding did not run in the forward pass, so there is nothing to perturb: "
                "inputs given as `inputs_embeds` are not supported. Pass `input_ids` instead."
            )
        return loss * self.loss_scale

    def _attention_mask(self, shape):
        mask = self.inputs.get("attention_mask")
        if mask is None:
            return torch.ones(shape[:2], device=self.hook.delta.device)
        if tuple(mask.shape) != tuple(shape[:2]):
            raise ValueError(
                f"`attention_mask` has shape {tuple(mask.shape)} but the input embedding's output has shape "
                f"{tuple(shape)}; adversarial training needs a (batch, sequence) mask that matches the embedding."
            )
        return mask

    def _input_ids(self):
        input_ids = self.inputs.get("input_ids")
        if input_ids is None and self.trainer.args.adv_scope == "vocab":
            raise ValueError("`adv_scope='vocab'` needs `input_ids` in the batch: it perturbs per vocabulary row.")
        return input_ids
