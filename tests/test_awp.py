"""AWP: the update rule by hand, the accumulated gradient kept, weights restored bit for bit, which weights move."""

import copy

import pytest
import torch

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.attacks.awp import AWP, perturbed_weights
from tests.test_models import FAMILIES
from tests.tiny_models import (
    arguments,
    classification_rows,
    collate,
    max_weight_difference,
    tiny_bert,
    tiny_gpt2,
    train,
)

GAMMA, ALPHA = 0.05, 0.5
SETTINGS = {"adv_method": "awp", "adv_epsilon": GAMMA, "adv_alpha": ALPHA}


def hand_perturbation(model, inputs):
    """V per perturbed weight from this batch's clean gradient: clip(alpha ||W|| G/||G||, -gamma |W|, gamma |W|)."""
    weights = perturbed_weights(model)
    grads = torch.autograd.grad(model(**inputs).loss, weights)
    return [
        torch.clamp(ALPHA * w.norm() * g / g.norm(), min=-GAMMA * w.abs(), max=GAMMA * w.abs())
        for w, g in zip(weights, grads, strict=True)
    ]


def hand_gradients(model, inputs, weight=1.0):
    """grad L(W) + weight * grad L(W + V), for every trainable parameter; on a copy of `model`, which it moves."""
    model = copy.deepcopy(model)
    params = [p for p in model.parameters() if p.requires_grad]
    clean = torch.autograd.grad(model(**inputs).loss, params)
    perturbation = hand_perturbation(model, inputs)
    with torch.no_grad():
        for w, v in zip(perturbed_weights(model), perturbation, strict=True):
            w.add_(v)
    adversarial = torch.autograd.grad(model(**inputs).loss, params)
    return [c + weight * a for c, a in zip(clean, adversarial, strict=True)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("accumulated", [False, True], ids=["first-micro-batch", "after-accumulation"])
def test_gradient_equals_the_update_rule_and_keeps_what_was_accumulated(tmp_path, accumulated, family):
    make_model, make_rows = FAMILIES[family]
    model, inputs = make_model(), collate(make_rows(4))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    expected = hand_gradients(model, inputs, weight=0.7)
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **SETTINGS, adv_weight=0.7))
    params = [p for p in model.parameters() if p.requires_grad]
    earlier = [torch.randn_like(p) for p in params]  # what earlier micro-batches left in .grad
    for p, e in zip(params, earlier, strict=True):
        p.grad = e.clone() if accumulated else None
    trainer.training_step(model, inputs)
    for p, e, x in zip(params, earlier, expected, strict=True):
        torch.testing.assert_close(p.grad, x + e if accumulated else x, atol=1e-6, rtol=1e-5)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name  # restored bit for bit


def test_the_perturbed_weights_are_the_linear_maps_not_embeddings_biases_or_layernorm():
    bert = tiny_bert()
    names = {name for name, p in bert.named_parameters() if any(p is w for w in perturbed_weights(bert))}
    matrices = {name for name, p in bert.named_parameters() if name.endswith(".weight") and p.dim() == 2}
    assert names == {name for name in matrices if "embeddings" not in name}
    assert "classifier.weight" in names and "bert.encoder.layer.0.attention.self.query.weight" in names
    gpt2 = tiny_gpt2()
    assert all(w is not gpt2.get_input_embeddings().weight for w in perturbed_weights(gpt2))  # tied lm_head too
    bert.bert.encoder.layer[0].attention.self.query.weight.requires_grad_(False)
    assert all(w.requires_grad for w in perturbed_weights(bert))


def test_the_adversarial_pass_runs_inside_the_box_with_the_embedding_untouched(tmp_path):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    classifier, embedding = model.classifier.weight, model.get_input_embeddings().weight
    original_classifier, original_embedding = classifier.detach().clone(), embedding.detach().clone()
    seen = []

    def record(module, args):
        seen.append((classifier.detach().clone(), embedding.detach().clone()))

    handle = model.register_forward_pre_hook(record)
    try:
        AdversarialTrainer(model=model, args=arguments(tmp_path, **SETTINGS)).training_step(model, inputs)
    finally:
        handle.remove()
    assert len(seen) == 2  # the clean and the adversarial forward
    assert torch.equal(seen[0][0], original_classifier)
    moved = seen[1][0] - original_classifier
    bound = GAMMA * original_classifier.abs()
    assert (moved.abs() <= bound * (1 + 1e-6)).all()
    assert (moved.abs() >= bound * (1 - 1e-6)).float().mean() > 0.5  # alpha = 0.5 of the norm: mostly at the box
    assert torch.equal(seen[1][1], original_embedding)


def test_weights_are_restored_when_the_adversarial_pass_raises(tmp_path):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    calls = []

    def fail_on_second_forward(module, args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure")

    handle = model.register_forward_pre_hook(fail_on_second_forward)
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **SETTINGS))
    with pytest.raises(RuntimeError, match="injected failure"):
        trainer.training_step(model, inputs)
    handle.remove()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert not model.get_input_embeddings()._forward_hooks


def test_a_weight_with_a_non_finite_gradient_is_not_moved_and_is_counted():
    class Space:
        skipped = torch.zeros(())

    w_finite, w_inf = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2, 2))
    w_finite.grad, w_inf.grad = torch.ones(2, 2), torch.tensor([[1.0, float("inf")], [0.0, 1.0]])
    awp = AWP(gamma=0.1, alpha=1.0, weight=1.0)
    awp._weights = [w_finite, w_inf]
    space = Space()
    norm = awp._move(space)
    assert torch.equal(w_inf.detach(), torch.ones(2, 2)) and torch.equal(w_finite.detach(), torch.full((2, 2), 1.1))
    assert space.skipped == 1
    torch.testing.assert_close(norm, torch.tensor([0.2 / 8**0.5]))  # ||V|| = 0.2, ||W|| over both = sqrt(8)


def test_awp_trains_with_gradient_accumulation_and_logs_its_relative_size(tmp_path):
    model, rows = tiny_bert(), classification_rows(16)
    trainer = train(model, tmp_path, rows, per_device_train_batch_size=4, gradient_accumulation_steps=2, **SETTINGS)
    assert max_weight_difference(model, trainer.model) > 1e-3
    log = trainer.state.log_history[0]
    assert log["adv_loss"] > 0 and 0 < log["adv_delta_norm"] <= GAMMA


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"adv_norm": "linf"}, "`adv_norm='linf'` does not apply to `adv_method='awp'`"),
        ({"adv_scope": "vocab"}, "`adv_method='awp'` needs `adv_scope='example'`"),
        ({"adv_epsilon": float("inf")}, "AWP's box relative to each weight and must be finite"),
        ({"adv_alpha": 0.0}, "`adv_alpha` must be > 0"),
    ],
)
def test_bad_awp_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AdversarialTrainingArguments(output_dir="unused", report_to="none", adv_method="awp", **kwargs)
