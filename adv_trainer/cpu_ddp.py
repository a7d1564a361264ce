"""DDP on a machine without an accelerator, under a plain `torchrun --nproc_per_node N`.

The Trainer gets its distributed set-up from accelerate, which runs DDP on CPUs (`MULTI_CPU`, gloo) only when
`use_cpu` is set. Without it each of the N processes trains its own copy of the model on all the rows, and with
`--ddp_backend gloo` on its share of them: a process group exists, but no gradient is ever reduced. So
`AdversarialTrainingArguments` sets `use_cpu` when several processes were launched and no accelerator is present, and
refuses any other multi-process set-up in which the Trainer would not wrap the model in DDP.
"""

import logging
import os

import torch
import torch.distributed as dist
from transformers.training_args import ParallelMode

__all__ = ["end_process_group", "launched_world_size", "require_synchronised_gradients", "use_cpu_when_launched"]

logger = logging.getLogger(__name__)


def launched_world_size():
    """The number of processes a launcher (torchrun, accelerate launch) started: WORLD_SIZE, 1 when unset."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _has_accelerator():
    return torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()


def use_cpu_when_launched(args):
    """Sets `args.use_cpu` when several processes were launched on a machine without an accelerator."""
    if launched_world_size() > 1 and not args.use_cpu and not _has_accelerator():
        logger.info(f"{launched_world_size()} processes and no accelerator: DDP on the CPU (use_cpu=True, gloo).")
        args.use_cpu = True


def require_synchronised_gradients(args):
    """Raises `ValueError` when several processes were launched but the Trainer will not run DDP, so that each would
    train its own unsynchronised copy. Call after the device set-up (`args.parallel_mode` is then final)."""
    if launched_world_size() > 1 and args.parallel_mode != ParallelMode.DISTRIBUTED:
        raise ValueError(
            f"{launched_world_size()} processes were launched (WORLD_SIZE) but the Trainer would not synchronise "
            f"their gradients (parallel mode {args.parallel_mode.value}): each would train its own copy. On CPUs pass "
            "`--use_cpu true` (DDP with gloo); on GPUs launch with `torchrun --nproc_per_node N` or "
            "`accelerate launch --multi_gpu`."
        )


def end_process_group(wait=True):
    """Ends the torch.distributed process group, if any, after every process reached this point (`wait`; not after an
    error, which the other processes may never reach). Without it a gloo process can abort at exit ("terminate called
    without an active exception") after a run that succeeded: gloo's worker threads still hold work objects whose
    tensors are freed during interpreter finalisation (the cause described in pytorch/pytorch PR 179291)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
