"""ASCC: its parameter gradient against the update rule computed by hand (synonyms, ascent and objective), its
equivalences, its hulls on a real tokenizer's WordNet table, and its refusals."""

import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.synonym_hull import SynonymHull
from adv_trainer.synonym_table import synonym_table
from scripts import run_glue
from tests.readme_examples import run_readme_example
from tests.test_attacks import assert_same
from tests.tiny_models import (
    VOCAB,
    arguments,
    classification_rows,
    collate,
    max_weight_difference,
    outputs_at,
    tiny_bert,
    tiny_synonyms,
    train,
)

ASCC = {"adv_method": "ascc", "adv_alpha": 0.5, "adv_k": 2, "adv_sparsity": 0.3, "adv_synonyms": 2, "adv_weight": 2.0}


def synonyms_by_rule(v, most):
    """`tiny_synonyms`' rule written out: v + 1, ..., v + (v mod 4) below VOCAB, the first `most` of them."""
    return [s for s in range(v + 1, v + 1 + v % 4) if s < VOCAB][:most] if v >= 2 else []


def kl(p_logits, q_logits):
    return F.kl_div(F.log_softmax(q_logits, -1), F.log_softmax(p_logits, -1), log_target=True, reduction="none").sum(
        -1
    )


def hand_gradients(model, inputs, alpha, steps, sparsity, most, beta):
    """grad_theta [L(e) + beta * mean_b KL(f(e) || f(e(w_K)))], w_K from `steps` Adam steps (maximising) on each
    hull position's logits, from 0, of KL(p || f(e(w))) - sparsity * (sum of the example's entropies) / tokens."""
    table = model.get_input_embeddings().weight
    hulls = [
        (b, t, [v, *synonyms_by_rule(v, most)])
        for b, row in enumerate(inputs["input_ids"].tolist())
        for t, v in enumerate(row)
        if inputs["attention_mask"][b, t] and synonyms_by_rule(v, most)
    ]
    tokens = inputs["attention_mask"].sum(1).float()

    def delta_of(weights, rows):
        delta = torch.zeros(*inputs["input_ids"].shape, rows.shape[1])
        for (b, t, vertices), w in zip(hulls, weights, strict=True):
            delta[b, t] = w @ rows[vertices] - rows[vertices[0]]
        return delta

    model.eval()
    with torch.no_grad():
        target = model(**inputs).logits
    logits = [torch.zeros(len(vertices), requires_grad=True) for _, _, vertices in hulls]
    optimizer = torch.optim.Adam(logits, lr=alpha, maximize=True)
    for _ in range(steps):
        weights = [logit.softmax(0) for logit in logits]
        perturbed = outputs_at(model, inputs, delta_of(weights, table.detach())).logits
        entropy = torch.zeros(len(tokens))
        for (b, _, _), w in zip(hulls, weights, strict=True):
            entropy = entropy + F.one_hot(torch.tensor(b), len(tokens)) * -(w * w.log()).sum()
        objective = (kl(target, perturbed) - sparsity * entropy / tokens).sum()
        for logit, grad in zip(logits, torch.autograd.grad(objective, logits), strict=True):
            logit.grad = grad
        optimizer.step()
    model.train()
    delta = delta_of([logit.detach().softmax(0) for logit in logits], table)
    clean = model(**inputs)
    total = clean.loss + beta * kl(clean.logits, outputs_at(model, inputs, delta).logits).mean()
    return torch.autograd.grad(total, [p for p in model.parameters() if p.requires_grad])


def trainer_gradients(tmp_path, model, inputs, **adv):
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv), synonyms=tiny_synonyms())
    model.zero_grad()
    trainer.training_step(model, inputs)
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


def test_the_gradient_equals_the_update_rule_computed_by_hand(tmp_path):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    expected = hand_gradients(model, inputs, alpha=0.5, steps=2, sparsity=0.3, most=2, beta=2.0)
    assert_same(trainer_gradients(tmp_path, model, inputs, **ASCC), expected)


def test_the_synonyms_rows_train_and_words_without_synonyms_are_not_perturbed(tmp_path):
    model = tiny_bert()
    rows = [{"input_ids": [4, 8, 12, 5], "labels": 0}, {"input_ids": [16, 20, 9], "labels": 1}]  # only 5 and 9 have
    inputs = collate(rows)
    hull = SynonymHull(tiny_synonyms(), inputs["input_ids"], inputs["attention_mask"], max_synonyms=2)
    assert hull.positions.nonzero().tolist() == [[0, 3], [1, 2]]
    assert hull.vertex_ids.tolist() == [[5, 6], [9, 10]] and hull.vertex_mask.all()
    names = [name for name, _ in model.named_parameters()]
    grads = dict(zip(names, trainer_gradients(tmp_path, model, inputs, **ASCC), strict=True))
    embedding = grads["bert.embeddings.word_embeddings.weight"]
    assert embedding[[6, 10]].abs().sum(dim=1).min() > 0  # synonyms that are in no input row train through the hull
    assert embedding[[7, 11, 13]].abs().sum() == 0  # neither in the inputs nor in a hull


def test_beta_zero_is_plain_fine_tuning_and_beta_changes_the_update(tmp_path):
    model, rows = tiny_bert(), classification_rows(8)
    plain = train(model, tmp_path / "none", rows, per_device_train_batch_size=4)
    zero = train(model, tmp_path / "zero", rows, per_device_train_batch_size=4, **{**ASCC, "adv_weight": 0.0})
    ascc = train(model, tmp_path / "ascc", rows, per_device_train_batch_size=4, **ASCC)
    assert max_weight_difference(plain.model, zero.model) < 1e-6
    assert max_weight_difference(plain.model, ascc.model) > 1e-4


def test_gradient_accumulation_gives_the_update_of_one_large_batch(tmp_path):
    model, rows = tiny_bert(), classification_rows(16)
    large = train(model, tmp_path / "large", rows, per_device_train_batch_size=8, **ASCC)
    small = train(
        model, tmp_path / "small", rows, per_device_train_batch_size=4, gradient_accumulation_steps=2, **ASCC
    )
    assert max_weight_difference(model, large.model) > 1e-3
    assert max_weight_difference(large.model, small.model) < 2e-6


def test_the_ascent_leaves_the_centroid_for_a_vertex_and_sparsity_concentrates_the_weights(tmp_path, monkeypatch):
    seen = {}
    original = SynonymHull.weights

    def recording(hull, logits):
        weights = original(hull, logits)
        seen["weights"] = weights.detach()
        return weights

    monkeypatch.setattr(SynonymHull, "weights", recording)
    model, inputs = tiny_bert(), collate(classification_rows(4))
    entropies = []
    for sparsity in (0.0, 5.0):
        trainer_gradients(
            tmp_path, copy.deepcopy(model), inputs, **{**ASCC, "adv_alpha": 1.0, "adv_k": 5, "adv_sparsity": sparsity}
        )
        w = seen["weights"]
        entropies.append(-(torch.where(w > 0, w * w.clamp_min(1e-30).log(), 0.0)).sum(-1).mean())
    uniform = (w > 0).sum(-1).float().log().mean()  # the centroids' entropy, where the ascent starts
    assert entropies[1] < entropies[0] < 0.7 * uniform


def test_a_trainer_without_a_tokenizer_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="processing_class=tokenizer"):
        AdversarialTrainer(model=tiny_bert(), args=arguments(tmp_path, adv_method="ascc"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"adv_sparsity": -1.0}, "`adv_sparsity` must be >= 0"),
        ({"adv_synonyms": 0}, "`adv_synonyms` must be >= 1"),
        ({"adv_k": 0}, "`adv_k` must be >= 1"),
        ({"adv_alpha": 0.0}, "`adv_alpha` must be > 0"),
        ({"adv_norm": "linf"}, "bounded by the convex hull"),
    ],
)
def test_invalid_values_name_the_field_the_value_and_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdversarialTrainingArguments(output_dir="unused", adv_method="ascc", report_to="none", **kwargs)


def test_the_defaults_and_the_fields_of_other_methods():
    args = AdversarialTrainingArguments(output_dir="unused", adv_method="ascc", report_to="none")
    assert (args.adv_alpha, args.adv_k, args.adv_weight, args.adv_synonyms) == (1.0, 3, 4.0, 19)
    assert args.adv_sparsity == pytest.approx(15 / 64)
    assert args.adv_epsilon is None and args.adv_init_mag is None
    with pytest.warns(UserWarning, match="`adv_sparsity=0.5` is not used by `adv_method='pgd'`"):
        pgd = AdversarialTrainingArguments(output_dir="unused", adv_method="pgd", adv_sparsity=0.5, report_to="none")
    assert pgd.adv_sparsity is None


def test_hulls_of_a_real_tokenizer_are_its_wordnet_synonyms(wordnet_data, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(run_glue.resolve_model_path(run_glue.OFFLINE_MINILM))
    table = synonym_table(tokenizer, cache_dir=tmp_path)
    inputs = tokenizer(["the movie is a film"], return_tensors="pt")
    hull = SynonymHull(table, inputs["input_ids"], inputs["attention_mask"], max_synonyms=3)
    words = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
    assert [words[t] for t in hull.positions[0].nonzero()[:, 0].tolist()] == ["movie", "film"]  # not the, is, a
    vertices = [tokenizer.convert_ids_to_tokens(ids) for ids in hull.vertex_ids.tolist()]
    assert vertices[0] == ["movie", "film", "picture", "pic"]  # the word, then its first 3 one-token synonyms
    assert vertices[1][0] == "film" and hull.vertex_mask.sum(dim=1).tolist() == [4, 4]


@pytest.mark.slow
def test_the_documented_example_trains_with_synonym_hulls(wordnet_data, monkeypatch, tmp_path):
    monkeypatch.setenv("ADV_TRAINER_CACHE", str(tmp_path / "cache"))
    example = run_readme_example("### Training with ASCC", monkeypatch, tmp_path)
    logs = example.trainer.state.log_history
    assert example.trainer.state.global_step == 2
    assert logs[0]["adv_loss"] > 0 and logs[0]["adv_delta_norm"] > 0 and logs[0]["adv_skipped"] == 0
