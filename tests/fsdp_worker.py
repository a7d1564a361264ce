"""Run by `tests/test_fsdp.py` under `torchrun --nproc_per_node 2`: trains each scenario of a JSON file with FSDP2
(`fully_shard` over gloo, CPU, through `tests/fsdp_shim.py`) and saves, on rank 0, the full final weights, the
reduce-scatters counted, the logs, and the error of each scenario that must be refused."""

import faulthandler
import json
import pathlib
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import FSDPModule
from transformers import Trainer, TrainingArguments

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.attacks import CreAT
from adv_trainer.attacks.base import SmoothnessRegularizer
from tests import tiny_models
from tests.ddp_worker import save_and_leave
from tests.fsdp_shim import enable_fsdp_on_cpu

FSDP2 = {"fsdp": True, "fsdp_config": {"fsdp_version": 2, "transformer_layer_cls_to_wrap": ["BertLayer"]}}
reduce_scatters = 0


def count_reduce_scatters():
    """Counts FSDP2's gradient reduce-scatters (`DefaultReduceScatter` calls `dist.reduce_scatter_single`)."""
    original = dist.reduce_scatter_single

    def counted(*args, **kwargs):
        global reduce_scatters
        reduce_scatters += 1
        return original(*args, **kwargs)

    dist.reduce_scatter_single = counted


def train_sft(name, scenario, out_dir):
    """TRL's `SFTTrainer` composed with `AdversarialTrainer` (tests/test_trl.py), or plain, under FSDP2."""
    from tests import test_trl

    global reduce_scatters
    plain = scenario.get("plain", False)
    fsdp_config = {**FSDP2["fsdp_config"], "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]}
    settings = {**scenario["args"], "fsdp": True, "fsdp_config": fsdp_config, "ddp_backend": "gloo"}
    reduce_scatters = 0
    trainer_class = test_trl.SFTTrainer if plain else test_trl.AdversarialSFTTrainer
    trainer = test_trl.sft(out_dir / name, trainer_class, **settings)
    return results_of(trainer)


def train(name, scenario, out_dir):
    global reduce_scatters
    if scenario.get("sft"):
        return train_sft(name, scenario, out_dir)
    plain = scenario.get("plain", False)
    arguments = {**FSDP2, **scenario["args"]}
    arguments["fsdp_config"] = {**arguments["fsdp_config"], **scenario.get("fsdp_config", {})}
    resume = arguments.pop("resume_from", None)
    args_class = TrainingArguments if plain else AdversarialTrainingArguments
    # gloo on CPUs (the shim's FSDP), NCCL on GPUs (the GPU check, accelerate's own FSDP).
    backend, on_gpu = ("nccl", True) if torch.cuda.is_available() else ("gloo", False)
    args = tiny_models.arguments(out_dir / name, args_class, ddp_backend=backend, use_cpu=not on_gpu, **arguments)
    trainer_class = Trainer if plain else AdversarialTrainer
    rows = tiny_models.classification_rows(32)
    reduce_scatters = 0
    try:
        trainer = trainer_class(
            model=tiny_models.tiny_bert(),
            args=args,
            train_dataset=tiny_models.dataset(rows),
            data_collator=tiny_models.collate,
            **tiny_models.synonyms_for(trainer_class, args),
        )
    except ValueError as error:
        return {"error": str(error)}
    if resume:
        trainer.train(resume_from_checkpoint=str(out_dir / resume))
    else:
        trainer.train()
    return results_of(trainer)


def results_of(trainer):
    # Every rank takes part in gathering the shards; rank 0 keeps the full tensors.
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state_dict = get_model_state_dict(trainer.model_wrapped, options=options)
    return {
        "state_dict": {key: value.detach().clone() for key, value in state_dict.items()},
        "reduce_scatters": reduce_scatters,
        "global_step": trainer.state.global_step,
        "world_size": dist.get_world_size(),
        "distributed_type": str(trainer.accelerator.distributed_type),
        "model_class": type(trainer.model_wrapped).__name__,
        "fsdp_units": sum(isinstance(m, FSDPModule) for m in trainer.model_wrapped.modules()),
        "logs": trainer.state.log_history[:2],
    }


def main():
    # A hang (a collective one process never reaches) would end in the test's timeout with nothing said.
    faulthandler.dump_traceback_later(480, exit=True)
    enable_fsdp_on_cpu()
    count_reduce_scatters()
    scenarios = json.loads(pathlib.Path(sys.argv[1]).read_text())
    out_dir = pathlib.Path(sys.argv[2])
    # SMART's, R3F's and CreAT's noise fixed by each example's tokens, as in the single-process run of the test.
    SmoothnessRegularizer.noise = tiny_models.token_noise
    CreAT.noise = tiny_models.token_noise
    results = {}
    for name, scenario in scenarios.items():
        print(
            f"rank {dist.get_rank() if dist.is_initialized() else '?'}: scenario {name}", file=sys.stderr, flush=True
        )
        results[name] = train(name, scenario, out_dir)
    save_and_leave(results, out_dir)


if __name__ == "__main__":
    main()
