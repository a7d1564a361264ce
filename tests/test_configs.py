"""One config per task (and per CPU run), the method from `--adv_method`: each parses with every method at its
defaults, with numbers typed as numbers."""

from pathlib import Path

import pytest
import yaml

from adv_trainer import AdversarialTrainingArguments
from adv_trainer.glue import TASKS
from scripts import run_glue

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
GLUE_TRAINING_TASKS = [name for name in TASKS if name != "ax"]
METHODS = ["none", "fgm", "pgd", "freelb", "smart", "r3f", "awp", "creat"]
NUMERIC = ("learning_rate", "weight_decay", "warmup_steps")


def test_there_is_one_config_per_task_and_one_per_cpu_run():
    names = {path.stem for path in CONFIGS}
    assert names == {*GLUE_TRAINING_TASKS, "sst2_minilm_cpu", "mrpc_minilm_cpu", "cola_minilm_cpu", "wnli_minilm_cpu"}


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_restates_no_adversarial_setting_and_parses_with_every_method(path, tmp_path):
    raw = yaml.safe_load(path.read_text())
    assert not [key for key in raw if key.startswith("adv_")]  # they come from AdversarialTrainingArguments
    for key in NUMERIC:
        if key in raw:
            assert isinstance(raw[key], (int, float)) and not isinstance(raw[key], bool), f"{key} is {raw[key]!r}"
    for method in METHODS:
        args = [str(path), "--output_dir", str(tmp_path), "--adv_method", method]
        model_args, data_args, training_args, _ = run_glue.parse_arguments(args)
        assert data_args.task_name == path.stem.split("_")[0] and training_args.adv_method == method
        assert training_args.do_train and training_args.do_eval
        defaults = AdversarialTrainingArguments(output_dir=str(tmp_path), adv_method=method, report_to="none")
        assert training_args.adversarial_fields() == defaults.adversarial_fields()
    if path.stem.endswith("_cpu"):
        assert model_args.model_name_or_path == run_glue.OFFLINE_MINILM
    else:
        assert model_args.model_name_or_path == "bert-base-uncased" and training_args.fp16
