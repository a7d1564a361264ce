"""The benchmark scripts' own logic: the floors, the weight-editing baseline, the report (no timings asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adv_trainer.defaults import DEFAULTS
from benchmarks import advglue_report, bench_quality, bench_report, bench_speed, gpu_check
from tests.glue_files import shared_glue
from tests.tiny_models import classification_rows, collate, tiny_bert

ROOT = Path(__file__).resolve().parent.parent
FLOOR = {"floor-F": 1.0, "floor-I": 0.4, "floor-N": 0.3, "floor-O": 0.1}


@pytest.mark.parametrize(
    "variant,floor",
    [("none", 1.1), ("fgm", 2.1), ("recipe-fgm", 2.1), ("pgd-k1", 2.1), ("pgd-k3", 2.9), ("recipe-pgd-k3", 2.9),
     ("pgd-k5", 3.7), ("freelb-k3", 4.1), ("smart-k1", 2.8), ("smart-k2", 3.2), ("r3f", 2.4), ("awp", 2.1),
     ("creat-k1", 2.5), ("creat-k2", 2.9), ("ascc-k3", 3.9), ("dne-k3", 4.1), ("a2t", None)],
)  # fmt: skip
def test_pass_count_floors(variant, floor):
    assert bench_speed.floor_of(variant, FLOOR) == (None if floor is None else pytest.approx(floor))


@pytest.mark.parametrize("steps", [1, 3])
def test_the_weight_editing_baseline_restores_the_weight_and_adds_an_adversarial_gradient(steps):
    model, batch = tiny_bert(), collate(classification_rows(4))
    weight = model.get_input_embeddings().weight
    before = weight.detach().clone()
    model(**batch).loss.backward()
    clean = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    bench_speed.recipe_step(model, batch, steps)
    assert torch.equal(weight, before)
    total = [p.grad for p in model.parameters()]
    assert all(torch.isfinite(g).all() for g in total)
    assert max((t - c).abs().max().item() for t, c in zip(total, clean, strict=True)) > 1e-6


def test_a_partial_run_adds_its_variants_with_its_own_none_and_floors():
    shape = {"variants": {"none": {"median_s": 1.0}, "recipe-fgm": {"median_s": 2.0}}, "floors": FLOOR}
    first = {"variants": {"none": {"median_s": 1.1}, "r3f": {"median_s": 2.3}, "awp": {"median_s": 2.4}}, "floors": {}}
    second = {"variants": {"none": {"median_s": 0.9}, "awp": {"median_s": 1.9}}, "floors": {"floor-F": 0.5}}
    shape = bench_speed.add_to_shape(bench_speed.add_to_shape(shape, first), second)
    assert [(name, v["median_s"]) for name, v in shape["variants"].items()] == [
        ("none", 1.0), ("r3f", 2.3), ("awp", 1.9), ("recipe-fgm", 2.0)
    ]  # fmt: skip
    assert shape["floors"] == FLOOR
    assert [(r["variants"], r["none"]["median_s"]) for r in shape["added_runs"]] == [(["r3f"], 1.1), (["awp"], 0.9)]
    assert shape["added_runs"][1]["floors"] == {"floor-F": 0.5}


def test_a_timing_only_rerun_keeps_the_peak_memory_measured_before():
    earlier = {"variants": {"none": {"median_s": 1.0, "peak_memory_mib": 900.0}, "r3f": {"median_s": 2.0}}}
    shape = {"variants": {"none": {"median_s": 1.1}, "r3f": {"median_s": 2.1}, "awp": {"median_s": 2.2}}}
    bench_speed.keep_peak_memory(earlier, shape)
    assert shape["variants"] == {
        "none": {"median_s": 1.1, "peak_memory_mib": 900.0}, "r3f": {"median_s": 2.1}, "awp": {"median_s": 2.2}
    }  # fmt: skip


def test_the_defaults_runs_and_the_named_advglue_variant_are_found_by_their_hyperparameters(monkeypatch):
    def record(method, settings):
        return {"task": "sst2", "method": method, "hyperparameters": bench_quality.hyperparameters(method, settings)}

    creat, named, pgd = record("creat", {}), record("creat", {"adv_epsilon": 0.1}), record("pgd", {"adv_epsilon": 0.1})
    assert named["hyperparameters"] == advglue_report.PREREGISTERED[1]  # CreAT's radius of 2026-11-30
    by_run, by_task = bench_report.defaults_and_named([creat, named, pgd])
    assert by_run == {("sst2", "creat"): [creat]} and by_task == {"sst2": [named]}  # pgd ε=0.1: the sweep's section
    creat_row = {"epsilon": 0.1, "alpha": 0.1, "k": 1, "init_mag": 1e-5, "tau": 1.0}  # were 0.1 the default again
    monkeypatch.setitem(DEFAULTS, ("creat", "example", "l2"), creat_row)
    by_run, by_task = bench_report.defaults_and_named([creat, named, pgd])
    assert by_run == {("sst2", "creat"): [named]} and by_task == {"sst2": [named]}


def test_report_is_generated_from_the_raw_results_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_report, "DOCS", tmp_path)
    (tmp_path / "results").mkdir()
    records = []
    for method, base in (("none", 0.80), ("pgd", 0.83)):
        for seed in (1, 2):
            results = {"eval_accuracy": base + seed / 100, "train_runtime": 120.0, "eval_robust_accuracy_eps0.05": 0.3}
            record = {"task": "sst2", "method": method, "seed": seed, "results": results}
            records.append({**record, "hyperparameters": bench_quality.hyperparameters(method, {})})
    # pgd's second seed was trained again on one thread, slower: its time is not averaged with the first seed's
    records[-1] = {**records[-1], "threads": 1, "results": {**records[-1]["results"], "train_runtime": 300.0}}
    cola = {"eval_matthews_correlation": 0.2, "train_runtime": 60.0}
    records.append({"task": "cola", "method": "none", "seed": 1, "hyperparameters": {}, "results": cola})
    (tmp_path / "results" / "quality.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")

    def variant(median, ratio_to_floor, memory):
        spread = {"min_s": median - 0.1, "max_s": median + 0.2, "ratio_to_none": median}
        return {"median_s": median, "ratio_to_floor": ratio_to_floor, "peak_memory_mib": memory, **spread}

    def without_memory(v):
        return {key: value for key, value in v.items() if key != "peak_memory_mib"}

    dynamic = {
        "none": variant(1.0, 1.02, 1000),
        "fgm": variant(2.0, 1.01, 1010),
        "pgd-k1": variant(2.0, 1.0, 1015),
        "pgd-k3": variant(3.0, 1.04, 1020),
        "smart-k1": variant(2.7, 1.03, 1015),
        "a2t": variant(2.2, None, 1005),  # no pass-count floor: read against none
        "recipe-fgm": variant(2.5, 1.2, 1100),
        "recipe-pgd-k3": variant(4.0, 1.3, 1200),
    }
    speed = {
        "machine": {"device": "cpu", "processor": "x86_64", "cpu_threads": 2, "torch": "2", "transformers": "5"},
        "rounds": 3,
        "shapes": {
            "dynamic": {"mean_tokens_per_row": 13.2, "variants": dynamic, "floors": FLOOR},
            "64": {
                "mean_tokens_per_row": 64,
                "variants": {"none": variant(2.0, 1.0, 1500), "r3f": without_memory(variant(3.9, 1.03, 1600))},
                "floors": FLOOR,
                "added_runs": [{"variants": ["r3f"], "none": variant(1.9, 1.0, 1500), "floors": FLOOR}],
            },
        },
    }
    (tmp_path / "results" / "speed.json").write_text(json.dumps(speed))
    bench_report.main()
    report = (tmp_path / "RESULTS.md").read_text()
    assert "| none | 2 | 81.5 ± 0.7 | 30.0 ± 0.0 | 2.0 (?) |" in report
    assert "| pgd | 2 | 84.5 ± 0.7 | 30.0 ± 0.0 | 5.0 (1t) · 2.0 (?) |" in report
    assert "| none | 1 | 20.0 | 1.0 (?) |" in report  # one seed: no spread
    # The grid's flags per task: PWWS and DeepWordBug on every dev example of SST-2 and MRPC.
    attacks = "--do_attack_eval --attack_methods pwws deepwordbug --attack_max_examples"
    assert f"--robust_steps 5 {attacks} 872 --do_advglue_eval`" in report and f"{attacks} 408`" in report
    assert "\nNo quality-grid record has word-attack outcomes yet (`benchmarks/bench_quality.py`).\n" in report
    assert "| none | 1.000 | 0.900–1.200 | 1.00 | 1.02 | 1000 |" in report
    # The targets, recipes excluded from "worst" and from the highest peak; SMART's peak over PGD K=1's.
    assert "| dynamic | pgd-k3 1.04 | 1.000 | – | pgd-k3 1.02 | 0.75 | 0.80 | 0.85 |" in report
    assert "| a2t | 2.200 | 2.100–2.400 | 2.20 | – | 1005 |" in report
    assert "| r3f | 3.900 | 3.800–4.100 | 3.90 | 1.03 | – |" in report  # added by a run with --no-memory
    assert "| 64 | r3f 1.03 | – | – | none 1.00 | – | – | – |" in report  # a shape without the recipes
    assert (
        "r3f: measured in a later run (`--variants ... --update`), whose none took 1.900 s and F = 1.000 s" in report
    )
    assert (tmp_path / "plots" / "quality_sst2.png").stat().st_size > 1000
    assert "![sst2 robustness](plots/robustness_sst2.png)" in report
    assert (tmp_path / "plots" / "robustness_sst2.png").stat().st_size > 1000
    assert not (tmp_path / "plots" / "robustness_cola.png").exists()  # cola was not evaluated under attack
    assert (tmp_path / "plots" / "speed.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "speed_growth.png").stat().st_size > 1000


@pytest.mark.slow
def test_the_gpu_check_runs_on_the_cpu_as_a_dry_run(tmp_path):
    """`make gpu-check`'s command, on the CPU at a tiny shape: its GPU tests skip with their reason, and every
    variant gets a time, a floor and a peak, so that the GPU run is known to work before a GPU is lent."""
    shared_glue()  # bench_speed.py reads ../shared/glue/SST-2/train.tsv
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    results = json.loads(out.read_text())
    tests = results["gpu_tests"]
    assert tests["counts"]["tests"] >= 8 and tests["counts"]["skipped"] == tests["counts"]["tests"]
    assert all(outcome.startswith("skipped: ") for outcome in tests["outcomes"].values())
    assert "needs a CUDA GPU" in " ".join(tests["outcomes"].values())
    variants = results["speed"]["tiny"]["shapes"]["128"]["variants"]
    assert set(variants) == set(gpu_check.VARIANTS.split(","))
    assert all(v["median_s"] > 0 and v["peak_memory_mib"] > 0 for v in variants.values())
    assert variants["pgd-k3"]["floor_s"] > variants["none"]["floor_s"] > 0
