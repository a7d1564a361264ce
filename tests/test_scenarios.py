"""Scenarios users bring that work, kept working: each against the value it must give."""

import pytest
import torch
from transformers.integrations.neftune import activate_neftune

from adv_trainer import AdversarialTrainer
from tests.test_attacks import EPS, assert_same, loss_at, unit
from tests.tiny_models import (
    arguments,
    classification_rows,
    collate,
    lm_rows,
    max_weight_difference,
    tiny_bert,
    tiny_gpt2,
    train,
)

FAMILIES = {"classification": (tiny_bert, classification_rows), "causal_lm": (tiny_gpt2, lm_rows)}
ADVERSARIAL = {
    "fgm": {"adv_method": "fgm", "adv_epsilon": 0.3},
    "pgd": {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2},
}


def assert_same_training(reference, other, model):
    assert max_weight_difference(model, reference.model) > 1e-3  # the comparison is not between untrained models
    assert max_weight_difference(reference.model, other.model) < 2e-6
    for a, b in zip(reference.state.log_history[:-1], other.state.log_history[:-1], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert ("adv_loss" in a) == ("adv_loss" in b)
        if "adv_loss" in a:
            assert a["adv_loss"] == pytest.approx(b["adv_loss"], rel=1e-5)


@pytest.mark.parametrize("method", ADVERSARIAL)
@pytest.mark.parametrize("family", FAMILIES)
def test_the_shorter_last_accumulation_window_of_an_epoch_is_the_large_batch_update(tmp_path, family, method):
    # 12 rows, 4 per micro-batch, 2 per step: the epoch's second step has one micro-batch, the large batch 4 rows.
    make_model, make_rows = FAMILIES[family]
    model, rows = make_model(), make_rows(12)
    epoch = {"max_steps": -1, "num_train_epochs": 1, **ADVERSARIAL[method]}
    large = train(model, tmp_path / "large", rows, per_device_train_batch_size=8, **epoch)
    accumulated = train(model, tmp_path / "ga", rows, gradient_accumulation_steps=2, **epoch)
    assert large.state.global_step == accumulated.state.global_step == 2
    assert_same_training(large, accumulated, model)


@pytest.mark.parametrize("method", ["none", "fgm"])
@pytest.mark.parametrize("family", FAMILIES)
def test_label_smoothing_under_gradient_accumulation_is_the_large_batch_update(tmp_path, family, method):
    make_model, make_rows = FAMILIES[family]
    model, rows = make_model(), make_rows(16)
    adv = {"label_smoothing_factor": 0.1, **ADVERSARIAL.get(method, {})}
    large = train(model, tmp_path / "large", rows, per_device_train_batch_size=8, **adv)
    accumulated = train(model, tmp_path / "ga", rows, gradient_accumulation_steps=2, **adv)
    assert large.label_smoother is not None and accumulated.label_smoother is not None
    assert_same_training(large, accumulated, model)


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_torch_compile_gives_the_eager_update(tmp_path, backend):
    # One step on rows of one length: compiling is the cost, and a new shape would compile again.
    model, rows, adv = (
        tiny_bert(),
        classification_rows(4, min_len=6, max_len=6),
        {"max_steps": 1, **ADVERSARIAL["fgm"]},
    )
    eager = train(model, tmp_path / "eager", rows, **adv)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = train(model, tmp_path / "compiled", rows, torch_compile=True, torch_compile_backend=backend, **adv)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    assert_same_training(eager, compiled, model)


class LossTimes(AdversarialTrainer):
    """Multiplies the loss, so that an fp16 model's embedding-output gradient is large."""

    factor = 1e4

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch) * self.factor


def test_per_example_norms_are_float32_when_the_fp16_sum_of_squares_overflows(tmp_path, added):
    model, inputs = tiny_bert().half(), collate(classification_rows(4))
    zero = torch.zeros(*inputs["input_ids"].shape, 16, requires_grad=True)  # float32, cast as the trainer's hook does
    (g,) = torch.autograd.grad(loss_at(model, inputs, zero.half()) * LossTimes.factor, zero)
    g = g * inputs["attention_mask"][..., None]
    assert torch.isfinite(g).all() and torch.isinf((g.half() ** 2).flatten(1).sum(dim=1)).all()  # overflows in fp16
    expected = EPS * unit(g.double(), inputs["attention_mask"].double())  # (B, T, E) float64

    trainer = LossTimes(model=model, args=arguments(tmp_path, adv_method="fgm", adv_epsilon=EPS))
    trainer.training_step(model, inputs)
    delta = added[1].double()  # the fp16 model adds delta in fp16: compare at fp16's resolution
    torch.testing.assert_close(delta, expected, atol=2e-3, rtol=1e-2)
    torch.testing.assert_close(
        delta.flatten(1).norm(dim=1), torch.full((4,), EPS, dtype=torch.float64), rtol=1e-3, atol=0
    )


def test_neftune_noise_and_fgm_add_up_as_computed_by_hand(tmp_path):
    # NEFTune's hook adds uniform noise to the embedding output in training mode, before the adversarial delta:
    # the clean pass sees e + n1, the FGM pass e + n2 + delta, delta = eps * g / ||g|| with g = dL/de at e + n1.
    model, inputs = tiny_bert(), collate(classification_rows(4))
    model.train()
    activate_neftune(model, 5.0)
    params = [p for p in model.parameters() if p.requires_grad]
    torch.manual_seed(1)
    zero = torch.zeros(*inputs["input_ids"].shape, 16, requires_grad=True)
    g, *clean = torch.autograd.grad(loss_at(model, inputs, zero), [zero, *params])
    delta = EPS * unit(g, inputs["attention_mask"])
    adversarial = torch.autograd.grad(loss_at(model, inputs, delta), params)
    expected = [a + b for a, b in zip(clean, adversarial, strict=True)]

    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method="fgm", adv_epsilon=EPS))
    model.zero_grad()
    torch.manual_seed(1)
    trainer.training_step(model, inputs)
    assert_same([p.grad for p in params], expected)

    model.get_input_embeddings().neftune_noise_alpha = 0.0  # the same by hand without noise differs
    zero = torch.zeros_like(zero, requires_grad=True)
    (g_without,) = torch.autograd.grad(loss_at(model, inputs, zero), zero)
    assert (unit(g_without, inputs["attention_mask"]) * EPS - delta).abs().max() > 1e-3
