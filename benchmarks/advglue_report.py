"""The AdvGLUE section of docs/RESULTS.md: each method's AdvGLUE accuracy and its paired difference from `none`.

A quality-grid record of a task evaluated on AdvGLUE holds, under `advglue`, the per-example outcome of its model in
the file's order: `idx`, `correct` (1/0 on the adversarial example) and `benign_correct` (1/0 on its benign
original, None where it has none). The comparison named in docs/results/advglue_preregistration.md: per example, the
method's correctness averaged over its seeds minus `none`'s, averaged over examples, with a percentile bootstrap
interval over examples (`scipy.stats.bootstrap`). One example of AdvGLUE SST-2 is 0.68 points, so differences of a
point or two are inside the interval. The named variant, and `ascc` at its defaults (named for AdvGLUE SST-2 by
docs/results/synonym_preregistration.md), are judged at 95 %; every other comparison (each method at today's
defaults) at a Bonferroni-corrected level over their number.
"""

import json
import statistics

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import bootstrap

__all__ = ["advglue_levels_section", "advglue_levels", "advglue_section", "paired_bootstrap", "paired_difference"]

BASELINE = "none"
# The variant named in docs/results/advglue_preregistration.md before any result: CreAT at that day's documented
# defaults (the ε sweep made 0.05 the default radius later), as the hyperparameters its records trained with.
PREREGISTERED = (
    "creat",
    {"adv_epsilon": 0.1, "adv_alpha": 0.1, "adv_k": 1, "adv_init_mag": 1e-05, "adv_tau": 1.0, "adv_weight": 1.0,
     "adv_norm": "l2", "adv_scope": "example", "adv_start_step": 0},
)  # fmt: skip
PREREGISTERED_LABEL = f"{PREREGISTERED[0]} ε={PREREGISTERED[1]['adv_epsilon']:g} (named)"
# The method docs/results/synonym_preregistration.md named, at its defaults, for AdvGLUE SST-2 among its targets.
SYNONYM_PREREGISTERED = "ascc"
RESAMPLES = 10_000


def per_example(runs, key="correct"):
    """(seeds, examples) outcomes of `runs`, checked to cover the same examples in the same order."""
    orders = {tuple(run["advglue"]["idx"]) for run in runs}
    if len(orders) != 1:
        raise ValueError("AdvGLUE records of one comparison cover different examples; re-run their evaluation.")
    return np.array([run["advglue"][key] for run in runs], dtype=float)


def paired_difference(method_runs, baseline_runs, confidence=0.95):
    """(difference, low, high) ×100: mean over examples of the seed-averaged correctness of the method minus the
    baseline's, and its percentile bootstrap interval over examples at `confidence`."""
    method, baseline = per_example(method_runs), per_example(baseline_runs)
    if [r["advglue"]["idx"] for r in method_runs[:1]] != [r["advglue"]["idx"] for r in baseline_runs[:1]]:
        raise ValueError("The method's and the baseline's AdvGLUE records cover different examples.")
    return paired_bootstrap(method, baseline, confidence)


def paired_bootstrap(method, baseline, confidence=0.95):
    """(difference, low, high) ×100 of outcomes `(seeds, examples)` of the same examples in the same order (the
    method's and the baseline's seed counts may differ): the mean over examples of the method's seed average minus
    the baseline's, and its percentile bootstrap interval over examples at `confidence`."""
    if method.shape[1] != baseline.shape[1]:
        raise ValueError(
            f"The method's and the baseline's outcomes cover different examples ({method.shape[1]} and "
            f"{baseline.shape[1]})."
        )
    differences = method.mean(axis=0) - baseline.mean(axis=0)  # (examples,)
    interval = bootstrap(
        (differences,), np.mean, confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
        random_state=np.random.default_rng(0),
    ).confidence_interval  # fmt: skip
    return 100 * differences.mean(), 100 * interval.low, 100 * interval.high


def accuracy(runs, key):
    """Per seed, the accuracy ×100 over the examples with an outcome for `key` (benign: those with an original)."""
    values = []
    for run in runs:
        outcomes = [o for o in run["advglue"][key] if o is not None]
        if outcomes:  # benign: none where no example has an original
            values.append(100 * sum(outcomes) / len(outcomes))
    return values


def mean_std(values):
    """'mean ± std' of values already ×100; one value has no spread to show, none is '–'."""
    if not values:
        return "–"
    return (
        f"{values[0]:.1f}" if len(values) == 1 else f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"
    )


def advglue_section(task, clean_metric, methods, by_run, plots_dir, style, named_runs=()):
    """Markdown lines for `task`'s AdvGLUE table, and its plot of clean dev accuracy against AdvGLUE accuracy: a row
    per method at its defaults (`by_run[(task, method)]`), then the named variant's (`named_runs`, the records of
    `PREREGISTERED`) if any. `style(method)` gives each method's colour and marker, as in the report's other plots."""
    # Runs from before AdvGLUE was measured have no outcomes: each row's figures use the seeds that have them.
    rows = {m: [r for r in by_run.get((task, m), []) if "advglue" in r] for m in methods}
    rows[PREREGISTERED_LABEL] = [r for r in named_runs if "advglue" in r]
    rows = {label: runs for label, runs in rows.items() if runs}
    if BASELINE not in rows:
        return []
    named = [label for label in (PREREGISTERED_LABEL, SYNONYM_PREREGISTERED) if label in rows]
    others = [label for label in rows if label != BASELINE and label not in named]
    corrected = 1 - 0.05 / max(len(others), 1)  # Bonferroni over the comparisons not named beforehand
    lines = [
        f"### AdvGLUE {task}",
        "",
        f"Accuracy (×100) on AdvGLUE's adversarial {task} examples and on the benign originals of those that have "
        f"one, mean ± std over seeds; Δ vs none: per example, the seed-averaged correctness minus none's, averaged "
        f"over examples, with a 95 % percentile bootstrap interval over examples ({RESAMPLES:,} resamples). "
        f"`{PREREGISTERED_LABEL}` is the variant named before its results "
        "([advglue_preregistration.md](results/advglue_preregistration.md): CreAT at that day's defaults), and so "
        "is `ascc` at its defaults ([synonym_preregistration.md](results/synonym_preregistration.md)): both at "
        f"95 %; the others, each method at today's defaults, have intervals Bonferroni-corrected to "
        f"{100 * corrected:.1f} % over {len(others)} comparisons.",
        "",
        "| method | seeds | clean dev | AdvGLUE | benign originals | Δ AdvGLUE vs none [interval] |",
        "|---|---|---|---|---|---|",
    ]
    figure, axis = plt.subplots(figsize=(5, 3.6))
    for label, runs in rows.items():
        clean = [100 * r["results"][clean_metric] for r in runs]
        adversarial, benign = accuracy(runs, "correct"), accuracy(runs, "benign_correct")
        cells = [label, str(len(runs)), mean_std(clean), mean_std(adversarial), mean_std(benign)]
        if label == BASELINE:
            cells.append("–")
        else:
            level = 0.95 if label in named else corrected
            difference, low, high = paired_difference(runs, rows[BASELINE], level)
            cells.append(f"{difference:+.1f} [{low:+.1f}, {high:+.1f}] at {100 * level:.1f} %")
        lines.append("| " + " | ".join(cells) + " |")
        # The named variant: its method's colour, a marker no method uses.
        marker = (style(PREREGISTERED[0]) | {"marker": "h"}) if label == PREREGISTERED_LABEL else style(label)
        axis.errorbar(
            statistics.mean(clean), statistics.mean(adversarial), xerr=spread(clean), yerr=spread(adversarial),
            capsize=3, linestyle="none", label=label, **marker,
        )  # fmt: skip
    axis.set(xlabel="clean dev accuracy (×100)", ylabel=f"AdvGLUE {task} accuracy (×100)")
    axis.set_title(f"{task}: clean against AdvGLUE, mean ± std over seeds")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(plots_dir / f"advglue_{task}.png", dpi=120)
    plt.close(figure)
    return lines + ["", f"![AdvGLUE {task}](plots/advglue_{task}.png)", ""]


def advglue_levels(path, task):
    """{idx: level} of AdvGLUE task `task` in the file `path`: `word`, `sentence` or `human`, the level of the attack
    that made each example (its `data_construction`)."""
    with open(path, encoding="utf-8") as f:
        return {example["idx"]: example["data_construction"] for example in json.load(f)[task]}


def advglue_levels_section(task, methods, by_run, levels):
    """Markdown lines for `task`'s AdvGLUE accuracy per attack level (`levels`: {idx: level}, `advglue_levels`), and
    the paired difference from none on the word-level examples alone, at the levels of the main table (the named
    methods at 95 %, the others Bonferroni-corrected)."""
    rows = {m: [r for r in by_run.get((task, m), []) if "advglue" in r] for m in methods}
    rows = {label: runs for label, runs in rows.items() if runs}
    if BASELINE not in rows:
        return []
    order = ("word", "sentence", "human")
    example_levels = [levels[idx] for idx in rows[BASELINE][0]["advglue"]["idx"]]
    masks = {level: np.array([found == level for found in example_levels]) for level in order}
    others = [label for label in rows if label not in (BASELINE, SYNONYM_PREREGISTERED)]
    corrected = 1 - 0.05 / max(len(others), 1)  # the main table's comparisons not named beforehand
    counts = {level: int(mask.sum()) for level, mask in masks.items()}
    lines = [
        f"### AdvGLUE {task} by attack level",
        "",
        f"Accuracy (×100) on the examples of each level of attack (AdvGLUE's `data_construction`: word-level "
        f"substitutions such as TextFooler and SememePSO, sentence-level rewrites, human-written), mean ± std over "
        f"seeds; Δ word-level: the paired difference from none on the {counts['word']} word-level examples alone, "
        "the threat model the synonym-aware methods train against (`ascc` at 95 %, the others at "
        f"{100 * corrected:.1f} %, as above).",
        "",
        "| method | " + " | ".join(f"{level} ({counts[level]})" for level in order) + " | Δ word-level vs none |",
        "|---|" + "---|" * len(order) + "---|",
    ]
    word, baseline = masks["word"], per_example(rows[BASELINE])
    for label, runs in rows.items():
        outcomes = per_example(runs)
        cells = [label]
        for level in order:
            cells.append(mean_std([100 * seed[masks[level]].mean() for seed in outcomes]))
        if label == BASELINE:
            cells.append("–")
        else:
            level = 0.95 if label == SYNONYM_PREREGISTERED else corrected
            difference, low, high = paired_bootstrap(outcomes[:, word], baseline[:, word], level)
            cells.append(f"{difference:+.1f} [{low:+.1f}, {high:+.1f}] at {100 * level:.1f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def spread(values):
    """The error bar over seeds: their standard deviation, 0 for a single seed."""
    return statistics.stdev(values) if len(values) > 1 else 0
