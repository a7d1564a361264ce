"""FSDP2, 2 processes x 4 rows x gradient accumulation 2, gives the update of 1 process x 16 rows, with no more
gradient reduce-scatters than plain `Trainer`; the methods FSDP2 cannot run, and FSDP1, are refused."""

from pathlib import Path

import pytest
import torch

from adv_trainer.attacks import CreAT
from adv_trainer.attacks.base import SmoothnessRegularizer
from tests import tiny_models
from tests.test_ddp import run_scenarios

ROOT = Path(__file__).resolve().parent.parent
FGM = {"adv_method": "fgm", "adv_epsilon": 0.3}
PGD = {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 3}
FREELB = {"adv_method": "freelb", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": 0.0}
# SMART, R3F and CreAT draw random noise: tested with `token_noise`, fixed by each example's tokens, in both runs.
SMART = {"adv_method": "smart", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": 0.05}
R3F = {"adv_method": "r3f", "adv_init_mag": 0.05}
CREAT = {"adv_method": "creat", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": 0.05}
PER_RANK = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}
METHODS = {"none": {}, "fgm": FGM, "pgd": PGD, "freelb": FREELB, "smart": SMART, "r3f": R3F, "creat": CREAT}
SCENARIOS = {name: {"args": {**adv, **PER_RANK}} for name, adv in METHODS.items()}
# Plain Trainer under the same FSDP2 configuration: the reduce-scatters the methods may issue.
SCENARIOS["plain-trainer"] = {"args": PER_RANK, "plain": True}
# A checkpoint at step 1, and a second run resumed from it: the uninterrupted run's weights. AdamW, whose state must
# resume too (a stateless optimizer's empty state cannot be loaded by torch's full-state-dict path at all).
CHECKPOINTED = {
    **PGD,
    **PER_RANK,
    "save_strategy": "steps",
    "save_steps": 1,
    "optim": "adamw_torch",
    "learning_rate": 1e-2,
}
SCENARIOS["pgd-checkpointed"] = {"args": CHECKPOINTED}
SCENARIOS["pgd-resumed"] = {"args": {**CHECKPOINTED, "resume_from": "pgd-checkpointed/out/checkpoint-1"}}
# bf16 autocast under FSDP2 on CPU.
SCENARIOS["pgd-bf16"] = {"args": {**PGD, **PER_RANK, "bf16": True}}
# TRL's SFTTrainer composed with AdversarialTrainer (tests/test_trl.py), 2 ranks x 4 texts, and plain SFTTrainer.
SFT_PGD = {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_k": 3}
SCENARIOS["sft-pgd"] = {"sft": True, "args": {**SFT_PGD, "per_device_train_batch_size": 4}}
SCENARIOS["sft-plain"] = {"sft": True, "plain": True, "args": {"per_device_train_batch_size": 4}}
REFUSED = {
    "awp": ({"adv_method": "awp"}, "a sharded weight's norm"),
    "ascc": ({"adv_method": "ascc"}, "rows of the word-embedding weight"),
    "dne": ({"adv_method": "dne"}, "rows of the word-embedding weight"),
    "a2t": ({"adv_method": "a2t"}, "the number of its forwards depends on each rank's words"),
}
for name, (adv, _) in REFUSED.items():
    SCENARIOS[f"{name}-refused"] = {"args": {**adv, **PER_RANK}}
# (accelerate's FSDP1 plugin cannot broadcast the initial weights on CPU: `sync_module_states` off.)
FSDP1 = {"fsdp_version": 1, "sync_module_states": False}
SCENARIOS["fsdp1-refused"] = {"args": {**FGM, **PER_RANK}, "fsdp_config": FSDP1}


@pytest.fixture(scope="module")
def fsdp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    return run_scenarios("fsdp_worker.py", SCENARIOS, out, CUDA_VISIBLE_DEVICES="")


def single_process(tmp_path, adv, monkeypatch, **overrides):
    monkeypatch.setattr(SmoothnessRegularizer, "noise", tiny_models.token_noise)
    monkeypatch.setattr(CreAT, "noise", tiny_models.token_noise)
    rows = tiny_models.classification_rows(32)
    return tiny_models.train(
        tiny_models.tiny_bert(), tmp_path, rows, per_device_train_batch_size=16, **adv, **overrides
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_fsdp2_gives_the_single_process_update_with_the_plain_trainers_reduce_scatters(
    tmp_path, fsdp_results, name, monkeypatch
):
    sharded = fsdp_results[name]
    assert sharded["world_size"] == 2 and sharded["global_step"] == 2
    assert sharded["distributed_type"] == "DistributedType.FSDP" and sharded["model_class"].startswith("FSDP")
    # One per FSDP unit per optimizer step, however many passes and micro-batches.
    assert sharded["reduce_scatters"] == fsdp_results["plain-trainer"]["reduce_scatters"] == 2 * sharded["fsdp_units"]
    single = single_process(tmp_path, METHODS[name], monkeypatch)
    assert tiny_models.max_weight_difference(tiny_models.tiny_bert(), single.model) > 1e-3
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(sharded["state_dict"][key], value, atol=1e-5, rtol=1e-5, msg=key)
    for a, b in zip(single.state.log_history[:2], sharded["logs"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        if METHODS[name]:
            assert b["adv_loss"] == pytest.approx(a["adv_loss"], rel=1e-5)


@pytest.mark.slow
def test_fsdp2_resumed_from_a_checkpoint_ends_where_the_uninterrupted_run_does(fsdp_results):
    uninterrupted, resumed = fsdp_results["pgd-checkpointed"], fsdp_results["pgd-resumed"]
    assert resumed["global_step"] == 2
    for key, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, atol=1e-6, rtol=1e-6, msg=key)


@pytest.mark.slow
def test_fsdp2_bf16_trains_close_to_the_float32_update(tmp_path, fsdp_results, monkeypatch):
    sharded = fsdp_results["pgd-bf16"]
    assert sharded["reduce_scatters"] == fsdp_results["plain-trainer"]["reduce_scatters"]
    single = single_process(tmp_path, PGD, monkeypatch)
    initial = tiny_models.tiny_bert().state_dict()
    for key, value in single.model.state_dict().items():
        change = (value - initial[key]).abs().max().item()
        # bf16 keeps 8 bits of mantissa: the update agrees to a few percent of its size, not to float32 rounding.
        assert (sharded["state_dict"][key].float() - value).abs().max().item() <= 0.05 * change + 1e-2, key


@pytest.mark.slow
@pytest.mark.parametrize("name", REFUSED)
def test_methods_that_read_whole_weights_are_refused_under_fsdp2(fsdp_results, name):
    error = fsdp_results[f"{name}-refused"]["error"]
    assert f"`adv_method='{name}'` under FSDP2" in error and REFUSED[name][1] in error


@pytest.mark.slow
def test_fsdp1_is_refused_with_a_message_that_names_fsdp2(fsdp_results):
    error = fsdp_results["fsdp1-refused"]["error"]
    assert "does not support FSDP1" in error and "fsdp_version': 2" in error


@pytest.mark.slow
def test_trl_sft_under_fsdp2_gives_the_single_process_update(tmp_path, fsdp_results):
    test_trl = pytest.importorskip("tests.test_trl")
    sharded = fsdp_results["sft-pgd"]
    assert sharded["model_class"].startswith("FSDP") and sharded["global_step"] == 2
    # Plain SFTTrainer's count: one per FSDP unit with parameters of its own per step (8 here, for 6 units).
    assert sharded["reduce_scatters"] == fsdp_results["sft-plain"]["reduce_scatters"] > 0
    single = test_trl.sft(tmp_path, per_device_train_batch_size=8, **SFT_PGD)
    assert tiny_models.max_weight_difference(test_trl.tiny_llama(), single.model) > 1e-3
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(sharded["state_dict"][key], value, atol=1e-5, rtol=1e-5, msg=key)
