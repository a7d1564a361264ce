"""CreAT: its perturbation and parameter gradient against the update rule computed by hand, its equivalences, the
hidden states it reads without the user seeing them, and its arguments."""

import pytest
import torch
from torch import nn

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.attacks import CreAT
from tests.test_attacks import assert_same, trainer_gradients
from tests.test_models import FAMILIES, VocabularySizedOps
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

NOISE = 0.05  # large enough that the similarity's gradient shows at the start in these dropout-free tiny models
CREAT = {"adv_method": "creat", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": NOISE}


@pytest.fixture
def fixed_noise(monkeypatch):
    monkeypatch.setattr(CreAT, "noise", token_noise)


def noise_of(model, inputs):
    class Namespace:  # what `token_noise` reads
        pass

    passes, space, attack = Namespace(), Namespace(), Namespace()
    space.dim, space.mask = model.get_input_embeddings().embedding_dim, inputs["attention_mask"].float()
    passes.inputs, passes.space, attack.noise_scale = inputs, space, NOISE
    return token_noise(attack, passes)


def hand_delta(model, inputs, eps, alpha, steps, tau, norm="l2"):
    """The paper's ascent, written out as the authors' code does at the paper's time: last hidden states multiplied
    by the mask, cosine over the hidden dimension, summed over positions and averaged over the batch."""
    mask = inputs["attention_mask"].float()[..., None]  # (B, T, 1)
    cosine = nn.CosineSimilarity(dim=-1)
    clean = outputs_at(model, inputs, 0.0, output_hidden_states=True).hidden_states[-1].detach() * mask
    delta = noise_of(model, inputs)
    for _ in range(steps):
        delta = delta.clone().requires_grad_()
        outputs = outputs_at(model, inputs, delta, output_hidden_states=True)
        similarity = cosine(outputs.hidden_states[-1] * mask, clean).sum(-1).mean()
        (g,) = torch.autograd.grad(outputs.loss - tau * similarity, delta)
        g = g * mask
        if norm == "l2":
            delta = delta.detach() + alpha * g / g.flatten(1).norm(dim=1)[:, None, None]
            delta = delta * torch.clamp(eps / delta.flatten(1).norm(dim=1), max=1.0)[:, None, None]
        else:
            delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
    return delta


def hand_gradients(model, inputs, delta, weight):
    """grad_theta [L(e) + w * L(e + delta)] / (1 + w): at w = 1 the paper's (L(e) + L(e + delta)) / 2."""
    total = (outputs_at(model, inputs, 0.0).loss + weight * outputs_at(model, inputs, delta).loss) / (1 + weight)
    return torch.autograd.grad(total, [p for p in model.parameters() if p.requires_grad])


@pytest.mark.parametrize(
    "norm,steps,weight,eps,alpha",
    [("l2", 1, 1.0, 0.3, 0.3), ("l2", 2, 0.5, 0.3, 0.2), ("linf", 2, 1.0, 0.02, 0.015)],
    ids=["l2-k1", "l2-k2-w0.5", "linf-k2"],
)
def test_delta_and_gradient_equal_the_update_rule_computed_by_hand(
    tmp_path, fixed_noise, added, norm, steps, weight, eps, alpha
):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    delta = hand_delta(model, inputs, eps, alpha, steps, tau=1.0, norm=norm)
    # The similarity term moves delta: without it (tau = 0) the hand computation lands elsewhere.
    assert (delta - hand_delta(model, inputs, eps, alpha, steps, tau=0.0, norm=norm)).abs().max() > 0.1 * alpha
    settings = {
        **CREAT,
        "adv_norm": norm,
        "adv_k": steps,
        "adv_weight": weight,
        "adv_epsilon": eps,
        "adv_alpha": alpha,
    }
    got = trainer_gradients(tmp_path, model, inputs, **settings)
    assert len(added) == 1 + steps + 1  # the clean pass, K ascent passes, the final pass
    torch.testing.assert_close(added[-1], delta, atol=1e-6, rtol=1e-5)
    assert_same(got, hand_gradients(model, inputs, delta, weight))


@pytest.mark.parametrize("problem", ["regression", "multi_label_classification"])
def test_any_task_loss_works_regression_and_multi_label(tmp_path, fixed_noise, problem):
    model = tiny_bert(num_labels=1 if problem == "regression" else 3)
    model.config.problem_type = problem
    inputs = collate(classification_rows(4, num_labels=3))
    if problem == "regression":
        inputs["labels"] = inputs["labels"].float() * 2.5
    else:
        inputs["labels"] = torch.nn.functional.one_hot(inputs["labels"], 3).float()
    delta = hand_delta(model, inputs, 0.3, 0.2, 2, tau=1.0)
    assert_same(trainer_gradients(tmp_path, model, inputs, **CREAT), hand_gradients(model, inputs, delta, 1.0))


def test_tau_weighs_the_similarity_and_adv_weight_zero_is_plain_fine_tuning(tmp_path, fixed_noise, added):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    trainer_gradients(tmp_path, model, inputs, **CREAT, adv_tau=3.0)
    torch.testing.assert_close(added[-1], hand_delta(model, inputs, 0.3, 0.2, 2, tau=3.0), atol=1e-6, rtol=1e-5)
    plain = trainer_gradients(tmp_path, model, inputs)
    assert_same(trainer_gradients(tmp_path, model, inputs, **CREAT, adv_weight=0.0), plain, atol=1e-7)


@pytest.mark.parametrize(
    "make_model,make_rows", [(tiny_bert, classification_rows), (tiny_gpt2, lm_rows)], ids=["classification", "lm"]
)
def test_gradient_accumulation_gives_the_update_of_one_large_batch(tmp_path, fixed_noise, make_model, make_rows):
    model, rows = make_model(), make_rows(16)
    large = train(model, tmp_path / "large", rows, per_device_train_batch_size=8, **CREAT)
    accumulated = train(
        model, tmp_path / "ga", rows, per_device_train_batch_size=4, gradient_accumulation_steps=2, **CREAT
    )
    assert max_weight_difference(model, large.model) > 1e-3
    assert max_weight_difference(large.model, accumulated.model) < 2e-6
    for a, b in zip(large.state.log_history[:2], accumulated.state.log_history[:2], strict=True):
        for key in ("loss", "adv_loss", "adv_delta_norm"):
            assert a[key] == pytest.approx(b[key], rel=1e-5)


def test_gradient_accumulation_keeps_the_balance_of_loss_and_similarity(tmp_path, fixed_noise, added):
    """Each example's delta is the one its large batch gives: the similarity is averaged over the accumulated
    batch, like the loss, not over each micro-batch (at GA 2 it would then weigh twice the loss)."""
    model, inputs = tiny_gpt2(), collate(lm_rows(8))  # a loss normalised by the accumulated batch's token count
    items = (inputs["labels"][:, 1:] != -100).sum()
    AdversarialTrainer(model=model, args=arguments(tmp_path, **CREAT)).training_step(model, inputs, items)
    whole = added[-1]
    accumulating = AdversarialTrainer(model=model, args=arguments(tmp_path, **CREAT, gradient_accumulation_steps=2))
    for half in (slice(0, 4), slice(4, 8)):
        accumulating.training_step(model, {key: value[half] for key, value in inputs.items()}, items)
        torch.testing.assert_close(added[-1], whole[half], atol=1e-6, rtol=1e-5)


def test_a_frozen_embedding_stays_unchanged_and_the_gradient_is_still_exact(tmp_path, fixed_noise):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    model.get_input_embeddings().weight.requires_grad_(False)
    delta = hand_delta(model, inputs, 0.3, 0.2, 2, tau=1.0)
    assert_same(trainer_gradients(tmp_path, model, inputs, **CREAT), hand_gradients(model, inputs, delta, 1.0))
    trained = train(model, tmp_path, classification_rows(8), **CREAT).model
    assert torch.equal(trained.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert not torch.equal(trained.classifier.weight, model.classifier.weight)


def test_the_tied_output_projection_is_not_perturbed_and_stays_tied(tmp_path, fixed_noise):
    model, inputs = tiny_gpt2(), collate(lm_rows(4))
    assert model.lm_head.weight is model.get_input_embeddings().weight
    delta = hand_delta(model, inputs, 0.3, 0.2, 2, tau=1.0)
    assert_same(trainer_gradients(tmp_path, model, inputs, **CREAT), hand_gradients(model, inputs, delta, 1.0))
    trained = train(model, tmp_path, lm_rows(8), **CREAT).model
    assert trained.lm_head.weight is trained.get_input_embeddings().weight


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_and_keeps_no_hook(tmp_path, family):
    make_model, make_rows = FAMILIES[family]
    model = make_model()
    trainer = train(model, tmp_path, make_rows(8), **CREAT)
    trained = trainer.model
    assert not trained.get_input_embeddings()._forward_hooks
    assert not trained._forward_hooks and not trained._forward_pre_hooks
    assert max_weight_difference(model, trained) > 1e-3
    log = trainer.state.log_history[0]
    assert log["adv_loss"] > 0 and 0 < log["adv_delta_norm"] <= 0.3 + 1e-6


class Recording(AdversarialTrainer):
    """Records the input keys and the output keys the trainer's `compute_loss` gets for each pass."""

    seen = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        Recording.seen.append((sorted(inputs), type(outputs).__name__, list(outputs.keys())))
        return (loss, outputs) if return_outputs else loss


@pytest.mark.parametrize("asked", [False, True], ids=["not-asked", "asked-in-config"])
def test_compute_loss_sees_the_inputs_and_outputs_it_would_see_without_creat(tmp_path, asked):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    model.config.output_hidden_states = asked
    Recording.seen = []
    Recording(model=model, args=arguments(tmp_path)).training_step(model, inputs)
    (plain,) = Recording.seen
    Recording.seen = []
    Recording(model=model, args=arguments(tmp_path, **CREAT)).training_step(model, inputs)
    assert Recording.seen == [plain] * 4  # clean, 2 ascent passes, final
    assert ("hidden_states" in plain[2]) is asked
    assert not model._forward_hooks and not model._forward_pre_hooks


def test_bf16_autocast_gives_finite_losses_and_a_similarity_in_float32(tmp_path, monkeypatch):
    from adv_trainer import perturbed_passes

    similarities = []
    original = perturbed_passes.representation_similarity

    def recording(perturbed, clean, mask):
        similarities.append(original(perturbed, clean, mask))
        return similarities[-1]

    monkeypatch.setattr(perturbed_passes, "representation_similarity", recording)
    trainer = train(tiny_bert(), tmp_path, classification_rows(8), bf16=True, **CREAT)
    log = trainer.state.log_history[0]
    assert len(similarities) == 2 * 2  # 2 ascent steps in each of the 2 optimizer steps
    assert {s.dtype for s in similarities} == {torch.float32}
    assert torch.isfinite(torch.tensor([log["loss"], log["adv_loss"]])).all()
    assert 0 < log["adv_delta_norm"] <= 0.3 + 1e-6


def test_passes_build_the_weight_gradient_twice_and_the_ascent_none(tmp_path):
    model = tiny_bert()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **CREAT))
    with VocabularySizedOps(model.get_input_embeddings().weight) as recorded:
        trainer.training_step(model, collate(classification_rows(4)))
    assert recorded.ops.count("embedding") == 1 + 2 + 1
    assert recorded.ops.count("embedding_dense_backward") == 2  # the clean and the final pass only
    assert sorted(set(recorded.ops) - {"embedding", "embedding_dense_backward", "detach", "add_"}) == []


def test_a_non_finite_ascent_gradient_leaves_the_example_at_its_noise(tmp_path, fixed_noise, added):
    model = tiny_bert()
    # Everything below the injection point is frozen, so only the perturbation's gradient is infinite.
    model.bert.embeddings.requires_grad_(False)
    model.bert.embeddings.register_forward_hook(lambda module, args, output: InfAtFirstExample.apply(output))
    settings = {**CREAT, "adv_init_mag": 1e-3}  # noise well inside eps: no projection touches it
    trainer = train(model, tmp_path, classification_rows(4), max_steps=1, **settings)
    assert trainer.state.log_history[0]["adv_skipped"] == 2  # example 0 at each of the 2 ascent steps
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    noise, final = added[1], added[-1]  # the first ascent pass runs at the noise
    assert torch.equal(final[0], noise[0])
    assert ((final[1:] - noise[1:]).flatten(1).norm(dim=1) > 0.1).all()


class NoHiddenStates(nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = tiny_bert()

    def get_input_embeddings(self):
        return self.bert.get_input_embeddings()

    def forward(self, input_ids, attention_mask, labels):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def test_a_model_that_cannot_return_hidden_states_is_refused(tmp_path):
    trainer = AdversarialTrainer(model=NoHiddenStates(), args=arguments(tmp_path, **CREAT))
    with pytest.raises(ValueError, match="NoHiddenStates.forward takes no `output_hidden_states` argument"):
        trainer.training_step(trainer.model, collate(classification_rows(4)))
    assert not trainer.model.get_input_embeddings()._forward_hooks


def make(**kwargs):
    return AdversarialTrainingArguments(output_dir="unused", report_to="none", **kwargs)


def test_the_defaults_are_the_papers_at_the_swept_radius():
    args = make(adv_method="creat")
    assert (args.adv_k, args.adv_init_mag, args.adv_tau, args.adv_weight) == (1, 1e-5, 1.0, 1.0)
    assert args.adv_epsilon == args.adv_alpha == 0.05  # one step to the radius, as the code's step of 0.1 to 0.1
    linf = make(adv_method="creat", adv_norm="linf")
    assert linf.adv_epsilon == linf.adv_alpha == 0.001


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"adv_tau": -1.0}, "`adv_tau` must be >= 0 and finite, got -1.0"),
        ({"adv_tau": float("nan")}, "`adv_tau` must be >= 0 and finite, got nan"),
        ({"adv_tau": float("inf")}, "`adv_tau` must be >= 0 and finite, got inf"),
        ({"adv_init_mag": 0.0}, "`adv_init_mag` is creat's noise scale and must be > 0 and finite, got 0.0"),
        ({"adv_k": 0}, "`adv_k` must be >= 1 for `adv_method='creat'`, got 0"),
        ({"adv_alpha": 0.0}, "`adv_alpha` must be > 0 and finite for `adv_method='creat'`, got 0.0"),
        ({"adv_epsilon": -0.1}, "`adv_epsilon` must be > 0, got -0.1"),
        ({"adv_weight": -1.0}, "`adv_weight` must be >= 0 and finite, got -1.0"),
        ({"adv_scope": "vocab"}, "`adv_method='creat'` needs `adv_scope='example'`"),
    ],
)
def test_invalid_values_name_the_field_the_value_and_the_fix(kwargs, message):
    with pytest.raises(ValueError) as error:
        make(adv_method="creat", **kwargs)
    assert message in str(error.value)


def test_tau_is_unset_with_a_warning_for_other_methods_and_noise_for_creat():
    with pytest.warns(UserWarning, match="`adv_tau=2.0` is not used by `adv_method='pgd'`"):
        assert make(adv_method="pgd", adv_tau=2.0).adv_tau is None
    with pytest.warns(UserWarning, match="`adv_noise=uniform` is not used by `adv_method='creat'`"):
        assert make(adv_method="creat", adv_noise="uniform").adv_noise is None
