"""A2T: its parameter gradient against the greedy search and the weighting computed by hand, the examples it chooses,
its equivalences, its swaps, and its refusals."""

import hashlib
import math
import types

import pytest
import torch
import torch.nn.functional as F
from transformers import BertForMultipleChoice, BertForTokenClassification

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.attacks import A2T
from adv_trainer.perturbed_passes import PerturbedPasses
from tests.test_ascc import synonyms_by_rule
from tests.test_attacks import assert_same
from tests.test_layouts import collate_choices, multiple_choice_rows
from tests.tiny_models import (
    arguments,
    classification_rows,
    collate,
    max_weight_difference,
    tiny_bert,
    tiny_synonyms,
    train,
)

A2T_ARGS = {"adv_method": "a2t", "adv_fraction": 0.5, "adv_synonyms": 2, "adv_weight": 2.0}


def hand_search(model, inputs, b, importance, most, events):
    """A2T's greedy search for example b written out, one forward per candidate: its attended positions with
    synonyms by decreasing importance, at most max(ceil(0.1 * tokens), 4) of them tried, the swap of the highest loss
    kept when it raises the loss, until the prediction is wrong."""
    ids, mask, label = inputs["input_ids"][b], inputs["attention_mask"][b], inputs["labels"][b]

    def score(row):
        logits = model(input_ids=row[None], attention_mask=mask[None]).logits[0]
        return F.cross_entropy(logits, label).item(), logits.argmax().item() != label.item()

    budget = max(math.ceil(0.1 * int(mask.sum())), 4)
    positions = [t for t in range(len(ids)) if mask[t] and synonyms_by_rule(int(ids[t]), most)]
    order = sorted(positions, key=lambda t: -importance[t])
    row = ids.clone()
    loss, done = score(row)
    if done:
        events.add("already wrong")
    for t in order[:budget]:
        if done:
            break
        tried = []
        for synonym in synonyms_by_rule(int(ids[t]), most):
            candidate = row.clone()
            candidate[t] = synonym
            tried.append((*score(candidate), candidate))
        best_loss, flipped, best = max(tried, key=lambda entry: entry[0])  # the first of the highest
        if best_loss > loss:
            row, loss, done = best, best_loss, flipped
            events.add("flipped" if flipped else "swapped")
        else:
            events.add("no gain")
    if not done and len(order) > budget:
        events.add("budget spent")
    return row


def hand_gradients(model, inputs, chosen, most, alpha, events):
    """grad_theta [L(x) + alpha * (1/B) * sum_{chosen b} l(x'_b)], x'_b by `hand_search` from the importance
    ||dL/de||_1 of the clean loss L (the mean over the batch of B)."""
    captured = []

    def keep(module, args, output):
        output.retain_grad()
        captured.append(output)

    handle = model.get_input_embeddings().register_forward_hook(keep)
    model(**inputs).loss.backward()
    handle.remove()
    importance = captured[0].grad.abs().sum(dim=-1)  # (B, T)
    model.zero_grad()
    model.eval()
    with torch.no_grad():
        adversarial = torch.stack(
            [hand_search(model, inputs, b, importance[b].tolist(), most, events) for b in chosen]
        )
    model.train()
    clean = model(**inputs).loss
    logits = model(input_ids=adversarial, attention_mask=inputs["attention_mask"][chosen]).logits
    adversarial_loss = F.cross_entropy(logits, inputs["labels"][chosen], reduction="sum") / len(importance)
    return torch.autograd.grad(clean + alpha * adversarial_loss, [p for p in model.parameters() if p.requires_grad])


def trainer_gradients(tmp_path, model, inputs, **adv):
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **adv), synonyms=tiny_synonyms())
    model.zero_grad()
    trainer.training_step(model, inputs)
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_the_gradient_equals_the_greedy_search_and_weighting_computed_by_hand(tmp_path, gamma):
    model = tiny_bert()
    inputs = collate(classification_rows(8, seed=3, min_len=6, max_len=24))
    chosen = [b for b, attacked in enumerate(chosen_by_rule(inputs, seed=0, step=0, gamma=gamma)) if attacked]
    assert len(chosen) == 8 if gamma == 1 else 0 < len(chosen) < 8
    events = set()
    expected = hand_gradients(model, inputs, chosen, most=2, alpha=2.0, events=events)
    if gamma == 1:  # the batch takes every branch of the search
        assert events == {"already wrong", "swapped", "flipped", "no gain", "budget spent"}
    assert_same(trainer_gradients(tmp_path, model, inputs, **{**A2T_ARGS, "adv_fraction": gamma}), expected)


def chosen_by_rule(inputs, seed, step, gamma):
    """The examples A2T attacks, written out: BLAKE2b of "seed:step:" and the attended ids, as a fraction of 2^64."""
    chosen = []
    for row, mask in zip(inputs["input_ids"].tolist(), inputs["attention_mask"].tolist(), strict=True):
        text = f"{seed}:{step}:" + ",".join(str(v) for v, m in zip(row, mask, strict=True) if m)
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        chosen.append(int.from_bytes(digest, "big") / 2**64 < gamma)
    return chosen


def test_a_fraction_gamma_is_chosen_by_the_hash_of_the_tokens_seed_and_step():
    inputs = collate(classification_rows(2000, seed=1))
    attack = A2T(fraction=0.2, max_synonyms=2, weight=1.0, synonyms=tiny_synonyms())
    choices = []
    for seed, step in [(0, 0), (0, 1), (1, 0)]:
        trainer = types.SimpleNamespace(
            args=types.SimpleNamespace(seed=seed), state=types.SimpleNamespace(global_step=step)
        )
        chosen = attack.chosen(types.SimpleNamespace(inputs=inputs, trainer=trainer))
        assert chosen.tolist() == chosen_by_rule(inputs, seed, step, 0.2)
        assert abs(chosen.float().mean().item() - 0.2) < 0.03
        choices.append(chosen)
    assert (choices[0] != choices[1]).any() and (choices[0] != choices[2]).any()
    padded = collate([{"input_ids": [5, 6, 7], "labels": 0}, {"input_ids": [5, 6, 7, 8, 9, 10], "labels": 1}])
    trainer = types.SimpleNamespace(args=types.SimpleNamespace(seed=0), state=types.SimpleNamespace(global_step=0))
    alone = collate([{"input_ids": [5, 6, 7], "labels": 0}])
    every = A2T(fraction=1.0, max_synonyms=2, weight=1.0, synonyms=tiny_synonyms())
    assert every.chosen(types.SimpleNamespace(inputs=padded, trainer=trainer)).tolist() == [True, True]
    with_padding = attack.chosen(types.SimpleNamespace(inputs=padded, trainer=trainer))[0]
    assert with_padding == attack.chosen(types.SimpleNamespace(inputs=alone, trainer=trainer))[0]  # padding: no say


def test_the_chosen_examples_are_the_same_however_the_batch_is_split(tmp_path, monkeypatch):
    seen = []
    original = A2T.chosen

    def recording(attack, passes):
        chosen = original(attack, passes)
        ids, mask = passes.inputs["input_ids"], passes.inputs["attention_mask"]
        for row, attended in zip(ids[chosen].tolist(), mask[chosen].tolist(), strict=True):
            seen.append((passes.trainer.state.global_step, tuple(v for v, m in zip(row, attended, strict=True) if m)))
        return chosen

    monkeypatch.setattr(A2T, "chosen", recording)
    model, rows = tiny_bert(), classification_rows(16)
    runs = []
    for batch, accumulation in [(8, 1), (4, 2), (2, 4)]:
        seen.clear()
        train(model, tmp_path / str(batch), rows, per_device_train_batch_size=batch,
              gradient_accumulation_steps=accumulation, **A2T_ARGS)  # fmt: skip
        runs.append(sorted(set(seen)))
    assert runs[0] == runs[1] == runs[2] and 0 < len(runs[0]) < 16


def test_gradient_accumulation_gives_the_update_of_one_large_batch(tmp_path):
    model, rows = tiny_bert(), classification_rows(16)
    large = train(model, tmp_path / "large", rows, per_device_train_batch_size=8, **A2T_ARGS)
    small = train(
        model, tmp_path / "small", rows, per_device_train_batch_size=4, gradient_accumulation_steps=2, **A2T_ARGS
    )
    plain = train(model, tmp_path / "plain", rows, per_device_train_batch_size=8)
    assert max_weight_difference(model, large.model) > 1e-3
    assert max_weight_difference(plain.model, large.model) > 1e-4  # the adversarial term took part
    assert max_weight_difference(large.model, small.model) < 2e-6
    assert [log["adv_loss"] for log in large.state.log_history[:2]] == pytest.approx(
        [log["adv_loss"] for log in small.state.log_history[:2]], rel=1e-5
    )


def test_alpha_zero_and_no_chosen_example_are_plain_fine_tuning(tmp_path, monkeypatch):
    final_passes = []
    for name in ("examples_pass", "clean_as_final"):
        original = getattr(PerturbedPasses, name)

        def counting(passes, *args, _original=original, _name=name):
            final_passes.append(_name)
            return _original(passes, *args)

        monkeypatch.setattr(PerturbedPasses, name, counting)
    model, rows = tiny_bert(), classification_rows(8)
    plain = train(model, tmp_path / "none", rows, per_device_train_batch_size=4)
    zero = train(model, tmp_path / "zero", rows, per_device_train_batch_size=4, **{**A2T_ARGS, "adv_weight": 0.0})
    assert len(final_passes) == 2  # one final pass per micro-batch (`clean_as_final` where none is chosen)
    final_passes.clear()
    unchosen = train(model, tmp_path / "unchosen", rows, per_device_train_batch_size=4,
                     **{**A2T_ARGS, "adv_fraction": 1e-12})  # fmt: skip
    assert final_passes == ["clean_as_final", "clean_as_final"]  # one final pass per micro-batch
    assert max_weight_difference(plain.model, zero.model) < 1e-6
    assert max_weight_difference(plain.model, unchosen.model) < 1e-6
    assert [log["adv_loss"] for log in unchosen.state.log_history[:2]] == [0.0, 0.0]


def test_every_swap_is_a_synonym_of_its_token_and_at_most_the_budget_per_example(tmp_path, monkeypatch):
    recorded, training = [], []
    original, original_logits = PerturbedPasses.examples_pass, PerturbedPasses.example_logits

    def recording(passes, examples, input_ids, weight):
        recorded.append((passes.inputs["input_ids"][examples], passes.inputs["attention_mask"][examples], input_ids))
        training.append(passes.model.training)
        return original(passes, examples, input_ids, weight)

    def scoring(passes, examples, input_ids):
        training.append(passes.model.training)
        return original_logits(passes, examples, input_ids)

    monkeypatch.setattr(PerturbedPasses, "examples_pass", recording)
    monkeypatch.setattr(PerturbedPasses, "example_logits", scoring)
    model = tiny_bert()
    # Confident predictions rarely flip, so the budget is what stops the search; its floor 1 lets it bind early.
    with torch.no_grad():
        model.classifier.weight.mul_(30.0)
    rows = classification_rows(16, seed=2, min_len=12, max_len=30)
    trainer = AdversarialTrainer(
        model=model, args=arguments(tmp_path, **{**A2T_ARGS, "adv_fraction": 1.0, "adv_synonyms": 3}),
        synonyms=tiny_synonyms(),
    )  # fmt: skip
    trainer.attack.min_words = 1
    for batch in (rows[:8], rows[8:]):
        trainer.training_step(model, collate(batch))
    swaps = []
    for original_ids, mask, adversarial in recorded:
        for before, attended, after in zip(original_ids, mask, adversarial, strict=True):
            changed = (before != after).nonzero()[:, 0].tolist()
            for t in changed:
                assert attended[t] and int(after[t]) in synonyms_by_rule(int(before[t]), 3)
            assert len(changed) <= math.ceil(0.1 * int(attended.sum()))
            swaps.append(len(changed))
    assert len(swaps) == 16 and max(swaps) == 3  # rows of 21 to 30 tokens reach a budget of 3
    assert training.count(True) == 2 and training[-1]  # the search without dropout, the final pass with it


def test_a_multiple_choice_example_is_swapped_across_its_choices_and_weighs_as_its_clean_example(
    tmp_path, monkeypatch
):
    recorded = []
    original = PerturbedPasses.examples_pass

    def recording(passes, examples, input_ids, weight):
        recorded.append((examples, input_ids))
        return original(passes, examples, input_ids, weight)

    monkeypatch.setattr(PerturbedPasses, "examples_pass", recording)
    model, inputs = tiny_bert(head=BertForMultipleChoice), collate_choices(multiple_choice_rows(6))
    gradients = trainer_gradients(tmp_path, model, inputs, **A2T_ARGS)
    [(examples, adversarial)] = recorded
    assert adversarial.shape == (len(examples), *inputs["input_ids"].shape[1:]) and 0 < len(examples) < 6
    before, mask = inputs["input_ids"][examples], inputs["attention_mask"][examples]
    changed = (before != adversarial).nonzero().tolist()
    assert changed and all(mask[b, c, t] for b, c, t in changed)
    assert all(int(adversarial[b, c, t]) in synonyms_by_rule(int(before[b, c, t]), 2) for b, c, t in changed)
    clean = model(**inputs).loss
    logits = model(input_ids=adversarial, attention_mask=mask).logits  # (A, choices)
    total = clean + 2.0 * F.cross_entropy(logits, inputs["labels"][examples], reduction="sum") / 6
    assert_same(gradients, torch.autograd.grad(total, [p for p in model.parameters() if p.requires_grad]))


def test_token_level_and_regression_heads_are_refused_with_the_fix(tmp_path):
    rows = classification_rows(4)
    token_rows = [{**row, "labels": [0] * len(row["input_ids"])} for row in rows]
    with pytest.raises(ValueError, match="one class index per example.*use fgm, pgd or freelb"):
        train(tiny_bert(head=BertForTokenClassification), tmp_path / "token", token_rows, **A2T_ARGS)
    float_rows = [{**row, "labels": float(row["labels"])} for row in rows]
    with pytest.raises(ValueError, match="one class index per example"):
        train(tiny_bert(num_labels=1), tmp_path / "regression", float_rows, **A2T_ARGS)

    def squared_error(outputs, labels, num_items_in_batch=None):
        return (outputs.logits.squeeze(-1) - labels.float()).pow(2).mean()

    with pytest.raises(ValueError, match="attacks classifiers.*1 logit per example"):
        train(tiny_bert(num_labels=1), tmp_path / "one-logit", rows, compute_loss_func=squared_error,
              **{**A2T_ARGS, "adv_fraction": 1.0})  # fmt: skip


def test_a_batch_without_input_ids_is_refused(tmp_path):
    model, inputs = tiny_bert(), collate(classification_rows(4))
    embeds = model.get_input_embeddings()(inputs.pop("input_ids")).detach()
    embedded = {**inputs, "inputs_embeds": embeds}
    trainer = AdversarialTrainer(model=model, args=arguments(tmp_path, **A2T_ARGS), synonyms=tiny_synonyms())
    with pytest.raises(ValueError, match="swaps the batch's tokens for synonyms and needs `input_ids`"):
        trainer.training_step(model, embedded)


def test_a_trainer_without_a_tokenizer_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="processing_class=tokenizer"):
        AdversarialTrainer(model=tiny_bert(), args=arguments(tmp_path, adv_method="a2t"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"adv_fraction": 0.0}, r"`adv_fraction` must be in \(0, 1\], got 0.0.*adv_method='none'"),
        ({"adv_fraction": 1.5}, r"`adv_fraction` must be in \(0, 1\], got 1.5"),
        ({"adv_fraction": math.nan}, r"`adv_fraction` must be in \(0, 1\], got nan"),
        ({"adv_synonyms": 0}, "`adv_synonyms` must be >= 1"),
        ({"adv_weight": -1.0}, "`adv_weight` must be >= 0"),
        ({"adv_norm": "linf"}, "swaps words for synonyms, with no norm. Leave `adv_norm` at 'l2'"),
        ({"adv_scope": "vocab"}, "needs `adv_scope='example'`"),
    ],
)
def test_invalid_values_name_the_field_the_value_and_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdversarialTrainingArguments(output_dir="unused", adv_method="a2t", report_to="none", **kwargs)


def test_the_defaults_and_the_fields_of_other_methods():
    args = AdversarialTrainingArguments(output_dir="unused", adv_method="a2t", report_to="none")
    assert (args.adv_fraction, args.adv_synonyms, args.adv_weight) == (0.2, 20, 1.0)
    assert args.adv_epsilon is None and args.adv_k is None and args.adv_alpha is None
    with pytest.warns(UserWarning, match="`adv_fraction=0.5` is not used by `adv_method='pgd'`"):
        pgd = AdversarialTrainingArguments(output_dir="unused", adv_method="pgd", adv_fraction=0.5, report_to="none")
    assert pgd.adv_fraction is None
