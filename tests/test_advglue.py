"""AdvGLUE evaluation: the real file's counts, metrics against a hand count, label mapping by name, the RTE layout,
bad input, and `run_glue.py`/`attack.py --do_advglue_eval`."""

import copy
import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from adv_trainer.robustness.advglue import (
    advglue_tasks_for,
    evaluate_advglue,
    label_mapping,
    load_advglue,
)
from adv_trainer.robustness.arguments import RobustnessArguments
from scripts import run_glue
from tests.glue_files import write_fixture_glue
from tests.test_ddp import ROOT, free_port
from tests.test_run_glue import run, tiny_model  # noqa: F401  (tiny_model is a fixture)

SHARED_ADVGLUE = Path(__file__).resolve().parent.parent.parent / "shared" / "advglue" / "dev.json"
# From ../shared/advglue/README.md: examples and examples with an original per task, and the file's sha256.
COUNTS = {"sst2": (148, 131), "qqp": (78, 71), "mnli": (121, 121), "mnli-mm": (162, 119), "qnli": (148, 133)}
SHA256 = "9d5090a0d89588330c7ec76bdb5168e02de8c5850456b10bde5dddae1685c4df"
NLI = ["entailment", "neutral", "contradiction"]


def shared_advglue():
    """`../shared/advglue/dev.json`; skips the test when it is absent, except under CI, where its absence fails."""
    if SHARED_ADVGLUE.is_file():
        return SHARED_ADVGLUE
    message = f"the AdvGLUE file is not at {SHARED_ADVGLUE}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the real-data tests.")
    pytest.skip(message)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(run_glue.resolve_model_path(run_glue.OFFLINE_MINILM))


def classifier(tokenizer, labels, seed=0):
    """A random 1-layer BERT whose wide initialisation makes its predictions vary with the text; outputs named."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, num_labels=len(labels), initializer_range=0.5,
        id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)},
    )  # fmt: skip
    return BertForSequenceClassification(config).eval()


def nli_example(idx, label, level="word", method="TextBugger", changed="premise"):
    example = {"idx": idx, "premise": f"a man plays guitar number {idx} .", "hypothesis": f"someone sings {idx * 7}"}
    example.update(label=label, data_construction=level, method=method)
    if changed:
        example[f"original_{changed}"] = f"a woman plays piano number {idx} ."
    return example


def write_advglue(path, data):
    path.write_text(json.dumps(data))
    return path


def fixture_file(tmp_path):
    """MNLI examples at every level, with and without originals, in matched and mismatched keys."""
    mnli = [nli_example(i, i % 3, ["word", "sentence", "human"][i % 3], ["TextBugger", "T3", "ANLI"][i % 3],
                        [None, "premise", "hypothesis"][i % 3 if i % 4 else 0]) for i in range(24)]  # fmt: skip
    return write_advglue(tmp_path / "advglue.json", {"mnli": mnli, "mnli-mm": mnli[:10]})


def hand_predictions(model, tokenizer, texts):
    """One example at a time, no padding: the arg-max output of each."""
    with torch.no_grad():
        return [int(model(**tokenizer(*row, return_tensors="pt", truncation=True)).logits.argmax()) for row in texts]


def test_the_real_file_has_the_readme_counts():
    path = shared_advglue()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256
    for task, (examples, originals) in COUNTS.items():
        loaded = load_advglue(path, task)
        assert (len(loaded), sum(e.original_texts is not None for e in loaded)) == (examples, originals)
        levels = Counter(e.level for e in loaded)
        assert set(levels) <= {"word", "sentence", "human"} and sum(levels.values()) == examples
    sst2 = load_advglue(path, "sst2")
    assert sst2[0].texts[0].startswith("it 's an uneven treat") and sst2[0].original_texts[0].startswith(
        "it 's an offbeat treat"
    )


@pytest.mark.parametrize("task,labels", [("sst2", ["negative", "positive"]), ("mnli-mm", NLI)])
def test_real_file_metrics_equal_a_hand_count_of_the_predictions(tmp_path, tokenizer, task, labels):
    path = shared_advglue()
    model = classifier(tokenizer, labels)
    evaluation = evaluate_advglue(model, tokenizer, path, task, batch_size=16)
    examples = load_advglue(path, task)
    adversarial = hand_predictions(model, tokenizer, [e.texts for e in examples])
    paired = [e for e in examples if e.original_texts is not None]
    original = dict(
        zip(
            [e.idx for e in paired],
            hand_predictions(model, tokenizer, [e.original_texts for e in paired]),
            strict=True,
        )
    )
    assert [r["prediction"] for r in evaluation.records] == adversarial
    assert [r["original_prediction"] for r in evaluation.records] == [original.get(e.idx) for e in examples]
    assert [(r["idx"], r["label"], r["level"], r["method"]) for r in evaluation.records] == [
        (e.idx, e.label, e.level, e.method) for e in examples
    ]
    assert len(set(adversarial)) > 1  # the random model is not constant: the counts below can tell things apart

    right = [p == e.label for p, e in zip(adversarial, examples, strict=True)]
    metrics = evaluation.metrics
    assert metrics["eval_advglue_examples"] == COUNTS[task][0] and metrics["eval_advglue_accuracy"] == pytest.approx(
        sum(right) / len(examples)
    )
    benign = sum(original[e.idx] == e.label for e in paired) / len(paired)
    adversarial_paired = sum(r for r, e in zip(right, examples, strict=True) if e.original_texts is not None) / len(
        paired
    )
    assert metrics["eval_advglue_paired_examples"] == COUNTS[task][1]
    assert metrics["eval_advglue_benign_accuracy"] == pytest.approx(benign)
    assert metrics["eval_advglue_paired_adversarial_accuracy"] == pytest.approx(adversarial_paired)
    assert metrics["eval_advglue_accuracy_drop"] == pytest.approx(benign - adversarial_paired)
    for group, key in ((lambda e: e.level, "{}"), (lambda e: e.method, "method_{}")):
        counts = Counter(group(e) for e in examples)
        for name, count in counts.items():
            suffix = key.format(name.lower().replace("-", "_"))
            assert metrics[f"eval_advglue_examples_{suffix}"] == count
            hits = sum(r for r, e in zip(right, examples, strict=True) if group(e) == name)
            assert metrics[f"eval_advglue_accuracy_{suffix}"] == pytest.approx(hits / count)
    levels = [metrics.get(f"eval_advglue_examples_{level}", 0) for level in ("word", "sentence", "human")]
    methods = [v for k, v in metrics.items() if k.startswith("eval_advglue_examples_method_")]
    assert sum(levels) == sum(methods) == len(examples) and len(methods) == len(Counter(e.method for e in examples))


def test_an_nli_model_with_contradiction_first_is_mapped_by_label_name(tmp_path, tokenizer):
    """The same network with its outputs (and their names) in reverse order predicts the same AdvGLUE labels."""
    path = fixture_file(tmp_path)
    model = classifier(tokenizer, NLI, seed=3)
    reversed_model = copy.deepcopy(model)
    with torch.no_grad():
        reversed_model.classifier.weight.copy_(model.classifier.weight.flip(0))
        reversed_model.classifier.bias.copy_(model.classifier.bias.flip(0))
    reversed_model.config.id2label = dict(enumerate(["CONTRADICTION", "NEUTRAL", "ENTAILMENT"]))
    expected = evaluate_advglue(model, tokenizer, path, "mnli")
    mapped = evaluate_advglue(reversed_model, tokenizer, path, "mnli")
    predictions = [r["prediction"] for r in expected.records]
    assert {0, 2} <= set(predictions)  # entailment and contradiction predicted: reading one as the other would show
    assert mapped.records == expected.records and mapped.metrics == expected.metrics
    assert list(label_mapping(reversed_model.config.id2label, "mnli")) == [2, 1, 0]


def test_generic_or_foreign_label_names_are_refused_unless_label_names_says(tmp_path, tokenizer):
    path = fixture_file(tmp_path)
    generic = classifier(tokenizer, ["LABEL_0", "LABEL_1", "LABEL_2"])
    with pytest.raises(ValueError, match=r"\['LABEL_0', 'LABEL_1', 'LABEL_2'\]: generic names .* Pass `label_names`"):
        evaluate_advglue(generic, tokenizer, path, "mnli")
    named = classifier(tokenizer, NLI)
    told = evaluate_advglue(generic, tokenizer, path, "mnli", label_names=NLI)
    assert told.records == evaluate_advglue(named, tokenizer, path, "mnli").records
    with pytest.raises(ValueError, match=r"names the outputs \['negative', 'positive', 'x'\], but AdvGLUE mnli's"):
        label_mapping({0: "negative", 1: "positive", 2: "x"}, "mnli")
    with pytest.raises(ValueError, match=r"`label_names` names the outputs \['entailment', 'neutral'\]"):
        label_mapping({0: "a", 1: "b"}, "mnli", label_names=["entailment", "neutral"])
    with pytest.raises(ValueError, match="The model has 2 outputs, AdvGLUE mnli 3 labels"):
        evaluate_advglue(classifier(tokenizer, ["a", "b"]), tokenizer, path, "mnli", label_names=NLI)
    with pytest.raises(ValueError, match="is a classification; the model is a regression"):
        evaluate_advglue(classifier(tokenizer, ["score"]), tokenizer, path, "mnli")


def test_the_rte_layout_substitutes_sentence1(tmp_path, tokenizer):
    rte = [
        {"idx": 0, "sentence1": "the cat sat .", "original_sentence1": "the dog sat .", "sentence2": "an animal sat",
         "label": 0, "data_construction": "word", "method": "TextFooler"},
        {"idx": 5, "sentence1": "it rained all day", "sentence2": "it was dry", "label": 1,
         "data_construction": "human", "method": "CheckList"},
    ]  # fmt: skip
    path = write_advglue(tmp_path / "rte.json", {"rte": rte})
    first, second = load_advglue(path, "rte")
    assert first.texts == ("the cat sat .", "an animal sat") and first.original_texts == (
        "the dog sat .",
        "an animal sat",
    )
    assert second.original_texts is None and (second.idx, second.label, second.level) == (5, 1, "human")
    model = classifier(tokenizer, ["entailment", "not_entailment"])
    evaluation = evaluate_advglue(model, tokenizer, path, "rte")
    assert evaluation.metrics["eval_advglue_paired_examples"] == 1
    assert evaluation.metrics["eval_advglue_examples_human"] == 1 and "eval_advglue_examples_sentence" not in (
        evaluation.metrics
    )
    assert [r["original_prediction"] is None for r in evaluation.records] == [False, True]


def sst2_example(**changes):
    example = {"idx": 0, "sentence": "a fine film", "label": 1, "data_construction": "word", "method": "TextFooler"}
    return {**example, **changes}


@pytest.mark.parametrize(
    "data,task,message",
    [
        ({"sst2": [sst2_example()]}, "cola", r"AdvGLUE has no task 'cola'; its tasks are \['mnli', 'mnli-mm'"),
        ({"sst2": [sst2_example()]}, "rte", r"has no task 'rte' \(its keys: \['sst2'\]\)"),
        ({"sst2": [sst2_example(label=2)]}, "sst2", r"example 0 has label 2; sst2's labels are the ids 0..1"),
        ({"sst2": [sst2_example(label="positive")]}, "sst2", r"has label 'positive'"),
        ({"mnli": [nli_example(0, 3)]}, "mnli", r"has label 3; mnli's labels are the ids 0..2 \(entailment, neutral"),
        ({"sst2": [{"idx": 0, "label": 1}]}, "sst2", r"lacks the field\(s\) \['data_construction', 'method', 'sen"),
        ({"sst2": [sst2_example(original_question="q")]}, "sst2", r"has \['original_question'\], but sst2's text"),
        ({"sst2": [sst2_example(data_construction="char")]}, "sst2", r"`data_construction` 'char', not one of"),
        ({"sst2": [sst2_example(), sst2_example()]}, "sst2", r"example 1 repeats idx 0"),
        ({"sst2": [sst2_example(sentence=None)]}, "sst2", r"every text field must be a string"),
        ({"sst2": []}, "sst2", r"has no examples for task 'sst2'"),
    ],
)
def test_bad_files_and_tasks_are_refused(tmp_path, data, task, message):
    path = write_advglue(tmp_path / "advglue.json", data)
    with pytest.raises(ValueError, match=message):
        load_advglue(path, task)


def test_a_missing_file_and_glue_tasks_without_advglue_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"The AdvGLUE file .*nothing.json does not exist.*`--advglue_file`"):
        load_advglue(tmp_path / "nothing.json", "sst2")
    assert advglue_tasks_for("mnli") == ("mnli", "mnli-mm") and advglue_tasks_for("rte") == ("rte",)
    with pytest.raises(ValueError, match=r"AdvGLUE has no task 'cola'; it has \['mnli', 'qnli', 'qqp', 'rte', 'sst2'"):
        advglue_tasks_for("cola")


def test_run_glue_adds_advglue_to_the_results_and_writes_the_predictions(tmp_path, tiny_model):  # noqa: F811
    glue = write_fixture_glue(tmp_path / "glue")
    advglue = fixture_file(tmp_path)
    out = run(tiny_model, tmp_path / "out", "--task_name", "mnli", "--glue_dir", str(glue), "--do_train", "--do_eval",
              "--do_advglue_eval", "--advglue_file", str(advglue))  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_accuracy", "eval_accuracy_mm", "eval_advglue_accuracy", "eval_advglue_accuracy_mm"} <= set(results)
    assert (results["eval_advglue_examples"], results["eval_advglue_examples_mm"]) == (24, 10)
    assert {"eval_advglue_accuracy_human", "eval_advglue_accuracy_method_anli_mm"} <= set(results)
    assert set(results) <= set(json.loads((out / "all_results.json").read_text()))
    for task, suffix, n in (("mnli", "", 24), ("mnli-mm", "_mm", 10)):
        lines = (out / f"advglue_predictions_{task}.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert [r["idx"] for r in records] == list(range(n))
        accuracy = sum(r["prediction"] == r["label"] for r in records) / n
        assert results[f"eval_advglue_accuracy{suffix}"] == pytest.approx(accuracy)
        paired = [r for r in records if r["original_prediction"] is not None]
        benign = sum(r["original_prediction"] == r["label"] for r in paired) / len(paired)
        assert results[f"eval_advglue_benign_accuracy{suffix}"] == pytest.approx(benign)


def test_attack_script_scores_a_saved_model_on_advglue_alone(tmp_path, tiny_model):  # noqa: F811
    from scripts import attack

    path = shared_advglue()
    glue = write_fixture_glue(tmp_path / "glue")
    trained = run(tiny_model, tmp_path / "model", "--task_name", "rte", "--glue_dir", str(glue), "--do_train")
    rte = {"rte": [{"idx": 3, "sentence1": "a b", "sentence2": "c", "label": 0, "data_construction": "human",
                    "method": "ANLI"}]}  # fmt: skip
    attack.main(["--model_name_or_path", str(trained), "--task_name", "rte", "--do_advglue_eval", "--advglue_file",
                 str(write_advglue(tmp_path / "rte.json", rte)), "--use_cpu", "true"])  # fmt: skip
    results = json.loads((trained / "attack" / "eval_results.json").read_text())
    assert results["eval_advglue_examples"] == 1 and not any("attack" in key for key in results)
    # The shared file's default path: sst2 needs no GLUE data (no --glue_dir, nothing read, no hub).
    trained = run(
        tiny_model, tmp_path / "sst2", "--task_name", "sst2", "--do_advglue_eval", "--advglue_file", str(path)
    )
    assert json.loads((trained / "eval_results.json").read_text())["eval_advglue_examples"] == 148


@pytest.mark.parametrize(
    "args,message",
    [
        (["--task_name", "cola"], r"AdvGLUE has no task 'cola'"),
        (["--task_name", "rte", "--advglue_file", "{sst2_only}"], r"has no task 'rte' \(its keys: \['sst2'\]\)"),
        (["--train_file", "{custom}"], r"`--do_advglue_eval` needs a GLUE `--task_name`"),
        (["--task_name", "sst2", "--advglue_file", "{missing}"], r"missing.json does not exist"),
    ],
)
def test_run_glue_refuses_bad_advglue_requests_before_training(tmp_path, tiny_model, args, message):  # noqa: F811
    files = {
        "sst2_only": write_advglue(tmp_path / "sst2.json", {"sst2": [sst2_example()]}),
        "custom": tmp_path / "custom.json",
        "missing": tmp_path / "missing.json",
    }
    files["custom"].write_text(json.dumps({"sentence": "a", "label": 1}) + "\n")
    args = [arg.format(**files) for arg in args]
    glue = write_fixture_glue(tmp_path / "glue")
    with pytest.raises(ValueError, match=message):
        run(tiny_model, tmp_path / "out", "--glue_dir", str(glue), "--do_train", "--do_advglue_eval", *args)
    assert not (tmp_path / "out" / "train_results.json").exists()


def test_run_glue_without_the_default_file_names_the_flag(tmp_path, tiny_model, monkeypatch):  # noqa: F811
    monkeypatch.setattr(run_glue, "REPOSITORY_ADVGLUE_FILE", tmp_path / "absent" / "dev.json")
    with pytest.raises(ValueError, match=r"`--do_advglue_eval` needs `--advglue_file`.*absent/dev.json does not"):
        run(tiny_model, tmp_path / "out", "--task_name", "sst2", "--do_advglue_eval")


def test_evaluating_a_checkpoint_whose_head_names_labels_in_another_order_is_refused(tmp_path, tokenizer):
    model = classifier(tokenizer, ["contradiction", "neutral", "entailment"])
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    glue = write_fixture_glue(tmp_path / "glue")
    with pytest.raises(ValueError, match=r"names its outputs \['contradiction', 'neutral', 'entailment'\], but the"):
        run(tmp_path / "model", tmp_path / "out", "--task_name", "mnli", "--glue_dir", str(glue), "--do_eval")


@pytest.mark.slow
def test_two_processes_give_the_single_process_records(tmp_path, tokenizer):
    """Under DDP each process predicts part of the rows; the gathered records are all examples once, in file order
    (23 examples and their originals: the sampler pads the last batch, and the padding must be dropped)."""
    mnli = [nli_example(i, i % 3, changed=[None, "premise", "hypothesis"][i % 3]) for i in range(23)]
    path = write_advglue(tmp_path / "advglue.json", {"mnli": mnli})
    model = classifier(tokenizer, NLI, seed=5)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), str(ROOT / "tests" / "advglue_ddp_worker.py"), str(path),
        str(tmp_path / "model"), str(tmp_path / "result.json"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    distributed = json.loads((tmp_path / "result.json").read_text())
    single = evaluate_advglue(model, tokenizer, path, "mnli")
    assert distributed["world_size"] == 2 and len(distributed["records"]) == 23
    assert distributed["records"] == single.records
    assert distributed["metrics"] == pytest.approx(single.metrics)


def test_an_advglue_file_without_the_evaluation_is_said_to_be_ignored():
    with pytest.warns(UserWarning, match=r"`advglue_file=x.json` is ignored without `do_advglue_eval`"):
        RobustnessArguments(advglue_file="x.json")
