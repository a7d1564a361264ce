"""The forward/backward passes an attack may run on one micro-batch."""

import contextlib

import torch

from .last_hidden_state import LastHiddenState, representation_similarity
from .perturbation_space import PerturbationSpace
from .prediction_divergence import prediction_divergence, sequence_logits
from .random_draws import RandomDraws
from .sequence_layout import as_embedding_layout, example_count, packed_sequences, position_mask

__all__ = ["PerturbedPasses"]


class PerturbedPasses:
    """Runs the clean pass of a micro-batch, then the perturbed passes an attack asks for.

    Every pass computes its loss exactly like the clean one: the trainer's `compute_loss` under its autocast context,
    multiplied by the same `loss_scale`, and goes through `accelerator.backward` (so fp16 loss scaling applies).
    Every backward but the attack's final parameter pass's leaves the gradients unreduced (`GradientSync`: DDP's
    `no_sync` at the forward, FSDP2's flags at the backward); the final pass inherits the Trainer's choice for this
    micro-batch: one gradient reduction per optimizer step, however many passes.

    Args:
        trainer: the `AdversarialTrainer`.
        model: the (possibly DDP-wrapped) model of `training_step`.
        inputs: the prepared micro-batch.
        num_items_in_batch: passed on to `compute_loss`.
        loss_scale: the factor that makes this micro-batch's loss its share of the accumulated batch.
        hook: an entered `EmbeddingOutputHook` on the model's input embedding.
        sync: an entered `GradientSync` of the model, which keeps every backward but the final pass's unreduced.
    """

    def __init__(self, trainer, model, inputs, num_items_in_batch, loss_scale, hook, sync):
        self.trainer = trainer
        self.model = model
        self.inputs = inputs
        self.num_items_in_batch = num_items_in_batch
        self.loss_scale = loss_scale
        self.hook = hook
        self.sync = sync
        self.space = None
        self.clean_gradient = None
        self.clean_logits = None  # `clean_forward` only: the clean logits (no graph) and the random draws of that pass
        self._clean_draws = None
        self.clean_hidden = None  # `representation_clean` only: the last hidden states h(e), detached
        self.adversarial_losses = []
        self.final_pass_done = False
        self._set_aside = []

    def clean(self, own_gradient_of=()):
        """Forward and backward at delta = 0; sets `space` and `clean_gradient`. Returns the scaled clean loss.

        The `.grad` of the parameters in `own_gradient_of` holds this pass's gradient alone until
        `add_back_accumulated_gradients()`: what earlier micro-batches accumulated is set aside, not copied.
        """
        self._set_aside = [(p, p.grad) for p in own_gradient_of]
        for p in own_gradient_of:
            p.grad = None
        loss = self._loss(None, final=False)
        self.trainer.accelerator.backward(loss)
        position_delta = self.hook.delta  # (B, T, E)
        self.space = self._space(position_delta.shape)
        self.clean_gradient = self.space.gradient(position_delta.grad)
        return loss.detach()

    def add_back_accumulated_gradients(self):
        """Adds what `clean(own_gradient_of=...)` set aside back into `.grad`, as accumulation would have."""
        for p, accumulated in self._set_aside:
            if accumulated is not None:
                p.grad = accumulated if p.grad is None else accumulated.add_(p.grad)
        self._set_aside = []

    def clean_forward(self):
        """Forward at delta = 0 whose graph is dropped at once, its random draws (dropout) recorded for
        `regularized_pass` to run it again with its graph; sets `space` and `clean_logits`. Returns the scaled loss.

        It runs with gradients enabled, as the pass it stands for: forwards under `torch.no_grad()` inside a pass
        are a reference model's or a metric's (`EmbeddingOutputHook`), and the replay must take the same kernels.
        """
        self._clean_draws = RandomDraws(self.inputs.values())
        loss, outputs = self._loss(None, final=False, return_outputs=True)
        self.space = self._space(self.hook.delta.shape)
        self.clean_logits = sequence_logits(outputs, example_count(self.inputs, self.hook.delta.shape)).detach()
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
        position_delta = self.space.positions(delta).requires_grad_(input_gradient)
        self._trained_pass(position_delta, weight, final, adversarial=True)
        return self.space.gradient(position_delta.grad) if input_gradient else None

    def divergence_gradient(self, delta):
        """dD/d(delta) of the divergence between the clean prediction, held fixed, and the one at `delta`.

        A forward and a backward that computes no parameter gradient (SMART's ascent step).
        """
        position_delta = self.space.positions(delta).requires_grad_()
        _, outputs = self._loss(position_delta, final=False, return_outputs=True)
        logits = sequence_logits(outputs, len(self.clean_logits))
        divergence = prediction_divergence(self.clean_logits.detach(), logits).mean()
        self.trainer.accelerator.backward(divergence, inputs=[position_delta])
        return self.space.gradient(position_delta.grad)

    def regularized_pass(self, delta, weight, divergence=None, in_positions=False):
        """The final pass of SMART/R3F/ASCC: grad_theta [L(e) + weight * D(f(e), f(e + delta))], after
        `clean_forward`; gradients flow through both predictions (and through `delta` itself where it has a graph:
        ASCC's hull points are made of embedding rows).

        D, the per-example `divergence` (default: the symmetric KL) averaged over the micro-batch, is scaled like a
        mean loss (1 / micro-batches of the step) whatever the task loss does, so equal micro-batches accumulate to
        the large batch's mean. `delta` is in the space's slots, or `(B, T, E)` with `in_positions=True`.

        Only one graph is alive at a time, at the cost of one forward more than a joint backward through both:
        1. the perturbed forward and the backward of weight * D with the clean logits z(e) a leaf, which gives the
           perturbed side's parameter gradient and g = weight * dD/dz(e);
        2. the clean forward again, with its graph and `clean_forward`'s random draws (the same dropout masks, so the
           same z(e)), and the backward of L(e) + <z(e), g>: the clean side's parameter gradient. It is the final
           pass (the DDP gradient reduction); the random generators are left as the perturbed pass left them.
        The sum is the joint backward's gradient (up to float summation order).
        """
        if self.final_pass_done:
            raise RuntimeError("An attack ran a parameter pass after its final one.")
        position_delta = delta if in_positions else self.space.positions(delta)
        _, outputs = self._loss(position_delta, final=False, return_outputs=True)
        logits = sequence_logits(outputs, len(self.clean_logits))
        clean_logits = self.clean_logits.detach().requires_grad_()
        divergence = (divergence or prediction_divergence)(clean_logits, logits).mean()
        divergence = divergence / self.trainer._micro_batches_per_step()
        self.adversarial_losses.append(divergence.detach())
        # Through the logits alone (cheap), and not through `accelerator.backward`: g must not carry fp16 loss
        # scaling, which the clean backward applies once to the whole of L(e) + <z(e), g>.
        (clean_gradient,) = torch.autograd.grad(weight * divergence, clean_logits, retain_graph=True)
        self.trainer.accelerator.backward(weight * divergence)
        with self._clean_draws.replayed():
            loss, outputs = self._loss(None, final=True, return_outputs=True)
        logits = sequence_logits(outputs, len(self.clean_logits))
        self.trainer.accelerator.backward(loss + (logits * clean_gradient.to(logits.dtype)).sum())
        self.final_pass_done = True

    @contextlib.contextmanager
    def without_dropout(self):
        """The model in eval mode inside (dropout off: ASCC's ascent, as in its paper's code), in training mode
        after."""
        self.model.eval()
        try:
            yield
        finally:
            self.model.train()

    def logits(self, position_delta):
        """The `(batch, classes)` logits at `(B, T, E)` `position_delta` (None: the clean input), after
        `clean_forward`: with the graph to `position_delta` where it requires grad, else a forward without
        gradients. No parameter gradient is computed and no gradient reduction runs."""
        if position_delta is not None and position_delta.requires_grad:
            _, outputs = self._loss(position_delta, final=False, return_outputs=True)
        else:
            with torch.no_grad():
                _, outputs = self._loss(position_delta, final=False, return_outputs=True, without_gradients=True)
        return sequence_logits(outputs, len(self.clean_logits))

    def input_ids(self):
        """The `(B, T)` token ids of the micro-batch in the embedding output's layout (synonym-aware methods)."""
        if self.inputs.get("input_ids") is None:
            raise ValueError(
                f"`adv_method='{self.trainer.args.adv_method}'` substitutes synonyms of the batch's tokens and needs "
                "`input_ids` in it."
            )
        return as_embedding_layout(self.inputs["input_ids"], "input_ids", self.space.shape)

    def space_before_any_pass(self, dim):
        """Sets `space` from the batch alone, for an attack whose first pass is already perturbed (DNE): the
        embedding output is taken to be `(B, T, dim)` with (B, T) the layout of `input_ids`."""
        if self.inputs.get("input_ids") is None:
            self.input_ids()  # the error that names the method
        input_ids = self.inputs["input_ids"]
        shape = (input_ids.numel() // input_ids.shape[-1], input_ids.shape[-1], dim)
        self.space = self._space(shape, device=input_ids.device)

    def mixture_pass(self, position_delta, weight, final, adversarial=True):
        """Adds `weight` * grad_theta L(e + position_delta) to the parameter gradients, where `(B, T, E)`
        `position_delta` is made of embedding rows and mixture weights (DNE's mixtures: its graph is followed into
        them, and the backward leaves the gradients of its leaves, such as the mixture logits, on them). Returns the
        scaled loss; `final` as in `parameter_pass`; an `adversarial` pass's loss is logged as `adv_loss`."""
        return self._trained_pass(position_delta, weight, final, adversarial)

    def _trained_pass(self, position_delta, weight, final, adversarial):
        """Forward at `(B, T, E)` `position_delta` and backward of `weight` * the scaled loss, which it returns."""
        if self.final_pass_done:
            raise RuntimeError("An attack ran a parameter pass after its final one.")
        loss = self._loss(position_delta, final=final)
        if adversarial:
            self.adversarial_losses.append(loss.detach())
        self.trainer.accelerator.backward(loss * weight)
        self.final_pass_done = final
        return loss.detach()

    def gradient_of(self, objective, tensor):
        """d(objective)/d(tensor), through `accelerator.backward` (fp16 loss scaling applies: the gradient may be
        scaled, which ascent directions and Adam steps are invariant to); no parameter gradient is computed."""
        self.trainer.accelerator.backward(objective, inputs=[tensor])
        gradient, tensor.grad = tensor.grad, None
        return gradient

    def representation_clean(self, weight):
        """CreAT's clean pass: forward and backward of `weight` * L(e) at delta = 0; sets `space` and `clean_hidden`,
        the last hidden states h(e) `(B, T, H)`, detached. Returns the scaled clean loss (unweighted, as logged)."""
        with LastHiddenState(self.trainer.accelerator.unwrap_model(self.model)) as capture:
            loss = self._loss(None, final=False)
        self.trainer.accelerator.backward(loss * weight)
        self.space = self._space(self.hook.delta.shape)
        self.clean_hidden = capture.value.detach()
        return loss.detach()

    def representation_gradient(self, delta, tau):
        """d/d(delta) of L(e + delta) - tau * S(delta), after `representation_clean` (CreAT's ascent step).

        S is the cosine similarity between the last hidden states at e + delta and h(e), held fixed, summed over each
        example's non-padding positions and averaged over the sequences (examples) of the accumulated batch: scaled
        like a mean loss (1 / (sequences of the micro-batch x micro-batches of the step)) whatever the task loss
        does, so each example's balance between L and S is the one its large batch gives. A forward and a backward
        that computes no parameter gradient.
        """
        position_delta = self.space.positions(delta).requires_grad_()
        with LastHiddenState(self.trainer.accelerator.unwrap_model(self.model)) as capture:
            loss = self._loss(position_delta, final=False)
        similarity = representation_similarity(capture.value, self.clean_hidden, self.space.position_mask)  # (B,)
        # Averaged over sequences, not rows: a packed row holds several, each an example as in the padded batch.
        sequences = self.space.mask.shape[0]
        similarity = similarity.sum() / (sequences * self.trainer._micro_batches_per_step())
        self.trainer.accelerator.backward(loss - tau * similarity, inputs=[position_delta])
        return self.space.gradient(position_delta.grad)

    def clean_as_final(self):
        """`clean()` as the attack's final pass, for a micro-batch the attack leaves clean (A2T's when it chooses
        none of its examples): the same forward and backward, carrying the DDP gradient reduction; its adversarial
        loss is 0. Returns the scaled clean loss."""
        if self.final_pass_done:
            raise RuntimeError("An attack ran a parameter pass after its final one.")
        loss = self._loss(None, final=True)
        self.trainer.accelerator.backward(loss)
        self.space = self._space(self.hook.delta.shape)
        self.clean_gradient = self.space.gradient(self.hook.delta.grad)
        self.adversarial_losses.append(torch.zeros_like(loss.detach()))
        self.final_pass_done = True
        return loss.detach()

    def example_logits(self, examples, input_ids):
        """The `(N, classes)` logits of the micro-batch's examples `examples` (`(N,)` long, repeats allowed) with the
        token ids `input_ids` (`(N, ...)`, laid out as the batch's) in place of theirs: a forward without gradients,
        no parameter gradient, no gradient reduction (A2T's candidate swaps)."""
        with torch.no_grad():
            batch = self._examples(examples, input_ids)
            _, outputs = self._loss(None, final=False, return_outputs=True, without_gradients=True, batch=batch)
        return sequence_logits(outputs, len(examples))

    def examples_pass(self, examples, input_ids, weight):
        """The attack's final pass on the micro-batch's examples `examples` with the token ids `input_ids`, as in
        `example_logits` (A2T's adversarial examples): adds `weight` * grad_theta of their loss, in which each
        example weighs what it weighs in the clean loss. A loss divided by `num_items_in_batch` (the accumulated
        batch's count) already does; a per-micro-batch mean is multiplied by the examples' labelled items over the
        micro-batch's, so that gradient accumulation and DDP give the large batch's update."""
        if self.final_pass_done:
            raise RuntimeError("An attack ran a parameter pass after its final one.")
        batch = self._examples(examples, input_ids)
        loss = self._loss(None, final=True, batch=batch)
        if self.num_items_in_batch is None:
            labels, ids = self.inputs.get("labels"), self.inputs["input_ids"]
            counted = torch.ones(len(ids), device=ids.device) if labels is None else (labels != -100).float()
            loss = loss * counted[examples].sum() / counted.sum().clamp_min(1)
        self.adversarial_losses.append(loss.detach())
        self.trainer.accelerator.backward(loss * weight)
        self.final_pass_done = True

    def _examples(self, examples, input_ids):
        """The inputs of the micro-batch's examples `examples`: every tensor with one entry per example indexed
        (the others, such as shared `position_ids`, kept), with `input_ids` in place of theirs."""
        count = len(self.inputs["input_ids"])
        batch = {
            key: value[examples] if isinstance(value, torch.Tensor) and value.dim() and len(value) == count else value
            for key, value in self.inputs.items()
        }
        batch["input_ids"] = input_ids
        return batch

    def _loss(self, position_delta, final, return_outputs=False, without_gradients=False, batch=None):
        """The scaled loss with `position_delta` added to the embedding output (and the model output if asked), of
        the micro-batch or of `batch`, inputs made of its examples."""
        self.hook.start_pass(position_delta, without_gradients=without_gradients)
        with self.sync.pass_context(final), self.trainer.compute_loss_context_manager():
            # `compute_loss` may pop `labels` from the dict it gets, so each pass gets its own.
            inputs, num_items = dict(self.inputs if batch is None else batch), self.num_items_in_batch
            result = self.trainer.compute_loss(
                self.model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items
            )
        if self.hook.calls == 0:
            raise ValueError(
                "The model's input embedding did not run in the forward pass, so there is nothing to perturb: "
                "inputs given as `inputs_embeds` are not supported. Pass `input_ids` instead."
            )
        if return_outputs:
            loss, outputs = result
            return loss * self.loss_scale, outputs
        return result * self.loss_scale

    def _space(self, shape, device=None):
        args = self.trainer.args
        mask = position_mask(self.inputs, shape, device or self.hook.delta.device)
        groups, input_ids = packed_sequences(self.inputs), None
        if args.adv_scope == "vocab":
            if self.inputs.get("input_ids") is None:
                raise ValueError("`adv_scope='vocab'` needs `input_ids` in the batch: it perturbs per vocabulary row.")
            input_ids = as_embedding_layout(self.inputs["input_ids"], "input_ids", shape)
        if groups is not None:
            groups = as_embedding_layout(groups, "input_ids", shape)
        return PerturbationSpace(args.adv_norm, args.adv_scope, mask, input_ids, shape[-1], groups)
