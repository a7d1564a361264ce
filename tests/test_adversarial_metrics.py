"""The logged `adv_*` statistics are averages over the right steps and processes."""

import pytest
import torch

from adv_trainer.adversarial_metrics import AdversarialMetrics
from tests.tiny_models import classification_rows, tiny_bert, train


def test_a_window_mixing_plain_and_adversarial_steps_averages_adv_loss_over_the_adversarial_ones(tmp_path):
    model, rows = tiny_bert(), classification_rows(16)
    settings = {"max_steps": 4, "adv_method": "fgm", "adv_start_step": 2, "gradient_accumulation_steps": 2}
    every_step = train(model, tmp_path / "every", rows, per_device_train_batch_size=2, **settings)
    one_window = train(model, tmp_path / "window", rows, per_device_train_batch_size=2, logging_steps=4, **settings)
    adversarial = [log["adv_loss"] for log in every_step.state.log_history[:4] if "adv_loss" in log]
    assert len(adversarial) == 2 and adversarial[0] != adversarial[1]
    assert one_window.state.log_history[0]["adv_loss"] == pytest.approx(sum(adversarial) / 2, rel=1e-6)


class Accelerator:
    """An accelerate launch of `num_processes` processes whose `reduce` is the identity or sums `ranks` copies."""

    def __init__(self, num_processes, reduces):
        self.num_processes, self.reduces = num_processes, reduces

    def reduce(self, tensor, reduction):
        assert reduction == "sum"
        return tensor * self.num_processes if self.reduces else tensor


@pytest.mark.parametrize("num_processes,reduces", [(1, False), (2, True), (2, False)], ids=["one", "ddp", "not-ddp"])
def test_the_divisors_agree_with_the_reduction(num_processes, reduces):
    metrics = AdversarialMetrics()
    for step, loss in [(0, 0.25), (0, 0.5), (1, 1.0), (1, 0.5)]:  # two optimizer steps of two micro-batches
        metrics.update(torch.tensor(loss), torch.tensor([0.1, 0.3]), torch.tensor(1), global_step=step)
    logs = metrics.pop(Accelerator(num_processes, reduces))
    copies = num_processes if reduces else 1
    assert logs == {"adv_loss": pytest.approx(1.125), "adv_delta_norm": pytest.approx(0.2), "adv_skipped": 4 * copies}
    assert metrics.pop(Accelerator(num_processes, reduces)) == {}
