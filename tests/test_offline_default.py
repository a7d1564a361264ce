"""The README's first command on a small sample: real MiniLM, real SST-2, the shipped CPU config."""

import json
from pathlib import Path

import pytest

from scripts import run_glue
from tests.glue_files import shared_glue

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "sst2_minilm_cpu.yaml"


@pytest.mark.slow
def test_offline_default_trains_pretrained_minilm_with_pgd_on_real_sst2(tmp_path):
    glue = shared_glue()
    overrides = ["--glue_dir", str(glue), "--output_dir", str(tmp_path), "--max_train_samples", "64"]
    overrides += ["--max_eval_samples", "64", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true"]
    run_glue.main([str(CONFIG), "--adv_method", "pgd", *overrides])  # as `make train` runs it
    results = json.loads((tmp_path / "all_results.json").read_text())
    assert results["train_samples"] == 64 and results["eval_samples"] == 64
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    logs = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    assert [log["step"] for log in logs if "adv_loss" in log] == [1, 2]  # PGD ran on both steps
    assert all(0 < log["adv_delta_norm"] <= 0.02 + 1e-6 for log in logs if "adv_loss" in log)
    assert (tmp_path / "model.safetensors").is_file()
