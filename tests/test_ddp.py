"""2 processes x batch 4 give the update of 1 process x batch 8, with one gradient reduction per optimizer step."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adv_trainer.attacks import DNE as DNE_ATTACK
from adv_trainer.attacks import CreAT
from adv_trainer.attacks.base import SmoothnessRegularizer
from tests import tiny_models

ROOT = Path(__file__).resolve().parent.parent
FGM = {"adv_method": "fgm", "adv_epsilon": 0.3}
PGD = {"adv_method": "pgd", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 3}
FREELB = {"adv_method": "freelb", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": 0.0}
# SMART and R3F draw random noise: tested with `token_noise`, fixed by each example's tokens, in both runs.
SMART = {"adv_method": "smart", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": 0.05}
R3F = {"adv_method": "r3f", "adv_init_mag": 0.05}
# CreAT too; its causal-LM scenario checks the balance of loss and similarity where the loss counts tokens.
CREAT = {"adv_method": "creat", "adv_epsilon": 0.3, "adv_alpha": 0.2, "adv_k": 2, "adv_init_mag": 0.05}
# ASCC with `tiny_models.tiny_synonyms()` as its table, in both runs.
ASCC = {"adv_method": "ascc", "adv_alpha": 0.5, "adv_k": 2, "adv_sparsity": 0.3, "adv_synonyms": 2}
# A2T with the same table; half the examples chosen, so some micro-batches have none (their clean pass is final).
A2T = {"adv_method": "a2t", "adv_fraction": 0.5, "adv_synonyms": 2}
# DNE too, with its Dirichlet sample fixed by each position's neighbourhood (`token_dirichlet`).
DNE = {"adv_method": "dne", "adv_alpha": 2.0, "adv_k": 2, "adv_synonyms": 5}
# name: (model, rows, adversarial arguments, per-process batch, gradient accumulation steps); 2 steps of 8 rows each.
SCENARIOS = {
    "none": ("tiny_bert", "classification_rows", {}, 4, 1),
    "fgm": ("tiny_bert", "classification_rows", FGM, 4, 1),
    "fgm-ga2": ("tiny_bert", "classification_rows", FGM, 2, 2),
    "pgd": ("tiny_bert", "classification_rows", PGD, 4, 1),
    "pgd-ga2": ("tiny_bert", "classification_rows", PGD, 2, 2),
    "freelb-ga2": ("tiny_bert", "classification_rows", FREELB, 2, 2),
    "fgm-causal-lm-ga2": ("tiny_gpt2", "lm_rows", FGM, 2, 2),
    "smart-ga2": ("tiny_bert", "classification_rows", SMART, 2, 2),
    "r3f": ("tiny_bert", "classification_rows", R3F, 4, 1),
    "creat-ga2": ("tiny_bert", "classification_rows", CREAT, 2, 2),
    "creat-causal-lm": ("tiny_gpt2", "lm_rows", CREAT, 4, 1),
    "ascc-ga2": ("tiny_bert", "classification_rows", ASCC, 2, 2),
    "a2t-ga2": ("tiny_bert", "classification_rows", A2T, 2, 2),
    "dne-ga2": ("tiny_bert", "classification_rows", DNE, 2, 2),
}
# A `compute_loss_func` returning its micro-batch's mean: the Trainer would multiply it by the number of processes.
MEAN_LOSS = {"compute_loss_func": "mean_loss"}
SCENARIOS["fgm-mean-loss-func-ga2"] = ("tiny_bert", "classification_rows", {**FGM, **MEAN_LOSS}, 2, 2)
# Launched by torchrun but not DDP (gloo without `use_cpu` on a CPU): accelerate reduces nothing and every process
# trains its own copy, so each logs what one process alone logs. Identical rows make every process's batches those of
# the single process, however the data is sharded.
NOT_DDP = {"fgm-not-ddp": ("tiny_bert", "repeated_rows", {**FGM, "use_cpu": False}, 8, 1)}
# AWP perturbs the weights from each process's own micro-batch gradient: no single-process equivalent by definition.
AWP = {"adv_method": "awp", "adv_epsilon": 0.05, "adv_alpha": 0.5}
BATCH_DEPENDENT = {"awp-ga2": ("tiny_bert", "classification_rows", AWP, 2, 2)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_scenarios(worker, scenarios, out, **env):
    """Runs `tests/<worker>` under `torchrun --nproc_per_node 2` on the scenarios (written to `out`), with `env` added
    to the environment; returns what rank 0 saved in `out/results.pt`."""
    (out / "scenarios.json").write_text(json.dumps(scenarios))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), str(ROOT / "tests" / worker), str(out / "scenarios.json"), str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    return torch.load(out / "results.pt")


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    scenarios = {
        name: {
            "model": model,
            "rows": rows,
            "args": {**adv, "per_device_train_batch_size": batch, "gradient_accumulation_steps": ga},
        }
        for name, (model, rows, adv, batch, ga) in {**SCENARIOS, **BATCH_DEPENDENT, **NOT_DDP}.items()
    }
    return run_scenarios("ddp_worker.py", scenarios, out, CUDA_VISIBLE_DEVICES="")


@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
def test_two_processes_give_the_single_process_update_with_one_reduction_per_step(
    tmp_path, ddp_results, name, monkeypatch
):
    model_name, rows_name, adv, _, _ = SCENARIOS[name]
    monkeypatch.setattr(SmoothnessRegularizer, "noise", tiny_models.token_noise)
    monkeypatch.setattr(CreAT, "noise", tiny_models.token_noise)
    monkeypatch.setattr(DNE_ATTACK, "sample", tiny_models.token_dirichlet)
    model = getattr(tiny_models, model_name)()
    single = train_one_process(model, tmp_path, rows_name, adv)
    distributed = ddp_results[name]
    assert distributed["world_size"] == 2 and distributed["global_step"] == 2
    assert distributed["reductions"] == 2  # one per optimizer step, however many passes and micro-batches
    assert tiny_models.max_weight_difference(model, single.model) > 1e-3
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(distributed["state_dict"][key], value, atol=2e-6, rtol=1e-5, msg=key)
    for a, b in zip(single.state.log_history[:2], distributed["logs"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        if adv:
            assert b["adv_loss"] == pytest.approx(a["adv_loss"], rel=1e-5)
            assert b["adv_delta_norm"] == pytest.approx(a["adv_delta_norm"], rel=1e-5)
            assert b["adv_skipped"] == a["adv_skipped"]


def train_one_process(model, tmp_path, rows_name, adv):
    adv = dict(adv)
    compute_loss_func = getattr(tiny_models, adv.pop("compute_loss_func", ""), None)
    rows = getattr(tiny_models, rows_name)(16)
    return tiny_models.train(
        model, tmp_path, rows, per_device_train_batch_size=8, compute_loss_func=compute_loss_func, **adv
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", NOT_DDP)
def test_processes_that_accelerate_does_not_reduce_log_the_single_process_statistics(tmp_path, ddp_results, name):
    model_name, rows_name, adv, _, _ = NOT_DDP[name]
    model = getattr(tiny_models, model_name)()
    single = train_one_process(model, tmp_path, rows_name, adv)
    distributed = ddp_results[name]
    # DistributedType.NO here; should such a launch become DDP, the same values must still be logged (identical rows)
    # and test_adversarial_metrics.py keeps covering a reduction that sums nothing.
    assert distributed["world_size"] == 2
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(distributed["state_dict"][key], value, atol=2e-6, rtol=1e-5, msg=key)
    for a, b in zip(single.state.log_history[:2], distributed["logs"], strict=True):
        for key in ("loss", "adv_loss", "adv_delta_norm", "adv_skipped"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key


@pytest.mark.slow
@pytest.mark.parametrize("name", BATCH_DEPENDENT)
def test_batch_dependent_methods_still_reduce_once_per_step(ddp_results, name):
    model_name, _, _, _, _ = BATCH_DEPENDENT[name]
    initial = getattr(tiny_models, model_name)()
    distributed = ddp_results[name]
    assert distributed["world_size"] == 2 and distributed["global_step"] == 2
    assert distributed["reductions"] == 2
    state = initial.state_dict()
    assert all(torch.isfinite(value).all() for value in distributed["state_dict"].values())
    assert max((distributed["state_dict"][k] - v).abs().max().item() for k, v in state.items()) > 1e-3
    assert all(log["adv_loss"] > 0 for log in distributed["logs"])
