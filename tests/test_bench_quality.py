"""The quality grid's bookkeeping: AdvGLUE outcomes kept per example, incomplete records replaced in place, settings
of the ε sweep keyed and normalised."""

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from scripts import bench_quality

ROBUST = {"eval_robust_accuracy_eps0.05": 0.3}
ROBUST_COLA = {"eval_robust_matthews_correlation_eps0.05": 0.1}  # each task's own metrics under attack


def test_advglue_outcomes_are_kept_per_example_in_file_order(tmp_path):
    rows = [
        {"idx": 7, "label": 1, "prediction": 1, "original_prediction": 0},
        {"idx": 3, "label": 0, "prediction": 1, "original_prediction": None},
        {"idx": 5, "label": 0, "prediction": 0, "original_prediction": 0},
    ]
    (tmp_path / "advglue_predictions_sst2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = bench_quality.with_advglue({"task": "sst2", "results": ROBUST}, tmp_path)
    assert record["advglue"] == {"idx": [7, 3, 5], "correct": [1, 0, 1], "benign_correct": [0, None, 1]}
    assert bench_quality.complete(record)
    assert not bench_quality.complete({"task": "sst2", "results": ROBUST})  # no AdvGLUE outcomes
    assert not bench_quality.complete({**record, "results": {}})  # no PGD evaluation
    assert bench_quality.complete({"task": "cola", "results": ROBUST_COLA})  # not scored on AdvGLUE
    assert not bench_quality.complete({"task": "cola", "results": {}})
    assert bench_quality.with_advglue({"task": "cola"}, tmp_path) == {"task": "cola"}


def test_a_completed_record_replaces_its_run_and_keeps_the_others(tmp_path):
    path = tmp_path / "quality.jsonl"
    old = [{"task": t, "method": "none", "seed": s, "results": {"v": 0}} for t, s in [("sst2", 1), ("cola", 1)]]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    none = {"task": "sst2", "method": "none", "seed": 1, "settings": {}, "results": {"v": 1}}
    bench_quality.replace_record(path, none)
    bench_quality.replace_record(path, {"task": "sst2", "method": "pgd", "seed": 1, "results": {"v": 2}})
    swept = {"task": "sst2", "method": "pgd", "seed": 1, "settings": {"adv_epsilon": 0.1}, "results": {"v": 3}}
    bench_quality.replace_record(path, swept)
    records = bench_quality.read_records(path)
    assert [(r["task"], r["method"], r["results"]["v"]) for r in records] == [
        ("cola", "none", 0), ("sst2", "none", 1), ("sst2", "pgd", 2), ("sst2", "pgd", 3)
    ]  # fmt: skip


def test_settings_are_parsed_and_normalised_per_method():
    assert bench_quality.parse_setting("") == {}
    setting = bench_quality.parse_setting("adv_epsilon=0.1,adv_start_step=0.1")
    assert setting == {"adv_epsilon": 0.1, "adv_start_step": 0.1}
    for bad in ("epsilon=0.1", "adv_epsilon", "adv_epsilon=big", "adv_method=pgd"):
        with pytest.raises(SystemExit, match="adv_epsilon=0.02"):
            bench_quality.parse_setting(bad)
    assert bench_quality.method_setting("pgd", {"adv_epsilon": 0.02}) == {}  # the default radius: the grid's own run
    assert bench_quality.method_setting("creat", {"adv_epsilon": 0.05}) == {}
    assert bench_quality.method_setting("creat", {"adv_epsilon": 0.1}) == {"adv_epsilon": 0.1}
    assert bench_quality.method_setting("none", {"adv_epsilon": 0.1}) is None
    assert bench_quality.method_setting("none", {}) == {}
    assert bench_quality.method_setting("r3f", {"adv_epsilon": 0.1}) is None  # R3F has no radius
    assert bench_quality.method_setting("r3f", {"adv_start_step": 0.1}) == {"adv_start_step": 0.1}
    name = bench_quality.output_name("cola", "pgd", 2, {"adv_epsilon": 0.1, "adv_start_step": 0.25})
    assert name == "cola_pgd_2_epsilon0.1_start_step0.25"


def fake_evaluation(model, commands, results):
    def fake_attack(command, check, stdout):
        commands.append(command)
        out = model / "evaluation"
        out.mkdir()
        (out / "eval_results.json").write_text(json.dumps(results))
        row = {"idx": 0, "label": 1, "prediction": 1, "original_prediction": 0}
        (out / "advglue_predictions_sst2.jsonl").write_text(json.dumps(row) + "\n")

    return fake_attack


def kept_model(tmp_path, name, results):
    model = tmp_path / name
    model.mkdir()
    (model / "all_results.json").write_text(json.dumps(results))
    (model / "eval_results.json").write_text(json.dumps({"eval_accuracy": 0.8}))
    return model


def test_a_kept_model_is_evaluated_on_advglue_without_training(tmp_path, monkeypatch):
    model = kept_model(tmp_path, "sst2_none_1", {"eval_accuracy": 0.8, "train_runtime": 10.0, **ROBUST})
    commands = []
    advglue = {"eval_advglue_accuracy": 0.5}
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_evaluation(model, commands, advglue))
    old = {"task": "sst2", "method": "none", "seed": 1, "settings": {}, "wall_s": 300}
    old["results"] = {"eval_accuracy": 0.7}
    record = bench_quality.evaluate_kept(old, "dev.json", tmp_path)
    (command,) = commands
    assert command[1].endswith("attack.py") and "--do_train" not in command
    assert command[command.index("--advglue_file") + 1] == "dev.json"
    assert "--do_robust_eval" not in command  # measured with the training
    assert record["results"] == {"eval_accuracy": 0.8, "train_runtime": 10.0, **ROBUST, "eval_advglue_accuracy": 0.5}
    assert record["advglue"] == {"idx": [0], "correct": [1], "benign_correct": [0]}
    assert bench_quality.evaluate_kept({**old, "seed": 2}, None, tmp_path) is None  # no model kept: train again
    (tmp_path / "sst2_none_3").mkdir()
    (tmp_path / "sst2_none_3" / "all_results.json").write_text("{}")  # written before evaluation: not finished
    assert bench_quality.evaluate_kept({**old, "seed": 3}, None, tmp_path) is None


def test_a_kept_model_without_the_pgd_evaluation_gets_only_that(tmp_path, monkeypatch):
    settings = {"adv_epsilon": 0.1}
    model = kept_model(tmp_path, "cola_pgd_1_epsilon0.1", {"eval_matthews_correlation": 0.2})
    commands = []
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_evaluation(model, commands, ROBUST_COLA))
    old = {"task": "cola", "method": "pgd", "seed": 1, "settings": settings, "wall_s": 300, "results": {}}
    record = bench_quality.evaluate_kept(old, "dev.json", tmp_path, glue_dir="glue")
    (command,) = commands
    assert "--do_robust_eval" in command and command[command.index("--glue_dir") + 1] == "glue"
    assert "--do_advglue_eval" not in command and "advglue" not in record  # CoLA is not in AdvGLUE
    assert record["results"] == {"eval_matthews_correlation": 0.2, **ROBUST_COLA} and record["settings"] == settings
    assert bench_quality.complete(record)


def test_a_run_passes_its_settings_and_the_task_s_evaluations(tmp_path, monkeypatch):
    commands = []

    def fake_run_glue(command, check, stdout):
        commands.append(command)
        out = Path(command[command.index("--output_dir") + 1])
        out.mkdir()
        (out / "all_results.json").write_text(json.dumps({"eval_matthews_correlation": 0.2, **ROBUST_COLA}))

    monkeypatch.setattr(bench_quality.subprocess, "run", fake_run_glue)
    record = bench_quality.run("cola", "pgd", 2, {"adv_epsilon": 0.1}, "glue", None, tmp_path)
    (command,) = commands
    assert command[command.index("--adv_epsilon") + 1] == "0.1" and command[command.index("--seed") + 1] == "2"
    assert command[command.index("--robust_epsilons") + 1 : command.index("--robust_steps")] == ["0.05", "0.1"]
    assert "--do_attack_eval" not in command and "--do_advglue_eval" not in command  # SST-2 only
    assert Path(command[command.index("--output_dir") + 1]).name == "cola_pgd_2_epsilon0.1"
    assert record["settings"] == {"adv_epsilon": 0.1} and bench_quality.complete(record)
    assert record["threads"] == int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))


def write_records(path, task, count):
    for seed in range(count):
        bench_quality.replace_record(path, {"task": task, "method": "none", "seed": seed, "results": {}})


def test_grids_side_by_side_keep_each_other_s_records(tmp_path):
    path = tmp_path / "quality.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=write_records, args=(path, task, 40)) for task in ("cola", "mrpc")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    records = bench_quality.read_records(path)
    expected = sorted((task, seed) for task in ("cola", "mrpc") for seed in range(40))
    assert sorted((r["task"], r["seed"]) for r in records) == expected
