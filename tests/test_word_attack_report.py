"""The word-attack comparison of the quality report: per-seed summaries, the paired difference from `none` and its
interval, the training time, on made-up records."""

import pytest

from benchmarks import word_attack_report

TASK_METRIC = {"sst2": "eval_accuracy", "mrpc": "eval_f1", "cola": "eval_matthews_correlation"}
METHODS = ["none", "pgd", "ascc"]


def record(method, seed, pwws, deepwordbug, clean=0.8, train_runtime=100.0, threads=1, task="sst2", success=0.5):
    """A record with per-example correctness under each attack, and the summary its results would hold."""
    results = {TASK_METRIC[task]: clean, "train_runtime": train_runtime}
    for attack, correct in (("pwws", pwws), ("deepwordbug", deepwordbug)):
        results |= {
            f"eval_{attack}_accuracy_under_attack": sum(correct) / len(correct),
            f"eval_{attack}_success_rate": success,
            f"eval_{attack}_perturbed_word_percentage": 12.5,
            f"eval_{attack}_average_queries": 40.0 + seed,
        }
    attacks = {"pwws": {"correct": pwws}, "deepwordbug": {"correct": deepwordbug}}
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "threads": threads,
        "results": results,
        "word_attacks": attacks,
    }


def by_run():
    return {
        ("sst2", "none"): [
            record("none", 1, [1, 0, 0, 1], [1, 1, 0, 0], 0.80, 100.0),
            record("none", 2, [1, 0, 1, 0], [1, 1, 0, 0], 0.82, 120.0),
            {"task": "sst2", "method": "none", "seed": 3, "results": {"eval_accuracy": 0.5}},  # before the attacks
        ],
        ("sst2", "pgd"): [record("pgd", 1, [0, 1, 1, 1], [1, 1, 0, 0], 0.83, 330.0)],
        ("sst2", "ascc"): [
            record("ascc", 1, [1, 1, 0, 1], [1, 1, 1, 0], 0.81, 220.0, success=0.25),
            record("ascc", 2, [1, 1, 1, 1], [1, 1, 0, 0], 0.81, 220.0, success=0.75),
        ],
    }


def test_the_paired_difference_is_the_seed_averaged_gain_per_example():
    runs = by_run()
    none = runs[("sst2", "none")][:2]
    # none per example, averaged over its seeds: [1, 0, .5, .5]; ascc: [1, 1, .5, 1]; differences [0, 1, 0, .5].
    difference, low, high = word_attack_report.paired_difference(runs[("sst2", "ascc")], none, "pwws")
    assert difference == pytest.approx(37.5)
    assert 0 <= low <= 37.5 <= high <= 100
    # pgd (one seed) [0, 1, 1, 1] - [1, 0, .5, .5] = [-1, 1, .5, .5]: +25; DeepWordBug: ascc [1, 1, .5, 0] - none's.
    assert word_attack_report.paired_difference(runs[("sst2", "pgd")], none, "pwws")[0] == pytest.approx(25.0)
    assert word_attack_report.paired_difference(runs[("sst2", "ascc")], none, "deepwordbug")[0] == pytest.approx(12.5)
    with pytest.raises(ValueError, match="baseline's outcomes cover different examples"):
        word_attack_report.paired_difference([record("pgd", 1, [1, 0], [1, 0])], none, "pwws")
    ragged = [record("pgd", 1, [1, 0, 1, 0], [1, 0, 1, 0]), record("pgd", 2, [1, 0], [1, 0])]
    with pytest.raises(ValueError, match="pwws records of one method cover different examples"):
        word_attack_report.paired_difference(ragged, none, "pwws")


def test_the_section_tables_each_task_and_attack_and_levels_the_intervals():
    runs = by_run()
    lines = word_attack_report.word_attack_section(TASK_METRIC, METHODS, runs)
    assert "### sst2: pwws" in lines and "### sst2: deepwordbug" in lines and "### mrpc: pwws" not in lines
    table = lines[lines.index("### sst2: pwws") : lines.index("### sst2: deepwordbug")]
    rows = {line.split(" | ")[0].strip("| "): line for line in table if line.startswith("| ") and "---" not in line}
    assert list(rows) == ["method", "none", "pgd", "ascc"]
    # The seed without outcomes is left out: 2 seeds; accuracy under PWWS 50.0 in both; queries 41 and 42.
    assert (
        rows["none"] == "| none | 2 | 81.0 ± 1.4 | 50.0 ± 0.0 | 50.0 ± 0.0 | 12.5 ± 0.0 | 41.5 ± 0.7 | – | 1.00 (1t) |"
    )
    none = runs[("sst2", "none")][:2]
    # ascc, named beforehand: a plain 95 % interval; pgd at the preregistration's Bonferroni level 1 - 0.05/3.
    difference, low, high = word_attack_report.paired_difference(runs[("sst2", "ascc")], none, "pwws", 0.95)
    assert rows["ascc"] == (
        f"| ascc | 2 | 81.0 ± 0.0 | 87.5 ± 17.7 | 50.0 ± 35.4 | 12.5 ± 0.0 | 41.5 ± 0.7 | "
        f"+37.5 [{low:+.1f}, {high:+.1f}] | 2.00 (1t) |"
    )
    difference, low, high = word_attack_report.paired_difference(runs[("sst2", "pgd")], none, "pwws", 1 - 0.05 / 3)
    assert rows["pgd"] == (
        f"| pgd | 1 | 83.0 | 75.0 | 50.0 | 12.5 | 41.0 | +25.0 [{low:+.1f}, {high:+.1f}] at 98.3 % | 3.00 (1t) |"
    )


def test_training_time_compares_only_runs_of_the_same_thread_count():
    none = [record("none", 1, [1], [1], train_runtime=100.0), record("none", 2, [1], [1], 0.8, 50.0, threads=None)]
    runs = [record("pgd", 1, [1], [1], train_runtime=250.0), record("pgd", 2, [1], [1], 0.8, 100.0, threads=None)]
    assert word_attack_report.training_time_ratio(runs, none) == "2.50 (1t) · 2.00 (?)"
    assert word_attack_report.training_time_ratio([record("pgd", 1, [1], [1], threads=2)], none) == "–"


def test_without_word_attack_records_the_section_says_so_in_one_line():
    runs = {("sst2", "none"): [{"task": "sst2", "method": "none", "seed": 1, "results": {"eval_accuracy": 0.8}}]}
    lines = word_attack_report.word_attack_section(TASK_METRIC, METHODS, runs)
    assert lines[0] == "## Word-level robustness: PWWS and DeepWordBug"
    assert [line for line in lines[1:] if line] == [
        "No quality-grid record has word-attack outcomes yet (`benchmarks/bench_quality.py`)."
    ]


def test_an_mrpc_table_shows_f1_and_a_method_without_none_has_no_difference():
    runs = {("mrpc", "pgd"): [record("pgd", 1, [1, 0], [0, 0], clean=0.9, task="mrpc")]}
    lines = word_attack_report.word_attack_section(TASK_METRIC, METHODS, runs)
    assert lines[lines.index("### mrpc: pwws") + 2].startswith("| method | seeds | f1 |")
    assert "| pgd | 1 | 90.0 | 50.0 | 50.0 | 12.5 | 41.0 | – | – |" in lines
