"""DNE: its parameter gradient against the update rule computed by hand (neighbourhoods, sample, ascent, summed
losses), its equivalences and its refusals."""

import pytest
import torch

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.attacks import DNE
from adv_trainer.synonym_neighbourhood import two_hop_neighbourhood
from tests.test_ascc import synonyms_by_rule
from tests.test_attacks import assert_same
from tests.tiny_models import (
    arguments,
    classification_rows,
    collate,
    max_weight_difference,
    outputs_at,
    tiny_bert,
    tiny_synonyms,
    token_dirichlet,
    train,
)

DNE_ARGS = {"adv_method": "dne", "adv_alpha": 2.0, "adv_k": 2, "adv_concentration": 1.0, "adv_synonyms": 5}


@pytest.fixture
def fixed_sample(monkeypatch):
    monkeypatch.setattr(DNE, "sample", token_dirichlet)


def neighbourhood_by_rule(v, size):
    """v, its synonyms, then theirs not yet there, at most `size` (the tiny table's rule, written out)."""
    row = [v, *synonyms_by_rule(v, size - 1)]
    for s in synonyms_by_rule(v, size - 1):
        row += [t for t in synonyms_by_rule(s, 10) if t not in row]
    return row[:size]


def test_neighbourhoods_are_the_word_its_synonyms_then_theirs():
    table, first_second_hop = two_hop_neighbourhood(tiny_synonyms(), size=6)
    for v in range(2, 50):
        expected = neighbourhood_by_rule(v, 6) if synonyms_by_rule(v, 10) else [v]
        assert table.ids[v, : 1 + table.counts[v]].tolist() == expected, v
        assert first_second_hop[v] == 1 + len(synonyms_by_rule(v, 5))
    assert table.ids[5, : 1 + table.counts[5]].tolist() == [5, 6, 7, 8]  # 5 -> 6 -> 7, 8; 7's are a third hop
    assert table.ids[6, : 1 + table.counts[6]].tolist() == [6, 7, 8, 9, 10]  # 6 -> 7, 8; 7 -> 8, 9, 10; 8: none
    with pytest.raises(ValueError, match="at least 2"):
        two_hop_neighbourhood(tiny_synonyms(), size=1)


def hand_gradients(model, inputs, alpha, steps, size, weight):
    """grad_theta L(e(w_0)) + weight * sum_t grad_theta L(e(softmax z_t)), z_0 = log(w_0 + 1e-6), z_t = z_{t-1} +
    alpha * g/||g|| per position, w_0 the fixed stand-in for the Dirichlet sample."""
    table = model.get_input_embeddings().weight
    hulls = []
    for b, row in enumerate(inputs["input_ids"].tolist()):
        for t, v in enumerate(row):
            if inputs["attention_mask"][b, t] and synonyms_by_rule(v, size):
                hulls.append((b, t, neighbourhood_by_rule(v, size)))
    params = [p for p in model.parameters() if p.requires_grad]
    logits = []
    for _, _, vertices in hulls:
        w = torch.tensor([1.0 + (7 * c + j) % 5 for j, c in enumerate(vertices)])
        logits.append((w / w.sum() + 1e-6).log())
    total = [torch.zeros_like(p) for p in params]
    for t in range(steps + 1):
        leaves = [z.clone().requires_grad_() for z in logits]
        delta = torch.zeros(*inputs["input_ids"].shape, table.shape[1])
        for (b, i, vertices), z in zip(hulls, leaves, strict=True):
            delta[b, i] = z.softmax(0) @ table[vertices] - table[vertices[0]]
        loss = outputs_at(model, inputs, delta).loss
        (*grads,) = torch.autograd.grad(loss, params + leaves)
        for k, g in enumerate(grads[: len(params)]):
            total[k] += (1.0 if t == 0 else weight) * g
        logits = [z + alpha * g / g.norm() for z, g in zip(logits, grads[len(params) :], strict=True)]
    return total


def trainer_gradients(tmp_path, model, inputs, **adv):
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv), synonyms=tiny_synonyms())
    model.zero_grad()
    trainer.training_step(model, inputs)
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_the_gradient_equals_the_update_rule_computed_by_hand(tmp_path, fixed_sample, weight):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    expected = hand_gradients(model, inputs, alpha=2.0, steps=2, size=6, weight=weight)
    assert_same(trainer_gradients(tmp_path, model, inputs, **{**DNE_ARGS, "adv_weight": weight}), expected)


def test_gradient_accumulation_gives_the_update_of_one_large_batch(tmp_path, fixed_sample):
    model, rows = tiny_bert(), classification_rows(16)
    large = train(model, tmp_path / "large", rows, per_device_train_batch_size=8, **DNE_ARGS)
    small = train(
        model, tmp_path / "small", rows, per_device_train_batch_size=4, gradient_accumulation_steps=2, **DNE_ARGS
    )
    assert max_weight_difference(model, large.model) > 1e-3
    assert max_weight_difference(large.model, small.model) < 2e-6


def test_the_sample_is_a_dirichlet_over_the_neighbourhood_with_the_second_hop_decayed(tmp_path):
    torch.manual_seed(0)
    attack = DNE(alpha=1.0, steps=1, concentration=2.0, size=6, weight=1.0, synonyms=tiny_synonyms())

    class Hull:  # one position of token 5, repeated: neighbourhood [5, 6, 7, 8, 9, 10], first hop 5 and 6
        vertex_ids = torch.tensor([[5, 6, 7, 8, 9, 10]]).repeat(20000, 1)
        vertex_mask = torch.ones(20000, 6, dtype=torch.bool)

    weights = attack.sample(Hull)
    concentration = torch.tensor([2.0, 2.0, 1.0, 1.0, 1.0, 1.0])  # the word and its synonym; 0.5 x for the rest
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(20000))
    torch.testing.assert_close(weights.mean(dim=0), concentration / concentration.sum(), atol=4e-3, rtol=0)


def test_the_neighbours_rows_train_and_the_clean_pass_is_the_sample(tmp_path, fixed_sample):
    model = tiny_bert()
    inputs = collate([{"input_ids": [4, 8, 5], "labels": 0}])  # only 5 has synonyms: 6, then 7 (6's)
    names = [name for name, _ in model.named_parameters()]
    grads = dict(zip(names, trainer_gradients(tmp_path, model, inputs, **DNE_ARGS), strict=True))
    embedding = grads["bert.embeddings.word_embeddings.weight"]
    assert embedding[[6, 7]].abs().sum(dim=1).min() > 0 and embedding[[11, 13]].abs().sum() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"adv_concentration": 0.0}, "`adv_concentration` must be > 0"),
        ({"adv_synonyms": 0}, "`adv_synonyms` must be >= 1"),
        ({"adv_alpha": -1.0}, "`adv_alpha` must be > 0"),
        ({"adv_norm": "linf"}, "bounded by the convex hull"),
    ],
)
def test_invalid_values_name_the_field_the_value_and_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdversarialTrainingArguments(output_dir="unused", adv_method="dne", report_to="none", **kwargs)


def test_the_defaults():
    args = AdversarialTrainingArguments(output_dir="unused", adv_method="dne", report_to="none")
    assert (args.adv_alpha, args.adv_k, args.adv_concentration, args.adv_synonyms, args.adv_weight) == (
        10.0, 3, 1.0, 63, 1.0
    )  # fmt: skip
    assert args.adv_sparsity is None and args.adv_epsilon is None
