"""End-to-end `run_glue.main()` runs with a tiny BERT and MiniLM's real tokenizer, on real and fixture GLUE files."""

import csv
import json

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

from scripts import run_glue
from tests.glue_files import shared_glue, write_fixture_glue

FAST = ["--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--report_to", "none"]
FAST += [
    "--disable_tqdm",
    "true",
    "--save_strategy",
    "no",
    "--use_cpu",
    "true",
    "--max_steps",
    "2",
    "--logging_steps",
    "1",
]


def tiny_config(vocab_size, **kwargs):
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        **kwargs,
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer BERT body (no head) with the real uncased WordPiece tokenizer of all-MiniLM-L6-v2."""
    path = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(run_glue.resolve_model_path(run_glue.OFFLINE_MINILM))
    torch.manual_seed(0)
    BertModel(tiny_config(tokenizer.vocab_size)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run(tiny_model, out, *args):
    run_glue.main(["--model_name_or_path", str(tiny_model), "--output_dir", str(out), *FAST, *args])
    return out


def read_submission(path):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == ["index", "prediction"]
    return rows[1:]


@pytest.mark.parametrize(
    "task,metric_keys,submission,values",
    [
        ("sst2", {"eval_accuracy"}, "SST-2.tsv", {"0", "1"}),
        ("mrpc", {"eval_accuracy", "eval_f1"}, "MRPC.tsv", {"0", "1"}),
        ("cola", {"eval_matthews_correlation"}, "CoLA.tsv", {"0", "1"}),
    ],
)
def test_real_glue_tasks_train_evaluate_and_write_submissions(
    tmp_path, tiny_model, task, metric_keys, submission, values
):
    glue = shared_glue()
    out = run(
        tiny_model, tmp_path, "--task_name", task, "--glue_dir", str(glue), "--do_train", "--do_eval", "--do_predict",
        "--max_train_samples", "32", "--max_eval_samples", "40", "--max_predict_samples", "12", "--adv_method", "pgd",
    )  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    assert metric_keys <= set(results) and results["eval_samples"] == 40
    assert {"train_loss", "eval_loss"} <= set(json.loads((out / "all_results.json").read_text()))
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert "adv_loss" in history[0] and history[0]["adv_delta_norm"] <= 0.02 + 1e-6
    rows = read_submission(out / submission)
    assert [row[0] for row in rows] == [str(i) for i in range(12)]
    assert {row[1] for row in rows} <= values


@pytest.mark.parametrize(
    "task,metric_keys,submissions,values",
    [
        ("stsb", {"eval_pearson", "eval_spearmanr"}, ["STS-B.tsv"], None),
        ("qqp", {"eval_accuracy", "eval_f1"}, ["QQP.tsv"], {"0", "1"}),
        (
            "mnli",
            {"eval_accuracy", "eval_accuracy_mm"},
            ["MNLI-m.tsv", "MNLI-mm.tsv"],
            {"entailment", "neutral", "contradiction"},
        ),
        ("rte", {"eval_accuracy"}, ["RTE.tsv"], {"entailment", "not_entailment"}),
    ],
)
def test_other_tasks_in_the_original_layout(tmp_path, tiny_model, task, metric_keys, submissions, values):
    glue = write_fixture_glue(tmp_path / "glue")
    out = run(
        tiny_model,
        tmp_path / "out",
        "--task_name",
        task,
        "--glue_dir",
        str(glue),
        "--do_train",
        "--do_eval",
        "--do_predict",
    )
    assert metric_keys <= set(json.loads((out / "eval_results.json").read_text()))
    for name in submissions:
        rows = read_submission(out / name)
        assert len(rows) == 8
        if values is None:
            assert all(float(value) == pytest.approx(float(value), abs=1e-3) and "." in value for _, value in rows)
        else:
            assert {value for _, value in rows} <= values
    if task == "mnli":
        assert [row[0] for row in read_submission(out / "MNLI-m.tsv")][:2] == ["100", "101"]


def test_diagnostic_set_is_predicted_with_an_mnli_sized_model(tmp_path, tiny_model):
    glue = write_fixture_glue(tmp_path / "glue")
    out = run(tiny_model, tmp_path / "out", "--task_name", "ax", "--glue_dir", str(glue), "--do_predict")
    assert {value for _, value in read_submission(out / "AX.tsv")} <= {"entailment", "neutral", "contradiction"}


def test_wnli_submits_ids_and_qnli_label_names_from_the_real_files(tmp_path, tiny_model):
    glue = shared_glue()
    out = run(
        tiny_model,
        tmp_path / "w",
        "--task_name",
        "wnli",
        "--glue_dir",
        str(glue),
        "--do_predict",
        "--max_predict_samples",
        "5",
    )
    assert {value for _, value in read_submission(out / "WNLI.tsv")} <= {"0", "1"}
    out = run(tiny_model, tmp_path / "q", "--task_name", "qnli", "--glue_dir", str(glue), "--do_eval", "--do_predict",
              "--max_eval_samples", "16", "--max_predict_samples", "5")  # fmt: skip
    assert {value for _, value in read_submission(out / "QNLI.tsv")} <= {"entailment", "not_entailment"}


def write_custom(tmp_path, suffix, rows):
    path = tmp_path / f"data{suffix}"
    if suffix == ".json":
        path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    else:
        delimiter = "\t" if suffix == ".tsv" else ","
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
            writer.writeheader()
            writer.writerows(rows)
    return str(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json"])
def test_custom_files_with_string_labels(tmp_path, tiny_model, suffix):
    rows = [
        {"sentence": f"review number {i} was {'great' if i % 2 else 'bad'}", "label": "pos" if i % 2 else "neg"}
        for i in range(12)
    ]
    data = write_custom(tmp_path, suffix, rows)
    out = run(tiny_model, tmp_path / "out", "--train_file", data, "--validation_file", data, "--test_file", data,
              "--do_train", "--do_eval", "--do_predict", "--adv_method", "fgm")  # fmt: skip
    assert "eval_accuracy" in json.loads((out / "eval_results.json").read_text())
    rows = read_submission(out / "predict_results.tsv")
    assert len(rows) == 12 and {value for _, value in rows} <= {"pos", "neg"}


def test_custom_regression_pairs(tmp_path, tiny_model):
    rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "label": float(i % 5)} for i in range(10)]
    data = write_custom(tmp_path, ".json", rows)
    out = run(tiny_model, tmp_path / "out", "--train_file", data, "--validation_file", data, "--do_train", "--do_eval")
    assert {"eval_pearson", "eval_spearmanr", "eval_mse"} <= set(json.loads((out / "eval_results.json").read_text()))


def test_a_config_file_with_flags_overriding_it(tmp_path, tiny_model):
    glue = write_fixture_glue(tmp_path / "glue")
    config = tmp_path / "rte.yaml"
    config.write_text(
        f"task_name: rte\nglue_dir: {glue}\ndo_eval: true\nadv_method: pgd\nadv_k: 2\nlearning_rate: 3.0e-5\n"
    )
    model_args, data_args, training_args, _ = run_glue.parse_arguments(
        [str(config), "--model_name_or_path", str(tiny_model), "--adv_k", "4", "--output_dir", str(tmp_path)]
    )
    assert (data_args.task_name, training_args.adv_method, training_args.adv_k) == ("rte", "pgd", 4)
    assert training_args.learning_rate == 3.0e-5 and training_args.do_eval and not training_args.do_train


def test_a_json_config_file(tmp_path, tiny_model):
    config = tmp_path / "rte.json"
    config.write_text(json.dumps({"task_name": "rte", "adv_method": "fgm", "model_name_or_path": str(tiny_model)}))
    _, data_args, training_args, _ = run_glue.parse_arguments([str(config), "--output_dir", str(tmp_path)])
    assert (data_args.task_name, training_args.adv_method, training_args.adv_epsilon) == ("rte", "fgm", 0.02)


@pytest.mark.parametrize(
    "args,error,message",
    [
        (["--task_name", "rte", "--train_file", "x.csv"], ValueError, "either `task_name` or `train_file"),
        ([], ValueError, "Pass a GLUE `task_name`, or your data"),
        (["--task_name", "ax", "--do_train"], ValueError, "Task 'ax' .* has no labels: train on 'mnli'"),
        (["--task_name", "rte", "--max_seq_length", "0"], ValueError, "`max_seq_length` must be >= 1, got 0"),
        (["--task_name", "rte", "--adv_method", "pgd", "--adv_k", "0"], ValueError, "`adv_k` must be >= 1"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, tiny_model, args, error, message):
    with pytest.raises(error, match=message):
        run(tiny_model, tmp_path, *args)


def test_word_substitution_on_a_regression_is_refused_before_training(tmp_path, tiny_model):
    glue = write_fixture_glue(tmp_path / "glue")
    with pytest.raises(ValueError, match="`--do_attack_eval` needs a classification task"):
        run(
            tiny_model,
            tmp_path / "out",
            "--task_name",
            "stsb",
            "--glue_dir",
            str(glue),
            "--do_train",
            "--do_attack_eval",
        )
    assert not (tmp_path / "out" / "train_results.json").exists()


def test_unknown_task_is_refused_by_the_parser(tmp_path, tiny_model, capsys):
    with pytest.raises(SystemExit):
        run(tiny_model, tmp_path, "--task_name", "sts-b")
    assert "invalid choice: 'sts-b'" in capsys.readouterr().err


def test_unknown_config_keys_and_a_missing_model_are_refused(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("task_name: rte\nlearning_rat: 1.0e-5\n")
    with pytest.raises(ValueError, match=r"bad.yaml has unknown keys \['learning_rat'\]"):
        run_glue.parse_arguments([str(config)])
    with pytest.raises(ValueError, match="`model_name_or_path` is required"):
        run_glue.parse_arguments(["--task_name", "rte", "--output_dir", str(tmp_path)])


def test_head_with_another_number_of_labels_is_refused_unless_asked(tmp_path, tiny_model):
    glue = write_fixture_glue(tmp_path / "glue")
    two_labels = tmp_path / "two_labels"
    BertForSequenceClassification(tiny_config(30522, num_labels=2)).save_pretrained(two_labels)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(two_labels)
    mnli = ["--task_name", "mnli", "--glue_dir", str(glue), "--do_eval", "--max_eval_samples", "4"]
    with pytest.raises(
        ValueError, match="classification head with 2 outputs, but the task needs 3.*ignore_mismatched"
    ):
        run(two_labels, tmp_path / "out", *mnli)
    run(two_labels, tmp_path / "out", *mnli, "--ignore_mismatched_sizes")
    assert "eval_accuracy_mm" in json.loads((tmp_path / "out" / "eval_results.json").read_text())


@pytest.mark.parametrize(
    "rows,extra,message",
    [
        ([{"sentence": "a", "score": 1}], [], r"has no `label` column \(columns: \['sentence', 'score'\]\)"),
        ([{"premise": "a", "label": 1}], [], r"needs its text in a `sentence1` and `sentence2` pair.*found columns"),
        ([{"sentence": "a", "label": "x"}], ["validation"], r"has labels \['y'\] that .* does not have \['x'\]"),
    ],
    ids=["no-label", "no-text", "unknown-validation-label"],
)
def test_bad_custom_files_are_refused(tmp_path, tiny_model, rows, extra, message):
    train = write_custom(tmp_path, ".csv", rows)
    args = ["--train_file", train, "--do_train"]
    if extra:
        (tmp_path / "dev").mkdir()
        args += [
            "--validation_file",
            write_custom(tmp_path / "dev", ".csv", [{"sentence": "b", "label": "y"}]),
            "--do_eval",
        ]
    with pytest.raises(ValueError, match=message):
        run(tiny_model, tmp_path / "out", *args)


def test_empty_custom_file_is_refused(tmp_path, tiny_model):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="`train_file` .*empty.csv is missing or empty"):
        run(tiny_model, tmp_path / "out", "--train_file", str(empty), "--do_train")
