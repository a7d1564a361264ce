"""Batches that are not one (B, T) row per example: multiple choice, padding-free packing, token-level heads."""

import numpy as np
import pytest
import torch
from transformers import (
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForTokenClassification,
    DataCollatorWithFlattening,
    RobertaForMultipleChoice,
)

from adv_trainer import AdversarialTrainer
from adv_trainer.prediction_divergence import prediction_divergence
from adv_trainer.robustness.embedding_pgd import robust_predictions
from tests.test_attacks import (
    EPS,
    assert_fgm_matches_the_hand_computation,
    assert_same,
    input_grad,
    sequences,
    trainer_gradients,
    unit,
    zeros,
)
from tests.tiny_models import (
    VOCAB,
    arguments,
    classification_rows,
    collate,
    dataset,
    tiny_bert,
    tiny_gpt2,
    tiny_llama,
    tiny_roberta,
)

CHOICES = 3


def multiple_choice_rows(n=4, seed=0):
    """Examples of CHOICES token sequences of varying lengths each, and the index of the right one."""
    rows = classification_rows(n * CHOICES, seed=seed, max_len=8)
    return [
        {"input_ids": [row["input_ids"] for row in rows[i * CHOICES : (i + 1) * CHOICES]], "labels": i % CHOICES}
        for i in range(n)
    ]


def collate_choices(rows):
    """`input_ids`/`attention_mask` of shape (examples, choices, T), padded over all choices."""
    flat = collate([{"input_ids": ids, "labels": 0} for row in rows for ids in row["input_ids"]])
    length = flat["input_ids"].shape[1]
    return {
        "input_ids": flat["input_ids"].view(len(rows), CHOICES, length),
        "attention_mask": flat["attention_mask"].view(len(rows), CHOICES, length),
        "labels": torch.tensor([row["labels"] for row in rows]),
    }


def logits_at(model, inputs, delta, grad=False):
    handle = model.get_input_embeddings().register_forward_hook(lambda module, args, output: output + delta)
    try:
        with torch.set_grad_enabled(grad):
            return model(**inputs).logits
    finally:
        handle.remove()


@pytest.mark.parametrize("make_model", [tiny_bert, tiny_roberta], ids=["bert", "roberta"])
def test_multiple_choice_gets_one_perturbation_per_example_and_choice(tmp_path, added, make_model):
    head = {tiny_bert: BertForMultipleChoice, tiny_roberta: RobertaForMultipleChoice}[make_model]
    model, inputs = make_model(head=head), collate_choices(multiple_choice_rows())
    assert inputs["input_ids"].shape[:2] == (4, CHOICES)
    assert_fgm_matches_the_hand_computation(tmp_path, model, inputs)
    final = added[-1]  # (examples·choices, T, E)
    torch.testing.assert_close(final.flatten(1).norm(dim=1), torch.full((4 * CHOICES,), EPS))
    assert (final[sequences(inputs["attention_mask"]) == 0] == 0).all()


def test_multiple_choice_robustness_attack_is_the_update_rule_by_hand():
    model, inputs = tiny_bert(head=BertForMultipleChoice), collate_choices(multiple_choice_rows())
    # One step of size eps from delta = 0: delta = eps g / ||g|| per (example, choice) sequence.
    delta = EPS * unit(input_grad(model, inputs, zeros(model, inputs)), sequences(inputs["attention_mask"]))
    logits, labels = robust_predictions(model, [inputs], EPS, 1, "l2", gather=lambda t: t, alpha=EPS)
    torch.testing.assert_close(logits, logits_at(model, inputs, delta))
    assert logits.shape == (4, CHOICES) and torch.equal(labels, inputs["labels"])


def test_multiple_choice_evaluate_robustness_at_radius_zero_is_the_clean_accuracy(tmp_path):
    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())}

    trainer = AdversarialTrainer(
        model=tiny_bert(head=BertForMultipleChoice),
        args=arguments(tmp_path, per_device_eval_batch_size=4),
        data_collator=collate_choices,
        compute_metrics=accuracy,
    )
    data = dataset(multiple_choice_rows(8))
    metrics = trainer.evaluate_robustness(data, epsilons=[0.0, 1.0], steps=2)
    assert metrics["eval_robust_accuracy_eps0"] == trainer.evaluate(data)["eval_accuracy"]
    assert metrics["eval_robust_accuracy_eps1"] <= metrics["eval_robust_accuracy_eps0"]


@pytest.mark.parametrize("method", ["r3f", "smart"])
def test_multiple_choice_smoothness_regularises_each_examples_prediction_over_its_choices(tmp_path, added, method):
    model, inputs = tiny_bert(head=BertForMultipleChoice), collate_choices(multiple_choice_rows())
    adv = {"adv_method": method, "adv_weight": 1.0, "adv_init_mag": 0.05, "adv_epsilon": EPS, "adv_k": 1}
    got = trainer_gradients(tmp_path, model, inputs, **adv)
    delta = added[-2]  # the final perturbation, one per (example, choice) sequence (the clean forward runs last)
    assert delta.shape[0] == 4 * CHOICES and (delta[sequences(inputs["attention_mask"]) == 0] == 0).all()
    if method == "smart":  # projected per sequence; R3F's noise is per coordinate
        assert (delta.flatten(1).norm(dim=1) <= EPS * (1 + 1e-5)).all()
    # grad_theta [L(e) + lambda * D(f(e), f(e + delta))], D between the (examples, choices) softmax predictions
    clean = model(**inputs)
    divergence = prediction_divergence(clean.logits, logits_at(model, inputs, delta, grad=True)).mean()
    params = [p for p in model.parameters() if p.requires_grad]
    assert_same(got, torch.autograd.grad(clean.loss + divergence, params))


def test_token_classification_follows_the_update_rule_by_hand(tmp_path):
    rows = classification_rows(4)
    for row in rows:
        row["labels"] = [token % 3 for token in row["input_ids"]]
    assert_fgm_matches_the_hand_computation(
        tmp_path, tiny_bert(num_labels=3, head=BertForTokenClassification), collate(rows)
    )


def test_extractive_question_answering_follows_the_update_rule_by_hand(tmp_path):
    inputs = collate(classification_rows(4, min_len=4))
    del inputs["labels"]
    inputs["start_positions"] = torch.tensor([0, 1, 2, 1])
    inputs["end_positions"] = torch.tensor([1, 3, 2, 2])
    assert_fgm_matches_the_hand_computation(tmp_path, tiny_bert(head=BertForQuestionAnswering), inputs)


LENGTHS = (12, 7, 6, 10)


def packing_rows(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(2, VOCAB, (n,), generator=generator).tolist()} for n in LENGTHS]


def padded(rows):
    return collate([{**row, "labels": row["input_ids"]} for row in rows])


def split(packed_positions):
    """(1, sum(LENGTHS), E) -> one (length, E) tensor per packed sequence."""
    return torch.split(packed_positions[0], LENGTHS)


@pytest.mark.parametrize(
    "make_model,collator",
    [
        (tiny_gpt2, {}),
        (tiny_gpt2, {"return_seq_idx": True}),
        (tiny_gpt2, {"return_flash_attn_kwargs": True}),
        (tiny_llama, {}),
    ],
    ids=["gpt2-position-ids", "gpt2-seq-idx", "gpt2-cu-seq-lens", "llama-position-ids"],
)
def test_packed_sequences_get_the_perturbation_and_update_of_the_padded_batch(tmp_path, added, make_model, collator):
    model, rows = make_model(), packing_rows()
    packed = DataCollatorWithFlattening(**collator)(rows)
    assert packed["input_ids"].shape == (1, sum(LENGTHS)) and "attention_mask" not in packed
    packed_gradients = trainer_gradients(tmp_path, model, packed, adv_method="fgm", adv_epsilon=EPS)
    packed_delta = added[-1]
    padded_gradients = trainer_gradients(tmp_path, model, padded(rows), adv_method="fgm", adv_epsilon=EPS)
    padded_delta = added[-1]
    for i, sequence_delta in enumerate(split(packed_delta)):
        assert sequence_delta.norm().item() == pytest.approx(EPS, rel=1e-5)
        torch.testing.assert_close(sequence_delta, padded_delta[i, : LENGTHS[i]], atol=1e-6, rtol=1e-4)
    assert_same(packed_gradients, padded_gradients, atol=1e-5)


@pytest.mark.parametrize(
    "adv",
    [
        {"adv_method": "pgd", "adv_epsilon": EPS, "adv_alpha": 0.2, "adv_k": 3},
        {"adv_method": "freelb", "adv_epsilon": EPS, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": 0.0},
        {"adv_method": "fgm", "adv_norm": "linf", "adv_epsilon": 0.01},
        {"adv_method": "fgm", "adv_scope": "vocab", "adv_epsilon": EPS},
        {"adv_method": "awp"},
        {"adv_method": "creat", "adv_epsilon": EPS, "adv_alpha": EPS, "adv_tau": 5.0},
    ],
    ids=["pgd", "freelb", "fgm-linf", "fgm-vocab", "awp", "creat"],
)
def test_packed_and_padded_batches_give_the_same_update(tmp_path, adv):
    model, rows = tiny_gpt2(), packing_rows()
    packed = trainer_gradients(tmp_path, model, DataCollatorWithFlattening()(rows), **adv)
    assert_same(packed, trainer_gradients(tmp_path, model, padded(rows), **adv), atol=1e-5)


class BertIgnoringPositionIds(BertForTokenClassification):
    """A BERT that drops `position_ids`, so it attends across packed sequences whatever the transformers version
    (BERT itself masks per packed sequence from transformers 5.25, and did not before)."""

    def forward(self, *args, position_ids=None, **kwargs):
        return super().forward(*args, **kwargs)


def test_a_packed_row_that_the_model_does_not_honour_is_refused(tmp_path):
    model = tiny_bert(num_labels=VOCAB, head=BertIgnoringPositionIds)
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method="fgm"))
    with pytest.raises(ValueError, match="BertIgnoringPositionIds does not attend per packed sequence"):
        trainer.training_step(model, DataCollatorWithFlattening()(packing_rows()))


def test_a_packed_row_without_position_ids_is_refused(tmp_path):
    model = tiny_gpt2()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method="fgm"))
    batch = DataCollatorWithFlattening(return_position_ids=False, return_flash_attn_kwargs=True)(packing_rows())
    with pytest.raises(ValueError, match="`cu_seq_lens_q` marks their boundaries\\) but has no `position_ids`"):
        trainer.training_step(model, batch)


@pytest.mark.parametrize("method", ["r3f", "smart"])
def test_smoothness_methods_refuse_the_token_level_logits_of_a_packed_row(tmp_path, method):
    model = tiny_gpt2()
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, adv_method=method))
    with pytest.raises(ValueError, match=r"got \(1, 35, 50\) for 4 examples"):
        trainer.training_step(model, DataCollatorWithFlattening()(packing_rows()))


def test_robustness_attack_on_a_packed_row_is_per_sequence(added):
    model, rows = tiny_gpt2(), packing_rows()
    model.config.use_cache = False  # as the Trainer sets it; with a cache, GPT-2 does not attend per sequence
    packed = DataCollatorWithFlattening()(rows)
    robust_predictions(model, [packed], EPS, 1, "l2", gather=lambda t: t, alpha=EPS)
    packed_delta = added[-1]
    robust_predictions(model, [padded(rows)], EPS, 1, "l2", gather=lambda t: t, alpha=EPS)
    for i, sequence_delta in enumerate(split(packed_delta)):
        assert sequence_delta.norm().item() == pytest.approx(EPS, rel=1e-5)
        torch.testing.assert_close(sequence_delta, added[-1][i, : LENGTHS[i]], atol=1e-6, rtol=1e-4)
    model.config.use_cache = True
    with pytest.raises(ValueError, match="GPT2LMHeadModel does not attend per packed sequence"):
        robust_predictions(model, [packed], EPS, 1, "l2", gather=lambda t: t, alpha=EPS)
