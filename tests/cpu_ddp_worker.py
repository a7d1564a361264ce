"""Run by `tests/test_cpu_ddp.py` under a bare `torchrun --nproc_per_node 2`: `scripts/run_glue.py` as a user runs it
(its `__main__` path, exit status included), with each rank's final weights saved to `<output_dir>/rank<N>.pt`."""

import sys
from pathlib import Path

import torch

from adv_trainer import AdversarialTrainer
from adv_trainer.cli import guarded
from scripts import run_glue

train = AdversarialTrainer.train


def train_and_save_weights(self, *args, **kwargs):
    result = train(self, *args, **kwargs)
    weights = {key: value.detach().clone() for key, value in self.model.state_dict().items()}
    torch.save(weights, Path(self.args.output_dir) / f"rank{self.args.process_index}.pt")
    return result


if __name__ == "__main__":
    AdversarialTrainer.train = train_and_save_weights
    guarded(run_glue.main, "run_glue.py", sys.argv[1:])
