"""Each attack's parameter gradient against the same update rule computed by hand in the test."""

import pytest
import torch

from adv_trainer import AdversarialTrainer
from tests.tiny_models import arguments, classification_rows, collate, tiny_bert

EPS = 0.3


def batch(n=4, seed=0):
    return collate(classification_rows(n, seed=seed))


def loss_at(model, inputs, delta):
    """The model's loss with `delta` added to its word-embedding output, through a hook local to the test."""
    handle = model.get_input_embeddings().register_forward_hook(lambda module, args, output: output + delta)
    try:
        return model(**inputs).loss
    finally:
        handle.remove()


def unit(g, mask):
    g = g * mask[..., None]
    return g / g.flatten(1).norm(dim=1)[:, None, None]


def project(delta, eps):
    norms = delta.flatten(1).norm(dim=1)
    return delta * torch.clamp(eps / norms, max=1.0)[:, None, None]


def input_grad(model, inputs, delta):
    delta = delta.clone().requires_grad_()
    (g,) = torch.autograd.grad(loss_at(model, inputs, delta), delta)
    return g


def zeros(model, inputs):
    """delta = 0 in the embedding output's layout; multiple choice's (examples, choices, T) ids embed as (B, T)."""
    return torch.zeros(*sequences(inputs["input_ids"]).shape, model.get_input_embeddings().embedding_dim)  # (B, T, E)


def sequences(tensor):
    return tensor.reshape(-1, tensor.shape[-1])  # (B, T)


def hand_gradients(model, inputs, adversarial_points, weights):
    """grad_theta [L(e) + sum_i weights[i] * L(e + delta_i)] for the model's trainable parameters."""
    total = loss_at(model, inputs, 0.0)
    for delta, weight in zip(adversarial_points, weights, strict=False):
        total = total + weight * loss_at(model, inputs, delta)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.autograd.grad(total, params)


def trainer_gradients(tmp_path, model, inputs, **adv):
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv))
    model.zero_grad()
    trainer.training_step(model, inputs)
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


def assert_same(grads_a, grads_b, atol=1e-6):
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-5)


def test_fgm_gradient_equals_the_update_rule_computed_by_hand(tmp_path):
    assert_fgm_matches_the_hand_computation(tmp_path, tiny_bert(), batch())


def assert_fgm_matches_the_hand_computation(tmp_path, model, inputs):
    delta = EPS * unit(input_grad(model, inputs, zeros(model, inputs)), sequences(inputs["attention_mask"]))
    expected = hand_gradients(model, inputs, [delta], [1.0])
    assert_same(trainer_gradients(tmp_path, model, inputs, adv_method="fgm", adv_epsilon=EPS), expected)


def test_fgm_adversarial_weight_scales_only_the_adversarial_term(tmp_path):
    model, inputs = tiny_bert(), batch()
    delta = EPS * unit(input_grad(model, inputs, zeros(model, inputs)), inputs["attention_mask"])
    expected = hand_gradients(model, inputs, [delta], [0.25])
    got = trainer_gradients(tmp_path, model, inputs, adv_method="fgm", adv_epsilon=EPS, adv_weight=0.25)
    assert_same(got, expected)


def test_pgd_gradient_equals_the_update_rule_computed_by_hand(tmp_path):
    model, inputs = tiny_bert(), batch()
    mask, alpha = inputs["attention_mask"], 0.2
    delta = zeros(model, inputs)
    for _ in range(3):
        delta = project(delta + alpha * unit(input_grad(model, inputs, delta), mask), EPS)
    expected = hand_gradients(model, inputs, [delta], [1.0])
    got = trainer_gradients(tmp_path, model, inputs, adv_method="pgd", adv_epsilon=EPS, adv_alpha=alpha, adv_k=3)
    assert_same(got, expected)


def test_freelb_gradient_averages_the_parameter_gradients_along_the_path(tmp_path):
    model, inputs = tiny_bert(), batch()
    mask, alpha, k = inputs["attention_mask"], 0.2, 3
    delta, path = zeros(model, inputs), []
    for _ in range(k):
        delta = project(delta + alpha * unit(input_grad(model, inputs, delta), mask), EPS)
        path.append(delta)
    expected = hand_gradients(model, inputs, path, [1.0 / k] * k)
    got = trainer_gradients(
        tmp_path, model, inputs, adv_method="freelb", adv_epsilon=EPS, adv_alpha=alpha, adv_k=k, adv_init_mag=0.0
    )
    assert_same(got, expected)


@pytest.mark.parametrize("method", ["pgd", "freelb"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_one_step_of_size_eps_without_random_start_is_fgm(tmp_path, method, norm):
    model, inputs = tiny_bert(), batch()
    fgm = trainer_gradients(tmp_path, model, inputs, adv_method="fgm", adv_epsilon=EPS, adv_norm=norm)
    one_step = trainer_gradients(
        tmp_path,
        model,
        inputs,
        adv_method=method,
        adv_epsilon=EPS,
        adv_alpha=EPS,
        adv_k=1,
        adv_init_mag=0.0,
        adv_norm=norm,
    )
    assert_same(one_step, fgm)


def test_random_start_changes_pgd_and_is_reproducible_from_the_seed(tmp_path):
    model, inputs = tiny_bert(), batch()
    settings = {"adv_method": "pgd", "adv_epsilon": EPS, "adv_alpha": 0.1, "adv_k": 2}
    torch.manual_seed(1)
    first = trainer_gradients(tmp_path, model, inputs, adv_init_mag=0.2, **settings)
    torch.manual_seed(1)
    again = trainer_gradients(tmp_path, model, inputs, adv_init_mag=0.2, **settings)
    without = trainer_gradients(tmp_path, model, inputs, adv_init_mag=0.0, **settings)
    assert_same(first, again, atol=0)
    assert max((a - b).abs().max().item() for a, b in zip(first, without, strict=False)) > 1e-6


@pytest.mark.parametrize(
    "adv",
    [
        {"adv_method": "fgm", "adv_epsilon": 0.3},
        {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 4, "adv_init_mag": 0.2},
        {"adv_method": "freelb", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 4, "adv_init_mag": 0.2},
        {"adv_method": "pgd", "adv_norm": "linf", "adv_epsilon": 0.01, "adv_alpha": 0.004, "adv_k": 4},
    ],
    ids=["fgm", "pgd", "freelb", "pgd-linf"],
)
def test_every_perturbation_stays_in_the_ball_and_off_padding(tmp_path, adv, added):
    model, inputs = tiny_bert(), batch(8)
    padding = inputs["attention_mask"] == 0
    assert padding.any()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv))
    trainer.training_step(model, inputs)
    # clean + random start + K - 1 input-gradient passes + final (PGD); clean + random start + K passes (FreeLB)
    passes = {"fgm": 2, "pgd": 1 + 1 + 3 + 1, "freelb": 1 + 1 + 4}[adv["adv_method"]]
    if adv.get("adv_init_mag", 0) == 0 and adv["adv_method"] != "fgm":
        passes -= 1
    assert len(added) == passes
    assert added[0].abs().max() == 0  # the clean pass
    for perturbation in added[1:]:
        assert (perturbation[padding] == 0).all()
        if adv.get("adv_norm") == "linf":
            assert perturbation.abs().max() <= adv["adv_epsilon"] * (1 + 1e-5)
        else:
            assert (perturbation.flatten(1).norm(dim=1) <= adv["adv_epsilon"] * (1 + 1e-5)).all()
    final = added[-1].flatten(1)
    if adv["adv_method"] == "fgm":
        torch.testing.assert_close(final.norm(dim=1), torch.full((8,), 0.3))


def test_perturbation_of_an_example_depends_only_on_that_example(tmp_path, added):
    model, inputs = tiny_bert(), batch(8)
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method="pgd", adv_epsilon=0.3))
    trainer.training_step(model, inputs)
    whole = added[-1]
    trainer.training_step(model, {key: value[:4] for key, value in inputs.items()})
    torch.testing.assert_close(added[-1], whole[:4], atol=1e-6, rtol=1e-5)
