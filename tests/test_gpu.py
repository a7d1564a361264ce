"""What only a GPU can check: fp16 with its `GradScaler`, bf16, FSDP2 over NCCL, peak memory as allocated.

Skipped without CUDA, with the reason; `make gpu-check` (benchmarks/gpu_check.py) runs them on a GPU machine.
"""

import pytest
import torch

from adv_trainer.attacks.base import SmoothnessRegularizer
from tests import tiny_models
from tests.test_ddp import run_scenarios
from tests.test_fsdp import METHODS, SCENARIOS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: run `make gpu-check` on one"),
]
PGD = {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 3}
FGM = {"adv_method": "fgm", "adv_epsilon": 0.3}
SMART = {"adv_method": "smart", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 1}
ON_GPU = {"use_cpu": False, "per_device_train_batch_size": 8}


def train_on_gpu(tmp_path, adv, monkeypatch, **overrides):
    monkeypatch.setattr(SmoothnessRegularizer, "noise", tiny_models.token_noise)
    rows = tiny_models.classification_rows(16)
    return tiny_models.train(tiny_models.tiny_bert(), tmp_path, rows, **ON_GPU, **adv, **overrides)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("adv", [FGM, PGD, SMART], ids=["fgm", "pgd", "smart"])
def test_half_precision_trains_close_to_float32_and_never_skips_a_step(tmp_path, adv, precision, monkeypatch):
    full = train_on_gpu(tmp_path / "fp32", adv, monkeypatch)
    half = train_on_gpu(tmp_path / precision, adv, monkeypatch, **{precision: True})
    if precision == "fp16":
        # One scale for every pass of a step: a wrongly scaled adversarial backward overflows and skips the step.
        assert half.accelerator.scaler is not None
    assert half.state.global_step == 2 and not half.accelerator.optimizer_step_was_skipped
    initial = tiny_models.tiny_bert().state_dict()
    for key, value in full.model.state_dict().items():
        change = (value.cpu() - initial[key]).abs().max().item()
        difference = (half.model.state_dict()[key].float() - value).abs().max().item()
        assert difference <= 0.05 * change + 1e-2, key
    assert all(torch.isfinite(torch.tensor(log["adv_loss"])) for log in half.state.log_history[:2])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP2 across GPUs needs 2; tests/test_fsdp.py covers gloo")
def test_fsdp2_on_the_gpus_present_gives_the_single_gpu_update(tmp_path, monkeypatch):
    scenarios = {name: SCENARIOS[name] for name in [*METHODS, "plain-trainer"]}
    results = run_scenarios("fsdp_worker.py", scenarios, tmp_path, CUDA_VISIBLE_DEVICES="0,1")
    for name, adv in METHODS.items():
        sharded = results[name]
        assert sharded["reduce_scatters"] == results["plain-trainer"]["reduce_scatters"], name
        rows = tiny_models.classification_rows(32)
        monkeypatch.setattr(SmoothnessRegularizer, "noise", tiny_models.token_noise)
        single = tiny_models.train(
            tiny_models.tiny_bert(), tmp_path / name, rows, use_cpu=False, per_device_train_batch_size=16, **adv
        )
        for key, value in single.model.state_dict().items():
            torch.testing.assert_close(sharded["state_dict"][key], value.cpu(), atol=1e-4, rtol=1e-4, msg=key)


def test_smart_peak_memory_is_no_higher_than_pgd_k1s(tmp_path):
    """Issue 32's memory target where the allocator's count is exact: SMART K=1 holds one graph at a time."""
    peaks = {}
    for name, adv in {"pgd-k1": {**PGD, "adv_k": 1}, "smart-k1": SMART}.items():
        model = tiny_models.tiny_bert(hidden_size=256, max_length=256).cuda()
        args = tiny_models.arguments(tmp_path / name, use_cpu=False, **adv)
        trainer = tiny_models.AdversarialTrainer(model=model, args=args)
        batch = {
            "input_ids": torch.randint(1, tiny_models.VOCAB, (32, 256), device="cuda"),
            "attention_mask": torch.ones(32, 256, dtype=torch.long, device="cuda"),
            "labels": torch.arange(32, device="cuda") % 2,
        }
        trainer.create_optimizer()
        trainer.training_step(trainer.model, batch)  # the first step allocates the gradients
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        trainer.training_step(trainer.model, batch)
        peaks[name] = torch.cuda.max_memory_allocated()
    assert peaks["smart-k1"] <= 1.02 * peaks["pgd-k1"], peaks
