"""Every backward is scaled like the clean loss: gradient accumulation gives the update of one large batch."""

import math

import pytest
import torch
from transformers import Trainer

from adv_trainer.loss_normalisation import loss_divides_by_num_items
from tests.tiny_models import classification_rows, lm_rows, max_weight_difference, tiny_bert, tiny_gpt2, train

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


def test_compute_loss_func_must_normalise_by_num_items_in_batch(tmp_path):
    def normalised(outputs, labels, num_items_in_batch=None):
        losses = torch.nn.functional.cross_entropy(outputs.logits, labels, reduction="sum")
        return losses / num_items_in_batch

    def mean(outputs, labels, num_items_in_batch=None):
        return torch.nn.functional.cross_entropy(outputs.logits, labels)

    rows = classification_rows(16)
    large = train(tiny_bert(), tmp_path / "large", rows, per_device_train_batch_size=8, compute_loss_func=normalised)
    accumulated = train(
        tiny_bert(), tmp_path / "ga", rows, gradient_accumulation_steps=2, compute_loss_func=normalised
    )
    assert accumulated._loss_divides_by_num_items is True
    assert max_weight_difference(large.model, accumulated.model) < 2e-6
    with pytest.raises(ValueError, match="`compute_loss_func` ignores `num_items_in_batch`"):
        train(tiny_bert(), tmp_path / "mean", rows, gradient_accumulation_steps=2, compute_loss_func=mean)


def test_the_probe_leaves_mode_and_random_state_untouched():
    model = tiny_bert()
    model.train()
    state = torch.get_rng_state()
    calls = []

    def compute_loss(model, inputs, num_items_in_batch):
        calls.append(model.training)
        torch.rand(3)  # consumes random numbers inside the probe
        return torch.tensor(2.0) / num_items_in_batch

    assert loss_divides_by_num_items(compute_loss, model, {}, torch.tensor(4)) is True
    assert calls == [False, False] and model.training
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(
    "single,double,decision",
    [(1.5, 1.5, False), (1.5, 0.75, True), (math.nan, math.nan, False), (0.0, 0.0, None)],
)
def test_the_probe_reads_the_loss_ratio(single, double, decision):
    losses = iter([single, double])
    assert loss_divides_by_num_items(lambda *a, **k: torch.tensor(next(losses)), tiny_bert(), {}, 3) is decision


def test_the_probe_rejects_a_loss_that_neither_halves_nor_stays(tmp_path):
    losses = iter([1.0, 0.9])
    with pytest.raises(ValueError, match="changed by a factor 0.9 when `num_items_in_batch` doubled"):
        loss_divides_by_num_items(lambda *a, **k: torch.tensor(next(losses)), tiny_bert(), {}, 3)
