"""The scripts report this run only, warn about flags another setting rules out, and say where a resumed run starts."""

import json

import pytest

from scripts import attack, run_glue
from tests.glue_files import shared_glue
from tests.test_run_glue import run, tiny_model  # noqa: F401  (tiny_model is a fixture)


def test_a_second_run_into_the_same_folder_reports_its_own_results_only(tmp_path, tiny_model, capsys):  # noqa: F811
    glue = shared_glue()
    trained = run(tiny_model, tmp_path / "model", "--task_name", "sst2", "--glue_dir", str(glue), "--do_train",
                  "--max_train_samples", "16")  # fmt: skip
    out = tmp_path / "attack"
    common = ["--model_name_or_path", str(trained), "--task_name", "sst2", "--glue_dir", str(glue), "--use_cpu",
              "true", "--output_dir", str(out), "--max_eval_samples", "4", "--disable_tqdm", "true"]  # fmt: skip
    attack.main([*common, "--do_advglue_eval"])
    assert any(key.startswith("eval_advglue_") for key in json.loads((out / "all_results.json").read_text()))
    capsys.readouterr()
    attack.main([*common, "--do_robust_eval", "--robust_epsilons", "0.1", "--do_attack_eval", "false"])
    results = json.loads((out / "all_results.json").read_text())
    assert "eval_robust_accuracy_eps0.1" in results
    assert not any(key.startswith("eval_advglue_") for key in results)  # the earlier run's 30 keys are gone
    summary = capsys.readouterr().out.splitlines()[-2]
    assert summary.startswith("Results: eval_robust_accuracy_eps0.1") and "advglue" not in summary


def parse(*args):
    return run_glue.parse_arguments(["--model_name_or_path", "m", "--task_name", "sst2", *args])


def test_save_steps_under_a_config_that_saves_nothing_is_named_with_it():
    with pytest.warns(UserWarning) as caught:
        parse_config = ["configs/sst2_minilm_cpu.yaml", "--save_steps", "2", "--max_steps", "4"]
        run_glue.parse_arguments(parse_config)
    messages = [str(w.message) for w in caught if "has no effect" in str(w.message)]
    assert messages == [
        "`save_steps=2` (from the command line) has no effect: `save_strategy` is 'no' (from "
        "configs/sst2_minilm_cpu.yaml). Pass `--save_strategy steps` to use it."
    ]


@pytest.mark.parametrize(
    "args,flag,setting",
    [
        (["--eval_steps", "5"], "eval_steps", "`eval_strategy` is 'no' (its default)"),
        (["--max_train_samples", "8", "--do_eval"], "max_train_samples", "`do_train` is False (its default)"),
        (["--robust_steps", "3", "--do_eval"], "robust_steps", "`do_robust_eval` is False (its default)"),
        (["--attack_max_queries", "9", "--do_robust_eval"], "attack_max_queries", "`do_attack_eval` is False"),
    ],
)
def test_flags_that_cannot_take_effect_are_named_with_the_setting(args, flag, setting):
    with pytest.warns(UserWarning, match="has no effect") as caught:
        parse("--output_dir", "out", *args)
    (message,) = [str(w.message) for w in caught if "has no effect" in str(w.message)]
    assert message.startswith(f"`{flag}=") and setting in message


def test_flags_that_take_effect_give_no_warning(recwarn):
    parse("--output_dir", "out", "--save_strategy", "steps", "--save_steps", "2", "--do_train",
          "--max_train_samples", "8")  # fmt: skip
    assert not [w for w in recwarn if "has no effect" in str(w.message)]


def test_a_resumed_run_says_from_which_checkpoint_and_step(tmp_path, tiny_model, capsys):  # noqa: F811
    glue = shared_glue()
    first = run(tiny_model, tmp_path, "--task_name", "sst2", "--glue_dir", str(glue), "--do_train",
                "--max_train_samples", "32", "--save_strategy", "steps", "--save_steps", "1")  # fmt: skip
    checkpoint = first / "checkpoint-1"
    capsys.readouterr()
    run(tiny_model, tmp_path, "--task_name", "sst2", "--glue_dir", str(glue), "--do_train", "--max_train_samples",
        "32", "--resume_from_checkpoint", str(checkpoint))  # fmt: skip
    assert f"Resuming from {checkpoint} at optimizer step 1 of 2 (epoch 0.25)." in capsys.readouterr().out
