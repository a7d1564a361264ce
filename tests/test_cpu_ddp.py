"""DDP on a machine without an accelerator under a bare `torchrun`: gradients are synchronised (every rank ends with
the weights of one process with the same global batch), an unsynchronised multi-process run is refused, and a run that
succeeded exits 0."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertConfig, BertModel
from transformers.training_args import ParallelMode

from adv_trainer import cpu_ddp
from scripts import run_glue
from tests.test_ddp import free_port

ROOT = Path(__file__).resolve().parent.parent
# 16 rows, 2 optimizer steps of 8 rows: 2 processes x 4 under torchrun, 1 process x 8 for the reference.
TRAINING = ["--do_train", "--max_steps", "2", "--learning_rate", "1e-3", "--adv_method", "pgd", "--report_to", "none"]
TRAINING += ["--save_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "1"]


@pytest.fixture(scope="module")
def tiny_model_and_rows(tmp_path_factory):
    """A 2-layer BERT without dropout (so that both runs draw no random masks) and 16 labelled rows."""
    path = tmp_path_factory.mktemp("cpu_ddp")
    tokenizer = AutoTokenizer.from_pretrained(run_glue.resolve_model_path(run_glue.OFFLINE_MINILM))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    BertModel(config).save_pretrained(path / "model")
    tokenizer.save_pretrained(path / "model")
    words = ["good", "bad", "film", "plot", "dull", "great", "acting", "long"]
    rows = [f"{words[i % 8]} {words[(3 * i) % 8]} {' '.join(words[: 1 + i % 5])},{i % 2}" for i in range(16)]
    (path / "train.csv").write_text("sentence,label\n" + "\n".join(rows) + "\n")
    return path


def test_several_launched_processes_without_an_accelerator_use_the_cpu(monkeypatch):
    monkeypatch.setattr(cpu_ddp, "_has_accelerator", lambda: False)
    args = SimpleNamespace(use_cpu=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    cpu_ddp.use_cpu_when_launched(args)
    assert args.use_cpu is False
    monkeypatch.setenv("WORLD_SIZE", "2")
    cpu_ddp.use_cpu_when_launched(args)
    assert args.use_cpu is True
    monkeypatch.setattr(cpu_ddp, "_has_accelerator", lambda: True)
    gpu = SimpleNamespace(use_cpu=False)
    cpu_ddp.use_cpu_when_launched(gpu)
    assert gpu.use_cpu is False  # GPUs: accelerate's own MULTI_GPU set-up


@pytest.mark.parametrize("mode", [ParallelMode.NOT_PARALLEL, ParallelMode.NOT_DISTRIBUTED])
def test_launched_processes_that_would_not_synchronise_are_refused(monkeypatch, mode):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(
        ValueError, match=r"2 processes .* each would train its own copy. On CPUs pass `--use_cpu true`"
    ):
        cpu_ddp.require_synchronised_gradients(SimpleNamespace(parallel_mode=mode))
    cpu_ddp.require_synchronised_gradients(SimpleNamespace(parallel_mode=ParallelMode.DISTRIBUTED))
    monkeypatch.setenv("WORLD_SIZE", "1")
    cpu_ddp.require_synchronised_gradients(SimpleNamespace(parallel_mode=mode))


@pytest.mark.slow
def test_bare_torchrun_on_the_cpu_is_ddp_equal_to_one_process_with_the_global_batch(tiny_model_and_rows, tmp_path):
    data = tiny_model_and_rows
    common = ["--model_name_or_path", str(data / "model"), "--train_file", str(data / "train.csv"), *TRAINING]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), str(ROOT / "tests" / "cpu_ddp_worker.py"), *common,
        "--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "ddp"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.stdout.count("Done in") == 1  # one summary, from rank 0
    run_glue.main([*common, "--per_device_train_batch_size", "8", "--output_dir", str(tmp_path / "one"), "--use_cpu"])
    single = load_file(tmp_path / "one" / "model.safetensors")
    initial = load_file(data / "model" / "model.safetensors")
    ranks = [torch.load(tmp_path / "ddp" / f"rank{rank}.pt") for rank in (0, 1)]
    assert max((single[f"bert.{k}"] - value).abs().max().item() for k, value in initial.items()) > 1e-4
    for key, value in single.items():
        torch.testing.assert_close(ranks[0][key], ranks[1][key], atol=0, rtol=0, msg=key)
        torch.testing.assert_close(ranks[0][key], value, atol=2e-6, rtol=1e-5, msg=key)


@pytest.mark.slow
def test_fsdp_asked_for_on_cpus_is_refused_not_run_as_plain_ddp(tiny_model_and_rows, tmp_path):
    # accelerate enables FSDP only for accelerators: under torchrun on CPUs the Trainer would quietly run DDP.
    data = tiny_model_and_rows
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), str(ROOT / "scripts" / "run_glue.py"), "--model_name_or_path",
        str(data / "model"), "--train_file", str(data / "train.csv"), *TRAINING, "--fsdp", "full_shard",
        "--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "fsdp"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode != 0
    assert "`fsdp=True` where accelerate does not enable FSDP (no accelerator here)" in completed.stderr
    assert "would run plain DDP without saying so" in completed.stderr
    assert not (tmp_path / "fsdp" / "model.safetensors").exists()
