"""The AdvGLUE comparison of the quality report: the paired difference and its interval, on made-up records."""

import json

import pytest

from benchmarks import advglue_report

STYLE = {
    "none": {"color": "C0", "marker": "o"},
    "pgd": {"color": "C1", "marker": "s"},
    "creat": {"color": "C2"},
    "ascc": {},
}.get


def record(method, seed, correct, benign=None, accuracy=0.8):
    benign = benign if benign is not None else [None] * len(correct)
    advglue = {"idx": list(range(len(correct))), "correct": correct, "benign_correct": benign}
    return {"task": "sst2", "method": method, "seed": seed, "results": {"eval_accuracy": accuracy}, "advglue": advglue}


def test_the_paired_difference_is_the_mean_per_example_gain_and_its_interval_covers_it():
    # 100 examples; the method gets examples 0-9 right that none gets wrong, in every seed: +10 points exactly.
    none = [record("none", s, [0] * 10 + [1] * 45 + [0] * 45) for s in (1, 2, 3)]
    method = [record("pgd", s, [1] * 10 + [1] * 45 + [0] * 45) for s in (1, 2, 3)]
    difference, low, high = advglue_report.paired_difference(method, none)
    assert difference == pytest.approx(10.0)
    assert 3 < low < 10 < high < 17  # a binomial-sized interval: sqrt(0.1 * 0.9 / 100) ≈ 3 points per side


def test_seeds_are_averaged_per_example_before_the_difference():
    none = [record("none", 1, [0, 0]), record("none", 2, [0, 0])]
    method = [record("fgm", 1, [1, 0]), record("fgm", 2, [0, 0])]  # example 0 right in one of two seeds
    assert advglue_report.paired_difference(method, none)[0] == pytest.approx(25.0)


def test_identical_outcomes_give_zero_with_a_zero_width_interval():
    runs = [record("none", 1, [1, 0, 1, 1])]
    assert advglue_report.paired_difference(runs, runs) == pytest.approx((0.0, 0.0, 0.0))


def test_records_of_different_examples_are_refused():
    shifted = record("pgd", 1, [1, 0])
    shifted["advglue"]["idx"] = [5, 6]
    with pytest.raises(ValueError, match="different examples"):
        advglue_report.paired_difference([shifted], [record("none", 1, [1, 0])])


def test_the_section_tables_every_method_and_the_named_variant_and_draws_the_plot(tmp_path):
    by_run = {
        ("sst2", "none"): [record("none", s, [1, 0, 0, 1], [1, 1, None, 1], 0.83) for s in (1, 2)],
        ("sst2", "creat"): [record("creat", s, [1, 1, 0, 0], [1, 1, None, 1], 0.86) for s in (1, 2)],
        ("sst2", "pgd"): [record("pgd", s, [1, 0, 0, 1], [1, 0, None, 1], 0.85) for s in (1, 2)],
        ("sst2", "ascc"): [record("ascc", s, [1, 1, 1, 1], [1, 1, None, 1], 0.80) for s in (1, 2)],
    }
    named = [record("creat", s, [1, 1, 0, 1], [1, 1, None, 1], 0.84) for s in (1, 2)]  # CreAT at ε = 0.1
    methods = ["none", "pgd", "creat", "ascc"]
    lines = advglue_report.advglue_section("sst2", "eval_accuracy", methods, by_run, tmp_path, STYLE, named)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ") and "---" not in line}
    assert list(rows) == ["method", "none", "pgd", "creat", "ascc", "creat ε=0.1 (named)"]
    assert rows["none"] == "| none | 2 | 83.0 ± 0.0 | 50.0 ± 0.0 | 100.0 ± 0.0 | – |"
    named_row = rows["creat ε=0.1 (named)"]
    assert named_row.startswith("| creat ε=0.1 (named) | 2 | 84.0 ± 0.0 | 75.0 ± 0.0 | 100.0 ± 0.0 | +25.0 [")
    assert named_row.endswith("] at 95.0 % |")  # named beforehand: a plain 95 % interval
    # ascc at its defaults, named by the synonym preregistration: 95 % too, and not one of the corrected comparisons.
    assert rows["ascc"].endswith(" at 95.0 % |")
    # The method at today's defaults is one more comparison not named beforehand: two, each at 97.5 %.
    assert rows["creat"].startswith("| creat | 2 | 86.0 ± 0.0 | 50.0 ± 0.0 |")
    assert rows["creat"].endswith(" at 97.5 % |")
    assert rows["pgd"].endswith(" at 97.5 % |") and "66.7" in rows["pgd"]  # benign: 2 of 3 originals
    assert (tmp_path / "advglue_sst2.png").stat().st_size > 0


def test_no_section_without_the_baselines_advglue_records(tmp_path):
    by_run = {("sst2", "pgd"): [record("pgd", 1, [1])], ("sst2", "none"): [{"results": {}}]}
    assert advglue_report.advglue_section("sst2", "eval_accuracy", ["none", "pgd"], by_run, tmp_path, STYLE) == []


def test_runs_without_advglue_outcomes_are_left_out_seed_by_seed(tmp_path):
    by_run = {
        ("sst2", "none"): [
            record("none", 1, [1, 0]),
            {"method": "none", "seed": 2, "results": {"eval_accuracy": 0.5}},
        ],
        ("sst2", "pgd"): [record("pgd", 1, [1, 1])],
        ("sst2", "fgm"): [{"method": "fgm", "seed": 1, "results": {"eval_accuracy": 0.5}}],
    }
    lines = advglue_report.advglue_section("sst2", "eval_accuracy", ["none", "fgm", "pgd"], by_run, tmp_path, STYLE)
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[:2] for row in rows] == [["| none", "1"], ["| pgd", "1"]]


def test_the_levels_section_gives_each_levels_accuracy_and_the_word_level_difference(tmp_path):
    # Examples 0-1 word-level, 2 sentence-level, 3 human-written; ascc gets both word-level ones right, none neither.
    levels = {0: "word", 1: "word", 2: "sentence", 3: "human"}
    by_run = {
        ("sst2", "none"): [record("none", s, [0, 0, 1, 1]) for s in (1, 2)],
        ("sst2", "ascc"): [record("ascc", s, [1, 1, 0, 1]) for s in (1, 2)],
        ("sst2", "pgd"): [record("pgd", s, [1, 0, 1, 1]) for s in (1, 2)],
    }
    lines = advglue_report.advglue_levels_section("sst2", ["none", "ascc", "pgd"], by_run, levels)
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ") and "---" not in line}
    assert rows["method"] == "| method | word (2) | sentence (1) | human (1) | Δ word-level vs none |"
    assert rows["none"] == "| none | 0.0 ± 0.0 | 100.0 ± 0.0 | 100.0 ± 0.0 | – |"
    assert rows["ascc"].startswith("| ascc | 100.0 ± 0.0 | 0.0 ± 0.0 | 100.0 ± 0.0 | +100.0 [")
    assert rows["ascc"].endswith(" at 95.0 % |")
    # pgd is the only comparison not named beforehand here: its interval at 95 %, its difference +50 on word level.
    assert rows["pgd"].startswith("| pgd | 50.0 ± 0.0 | 100.0 ± 0.0 | 100.0 ± 0.0 | +50.0 [")


def test_levels_are_read_from_the_advglue_file(tmp_path):
    path = tmp_path / "dev.json"
    sentence = {"idx": 0, "data_construction": "word"}
    path.write_text(json.dumps({"sst2": [sentence, {"idx": 1, "data_construction": "human"}]}))
    assert advglue_report.advglue_levels(path, "sst2") == {0: "word", 1: "human"}
