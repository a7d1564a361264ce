"""Which backward of a training step reduces the gradients across processes: only the attack's final pass.

DDP decides at the forward: a forward under `no_sync` makes its backward skip the all-reduce, and `no_sync` restores
what it found, so it nests inside the Trainer's own `no_sync` of the accumulated micro-batches. FSDP2 decides at the
backward, from a flag on each parameter group (`set_requires_gradient_sync`) that accelerate's `no_sync` sets to False
and then to True, whatever it was: nested inside the Trainer's, it would turn the reduction on for the rest of a
micro-batch the Trainer wanted unreduced. So under FSDP2 the flags are read, turned off for the whole step and
restored as found before the final pass's forward (and at the end of the step, if no final pass ran). Backwards with
the flags off accumulate unsharded gradients, which the final pass's reduce-scatter (or a later micro-batch's) sends
with its own: one reduce-scatter per FSDP unit per optimizer step, as plain `Trainer` issues.
"""

import contextlib

from torch.distributed.fsdp import FSDPModule

__all__ = ["GradientSync"]


class GradientSync:
    """Turns the gradient reduction off for every pass of a micro-batch but its final one.

    Enter it around the step's passes; `pass_context(final)` goes around each pass's forward.

    Args:
        accelerator: the trainer's `Accelerator`.
        model: the (possibly DDP- or FSDP2-wrapped) model of `training_step`.
    """

    def __init__(self, accelerator, model):
        self.accelerator = accelerator
        self.model = model
        # FSDP2's flags live on each parameter group of each `fully_shard`-ed module (torch.distributed.fsdp,
        # FSDPModule.set_requires_gradient_sync); read here to be restored as found.
        modules = [m for m in model.modules() if isinstance(m, FSDPModule)] if accelerator.is_fsdp2 else []
        self.fsdp_groups = [group for m in modules for group in m._get_fsdp_state()._fsdp_param_groups]
        self._found = None

    def __enter__(self):
        self._turn_off()
        return self

    def __exit__(self, *exc):
        self._restore()

    def pass_context(self, final):
        """The context of a pass's forward: DDP's `no_sync` unless `final`; under FSDP2 the final pass gets the flags
        as the step found them (the Trainer's choice for this micro-batch)."""
        if self.fsdp_groups:
            if final:
                self._restore()
            else:
                self._turn_off()
            return contextlib.nullcontext()
        return contextlib.nullcontext() if final else self.accelerator.no_sync(self.model)

    def _turn_off(self):
        if self.fsdp_groups and self._found is None:
            self._found = [(g, g.reduce_grads, g.all_reduce_grads) for g in self.fsdp_groups]
            for group in self.fsdp_groups:
                group.reduce_grads = group.all_reduce_grads = False

    def _restore(self):
        for group, reduce_grads, all_reduce_grads in self._found or ():
            group.reduce_grads, group.all_reduce_grads = reduce_grads, all_reduce_grads
        self._found = None
