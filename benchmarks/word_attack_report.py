"""The word-level robustness section of docs/RESULTS.md: each method under PWWS and DeepWordBug on SST-2 and MRPC, and
its paired difference from `none`, as named in docs/results/synonym_preregistration.md.

A quality-grid record of an attacked task keeps, under `word_attacks`, per attack the per-example outcomes of its model
in dev order (`bench_quality.with_word_attacks`): `correct` (1/0 under the attack), `original_correct`,
`perturbed_words`, `words`, `queries`; its `results` hold TextAttack's summary of the same attack
(`eval_<attack>_accuracy_under_attack`, ...). The comparison: per example, the method's correctness under the attack
averaged over its seeds minus `none`'s, averaged over examples, with a percentile bootstrap interval over examples
(`advglue_report.paired_bootstrap`, as for AdvGLUE). `ascc`, the method named beforehand, is judged at 95 %; every
other method at the Bonferroni level the preregistration gives, 1 - 0.05/3 (its three other comparisons: pgd, dne,
a2t). Records without `word_attacks` (from before the attacks were measured) are left out.
"""

import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from advglue_report import BASELINE, RESAMPLES, mean_std, paired_bootstrap  # noqa: E402  (the scripts beside this one)
from bench_quality import WORD_ATTACK_EXAMPLES, WORD_ATTACKS  # noqa: E402

__all__ = ["paired_difference", "training_time_ratio", "word_attack_section"]

PREREGISTERED = "ascc"  # judged at 95 %; the others at CORRECTED
CORRECTED = 1 - 0.05 / 3
# The per-seed summary columns: (results key after `eval_<attack>_`, column title, scale to show).
SUMMARY = (
    ("accuracy_under_attack", "accuracy under attack", 100),
    ("success_rate", "success rate", 100),
    ("perturbed_word_percentage", "perturbed words %", 1),
    ("average_queries", "queries", 1),
)


def per_example(runs, attack):
    """(seeds, examples) correctness under `attack` of `runs`, checked to cover the same number of examples."""
    outcomes = [run["word_attacks"][attack]["correct"] for run in runs]
    if len({len(o) for o in outcomes}) != 1:
        raise ValueError(f"The {attack} records of one method cover different examples; re-run their attacks.")
    return np.array(outcomes, dtype=float)


def paired_difference(method_runs, baseline_runs, attack, confidence=0.95):
    """(difference, low, high) ×100: the mean over examples of the method's seed-averaged correctness under `attack`
    minus the baseline's, and its percentile bootstrap interval over examples at `confidence`."""
    return paired_bootstrap(per_example(method_runs, attack), per_example(baseline_runs, attack), confidence)


def training_time_ratio(runs, baseline_runs):
    """The mean `train_runtime` of `runs` over the baseline's, per torch thread count both have, e.g.
    '1.93 (1t) · 2.10 (?)'; '–' when they share none. `train_runtime` is the training loop alone (`wall_s` also
    counts the evaluations, which the attacks dominate)."""
    times, baseline_times = defaultdict(list), defaultdict(list)
    for run in runs:
        times[run.get("threads")].append(run["results"]["train_runtime"])
    for run in baseline_runs:
        baseline_times[run.get("threads")].append(run["results"]["train_runtime"])
    shared = sorted(set(times) & set(baseline_times), key=lambda threads: (threads is None, threads))
    ratios = [
        f"{statistics.mean(times[t]) / statistics.mean(baseline_times[t]):.2f} ({'?' if t is None else f'{t}t'})"
        for t in shared
    ]
    return " · ".join(ratios) or "–"


def word_attack_section(task_metric, methods, by_run):
    """Markdown lines: per attacked task and attack, a table with a row per method at its defaults that has word-attack
    outcomes (`by_run[(task, method)]`, `methods` giving the order); `task_metric[task]` is the clean column."""
    lines = ["## Word-level robustness: PWWS and DeepWordBug", ""]
    tables = []
    for task in WORD_ATTACK_EXAMPLES:
        rows = {m: [r for r in by_run.get((task, m), []) if "word_attacks" in r] for m in methods}
        rows = {method: runs for method, runs in rows.items() if runs}
        if rows:
            tables += [line for attack in WORD_ATTACKS for line in attack_table(task, attack, task_metric[task], rows)]
    if not tables:
        return lines + ["No quality-grid record has word-attack outcomes yet (`benchmarks/bench_quality.py`).", ""]
    lines += [
        f"Each method at its defaults; on every dev example ({', '.join(map(str, WORD_ATTACK_EXAMPLES.values()))} of "
        f"{', '.join(WORD_ATTACK_EXAMPLES)}), per seed TextAttack's summary, mean ± std over seeds: accuracy under "
        "attack and success rate (of the examples predicted right before the attack) ×100; perturbed words: their "
        "share of the words of the successful attacks, in %; queries: per attacked example. Δ vs none: per example, "
        "the correctness under the attack averaged over seeds minus none's, averaged over examples, with a "
        f"percentile bootstrap interval over examples ({RESAMPLES:,} resamples): 95 % for `{PREREGISTERED}`, the "
        "method named before its results "
        "([synonym_preregistration.md](results/synonym_preregistration.md)), Bonferroni-corrected to "
        f"{100 * CORRECTED:.1f} % for the others. Training time: mean `train_runtime` over none's, per torch thread "
        "count.",
        "",
    ]
    return lines + tables


def attack_table(task, attack, clean_metric, rows):
    """The lines of one (task, attack) table: `rows` maps each method to its records with word-attack outcomes."""
    header = ["method", "seeds", clean_metric.removeprefix("eval_"), *[title for _, title, _ in SUMMARY]]
    header += ["Δ under attack vs none [interval]", "training time × none"]
    lines = [f"### {task}: {attack}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    baseline = rows.get(BASELINE)
    for method, runs in rows.items():
        cells = [method, str(len(runs)), mean_std([100 * r["results"][clean_metric] for r in runs])]
        cells += [mean_std([scale * r["results"][f"eval_{attack}_{key}"] for r in runs]) for key, _, scale in SUMMARY]
        if baseline is None or method == BASELINE:
            cells += ["–", "–" if baseline is None else training_time_ratio(runs, baseline)]
        else:
            level = 0.95 if method == PREREGISTERED else CORRECTED
            difference, low, high = paired_difference(runs, baseline, attack, level)
            corrected = "" if method == PREREGISTERED else f" at {100 * level:.1f} %"
            cells += [f"{difference:+.1f} [{low:+.1f}, {high:+.1f}]{corrected}", training_time_ratio(runs, baseline)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
