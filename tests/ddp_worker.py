"""Run by `tests/test_ddp.py` under `torchrun --nproc_per_node 2`: trains each scenario of a JSON file with DDP
(gloo, CPU) and saves, on rank 0, the final weights and the gradient reductions a DDP communication hook counted."""

import faulthandler
import json
import os
import pathlib
import sys

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from adv_trainer import AdversarialTrainer
from adv_trainer.attacks import DNE, CreAT
from adv_trainer.attacks.base import SmoothnessRegularizer
from tests import tiny_models


class ReductionCountingTrainer(AdversarialTrainer):
    """Counts the all-reduces of the first gradient bucket: one per reduction of the whole gradient."""

    reductions = 0

    def training_step(self, model, inputs, num_items_in_batch=None):
        if isinstance(model, DistributedDataParallel) and not getattr(model, "_reductions_counted", False):
            model.register_comm_hook(None, self._count_and_reduce)
            model._reductions_counted = True
        return super().training_step(model, inputs, num_items_in_batch)

    @classmethod
    def _count_and_reduce(cls, state, bucket):
        if bucket.index() == 0:
            cls.reductions += 1
        return allreduce_hook(state, bucket)


def main():
    # A hang (a collective one process never reaches) would end in the test's 600 s timeout with nothing said:
    # before that, every process prints where it is stuck and exits, and the test shows it.
    faulthandler.dump_traceback_later(480, exit=True)
    scenarios = json.loads(pathlib.Path(sys.argv[1]).read_text())
    out_dir = pathlib.Path(sys.argv[2])
    results = {}
    # SMART's, R3F's and CreAT's noise and DNE's sample, fixed by each example's tokens, as in the single-process run
    # of the test.
    SmoothnessRegularizer.noise = tiny_models.token_noise
    CreAT.noise = tiny_models.token_noise
    DNE.sample = tiny_models.token_dirichlet
    for name, scenario in scenarios.items():
        print(
            f"rank {dist.get_rank() if dist.is_initialized() else '?'}: scenario {name}", file=sys.stderr, flush=True
        )
        model = getattr(tiny_models, scenario["model"])()
        rows = getattr(tiny_models, scenario["rows"])(16)
        arguments = dict(scenario["args"])
        compute_loss_func = getattr(tiny_models, arguments.pop("compute_loss_func", ""), None)
        args = tiny_models.arguments(out_dir / name, ddp_backend="gloo", **arguments)
        ReductionCountingTrainer.reductions = 0
        trainer = ReductionCountingTrainer(
            model=model,
            args=args,
            train_dataset=tiny_models.dataset(rows),
            data_collator=tiny_models.collate,
            compute_loss_func=compute_loss_func,
            **tiny_models.synonyms_for(ReductionCountingTrainer, args),
        )
        trainer.train()
        results[name] = {
            "state_dict": {key: value.detach().clone() for key, value in trainer.model.state_dict().items()},
            "reductions": ReductionCountingTrainer.reductions,
            "global_step": trainer.state.global_step,
            "world_size": dist.get_world_size(),
            "distributed_type": str(trainer.accelerator.distributed_type),
            "logs": trainer.state.log_history[:2],
        }
    save_and_leave(results, out_dir)


def save_and_leave(results, out_dir):
    """Saves `results` on rank 0 into `out_dir/results.pt` and ends the process."""
    if dist.get_rank() == 0:
        torch.save(results, out_dir / "results.pt")
    # Without an orderly shutdown, gloo's threads can abort one process at exit; and freeing the trainers' DDP
    # objects after the group is gone (as `main` returns, or at interpreter exit) can block one process in gloo for
    # good (seen here: rank 1 stuck after the last scenario). Nothing is left to free: leave without freeing it.
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
