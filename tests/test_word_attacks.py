"""PWWS and DeepWordBug against their rules computed by hand, their constraints and budgets, and in `run_glue.py`."""

import json
import random

import pytest
import torch

from adv_trainer.robustness import PWWS, DeepWordBug
from adv_trainer.robustness.deepwordbug import character_edits
from adv_trainer.robustness.word_attack import is_word
from adv_trainer.synonyms import word_synonyms
from adv_trainer.vocabulary import STOP_WORDS
from tests.glue_files import shared_glue
from tests.test_embedding_neighbour import SENTENCE, classifier, tokenizer  # noqa: F401  (tokenizer is a fixture)
from tests.test_run_glue import run, tiny_model  # noqa: F401  (tiny_model is a fixture)

SENTENCES = [
    SENTENCE,
    "a dull and lifeless film that never finds its footing",
    "the actors give warm performances in a clever story",
]


def probability(model, tokenizer, words, label):  # noqa: F811
    encoded = tokenizer([words], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        return float(model(**encoded).logits.softmax(dim=-1)[0, label])


def predicted(model, tokenizer, words):  # noqa: F811
    encoded = tokenizer([words], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        return int(model(**encoded).logits.argmax())


def replaced(words, index, word):
    return [*words[:index], word, *words[index + 1 :]]


@pytest.mark.parametrize("text", SENTENCES)
def test_pwws_swaps_in_the_order_of_softmax_saliency_times_the_best_swap(tokenizer, wordnet_data, text):  # noqa: F811
    model = classifier(tokenizer)
    words = text.split()
    label = predicted(model, tokenizer, words)
    # The rule by hand (Ren et al. 2019, eqs. 3, 4 and 7): softmax(S)_i is exp(S_i) over a normaliser shared by all.
    p = probability(model, tokenizer, words, label)
    priority, best = {}, {}
    swappable = [i for i, w in enumerate(words) if w.lower() not in STOP_WORDS and word_synonyms(w)]
    for i in swappable:
        saliency = p - probability(model, tokenizer, replaced(words, i, tokenizer.unk_token), label)
        drops = [(p - probability(model, tokenizer, replaced(words, i, s), label), s) for s in word_synonyms(words[i])]
        drop, best[i] = max(drops, key=lambda pair: pair[0])
        priority[i] = torch.tensor(saliency).exp().item() * drop
    current, swaps = list(words), 0
    for i in sorted(priority, key=priority.get, reverse=True):
        current, swaps = replaced(current, i, best[i]), swaps + 1
        if predicted(model, tokenizer, current) != label:
            break
    result = PWWS(model, tokenizer).attack([text], label)
    assert result.adversarial_text == " ".join(current)
    assert result.perturbed_words == swaps and swaps >= 1
    synonyms = sum(len(word_synonyms(words[i])) for i in swappable)
    assert result.queries == 1 + len(swappable) + synonyms + swaps
    assert result.adversarial_prediction == predicted(model, tokenizer, current)


def test_pwws_changes_each_word_once_for_a_synonym_and_never_a_stop_word(tokenizer, wordnet_data):  # noqa: F811
    model = classifier(tokenizer, seed=3)
    for text in SENTENCES:
        words = text.split()
        result = PWWS(model, tokenizer).attack([text], predicted(model, tokenizer, words))
        after = result.adversarial_text.split()
        changed = [(a, b) for a, b in zip(words, after, strict=True) if a != b]
        assert len(changed) == result.perturbed_words
        assert all(a.lower() not in STOP_WORDS and b in word_synonyms(a) for a, b in changed)


def test_pwws_budgets_stop_it(tokenizer, wordnet_data):  # noqa: F811
    model = classifier(tokenizer)
    label = predicted(model, tokenizer, SENTENCE.split())
    one_word = PWWS(model, tokenizer, max_words_fraction=0.01).attack([SENTENCE], label)
    assert one_word.perturbed_words == 1
    few_queries = PWWS(model, tokenizer, max_queries=10).attack([SENTENCE], label)
    assert few_queries.queries <= 10 and few_queries.status == "failed"  # the ranking alone needs more


def test_character_edits_are_the_four_transformers_with_their_distances():
    edits = character_edits("film", random.Random(0))
    assert [distance for _, distance in edits] == [2, 1, 1, 1]  # swap, substitute, delete, insert
    swapped, substituted, deleted, inserted = (word for word, _ in edits)
    assert sorted(swapped) == sorted("film") and swapped != "film"
    assert len(substituted) == 4 and sum(a != b for a, b in zip(substituted, "film", strict=True)) == 1
    assert len(deleted) == 3 and len(inserted) == 5
    assert character_edits("film", random.Random(0)) == edits  # the generator decides
    assert [d for _, d in character_edits("a", random.Random(0))] in ([1, 1], [1])  # no swap or delete of one letter


@pytest.mark.parametrize("budget", [30, 3])
def test_deepwordbug_keeps_the_best_edit_of_the_highest_replace_1_words_first(tokenizer, budget):  # noqa: F811
    model = classifier(tokenizer)
    words = SENTENCE.split()
    label = predicted(model, tokenizer, words)
    # The rule by hand: Replace-1 scores, then each word's four edits in that order, the best kept if it lowers P.
    p = probability(model, tokenizer, words, label)
    candidates = [i for i, w in enumerate(words) if is_word(w) and w.lower() not in STOP_WORDS]
    assert len(candidates) < len(words) - 4  # the commas, the full stop and the stop words are never edited
    score = {i: p - probability(model, tokenizer, replaced(words, i, tokenizer.unk_token), label) for i in candidates}
    rng = random.Random(f"7:{[words]}")  # the attack's generator: its seed and the example's words
    current, distance, changed, queries = list(words), 0, 0, 1 + len(candidates)
    for i in sorted(candidates, key=lambda i: -score[i]):
        edits = [(w, d) for w, d in character_edits(current[i], rng) if distance + d <= budget]
        if not edits:
            continue
        queries += len(edits)
        lowest, (word, d) = min(
            (probability(model, tokenizer, replaced(current, i, w), label), (w, d)) for w, d in edits
        )
        if lowest < p:
            current, p, distance, changed = replaced(current, i, word), lowest, distance + d, changed + 1
            if predicted(model, tokenizer, current) != label:
                break
    result = DeepWordBug(model, tokenizer, seed=7, max_edit_distance=budget).attack([SENTENCE], label)
    assert result.adversarial_text == " ".join(current)
    assert result.perturbed_words == changed >= 1 and distance <= budget
    assert result.queries == queries
    again = DeepWordBug(model, tokenizer, seed=7, max_edit_distance=budget).attack([SENTENCE], label)
    assert again == result  # deterministic under its seed


def test_run_glue_reports_both_attacks_on_the_same_examples(tmp_path, tiny_model, wordnet_data):  # noqa: F811
    glue = shared_glue()
    out = run(
        tiny_model, tmp_path, "--task_name", "sst2", "--glue_dir", str(glue), "--do_train", "--do_eval",
        "--max_train_samples", "16", "--max_eval_samples", "8", "--do_attack_eval", "--attack_methods", "pwws",
        "deepwordbug", "--attack_max_examples", "4",
    )  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    for method in ("pwws", "deepwordbug"):
        assert results[f"eval_{method}_examples"] == 4
        assert results[f"eval_{method}_original_accuracy"] == results["eval_pwws_original_accuracy"]
        assert results[f"eval_{method}_accuracy_under_attack"] <= results[f"eval_{method}_original_accuracy"]
        records = (out / f"attack_records_{method}_validation.jsonl").read_text().splitlines()
        assert len(records) == 4
