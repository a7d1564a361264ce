"""Every shipped config parses into valid arguments, with numbers typed as numbers."""

import itertools
from pathlib import Path

import pytest
import yaml

from adv_trainer.glue import TASKS
from scripts import run_glue

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
GLUE_TRAINING_TASKS = [name for name in TASKS if name != "ax"]
METHODS = ["none", "fgm", "pgd", "freelb", "smart", "r3f", "awp", "creat"]
NUMERIC = (
    "learning_rate",
    "weight_decay",
    "warmup_steps",
    "adv_epsilon",
    "adv_alpha",
    "adv_init_mag",
    "adv_weight",
    "adv_tau",
)


def test_there_is_a_config_per_task_and_method_and_for_the_cpu_runs():
    names = {path.stem for path in CONFIGS}
    expected = {f"{task}_{method}" for task, method in itertools.product(GLUE_TRAINING_TASKS, METHODS)}
    assert expected <= names
    assert {"sst2_minilm_pgd_cpu", "mrpc_minilm_pgd_cpu", "cola_minilm_pgd_cpu", "wnli_minilm_pgd_cpu"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_parses_into_valid_arguments(path, tmp_path):
    raw = yaml.safe_load(path.read_text())
    for key in NUMERIC:
        if key in raw:
            assert isinstance(raw[key], (int, float)) and not isinstance(raw[key], bool), f"{key} is {raw[key]!r}"
    model_args, data_args, training_args, _ = run_glue.parse_arguments([str(path), "--output_dir", str(tmp_path)])
    task, method = path.stem.split("_")[0], raw["adv_method"]
    assert data_args.task_name == task and training_args.adv_method == method
    assert method in path.stem
    assert training_args.do_train and training_args.do_eval
    for name in ("adv_epsilon", "adv_alpha", "adv_k", "adv_init_mag", "adv_noise", "adv_weight", "adv_tau"):
        if name in raw:
            assert getattr(training_args, name) == raw[name]
    if path.stem.endswith("_cpu"):
        assert model_args.model_name_or_path == run_glue.OFFLINE_MINILM
    else:
        assert model_args.model_name_or_path == "bert-base-uncased" and training_args.fp16
