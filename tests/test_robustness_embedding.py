"""`evaluate_robustness`: PGD on the embedding output at evaluation time."""

import copy

import numpy as np
import pytest
import torch

from adv_trainer import AdversarialTrainer
from tests.tiny_models import arguments, classification_rows, collate, dataset, tiny_bert


def accuracy(prediction):
    return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}


def separable_rows(n=32):
    """Label 1 iff token 7 occurs: a tiny BERT learns it in a few dozen steps."""
    rows = classification_rows(n, seed=3)
    for i, row in enumerate(rows):
        row["input_ids"] = [t for t in row["input_ids"] if t != 7]
        if i % 2:
            row["input_ids"][len(row["input_ids"]) // 2] = 7
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rows = separable_rows()
    args = arguments(tmp_path_factory.mktemp("robust"), max_steps=60, learning_rate=1e-3, optim="adamw_torch")
    trainer = AdversarialTrainer(
        model=tiny_bert(), args=args, train_dataset=dataset(rows), data_collator=collate, compute_metrics=accuracy
    )
    trainer.train()
    return trainer, dataset(rows)


def test_at_radius_zero_robust_accuracy_is_the_clean_accuracy(trained):
    trainer, data = trained
    clean = trainer.evaluate(data)["eval_accuracy"]
    assert clean >= 0.9  # the model learned the task, so the attack has something to break
    assert trainer.evaluate_robustness(data, epsilons=[0.0], steps=3)["eval_robust_accuracy_eps0"] == clean


def test_a_large_radius_breaks_the_model_and_accuracy_falls_with_the_radius(trained):
    trainer, data = trained
    metrics = trainer.evaluate_robustness(data, epsilons=[0.0, 0.5, 20.0], steps=10)
    values = [metrics[f"eval_robust_accuracy_eps{eps}"] for eps in ("0", "0.5", "20")]
    assert values[0] >= values[1] >= values[2] and values[2] < values[0] - 0.3


def test_the_attack_changes_nothing_about_the_model(trained):
    trainer, data = trained
    model = trainer.model
    model.train()
    model.classifier.weight.requires_grad_(False)
    model.bert.pooler.dense.weight.grad = torch.full_like(model.bert.pooler.dense.weight, 3.0)
    before = copy.deepcopy(model.state_dict())
    grads = {name: None if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    hooks = {name: dict(m._forward_hooks) for name, m in model.named_modules()}
    trainer.evaluate_robustness(data, epsilons=[0.5], steps=4)
    assert model.training
    assert all(torch.equal(value, model.state_dict()[name]) for name, value in before.items())
    for name, p in model.named_parameters():
        assert (p.grad is None) == (grads[name] is None) and (p.grad is None or torch.equal(p.grad, grads[name]))
        assert p.requires_grad == flags[name]
    assert {name: dict(m._forward_hooks) for name, m in model.named_modules()} == hooks
    model.classifier.weight.requires_grad_(True)
    model.bert.pooler.dense.weight.grad = None


@pytest.mark.parametrize("norm,eps", [("l2", 0.4), ("linf", 0.01)])
def test_the_attack_never_leaves_the_ball(trained, added, norm, eps):
    trainer, data = trained
    trainer.evaluate_robustness(data, epsilons=[eps], steps=5, norm=norm)
    assert len(added) == 4 * (1 + 4 + 1)  # 4 batches of 8, each: clean pass, 4 gradient passes, final pass
    for perturbation in added:
        norms = perturbation.flatten(1).norm(dim=1) if norm == "l2" else perturbation.flatten(1).abs().amax(dim=1)
        assert (norms <= eps * (1 + 1e-5)).all()
    assert added[-1].abs().max() > 0


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"epsilons": [-0.1]}, r"`epsilons` must be >= 0, got \[-0.1\]"),
        ({"epsilons": []}, "`epsilons` must list at least one radius"),
        ({"steps": 0}, "`steps` must be >= 1, got 0"),
    ],
)
def test_bad_arguments_are_refused(trained, kwargs, message):
    trainer, data = trained
    with pytest.raises(ValueError, match=message):
        trainer.evaluate_robustness(data, **kwargs)


def test_an_empty_dataset_is_refused(tmp_path):
    trainer = AdversarialTrainer(model=tiny_bert(), args=arguments(tmp_path), data_collator=collate)
    with pytest.raises(ValueError, match="needs a non-empty `eval_dataset`"):
        trainer.evaluate_robustness(dataset(classification_rows(2)).select([]))
