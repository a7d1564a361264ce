"""SMART and R3F: their parameter gradients against the update rules computed by hand, their equivalences and their
refusals."""

import pytest
import torch
import torch.nn.functional as F

from adv_trainer import AdversarialTrainer
from adv_trainer.attacks.base import SmoothnessRegularizer
from adv_trainer.prediction_divergence import prediction_divergence
from tests.test_attacks import assert_same, trainer_gradients
from tests.test_models import FAMILIES
from tests.test_safety import InfAtFirstExample
from tests.tiny_models import (
    arguments,
    classification_rows,
    collate,
    lm_rows,
    max_weight_difference,
    outputs_at,
    tiny_bert,
    tiny_gpt2,
    token_noise,
    train,
)

NOISE = 0.05
R3F = {"adv_method": "r3f", "adv_init_mag": NOISE}
SMART = {"adv_method": "smart", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": NOISE}


@pytest.fixture
def fixed_noise(monkeypatch):
    monkeypatch.setattr(SmoothnessRegularizer, "noise", token_noise)


def noise_of(model, inputs):
    class Passes:  # what `token_noise` reads
        pass

    passes, space = Passes(), Passes()
    space.dim, space.mask = model.get_input_embeddings().embedding_dim, inputs["attention_mask"].float()
    passes.inputs, passes.space = inputs, space
    attack = Passes()
    attack.noise_scale = NOISE
    return token_noise(attack, passes)


def symmetric_kl(p_logits, q_logits):
    """KL(p||q) + KL(q||p) per example, written out with F.kl_div as fairseq's R3F does."""
    log_p, log_q = F.log_softmax(p_logits, dim=-1), F.log_softmax(q_logits, dim=-1)
    return F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(-1) + F.kl_div(
        log_p, log_q, log_target=True, reduction="none"
    ).sum(-1)


def hand_gradients(model, inputs, delta, weight):
    """grad_theta [L(e) + weight * mean_i D_i(f(e), f(e + delta))]."""
    clean = outputs_at(model, inputs, 0.0)
    perturbed = outputs_at(model, inputs, delta)
    if clean.logits.shape[-1] == 1:
        divergence = (clean.logits - perturbed.logits).pow(2).sum(-1)
    else:
        divergence = symmetric_kl(clean.logits, perturbed.logits)
    total = clean.loss + weight * divergence.mean()
    return torch.autograd.grad(total, [p for p in model.parameters() if p.requires_grad])


def smart_ascent(model, inputs, clean_logits, delta, steps, eps, alpha, norm="l2"):
    """SMART's delta_K by hand: `steps` normalised ascent steps on D(p, f(e + delta)) from `delta`, projected."""
    mask = inputs["attention_mask"].float()[..., None]
    for _ in range(steps):
        delta = delta.clone().requires_grad_()
        divergence = prediction_divergence(clean_logits, outputs_at(model, inputs, delta).logits).mean()
        (g,) = torch.autograd.grad(divergence, delta)
        g = g * mask
        if norm == "l2":
            delta = delta.detach() + alpha * g / g.flatten(1).norm(dim=1)[:, None, None]
            delta = delta * torch.clamp(eps / delta.flatten(1).norm(dim=1), max=1.0)[:, None, None]
        else:
            delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
    return delta


def test_the_divergence_is_the_symmetric_kl_and_zero_at_equal_predictions():
    p, q = torch.randn(5, 3), torch.randn(5, 3)
    torch.testing.assert_close(prediction_divergence(p, q), symmetric_kl(p, q))
    torch.testing.assert_close(prediction_divergence(p, p), torch.zeros(5))
    torch.testing.assert_close(prediction_divergence(p[:, :1], q[:, :1]), (p[:, 0] - q[:, 0]) ** 2)


@pytest.mark.parametrize("num_labels", [2, 1], ids=["classification", "regression"])
def test_r3f_gradient_equals_the_update_rule_computed_by_hand(tmp_path, fixed_noise, num_labels):
    model = tiny_bert(num_labels=num_labels)
    inputs = collate(classification_rows(4))
    if num_labels == 1:
        inputs["labels"] = inputs["labels"].float() * 2.5
    expected = hand_gradients(model, inputs, noise_of(model, inputs), weight=0.7)
    assert_same(trainer_gradients(tmp_path, model, inputs, **R3F, adv_weight=0.7), expected)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_smart_gradient_equals_the_update_rule_computed_by_hand(tmp_path, fixed_noise, norm):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    eps, alpha = (0.3, 0.2) if norm == "l2" else (0.02, 0.015)
    clean_logits = outputs_at(model, inputs, 0.0).logits.detach()
    delta = smart_ascent(model, inputs, clean_logits, noise_of(model, inputs), 2, eps, alpha, norm)
    expected = hand_gradients(model, inputs, delta, weight=1.0)
    settings = {**SMART, "adv_epsilon": eps, "adv_alpha": alpha, "adv_norm": norm}
    assert_same(trainer_gradients(tmp_path, model, inputs, **settings), expected)


@pytest.mark.parametrize("adv", [R3F, SMART], ids=["r3f", "smart"])
def test_gradient_accumulation_gives_the_update_of_one_large_batch(tmp_path, fixed_noise, adv):
    model, rows = tiny_bert(), classification_rows(16)
    large = train(model, tmp_path / "large", rows, per_device_train_batch_size=8, **adv)
    accumulated = train(
        model, tmp_path / "ga", rows, per_device_train_batch_size=4, gradient_accumulation_steps=2, **adv
    )
    assert max_weight_difference(model, large.model) > 1e-3
    assert max_weight_difference(large.model, accumulated.model) < 2e-6
    for a, b in zip(large.state.log_history[:2], accumulated.state.log_history[:2], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["adv_loss"] == pytest.approx(b["adv_loss"], rel=1e-5)
        assert a["adv_loss"] > 0


@pytest.mark.parametrize("adv", [R3F, SMART], ids=["r3f", "smart"])
def test_the_regulariser_changes_the_update_and_lambda_zero_is_plain_fine_tuning(tmp_path, fixed_noise, adv):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    plain = trainer_gradients(tmp_path, model, inputs)
    regularised = trainer_gradients(tmp_path, model, inputs, **adv)
    off = trainer_gradients(tmp_path, model, inputs, **adv, adv_weight=0.0)
    assert_same(off, plain, atol=1e-7)
    assert max((a - b).abs().max().item() for a, b in zip(regularised, plain, strict=True)) > 1e-5


@pytest.mark.parametrize("noise", ["normal", "uniform"])
def test_r3f_adds_seeded_noise_per_coordinate_off_padding_in_one_extra_pass(tmp_path, added, noise):
    model, inputs = tiny_bert(hidden_size=64), collate(classification_rows(8))
    padding = inputs["attention_mask"] == 0
    assert padding.any()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **R3F, adv_noise=noise))
    torch.manual_seed(3)
    trainer.training_step(model, inputs)
    torch.manual_seed(3)
    trainer.training_step(model, inputs)
    assert len(added) == 6  # per step: the clean forward, one perturbed forward and the clean one again; no ascent
    clean, first, clean_again, _, again, _ = added
    assert clean.abs().max() == 0 and clean_again.abs().max() == 0 and torch.equal(first, again)
    assert (first[padding] == 0).all()
    values = first[~padding]
    if noise == "normal":  # N(0, sigma^2): std sigma
        assert values.std().item() == pytest.approx(NOISE, rel=0.05)
    else:  # U(-sigma, sigma): within the bounds, std sigma / sqrt(3)
        assert values.abs().max().item() <= NOISE
        assert values.std().item() == pytest.approx(NOISE / 3**0.5, rel=0.05)


def test_smart_runs_k_ascent_passes_and_ends_in_the_ball(tmp_path, added):
    model, inputs = tiny_bert(), collate(classification_rows(8))
    settings = {**SMART, "adv_k": 3, "adv_init_mag": 1e-4}
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **settings))
    trainer.training_step(model, inputs)
    assert len(added) == 1 + 3 + 1 + 1  # clean forward, K divergence-gradient passes, perturbed pass, clean again
    assert added[1].flatten(1).norm(dim=1).max() < 0.01  # the first ascent pass is at the noise
    assert added[-1].abs().max() == 0
    final = added[-2].flatten(1).norm(dim=1)
    assert (final <= 0.3 * (1 + 1e-5)).all()  # projected onto eps = 0.3
    assert (final > 0.1).all()  # 3 ascent steps of 0.2 moved every example far beyond the noise


@pytest.mark.parametrize("adv", [R3F, SMART], ids=["r3f", "smart"])
def test_a_causal_lm_is_refused_with_the_shape_and_the_alternatives(tmp_path, adv):
    with pytest.raises(ValueError, match=r"one prediction per example.*\(2, \d+, 50\).*use fgm, pgd or freelb"):
        train(tiny_gpt2(), tmp_path, lm_rows(4), per_device_train_batch_size=2, max_steps=1, **adv)


def test_a_multi_label_classification_is_refused(tmp_path):
    model = tiny_bert(num_labels=3)
    model.config.problem_type = "multi_label_classification"
    with pytest.raises(ValueError, match="r3f on a multi-label classification"):
        trainer_gradients(tmp_path, model, collate(classification_rows(4, num_labels=3)), **R3F)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert", "electra"])
@pytest.mark.parametrize("adv", [R3F, SMART], ids=["r3f", "smart"])
def test_each_classification_family_trains_and_keeps_no_hook(tmp_path, fixed_noise, family, adv):
    make_model, make_rows = FAMILIES[family]
    model = make_model()
    trainer = train(model, tmp_path, make_rows(8), **adv)
    assert not trainer.model.get_input_embeddings()._forward_hooks
    assert max_weight_difference(model, trainer.model) > 1e-3
    assert trainer.state.log_history[0]["adv_loss"] > 0


def test_a_frozen_embedding_stays_unchanged_and_the_gradient_is_still_exact(tmp_path, fixed_noise):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    model.get_input_embeddings().weight.requires_grad_(False)
    expected = hand_gradients(model, inputs, noise_of(model, inputs), weight=1.0)
    assert_same(trainer_gradients(tmp_path, model, inputs, **R3F), expected)
    trained = train(model, tmp_path, classification_rows(8), **SMART).model
    assert torch.equal(trained.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert not torch.equal(trained.classifier.weight, model.classifier.weight)


def test_a_non_finite_divergence_gradient_leaves_the_example_at_its_noise(tmp_path, fixed_noise, added):
    model = tiny_bert()
    # Everything below the injection point is frozen, so only the perturbation's gradient is infinite.
    model.bert.embeddings.requires_grad_(False)
    model.bert.embeddings.register_forward_hook(lambda module, args, output: InfAtFirstExample.apply(output))
    settings = {**SMART, "adv_k": 3, "adv_init_mag": 1e-3}  # noise well inside eps: no projection touches it
    trainer = train(model, tmp_path, classification_rows(4), max_steps=1, **settings)
    assert trainer.state.log_history[0]["adv_skipped"] == 3  # example 0 at each of the 3 ascent steps
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert max_weight_difference(model, trainer.model) > 1e-3
    noise, final = added[1], added[-2]  # the first ascent pass runs at the noise, the last pass is the clean one
    assert torch.equal(final[0], noise[0])
    assert ((final[1:] - noise[1:]).flatten(1).norm(dim=1) > 0.1).all()


@pytest.mark.parametrize("adv", [R3F, SMART], ids=["r3f", "smart"])
def test_bf16_autocast_gives_finite_losses_and_a_regulariser_in_float32(tmp_path, adv, monkeypatch):
    divergences = []
    original = prediction_divergence

    def recording(clean_logits, perturbed_logits):
        divergences.append(original(clean_logits, perturbed_logits))
        return divergences[-1]

    monkeypatch.setattr("adv_trainer.perturbed_passes.prediction_divergence", recording)
    trainer = train(tiny_bert(), tmp_path, classification_rows(8), bf16=True, **adv)
    log = trainer.state.log_history[0]
    assert {d.dtype for d in divergences} == {torch.float32}
    assert torch.isfinite(torch.tensor([log["loss"], log["adv_loss"]])).all() and log["adv_loss"] > 0


@pytest.mark.parametrize("adv", [R3F, SMART], ids=["r3f", "smart"])
def test_under_dropout_the_update_and_the_random_draws_after_it_are_those_of_one_joint_backward(
    tmp_path, fixed_noise, adv
):
    # The clean forward runs twice (its graph dropped, then kept); the second must see the first's dropout masks,
    # and what is drawn after the step must not depend on it having run twice.
    model, inputs = tiny_bert(dropout=0.3), collate(classification_rows(4))
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv))
    model.train()
    torch.manual_seed(5)
    clean = outputs_at(model, inputs, 0.0)
    delta = noise_of(model, inputs)
    if adv["adv_method"] == "smart":
        steps, eps, alpha = adv["adv_k"], adv["adv_epsilon"], adv["adv_alpha"]
        delta = smart_ascent(model, inputs, clean.logits.detach(), delta, steps, eps, alpha)
    perturbed = outputs_at(model, inputs, delta)
    total = clean.loss + symmetric_kl(clean.logits, perturbed.logits).mean()
    expected = torch.autograd.grad(total, [p for p in model.parameters() if p.requires_grad])
    expected_next_draw = torch.rand(8)
    assert not torch.allclose(clean.logits, model(**inputs).logits)  # dropout is on: another forward differs

    model.zero_grad()
    torch.manual_seed(5)
    trainer.training_step(model, inputs)
    assert_same([p.grad for p in model.parameters() if p.requires_grad], expected)
    assert torch.equal(torch.rand(8), expected_next_draw)


@pytest.mark.parametrize("adv", [R3F, {**SMART, "adv_k": 1}], ids=["r3f", "smart"])
def test_at_256_tokens_the_gradient_equals_the_joint_rule_computed_by_hand(tmp_path, fixed_noise, adv):
    model = tiny_bert(max_length=256)
    inputs = collate(classification_rows(4, min_len=200, max_len=256))
    assert inputs["input_ids"].shape[1] > 240
    delta = noise_of(model, inputs)
    if adv["adv_method"] == "smart":  # one normalised L2 ascent step from the noise, projected onto eps
        clean_logits = outputs_at(model, inputs, 0.0).logits.detach()
        delta = smart_ascent(model, inputs, clean_logits, delta, 1, adv["adv_epsilon"], adv["adv_alpha"])
    expected = hand_gradients(model, inputs, delta, weight=1.0)
    assert_same(trainer_gradients(tmp_path, model, inputs, **adv), expected)
