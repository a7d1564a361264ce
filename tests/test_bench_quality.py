"""The quality grid's bookkeeping: AdvGLUE and word-attack outcomes kept per example, incomplete records replaced in
place, runs keyed by the hyperparameters they trained with."""

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from adv_trainer.adversarial_config import AdversarialMethod
from adv_trainer.defaults import DEFAULTS, FIELDS_USED
from benchmarks import bench_quality
from scripts import attack, run_glue

ROBUST = {"eval_robust_accuracy_eps0.05": 0.3}
ROBUST_COLA = {"eval_robust_matthews_correlation_eps0.05": 0.1}  # each task's own metrics under attack
ATTACKED = {"pwws": {"correct": [1]}, "deepwordbug": {"correct": [0]}}  # a record's word-attack outcomes (shortened)
# attack_records rows: (label, original_prediction, adversarial_prediction, perturbed_words, words, queries).
PWWS_ROWS = [(1, 1, 0, 2, 9, 40), (0, 0, 0, 0, 5, 22), (1, 0, 0, 0, 7, 1)]  # succeeded, failed, skipped
DEEPWORDBUG_ROWS = [(1, 1, 1, 0, 9, 61), (0, 0, 1, 3, 5, 30), (1, 0, 0, 0, 7, 1)]  # failed, succeeded, skipped


def write_attack_records(folder, attack, rows):
    """`attack_records_<attack>_validation.jsonl` as run_glue.py writes it: the AttackResult fields and status."""
    keys = ("label", "original_prediction", "adversarial_prediction", "perturbed_words", "words", "queries")
    texts = {"original_text": "a fine film", "adversarial_text": "a fine movie", "status": "skipped"}
    lines = [json.dumps(dict(zip(keys, row, strict=True)) | texts) + "\n" for row in rows]
    (Path(folder) / f"attack_records_{attack}_validation.jsonl").write_text("".join(lines))


def test_word_attack_outcomes_are_kept_per_example_in_dev_order(tmp_path, monkeypatch):
    monkeypatch.setitem(bench_quality.WORD_ATTACK_EXAMPLES, "mrpc", 3)
    write_attack_records(tmp_path, "pwws", PWWS_ROWS)
    write_attack_records(tmp_path, "deepwordbug", DEEPWORDBUG_ROWS)
    record = bench_quality.with_word_attacks({"task": "mrpc", "results": ROBUST}, tmp_path)
    assert record["word_attacks"] == {
        "pwws": {"correct": [0, 1, 0], "original_correct": [1, 1, 0], "perturbed_words": [2, 0, 0],
                 "words": [9, 5, 7], "queries": [40, 22, 1]},
        "deepwordbug": {"correct": [1, 0, 0], "original_correct": [1, 1, 0], "perturbed_words": [0, 3, 0],
                        "words": [9, 5, 7], "queries": [61, 30, 1]},
    }  # fmt: skip
    assert bench_quality.complete(record)
    # An MRPC or SST-2 record from before the word attacks, or with one of them, is trained again; CoLA has none.
    assert not bench_quality.complete({"task": "mrpc", "results": ROBUST})
    assert not bench_quality.complete({**record, "word_attacks": {"pwws": record["word_attacks"]["pwws"]}})
    assert not bench_quality.complete({"task": "sst2", "results": ROBUST, "advglue": {"idx": [0]}})
    assert bench_quality.complete({"task": "cola", "results": ROBUST_COLA})
    assert bench_quality.with_word_attacks({"task": "cola"}, tmp_path) == {"task": "cola"}
    assert bench_quality.with_word_attacks({"task": "mrpc"}, tmp_path / "absent") == {"task": "mrpc"}
    # A file of fewer examples than the dev set (run_glue.py's default, 200) is refused, not kept as a subset.
    monkeypatch.setitem(bench_quality.WORD_ATTACK_EXAMPLES, "mrpc", 4)
    with pytest.raises(ValueError, match="has 3 examples, not the 4 of mrpc's dev set.*--attack_max_examples 4"):
        bench_quality.with_word_attacks({"task": "mrpc", "results": ROBUST}, tmp_path)


def fake_attacked_run_glue(calls):
    """run_glue.py as the grid starts it: all_results.json, and the records of every attack it is asked for."""

    def run_glue(command, check, stdout, env):
        calls.append((command, env))
        out = Path(command[command.index("--output_dir") + 1])
        out.mkdir(parents=True)
        (out / "all_results.json").write_text(json.dumps({"eval_f1": 0.8, **ROBUST}))
        if "--do_attack_eval" in command:
            examples = int(command[command.index("--attack_max_examples") + 1])
            for attack in bench_quality.WORD_ATTACKS:
                write_attack_records(out, attack, [(1, 1, 0, 1, 4, 9)] * examples)
        if "--do_advglue_eval" in command:
            row = {"idx": 0, "label": 1, "prediction": 1, "original_prediction": 0}
            (out / "advglue_predictions_sst2.jsonl").write_text(json.dumps(row) + "\n")

    return run_glue


def test_a_run_attacks_every_dev_example_of_sst2_and_mrpc_with_pwws_and_deepwordbug(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_attacked_run_glue(calls))
    nltk_data = tmp_path / "nltk_data"
    nltk_data.mkdir()
    monkeypatch.setattr(bench_quality, "SHARED_NLTK_DATA", nltk_data)
    monkeypatch.delenv("NLTK_DATA", raising=False)
    sst2 = bench_quality.run("sst2", "none", 2, {}, None, None, tmp_path / "models")
    mrpc = bench_quality.run("mrpc", "pgd", 3, {}, None, None, tmp_path / "models")
    for (command, env), examples, seed in zip(calls, (872, 408), (2, 3), strict=True):
        start = command.index("--attack_methods") + 1
        assert command[start : start + 2] == ["pwws", "deepwordbug"] and command[start + 2].startswith("--")
        assert "embedding_neighbour" not in command and "--attack_max_queries" not in command
        assert env["NLTK_DATA"] == str(nltk_data)  # WordNet beside the repository, as ../shared/glue is found
        # As run_glue.py reads the command: both attacks on every dev example, no budget, DeepWordBug at the seed.
        _, _, training, robustness = run_glue.parse_arguments(command[2:])
        assert robustness.do_attack_eval and robustness.attack_methods == ["pwws", "deepwordbug"]
        assert robustness.attack_max_examples == examples
        assert robustness.attack_max_queries is None and robustness.attack_max_words_fraction is None
        assert robustness.attack_options("deepwordbug", 128, training.seed)["seed"] == seed
    assert [len(r["word_attacks"][a]["correct"]) for r in (sst2, mrpc) for a in ("pwws", "deepwordbug")] == [
        872, 872, 408, 408
    ]  # fmt: skip
    assert bench_quality.complete(sst2) and bench_quality.complete(mrpc)
    monkeypatch.setenv("NLTK_DATA", "/elsewhere")
    bench_quality.run("cola", "none", 1, {}, None, None, tmp_path / "models")
    command, env = calls[-1]
    assert env["NLTK_DATA"] == "/elsewhere" and "--do_attack_eval" not in command  # CoLA: no word attacks


def test_a_kept_model_gets_the_missing_word_attacks_without_training(tmp_path, monkeypatch):
    monkeypatch.setitem(bench_quality.WORD_ATTACK_EXAMPLES, "mrpc", 3)
    trained = bench_quality.hyperparameters("pgd", {})
    model = kept_model(tmp_path, "mrpc_pgd_2_epsilon0.02", {"eval_f1": 0.8, "train_runtime": 9.0, **ROBUST}, trained)
    commands = []

    def fake_attack(command, check, stdout, env):
        commands.append(command)
        out = Path(command[command.index("--output_dir") + 1])
        out.mkdir(exist_ok=True)
        (out / "eval_results.json").write_text(json.dumps({"eval_pwws_accuracy_under_attack": 0.2}))
        write_attack_records(out, "pwws", PWWS_ROWS)
        write_attack_records(out, "deepwordbug", DEEPWORDBUG_ROWS)

    monkeypatch.setattr(bench_quality.subprocess, "run", fake_attack)
    old = {"task": "mrpc", "method": "pgd", "seed": 2, "hyperparameters": trained, "wall_s": 300, "results": {}}
    record = bench_quality.evaluate_kept(old, None, tmp_path, glue_dir="glue")
    (command,) = commands
    assert command[1].endswith("attack.py") and "--do_train" not in command and "--do_robust_eval" not in command
    assert command[command.index("--glue_dir") + 1] == "glue"  # the attacks read the dev set
    _, _, training, robustness = attack.build_parser().parse_args_into_dataclasses(args=command[2:])
    assert robustness.do_attack_eval and robustness.attack_methods == ["pwws", "deepwordbug"]
    assert robustness.attack_max_examples == 3 and training.seed == 2  # DeepWordBug's edits, as in training
    assert record["word_attacks"]["pwws"]["correct"] == [0, 1, 0] and bench_quality.complete(record)
    assert record["results"] == {
        "eval_f1": 0.8,
        "train_runtime": 9.0,
        **ROBUST,
        "eval_pwws_accuracy_under_attack": 0.2,
    }
    # A record with its outcomes runs no attack again (here: only the PGD evaluation its kept model lacks).
    shutil.rmtree(model / "evaluation")
    (model / "all_results.json").write_text(json.dumps({"eval_f1": 0.8}))
    bench_quality.evaluate_kept(record, None, tmp_path)
    assert "--do_robust_eval" in commands[1] and "--attack_methods" not in commands[1]
    assert commands[1][commands[1].index("--do_attack_eval") + 1] == "false"


def test_a_kept_model_s_own_attack_records_complete_its_record_without_a_process(tmp_path, monkeypatch):
    """A grid stopped between a run's end and its record: the training run's files hold every outcome."""
    monkeypatch.setitem(bench_quality.WORD_ATTACK_EXAMPLES, "mrpc", 3)
    model = kept_model(tmp_path, "mrpc_none_1", {"eval_f1": 0.8, **ROBUST}, {})
    write_attack_records(model, "pwws", PWWS_ROWS)
    write_attack_records(model, "deepwordbug", DEEPWORDBUG_ROWS)
    monkeypatch.setattr(bench_quality.subprocess, "run", lambda *args, **kwargs: pytest.fail("no evaluation needed"))
    stub = {"task": "mrpc", "method": "none", "seed": 1, "hyperparameters": {}, "wall_s": None, "results": {}}
    record = bench_quality.evaluate_kept(stub, None, tmp_path)
    assert record["results"] == {"eval_f1": 0.8, **ROBUST} and record["word_attacks"]["deepwordbug"]["queries"] == [
        61, 30, 1
    ]  # fmt: skip


def test_every_adversarial_method_can_be_run_and_the_default_grid_is_the_eight_methods():
    parser = bench_quality.build_parser()
    assert parser.parse_args([]).methods == ["none", "fgm", "pgd", "freelb", "smart", "r3f", "awp", "creat"]
    every = [method.value for method in AdversarialMethod]
    assert parser.parse_args(["--methods", *every]).methods == every  # a method added to the enum is a choice
    with pytest.raises(SystemExit):
        parser.parse_args(["--methods", "pgd2"])
    for method in every:  # and its run is keyed by what it trains with
        trained = bench_quality.hyperparameters(method, {})
        expected = () if method == "none" else (*FIELDS_USED[method], "adv_norm", "adv_scope", "adv_start_step")
        assert list(trained) == list(expected), method
        assert bench_quality.settings_of(method, trained) == {}
        assert bench_quality.output_name("sst2", method, 1, trained).startswith(f"sst2_{method}_1")


def test_advglue_outcomes_are_kept_per_example_in_file_order(tmp_path):
    rows = [
        {"idx": 7, "label": 1, "prediction": 1, "original_prediction": 0},
        {"idx": 3, "label": 0, "prediction": 1, "original_prediction": None},
        {"idx": 5, "label": 0, "prediction": 0, "original_prediction": 0},
    ]
    (tmp_path / "advglue_predictions_sst2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = bench_quality.with_advglue({"task": "sst2", "results": ROBUST, "word_attacks": ATTACKED}, tmp_path)
    assert record["advglue"] == {"idx": [7, 3, 5], "correct": [1, 0, 1], "benign_correct": [0, None, 1]}
    assert bench_quality.complete(record)
    assert not bench_quality.complete({"task": "sst2", "results": ROBUST, "word_attacks": ATTACKED})  # no AdvGLUE
    assert not bench_quality.complete({**record, "results": {}})  # no PGD evaluation
    assert bench_quality.complete({"task": "cola", "results": ROBUST_COLA})  # not scored on AdvGLUE
    assert not bench_quality.complete({"task": "cola", "results": {}})
    assert bench_quality.with_advglue({"task": "cola"}, tmp_path) == {"task": "cola"}


def test_a_completed_record_replaces_its_run_and_keeps_the_others(tmp_path):
    path = tmp_path / "quality.jsonl"
    old = [{"task": t, "method": "none", "seed": s, "hyperparameters": {}, "results": {"v": 0}}
           for t, s in [("sst2", 1), ("cola", 1)]]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    none = {"task": "sst2", "method": "none", "seed": 1, "hyperparameters": {}, "results": {"v": 1}}
    bench_quality.replace_record(path, none)
    pgd = {"task": "sst2", "method": "pgd", "seed": 1, "hyperparameters": bench_quality.hyperparameters("pgd", {})}
    bench_quality.replace_record(path, {**pgd, "results": {"v": 2}})
    swept = {**pgd, "hyperparameters": bench_quality.hyperparameters("pgd", {"adv_epsilon": 0.1}), "results": {"v": 3}}
    bench_quality.replace_record(path, swept)
    records = bench_quality.read_records(path)
    assert [(r["task"], r["method"], r["results"]["v"]) for r in records] == [
        ("cola", "none", 0), ("sst2", "none", 1), ("sst2", "pgd", 2), ("sst2", "pgd", 3)
    ]  # fmt: skip


def test_settings_are_parsed_and_skipped_by_methods_that_do_not_read_them():
    assert bench_quality.parse_setting("") == {}
    setting = bench_quality.parse_setting("adv_epsilon=0.1,adv_start_step=0.1")
    assert setting == {"adv_epsilon": 0.1, "adv_start_step": 0.1}
    for bad in ("epsilon=0.1", "adv_epsilon", "adv_epsilon=big", "adv_method=pgd"):
        with pytest.raises(SystemExit, match="adv_epsilon=0.02"):
            bench_quality.parse_setting(bad)
    assert bench_quality.parse_setting("adv_k=5") == {"adv_k": 5} and isinstance(
        bench_quality.parse_setting("adv_k=5.0")["adv_k"], int
    )  # run_glue.py reads a step count as a whole number
    with pytest.raises(SystemExit, match="adv_k=2.5'.*adv_k=3"):
        bench_quality.parse_setting("adv_k=2.5")
    # The synonym-aware methods' own fields sweep too; a synonym count is a whole number.
    setting = bench_quality.parse_setting("adv_sparsity=0.5,adv_synonyms=8,adv_fraction=0.2,adv_concentration=1")
    assert setting == {"adv_sparsity": 0.5, "adv_synonyms": 8, "adv_fraction": 0.2, "adv_concentration": 1.0}
    assert isinstance(setting["adv_synonyms"], int)
    assert bench_quality.reads("ascc", {"adv_sparsity": 0.5}) and not bench_quality.reads("pgd", {"adv_sparsity": 0.5})
    with pytest.raises(SystemExit, match="adv_synonyms counts synonyms"):
        bench_quality.parse_setting("adv_synonyms=2.5")
    assert bench_quality.reads("creat", {"adv_epsilon": 0.1}) and bench_quality.reads("none", {})
    assert not bench_quality.reads("none", {"adv_epsilon": 0.1})
    assert not bench_quality.reads("r3f", {"adv_epsilon": 0.1})  # R3F has no radius
    assert bench_quality.reads("r3f", {"adv_start_step": 0.1})


def test_a_run_is_keyed_by_the_hyperparameters_it_trains_with():
    pgd = bench_quality.hyperparameters("pgd", {"adv_epsilon": 0.1})
    assert pgd == {
        "adv_epsilon": 0.1,
        "adv_alpha": 0.03,
        "adv_k": 3,
        "adv_init_mag": 0.0,
        "adv_weight": 1.0,
        "adv_norm": "l2",
        "adv_scope": "example",
        "adv_start_step": 0,
    }  # fmt: skip  (alpha keeps its 0.3 of the radius)
    assert bench_quality.hyperparameters("none", {}) == {}
    # A radius equal to the default is the defaults' run; the settings are what differs from today's defaults.
    assert bench_quality.hyperparameters("pgd", {"adv_epsilon": 0.02}) == bench_quality.hyperparameters("pgd", {})
    assert bench_quality.settings_of("pgd", bench_quality.hyperparameters("pgd", {"adv_epsilon": 0.02})) == {}
    assert bench_quality.settings_of("pgd", pgd) == {"adv_epsilon": 0.1}  # alpha follows: not a setting of its own
    warm = bench_quality.hyperparameters("pgd", {"adv_epsilon": 0.1, "adv_start_step": 0.25})
    assert bench_quality.settings_of("pgd", warm) == {"adv_epsilon": 0.1, "adv_start_step": 0.25}
    assert bench_quality.settings_of("pgd", {**pgd, "adv_alpha": 0.01}) == {"adv_epsilon": 0.1, "adv_alpha": 0.01}
    assert bench_quality.output_name("cola", "pgd", 2, warm) == "cola_pgd_2_epsilon0.1_start_step0.25"
    # The radius is named even at the default, so that a kept model's folder means the same under any defaults.
    fgm = bench_quality.hyperparameters("fgm", {})
    assert bench_quality.output_name("cola", "fgm", 1, fgm) == "cola_fgm_1_epsilon0.02"
    assert bench_quality.output_name("cola", "none", 1, {}) == "cola_none_1"


def test_settings_name_every_difference_even_a_text_value_or_a_flag_the_run_did_not_have():
    smart = bench_quality.hyperparameters("smart", {})
    assert smart["adv_noise"] == "normal"
    uniform = {**smart, "adv_noise": "uniform"}
    assert bench_quality.settings_of("smart", uniform) == {"adv_noise": "uniform"}
    assert bench_quality.output_name("sst2", "smart", 1, uniform) == "sst2_smart_1_epsilon0.05_noiseuniform"
    r3f = bench_quality.hyperparameters("r3f", {})
    assert "adv_epsilon" not in r3f and bench_quality.settings_of("r3f", r3f) == {}
    # A radius the method no longer reads, and a flag it reads today that the run did not have.
    assert bench_quality.settings_of("r3f", {**r3f, "adv_epsilon": 0.1}) == {"adv_epsilon": 0.1}
    fgm = bench_quality.hyperparameters("fgm", {})
    without_weight = {flag: v for flag, v in fgm.items() if flag != "adv_weight"}
    assert bench_quality.settings_of("fgm", without_weight) == {"adv_weight": None}


def test_a_record_keeps_its_meaning_when_a_default_changes(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_run_glue(commands))
    results = tmp_path / "quality.jsonl"
    grid = ["bench_quality.py", "--tasks", "cola", "--methods", "fgm", "--seeds", "1", "--results", str(results)]
    monkeypatch.setattr("sys.argv", [*grid, "--models_dir", str(tmp_path / "models")])
    bench_quality.main()  # FGM's default radius, 0.02
    (record,) = bench_quality.read_records(results)
    key = bench_quality.run_key(record)
    monkeypatch.setitem(DEFAULTS, ("fgm", "example", "l2"), {"epsilon": 0.05})
    assert bench_quality.run_key(record) == key
    assert bench_quality.settings_of("fgm", record["hyperparameters"]) == {"adv_epsilon": 0.02}  # not the defaults
    bench_quality.main()  # the new default is a run of its own
    assert len(commands) == 2 and bench_quality.read_records(results)[0] == record
    assert bench_quality.read_records(results)[1]["hyperparameters"]["adv_epsilon"] == 0.05


def test_a_kept_model_of_other_hyperparameters_is_not_reused(tmp_path, monkeypatch):
    trained = bench_quality.hyperparameters("pgd", {})
    model = kept_model(tmp_path, "cola_pgd_1_epsilon0.02", {"eval_matthews_correlation": 0.2}, trained)
    record = {"task": "cola", "method": "pgd", "seed": 1, "hyperparameters": trained, "results": {}}
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_evaluation(model, [], ROBUST_COLA))
    assert bench_quality.evaluate_kept(record, None, tmp_path) is not None
    shutil.rmtree(model / "evaluation")
    # Were PGD's default K 5, its defaults' run would have the same folder name as this K = 3 model.
    monkeypatch.setitem(DEFAULTS, ("pgd", "example", "l2"), {**DEFAULTS[("pgd", "example", "l2")], "k": 5})
    five = {**record, "hyperparameters": bench_quality.hyperparameters("pgd", {})}
    assert bench_quality.output_name("cola", "pgd", 1, five["hyperparameters"]) == model.name
    assert bench_quality.evaluate_kept(five, None, tmp_path) is None  # train again


def fake_evaluation(model, commands, results):
    def fake_attack(command, check, stdout, env):
        commands.append(command)
        out = model / "evaluation"
        out.mkdir()
        (out / "eval_results.json").write_text(json.dumps(results))
        row = {"idx": 0, "label": 1, "prediction": 1, "original_prediction": 0}
        (out / "advglue_predictions_sst2.jsonl").write_text(json.dumps(row) + "\n")

    return fake_attack


def kept_model(tmp_path, name, results, trained):
    model = tmp_path / name
    model.mkdir()
    (model / "all_results.json").write_text(json.dumps(results))
    (model / "hyperparameters.json").write_text(json.dumps(trained))
    return model


def test_a_kept_model_is_evaluated_on_advglue_without_training(tmp_path, monkeypatch):
    model = kept_model(tmp_path, "sst2_none_1", {"eval_accuracy": 0.8, "train_runtime": 10.0, **ROBUST}, {})
    commands = []
    advglue = {"eval_advglue_accuracy": 0.5}
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_evaluation(model, commands, advglue))
    old = {"task": "sst2", "method": "none", "seed": 1, "hyperparameters": {}, "wall_s": 300}
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
    (tmp_path / "sst2_none_3" / "all_results.json").write_text("{}")  # no hyperparameters.json: not finished
    assert bench_quality.evaluate_kept({**old, "seed": 3}, None, tmp_path) is None


def test_a_kept_model_without_the_pgd_evaluation_gets_only_that(tmp_path, monkeypatch):
    trained = bench_quality.hyperparameters("pgd", {"adv_epsilon": 0.1})
    model = kept_model(tmp_path, "cola_pgd_1_epsilon0.1", {"eval_matthews_correlation": 0.2}, trained)
    commands = []
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_evaluation(model, commands, ROBUST_COLA))
    old = {"task": "cola", "method": "pgd", "seed": 1, "hyperparameters": trained, "wall_s": 300, "results": {}}
    record = bench_quality.evaluate_kept(old, "dev.json", tmp_path, glue_dir="glue")
    (command,) = commands
    assert "--do_robust_eval" in command and command[command.index("--glue_dir") + 1] == "glue"
    assert "--do_advglue_eval" not in command and "advglue" not in record  # CoLA is not in AdvGLUE
    assert record["results"] == {"eval_matthews_correlation": 0.2, **ROBUST_COLA}
    assert record["hyperparameters"] == trained
    assert bench_quality.complete(record)


def fake_run_glue(commands):
    def run_glue(command, check, stdout, env):
        commands.append(command)
        out = Path(command[command.index("--output_dir") + 1])
        out.mkdir(parents=True)  # as run_glue.py does
        (out / "all_results.json").write_text(json.dumps({"eval_matthews_correlation": 0.2, **ROBUST_COLA}))

    return run_glue


def test_a_run_passes_its_settings_and_the_task_s_evaluations(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_run_glue(commands))
    record = bench_quality.run("cola", "pgd", 2, {"adv_epsilon": 0.1}, "glue", None, tmp_path)
    bench_quality.run("cola", "pgd", 3, {"adv_epsilon": 0.0123456789, "adv_k": 5}, "glue", None, tmp_path)
    command, precise = commands
    assert command[command.index("--adv_epsilon") + 1] == "0.1" and command[command.index("--seed") + 1] == "2"
    assert precise[precise.index("--adv_epsilon") + 1] == "0.0123456789"  # every digit the record keeps
    assert precise[precise.index("--adv_k") + 1] == "5"
    assert command[command.index("--robust_epsilons") + 1 : command.index("--robust_steps")] == ["0.05", "0.1"]
    assert "--do_attack_eval" not in command and "--do_advglue_eval" not in command  # SST-2 only
    assert Path(command[command.index("--output_dir") + 1]).name == "cola_pgd_2_epsilon0.1"
    assert record["hyperparameters"] == bench_quality.hyperparameters("pgd", {"adv_epsilon": 0.1})
    assert (
        json.loads((tmp_path / "cola_pgd_2_epsilon0.1" / "hyperparameters.json").read_text())
        == (record["hyperparameters"])
    )  # what a kept model's folder trained with
    assert bench_quality.complete(record)
    assert record["threads"] == int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))


def write_records(path, task, count):
    for seed in range(count):
        record = {"task": task, "method": "none", "seed": seed, "hyperparameters": {}, "results": {}}
        bench_quality.replace_record(path, record)


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


def test_the_grid_trains_each_distinct_run_once_and_resumes(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(bench_quality.subprocess, "run", fake_run_glue(commands))
    results = tmp_path / "quality.jsonl"
    grid = [
        "bench_quality.py",
        "--tasks",
        "cola",
        "--methods",
        "none",
        "pgd",
        "--seeds",
        "1",
        "--results",
        str(results),
    ]
    grid += ["--models_dir", str(tmp_path / "models"), "--settings", "", "adv_epsilon=0.02", "adv_epsilon=0.1"]
    monkeypatch.setattr("sys.argv", grid)
    bench_quality.main()
    # none reads no radius; pgd at 0.02, its default radius, is the defaults' run: three runs, not five.
    assert [(c[c.index("--adv_method") + 1], "--adv_epsilon" in c) for c in commands] == [
        ("none", False), ("pgd", False), ("pgd", True)
    ]  # fmt: skip
    records = bench_quality.read_records(results)
    assert [bench_quality.settings_of(r["method"], r["hyperparameters"]) for r in records] == [
        {},
        {},
        {"adv_epsilon": 0.1},
    ]
    bench_quality.main()
    assert len(commands) == 3 and bench_quality.read_records(results) == records  # every run recorded: resumed


def test_the_committed_records_keep_their_hyperparameters():
    records = bench_quality.read_records(bench_quality.RESULTS)
    assert records and all("hyperparameters" in r and "settings" not in r for r in records)
    assert len({bench_quality.run_key(r) for r in records}) == len(records)
    for record in records:
        trained = record["hyperparameters"]
        assert None not in bench_quality.settings_of(record["method"], trained).values(), record["task"]
        assert trained.keys() == bench_quality.hyperparameters(record["method"], {}).keys()
