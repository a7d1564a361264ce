"""The quality grid's bookkeeping: AdvGLUE outcomes kept per example, incomplete records replaced in place."""

import json

from scripts import bench_quality


def test_advglue_outcomes_are_kept_per_example_in_file_order(tmp_path):
    rows = [
        {"idx": 7, "label": 1, "prediction": 1, "original_prediction": 0},
        {"idx": 3, "label": 0, "prediction": 1, "original_prediction": None},
        {"idx": 5, "label": 0, "prediction": 0, "original_prediction": 0},
    ]
    (tmp_path / "advglue_predictions_sst2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = bench_quality.with_advglue({"task": "sst2", "results": {}}, tmp_path)
    assert record["advglue"] == {"idx": [7, 3, 5], "correct": [1, 0, 1], "benign_correct": [0, None, 1]}
    assert bench_quality.complete(record)
    assert not bench_quality.complete({"task": "sst2", "results": {}})
    assert bench_quality.complete({"task": "cola", "results": {}})  # not scored on AdvGLUE
    assert bench_quality.with_advglue({"task": "cola"}, tmp_path) == {"task": "cola"}


def test_a_completed_record_replaces_its_run_and_keeps_the_others(tmp_path):
    path = tmp_path / "quality.jsonl"
    old = [{"task": t, "method": "none", "seed": s, "results": {"v": 0}} for t, s in [("sst2", 1), ("cola", 1)]]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    bench_quality.replace_record(path, {"task": "sst2", "method": "none", "seed": 1, "results": {"v": 1}})
    bench_quality.replace_record(path, {"task": "sst2", "method": "pgd", "seed": 1, "results": {"v": 2}})
    records = bench_quality.read_records(path)
    assert [(r["task"], r["method"], r["results"]["v"]) for r in records] == [
        ("cola", "none", 0), ("sst2", "none", 1), ("sst2", "pgd", 2)
    ]  # fmt: skip


def test_a_kept_model_is_evaluated_on_advglue_without_training(tmp_path, monkeypatch):
    model = tmp_path / "sst2_none_1"
    model.mkdir()
    (model / "all_results.json").write_text(json.dumps({"eval_accuracy": 0.8, "train_runtime": 10.0}))
    (model / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.8}))
    commands = []

    def fake_attack(command, check, stdout):
        commands.append(command)
        out = model / "advglue"
        out.mkdir()
        (out / "eval_results.json").write_text(json.dumps({"eval_advglue_accuracy": 0.5}))
        row = {"idx": 0, "label": 1, "prediction": 1, "original_prediction": 0}
        (out / "advglue_predictions_sst2.jsonl").write_text(json.dumps(row) + "\n")

    monkeypatch.setattr(bench_quality.subprocess, "run", fake_attack)
    old = {"task": "sst2", "method": "none", "seed": 1, "wall_s": 300, "results": {"eval_accuracy": 0.7}}
    record = bench_quality.evaluate_kept(old, "dev.json", tmp_path)
    (command,) = commands
    assert command[1].endswith("attack.py") and "--do_train" not in command
    assert command[command.index("--advglue_file") + 1] == "dev.json"
    assert record["results"] == {"eval_accuracy": 0.8, "train_runtime": 10.0, "eval_advglue_accuracy": 0.5}
    assert record["advglue"] == {"idx": [0], "correct": [1], "benign_correct": [0]}
    assert bench_quality.evaluate_kept({**old, "seed": 2}, None, tmp_path) is None  # no model kept: train again
    (tmp_path / "sst2_none_3").mkdir()
    (tmp_path / "sst2_none_3" / "all_results.json").write_text("{}")  # written before evaluation: not finished
    assert bench_quality.evaluate_kept({**old, "seed": 3}, None, tmp_path) is None
