"""The ε-sweep section of the quality report, on made-up records: labels, the difference from plain fine-tuning, the
robustness cells and the trade-off plot."""

import pytest

from benchmarks import bench_quality, sweep_report

METRICS = {"sst2": "eval_accuracy", "cola": "eval_matthews_correlation"}
STYLE = {
    "none": {"color": "C0", "marker": "o"},
    "pgd": {"color": "C1", "marker": "s"},
    "fgm": {"color": "C2", "marker": "^"},
}.get


def record(task, method, seed, clean, robust=None, settings=None, advglue=None):
    name = METRICS[task].removeprefix("eval_")
    results = {METRICS[task]: clean}
    if robust is not None:
        results |= {f"eval_robust_{name}_eps0.05": robust, f"eval_robust_{name}_eps0.1": robust - 0.1}
    trained = bench_quality.hyperparameters(method, settings or {})
    out = {"task": task, "method": method, "seed": seed, "hyperparameters": trained, "results": results}
    if advglue is not None:
        out["advglue"] = {
            "idx": list(range(len(advglue))),
            "correct": advglue,
            "benign_correct": [None] * len(advglue),
        }
    return out


def rows(lines):
    return {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ") for line in lines if line.startswith("| ")}


def test_variant_labels_name_the_radius_and_other_settings():
    assert sweep_report.variant_label("none", {}, None) == "none"
    assert sweep_report.variant_label("pgd", {}, 0.05) == "pgd ε=0.05"
    assert sweep_report.variant_label("pgd", {"adv_epsilon": 0.1}, 0.05) == "pgd ε=0.1"
    assert sweep_report.variant_label("pgd", {"adv_start_step": 0.1}, 0.05) == "pgd ε=0.05 start_step=0.1"


def test_no_section_without_a_sweep(tmp_path):
    records = [record("cola", "none", 1, 0.2, 0.1), record("cola", "pgd", 1, 0.25, 0.15)]
    assert sweep_report.sweep_section(records, METRICS, tmp_path, STYLE) == []
    assert not list(tmp_path.iterdir())


def test_the_section_tables_each_variant_against_none_and_draws_the_tradeoff(tmp_path):
    records = [
        record("cola", "none", 1, 0.20, 0.10), record("cola", "none", 2, 0.22, 0.12),
        record("cola", "fgm", 1, 0.18, 0.15, {"adv_epsilon": 0.05}),
        record("cola", "fgm", 2, 0.20, None, {"adv_epsilon": 0.05}),  # seed 2: no PGD evaluation
        record("cola", "fgm", 1, 0.25, 0.20), record("cola", "fgm", 2, 0.27, 0.22),  # the default radius, 0.02
        record("cola", "fgm", 1, 0.30, 0.25, {"adv_start_step": 0.1}),
    ]  # fmt: skip
    lines = sweep_report.sweep_section(records, METRICS, tmp_path, STYLE)
    table = rows(lines)
    under = ["matthews_correlation under PGD ε=0.05", "matthews_correlation under PGD ε=0.1"]
    assert table["variant"] == ["variant", "seeds", "matthews_correlation", "Δ vs none", *under]
    assert table["none"] == ["none", "2", "21.0 ± 1.4", "–", "11.0 ± 1.4", "1.0 ± 1.4"]
    assert table["fgm ε=0.02"] == ["fgm ε=0.02", "2", "26.0 ± 1.4", "+5.0", "21.0 ± 1.4", "11.0 ± 1.4"]
    assert table["fgm ε=0.05"] == ["fgm ε=0.05", "2", "19.0 ± 1.4", "-2.0", "–", "–"]  # not every seed measured
    assert table["fgm ε=0.02 start_step=0.1"][:4] == ["fgm ε=0.02 start_step=0.1", "1", "30.0", "+9.0"]
    order = [line.split(" | ")[0].strip("| ") for line in lines if line.startswith("| ") and "---" not in line]
    assert order == ["variant", "none", "fgm ε=0.02", "fgm ε=0.02 start_step=0.1", "fgm ε=0.05"]
    assert "![cola trade-off](plots/tradeoff_cola.png)" in lines
    assert (tmp_path / "tradeoff_cola.png").stat().st_size > 10_000


def test_sst2_has_an_advglue_column(tmp_path):
    records = [
        record("sst2", "none", 1, 0.8, 0.3, advglue=[1, 0, 0, 0]),
        record("sst2", "pgd", 1, 0.85, 0.4, {"adv_epsilon": 0.1}, advglue=[1, 1, 0, 0]),
    ]
    table = rows(sweep_report.sweep_section(records, METRICS, tmp_path, STYLE))
    assert table["variant"][-1] == "AdvGLUE accuracy"
    assert table["none"][-1] == "25.0" and table["pgd ε=0.1"][-1] == "50.0"
    assert table["pgd ε=0.1"][3] == "+5.0"


@pytest.mark.parametrize("epsilon", [0.02, 0.1])
def test_a_method_s_points_are_ordered_by_radius(epsilon):
    variant = ("pgd", (("adv_epsilon", epsilon),))
    assert sweep_report.radius(variant) == epsilon
    assert sweep_report.radius(("none", ())) == -1.0
