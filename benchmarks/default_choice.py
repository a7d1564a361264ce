"""The rule that chooses the documented default (method, ε) from the quality grid, as written before the sweep ran
(docs/results/sweep_plan.md): per task, the mean over 3 seeds of each (method, ε) against plain fine-tuning's; the
default is the one whose worst task is no more than 0.5 points below plain and whose average gain over the tasks is
largest; if none qualifies, the per-task best are reported instead.

Only variants that change at most the radius take part (a warm-up is another question), and only once they have 3
seeds on every task: a variant is not judged on some of its tasks or seeds.
"""

import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_report import BASELINE, changes_only_radius, default_epsilon, variant_label, variant_of  # noqa: E402

__all__ = ["choice_section", "gains"]

SEEDS = 3
TOLERANCE = 0.5  # points ×100: how far below plain fine-tuning the worst task may be


def gains(records, task_metric):
    """(complete, per_task): per_task maps each (method, ε) variant to {task: its mean minus plain's, ×100} over the
    tasks where both have `SEEDS` seeds; complete keeps the variants that have every task."""
    clean = defaultdict(list)
    for record in records:
        metric = task_metric.get(record["task"])
        if metric is not None:
            clean[(record["task"], variant_of(record))].append(100 * record["results"][metric])
    per_task = defaultdict(dict)
    for (task, variant), values in clean.items():
        baseline = clean.get((task, (BASELINE, ())), [])
        if variant[0] != BASELINE and changes_only_radius(variant) and min(len(values), len(baseline)) >= SEEDS:
            per_task[variant][task] = statistics.mean(values) - statistics.mean(baseline)
    complete = {variant: deltas for variant, deltas in per_task.items() if set(deltas) == set(task_metric)}
    return complete, per_task


def choice_section(records, task_metric):
    """Markdown lines: each complete variant's gain per task, its average and its worst, and the variant the rule
    chooses (or, when none qualifies, the best per task). Empty when no variant is complete."""
    complete, per_task = gains(records, task_metric)
    if not complete:
        return []

    def label(variant):
        return variant_label(variant[0], dict(variant[1]), default_epsilon(variant[0]))

    tasks = list(task_metric)
    lines = [
        "## Choosing the default",
        "",
        "The rule written before the ε sweep ran ([sweep_plan.md](results/sweep_plan.md)): per task, a (method, ε)'s "
        f"mean over {SEEDS} seeds minus plain fine-tuning's (×100, each task's metric); a variant qualifies when its "
        f"worst task is at most {TOLERANCE} below plain, and the default is the qualifying variant with the largest "
        f"average. Only variants with {SEEDS} seeds on every task are judged.",
        "",
        "| variant | " + " | ".join(f"Δ {task}" for task in tasks) + " | average | worst | qualifies |",
        "|" + "---|" * (len(tasks) + 4),
    ]
    ranked = sorted(complete.items(), key=lambda item: -statistics.mean(item[1].values()))
    for variant, deltas in ranked:
        worst = min(deltas.values())
        cells = [label(variant), *[f"{deltas[task]:+.1f}" for task in tasks]]
        # The worst task to two decimals: it decides against the tolerance, which one decimal can hide.
        cells += [f"{statistics.mean(deltas.values()):+.1f}", f"{worst:+.2f}", "yes" if worst >= -TOLERANCE else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    qualifying = [(variant, deltas) for variant, deltas in ranked if min(deltas.values()) >= -TOLERANCE]
    if qualifying:
        variant, deltas = qualifying[0]
        lines += ["", f"Chosen by the rule: **{label(variant)}** (average {statistics.mean(deltas.values()):+.1f})."]
    else:
        best = []
        for task in tasks:
            measured = [(deltas[task], variant) for variant, deltas in per_task.items() if task in deltas]
            gain, variant = max(measured)
            best.append(f"{task} {label(variant)} ({gain:+.1f})")
        lines += ["", "No variant qualifies; the best per task: " + ", ".join(best) + "."]
    pending = [label(variant) + f" (measured: {', '.join(sorted(deltas))})" for variant, deltas in per_task.items()
               if variant not in complete]  # fmt: skip
    if pending:
        lines += ["", f"Not yet judged ({SEEDS} seeds on only some tasks): " + "; ".join(sorted(pending)) + "."]
    return lines + [""]
