"""Every backward is scaled like the clean loss: gradient accumulation gives the update of one large batch."""

import math
import random

import numpy as np
import pytest
import torch
from transformers import BertForSequenceClassification, Trainer

from adv_trainer.loss_normalisation import loss_divides_by_num_items
from tests.tiny_models import (
    classification_rows,
    lm_rows,
    max_weight_difference,
    mean_loss,
    tiny_bert,
    tiny_gpt2,
    train,
)

METHODS = {
    "none": {},
    "fgm": {"adv_method": "fgm", "adv_epsilon": 0.3},
    "pgd": {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 3},
    "freelb": {"adv_method": "freelb", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 3, "adv_init_mag": 0.0},
}


def test_none_is_identical_to_the_plain_trainer_at_ga1(tmp_path):
    model, rows = tiny_bert(), classification_rows(16)
    settings = {"optim": "adamw_torch", "learning_rate": 1e-3, "max_steps": 3, "lr_scheduler_type": "linear"}
    plain = train(model, tmp_path / "plain", rows, trainer_class=Trainer, **settings)
    ours = train(model, tmp_path / "ours", rows, **settings)
    assert max_weight_difference(plain.model, ours.model) == 0.0
    assert max_weight_difference(model, ours.model) > 1e-4  # it did train
    assert [h["loss"] for h in plain.state.log_history[:3]] == [h["loss"] for h in ours.state.log_history[:3]]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "family,make_model,make_rows",
    [("classification", tiny_bert, classification_rows), ("causal_lm", tiny_gpt2, lm_rows)],
    ids=["classification", "causal_lm"],
)
def test_gradient_accumulation_gives_the_update_of_one_large_batch(tmp_path, method, family, make_model, make_rows):
    model, rows = make_model(), make_rows(16)
    large = train(model, tmp_path / "large", rows, per_device_train_batch_size=8, **METHODS[method])
    accumulated = train(
        model, tmp_path / "ga", rows, per_device_train_batch_size=4, gradient_accumulation_steps=2, **METHODS[method]
    )
    assert max_weight_difference(model, large.model) > 1e-3  # the comparison is not between untrained models
    assert max_weight_difference(large.model, accumulated.model) < 2e-6
    for a, b in zip(large.state.log_history[:2], accumulated.state.log_history[:2], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        if method != "none":
            assert a["adv_loss"] == pytest.approx(b["adv_loss"], rel=1e-5)


def test_the_probe_finds_bert_returns_a_mean_and_gpt2_a_normalised_sum(tmp_path):
    bert = train(tiny_bert(), tmp_path / "bert", classification_rows(8), gradient_accumulation_steps=2, max_steps=1)
    gpt2 = train(tiny_gpt2(), tmp_path / "gpt2", lm_rows(8), gradient_accumulation_steps=2, max_steps=1)
    # transformers 5 gives BERT's forward `**kwargs` (the probe runs and says False); 4.x does not (nothing asks).
    assert bert._loss_divides_by_num_items is not True and bert.model_accepts_loss_kwargs is False
    assert gpt2._loss_divides_by_num_items is True and gpt2.model_accepts_loss_kwargs is True


def test_setting_loss_is_scaled_for_ga_replaces_the_probe(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the probe ran")

    monkeypatch.setattr("adv_trainer.adversarial_trainer.loss_divides_by_num_items", fail)
    monkeypatch.setattr("adv_trainer.AdversarialTrainer.loss_is_scaled_for_ga", False)
    trainer = train(tiny_gpt2(), tmp_path, lm_rows(8), gradient_accumulation_steps=2, max_steps=1)
    assert trainer._loss_divides_by_num_items is False


def test_a_micro_batch_without_labelled_tokens_postpones_the_decision(tmp_path):
    from adv_trainer import AdversarialTrainer
    from tests.tiny_models import arguments, collate

    model = tiny_gpt2()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, gradient_accumulation_steps=2))
    unlabelled = collate(lm_rows(4))
    unlabelled["labels"][:] = -100
    assert trainer._loss_scale(model, unlabelled, torch.tensor(7)) == 1.0
    assert trainer._loss_divides_by_num_items is None
    assert trainer._loss_scale(model, collate(lm_rows(4)), torch.tensor(7)) == 1.0
    assert trainer._loss_divides_by_num_items is True


def normalised_loss(outputs, labels, num_items_in_batch=None):
    return torch.nn.functional.cross_entropy(outputs.logits, labels, reduction="sum") / num_items_in_batch


def test_compute_loss_func_normalised_by_num_items_in_batch_keeps_the_count(tmp_path):
    rows = classification_rows(16)
    large = train(
        tiny_bert(), tmp_path / "large", rows, per_device_train_batch_size=8, compute_loss_func=normalised_loss
    )
    accumulated = train(
        tiny_bert(), tmp_path / "ga", rows, gradient_accumulation_steps=2, compute_loss_func=normalised_loss
    )
    assert accumulated._loss_divides_by_num_items is True
    assert max_weight_difference(large.model, accumulated.model) < 2e-6


def test_compute_loss_func_returning_a_mean_equals_the_plain_trainer_at_ga1(tmp_path):
    model, rows = tiny_bert(), classification_rows(16)
    plain = train(model, tmp_path / "plain", rows, trainer_class=Trainer, compute_loss_func=mean_loss)
    ours = train(model, tmp_path / "ours", rows, compute_loss_func=mean_loss)
    assert ours._loss_divides_by_num_items is False
    assert max_weight_difference(model, ours.model) > 1e-3  # it did train
    assert max_weight_difference(plain.model, ours.model) == 0.0


@pytest.mark.parametrize("method", ["none", "fgm", "pgd"])
def test_compute_loss_func_returning_a_mean_is_scaled_per_micro_batch_under_accumulation(tmp_path, method):
    model, rows = tiny_bert(), classification_rows(16)
    large = train(
        model, tmp_path / "large", rows, per_device_train_batch_size=8, compute_loss_func=mean_loss, **METHODS[method]
    )
    accumulated = train(
        model, tmp_path / "ga", rows, gradient_accumulation_steps=2, compute_loss_func=mean_loss, **METHODS[method]
    )
    assert max_weight_difference(model, large.model) > 1e-3
    assert max_weight_difference(large.model, accumulated.model) < 2e-6
    for a, b in zip(large.state.log_history[:2], accumulated.state.log_history[:2], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def random_states():
    return random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()


def assert_same_random_states(a, b):
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("draw", ["python", "numpy", "torch"])
def test_both_probe_calls_draw_the_same_numbers_and_the_state_is_restored(draw):
    """A loss drawing from Python's, NumPy's or torch's generator (dropout in eval mode, say) is still measured."""
    model = tiny_bert()
    model.train()
    before = random_states()
    calls = []
    noise = {"python": random.random, "numpy": np.random.rand, "torch": lambda: float(torch.rand(()))}[draw]

    def compute_loss(model, inputs, num_items_in_batch):
        calls.append(model.training)
        return torch.tensor(1.0 + noise()) / num_items_in_batch

    assert loss_divides_by_num_items(compute_loss, model, {}, torch.tensor(4), fallback=False) is True
    assert calls == [False, False] and model.training
    assert_same_random_states(random_states(), before)


class RandomlyScaledBert(BertForSequenceClassification):
    """BERT whose loss is scaled by a draw from Python's, NumPy's or torch's generator, in eval mode too."""

    draw = None

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        outputs = super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
        noise = {"python": random.random, "numpy": np.random.rand, "dropout": lambda: float(torch.rand(()))}[self.draw]
        outputs.loss = outputs.loss * (1.0 + noise())
        return outputs


@pytest.mark.parametrize("draw", ["python", "numpy", "dropout"])
def test_a_model_drawing_random_numbers_is_measured_and_trains(tmp_path, draw):
    model = RandomlyScaledBert(tiny_bert().config)
    model.draw = draw
    trainer = train(model, tmp_path, classification_rows(8), gradient_accumulation_steps=2, max_steps=1)
    assert trainer._loss_divides_by_num_items is False  # BERT's mean, measured despite the noise
    assert max_weight_difference(model, trainer.model) > 1e-4


@pytest.mark.parametrize(
    "single,double,decision",
    [(1.5, 1.5, False), (1.5, 0.75, True), (math.nan, math.nan, False), (0.0, 0.0, None)],
)
def test_the_probe_reads_the_loss_ratio(single, double, decision):
    losses = iter([single, double])
    compute_loss = lambda *a, **k: torch.tensor(next(losses))  # noqa: E731
    assert loss_divides_by_num_items(compute_loss, tiny_bert(), {}, 3, fallback=True) is decision


@pytest.mark.parametrize("fallback", [True, False])
def test_a_loss_the_probe_cannot_measure_falls_back_to_the_trainers_assumption(fallback):
    losses = iter([1.0, 0.9])
    compute_loss = lambda *a, **k: torch.tensor(next(losses))  # noqa: E731
    with pytest.warns(UserWarning, match="factor 0.9 when `num_items_in_batch` doubled.*loss_is_scaled_for_ga"):
        assert loss_divides_by_num_items(compute_loss, tiny_bert(), {}, 3, fallback=fallback) is fallback


def test_a_loss_drawing_from_an_unrestorable_generator_trains_with_a_warning(tmp_path):
    system_random = random.SystemRandom()  # the operating system's entropy: no state to reset

    def noisy_mean(outputs, labels, num_items_in_batch=None):
        return mean_loss(outputs, labels) * (1.0 + 0.1 * system_random.random())

    model = tiny_bert()
    with pytest.warns(UserWarning, match="loss_is_scaled_for_ga"):
        trainer = train(model, tmp_path, classification_rows(16), compute_loss_func=noisy_mean, adv_method="fgm")
    # The Trainer assumes a `compute_loss_func` normalises by the count; training went on under that assumption.
    assert trainer._loss_divides_by_num_items is True and trainer.state.global_step == 2
    assert max_weight_difference(model, trainer.model) > 1e-3
