"""The embedding-neighbour word attack: budgets, constraints, metrics, and `run_glue --do_attack_eval`."""

import json

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from adv_trainer.robustness.embedding_neighbour import EmbeddingNeighbourAttack
from adv_trainer.robustness.word_attack import AttackResult, summarise, write_examples
from adv_trainer.vocabulary import STOP_WORDS
from scripts import run_glue
from tests.glue_files import shared_glue
from tests.test_run_glue import FAST, run, tiny_model  # noqa: F401  (tiny_model is a fixture)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(run_glue.resolve_model_path(run_glue.OFFLINE_MINILM))


def classifier(tokenizer, seed=2, num_labels=2):
    """A random 1-layer BERT; a wide initialisation makes its output depend on the words enough to be attacked."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=num_labels, initializer_range=0.5,
    )  # fmt: skip
    return BertForSequenceClassification(config).eval()


SENTENCE = "the movie was a wonderful surprise , full of charm and clever jokes , yet slightly too long ."


def prediction(model, tokenizer, text):
    with torch.no_grad():
        return int(model(**tokenizer(text, return_tensors="pt")).logits.argmax())


def test_whole_word_substitutes_exclude_pieces_stop_words_punctuation_and_specials(tokenizer):
    attack = EmbeddingNeighbourAttack(classifier(tokenizer), tokenizer)
    tokens = set(tokenizer.convert_ids_to_tokens(attack.substitutes.tolist()))
    assert {"movie", "wonderful", "charm"} <= tokens
    assert not tokens & {"##s", "the", "and", ",", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "1999"}
    assert all(token.isalpha() and token.lower() not in STOP_WORDS for token in tokens)


def test_a_successful_attack_flips_the_prediction_within_its_budgets(tokenizer):
    model = classifier(tokenizer)
    label = prediction(model, tokenizer, SENTENCE)
    attack = EmbeddingNeighbourAttack(model, tokenizer, max_words_fraction=0.5, max_queries=400, neighbours=20)
    result = attack.attack([SENTENCE], label)
    assert result.status == "succeeded"
    original, adversarial = SENTENCE.split(), result.adversarial_text.split()
    changed = [(a, b) for a, b in zip(original, adversarial, strict=True) if a != b]
    assert len(changed) == result.perturbed_words >= 1
    assert result.perturbed_words <= max(1, int(0.5 * len(original)))
    assert result.queries <= 400
    for before, after in changed:
        assert before.lower() not in STOP_WORDS and before.isalpha() and after.isalpha()
    assert prediction(model, tokenizer, result.adversarial_text) == result.adversarial_prediction != label


@pytest.mark.parametrize("fraction,queries", [(0.01, 300), (1.0, 5)])
def test_word_and_query_budgets_stop_the_attack(tokenizer, fraction, queries):
    model = classifier(tokenizer, seed=1)
    label = prediction(model, tokenizer, SENTENCE)
    attack = EmbeddingNeighbourAttack(model, tokenizer, max_words_fraction=fraction, max_queries=queries)
    result = attack.attack([SENTENCE], label)
    assert result.perturbed_words <= max(1, int(fraction * len(SENTENCE.split())))
    assert result.queries <= queries


def test_a_misclassified_example_is_skipped_and_a_pair_keeps_both_texts(tokenizer):
    model = classifier(tokenizer)
    wrong = 1 - prediction(model, tokenizer, SENTENCE)
    attack = EmbeddingNeighbourAttack(model, tokenizer)
    skipped = attack.attack([SENTENCE], wrong)
    assert skipped.status == "skipped" and skipped.queries == 1 and skipped.adversarial_text == SENTENCE
    pair = attack.attack(["a cat sat on the mat .", "a dog slept on the rug ."], 0)
    assert pair.original_text == "a cat sat on the mat . ||| a dog slept on the rug ."
    assert pair.words == 12  # the two full stops are punctuation, not words


def test_the_attack_restores_the_model_mode_and_weights(tokenizer):
    model = classifier(tokenizer).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    EmbeddingNeighbourAttack(model, tokenizer, max_queries=30).attack([SENTENCE], 0)
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


def test_summary_follows_textattack_definitions(tmp_path):
    def result(label, original, adversarial, perturbed=0, words=10, queries=1):
        return AttackResult(label, original, adversarial, words, perturbed, queries, "a", "b")

    results = [result(1, 0, 0), result(1, 1, 0, 2, 10, 30), result(0, 0, 1, 1, 4, 10), result(1, 1, 1, 0, 5, 50)]
    summary = summarise(results)
    assert summary == {
        "attack_examples": 4,
        "attack_original_accuracy": 0.75,
        "attack_accuracy_under_attack": 0.25,
        "attack_success_rate": pytest.approx(2 / 3),
        "attack_perturbed_word_percentage": pytest.approx(100 * (0.2 + 0.25) / 2),
        "attack_average_queries": pytest.approx(90 / 3),
    }
    write_examples(tmp_path / "examples.txt", results, ["negative", "positive"])
    text = (tmp_path / "examples.txt").read_text()
    assert text.count("original:") == 2 and "positive -> negative (2 of 10 words, 30 queries)" in text


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"max_words_fraction": 0}, r"`max_words_fraction` must be in \(0, 1\], got 0"),
        ({"max_queries": 0}, r"`max_queries` must be >= 1 or None \(no budget\), got 0"),
        ({"neighbours": 0}, "`neighbours` must be >= 1, got 0"),
    ],
)
def test_bad_budgets_are_refused(tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingNeighbourAttack(classifier(tokenizer), tokenizer, **kwargs)


def test_regression_models_and_empty_results_are_refused(tokenizer):
    with pytest.raises(ValueError, match="needs a classification model"):
        EmbeddingNeighbourAttack(classifier(tokenizer, num_labels=1), tokenizer)
    with pytest.raises(ValueError, match="the dataset is empty"):
        summarise([])


def test_run_glue_adds_both_attacks_to_the_evaluation_results(tmp_path, tiny_model):  # noqa: F811
    glue = shared_glue()
    out = run(
        tiny_model, tmp_path, "--task_name", "sst2", "--glue_dir", str(glue), "--do_train", "--do_eval",
        "--max_train_samples", "16", "--max_eval_samples", "12", "--do_robust_eval", "--robust_epsilons", "0", "0.5",
        "--robust_steps", "3", "--do_attack_eval", "--attack_methods", "embedding_neighbour", "--attack_max_examples",
        "6", "--attack_max_queries", "40",
    )  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_robust_accuracy_eps0"] == results["eval_accuracy"]
    assert results["eval_robust_accuracy_eps0.5"] <= results["eval_accuracy"]
    assert results["eval_embedding_neighbour_examples"] == 6
    accuracy = results["eval_embedding_neighbour_accuracy_under_attack"]
    assert accuracy <= results["eval_embedding_neighbour_original_accuracy"]
    assert (out / "attack_examples_embedding_neighbour_validation.txt").is_file()
    records = (out / "attack_records_embedding_neighbour_validation.jsonl").read_text().splitlines()
    assert len(records) == 6 and {"label", "adversarial_text", "queries", "status"} <= set(json.loads(records[0]))
    assert {"eval_robust_accuracy_eps0.5", "eval_embedding_neighbour_success_rate"} <= set(
        json.loads((out / "all_results.json").read_text())
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--robust_epsilons", "-1"], r"`robust_epsilons` must be one or more radii >= 0, got \[-1.0\]"),
        (["--robust_steps", "0"], "`robust_steps` must be >= 1, got 0"),
        (["--attack_max_words_fraction", "1.5"], r"`attack_max_words_fraction` must be in \(0, 1\], got 1.5"),
        (["--attack_max_examples", "-1"], "`attack_max_examples` must be >= 1, or 0 for all, got -1"),
        (["--attack_max_queries", "0"], "`attack_max_queries` must be >= 1, got 0"),
    ],
)
def test_bad_robustness_flags_are_refused(tmp_path, tiny_model, args, message):  # noqa: F811
    with pytest.raises(ValueError, match=message):
        run(tiny_model, tmp_path, "--task_name", "rte", "--do_robust_eval", *args)


def test_attack_script_attacks_a_saved_model_directory(tmp_path, tiny_model):  # noqa: F811
    from scripts import attack

    glue = shared_glue()
    trained = run(tiny_model, tmp_path / "model", "--task_name", "sst2", "--glue_dir", str(glue), "--do_train",
                  "--max_train_samples", "16")  # fmt: skip
    attack.main(["--model_name_or_path", str(trained), "--task_name", "sst2", "--glue_dir", str(glue),
                 "--max_eval_samples", "5", "--attack_methods", "embedding_neighbour", "--attack_max_queries", "20",
                 "--use_cpu", "true"])  # fmt: skip
    results = json.loads((trained / "attack" / "eval_results.json").read_text())
    assert results["eval_embedding_neighbour_examples"] == 5 and "eval_loss" not in results


def test_attack_max_examples_zero_attacks_every_example():
    from adv_trainer.robustness.arguments import RobustnessArguments

    assert RobustnessArguments(attack_max_examples=0).attack_max_examples is None  # attack_dataset's "all"
    assert RobustnessArguments().attack_max_examples == 200
