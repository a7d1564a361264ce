"""The ε-sweep section of docs/RESULTS.md: each (method, settings) of the quality grid, its clean metric against its
robustness, per task.

A quality-grid record keeps the hyperparameters it trained with; its settings are the `bench_quality.py --settings`
entry that runs them under today's defaults (`settings_of`: none for the defaults' runs). A variant is a (method,
settings) pair; its radius is `settings`' `adv_epsilon`, else its method's default. The table gives every variant's
clean metric, its difference from plain fine-tuning (`none`) and its robustness: the task's metric under
embedding-space PGD at fixed radii and, on SST-2, AdvGLUE accuracy. The trade-off plot has one panel per robustness
measure, a point per variant that changes at most the radius (mean ± std over seeds on both axes), the points of one
method joined in order of radius.
"""

import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib.pyplot as plt

from adv_trainer.defaults import DEFAULTS

sys.path.insert(0, str(Path(__file__).resolve().parent))

from advglue_report import mean_std, spread  # noqa: E402  (the scripts beside this one)
from bench_quality import PGD_RADII, pgd_key, settings_key, settings_of, short  # noqa: E402

__all__ = ["changes_only_radius", "default_epsilon", "sweep_section", "variant_label", "variant_of"]

BASELINE = "none"


def variant_label(method, settings, default_radius):
    """'pgd ε=0.1', 'pgd ε=0.05 start=0.1', 'none': the method, its radius and any other setting."""
    parts = [method]
    epsilon = settings.get("adv_epsilon", default_radius)
    if epsilon is not None:
        parts.append(f"ε={epsilon:g}")
    others = sorted(item for item in settings.items() if item[0] != "adv_epsilon")
    parts += [f"{flag.removeprefix('adv_')}={short(v)}" for flag, v in others]
    return " ".join(parts)


def variant_of(record):
    """(method, sorted settings items): the variant a quality-grid record ran; the defaults' records have none."""
    return record["method"], settings_key(settings_of(record["method"], record["hyperparameters"]))


def changes_only_radius(variant):
    """Whether a variant is its method's defaults with at most `adv_epsilon` changed (not, say, a warm-up)."""
    return set(dict(variant[1])) <= {"adv_epsilon"}


def default_epsilon(method):
    """The documented per-example L2 radius of `method`, None for a method without one."""
    return DEFAULTS.get((method, "example", "l2"), {}).get("epsilon")


def measures(task, metric):
    """{column title: per-record value ×100 or None} of the robustness measures of `task`."""
    name = metric.removeprefix("eval_")

    def pgd(radius):
        return lambda r: r["results"].get(pgd_key(metric, radius))

    def advglue(r):
        return sum(r["advglue"]["correct"]) / len(r["advglue"]["correct"]) if "advglue" in r else None

    columns = {f"{name} under PGD ε={radius}": pgd(radius) for radius in PGD_RADII}
    if task == "sst2":
        columns["AdvGLUE accuracy"] = advglue
    return columns


def values_of(runs, measure):
    """×100 values of `measure` over `runs`, or [] unless every run has it (no mean over a subset of seeds)."""
    values = [measure(r) for r in runs]
    return [] if any(v is None for v in values) else [100 * v for v in values]


def sweep_section(records, task_metric, plots_dir, style):
    """Markdown lines of the sweep section, and `plots_dir/tradeoff_<task>.png`; empty when every record ran its
    method's defaults. `style(method)` gives a method's colour and marker."""
    if not any(settings for _, settings in map(variant_of, records)):
        return []
    lines = [
        "## ε sweep: clean metric against robustness",
        "",
        "Each method at its defaults and at other settings (`bench_quality.py --settings`), mean ± std over seeds "
        "(×100). Δ vs none: the difference of the means. Robustness is the task's own metric under embedding-space "
        "PGD (5 steps, per-example L2 radius) and, on SST-2, AdvGLUE accuracy; a cell is empty until every seed of "
        "its row has the measurement.",
        "",
    ]
    for task, metric in task_metric.items():
        variants = defaultdict(list)
        for record in records:
            if record["task"] == task:
                variants[variant_of(record)].append(record)
        if not any(settings for _, settings in variants):
            continue
        columns = measures(task, metric)
        order = sorted(variants, key=lambda v: (v[0] != BASELINE, v[0], radius(v), v[1]))
        baseline = [100 * r["results"][metric] for r in variants.get((BASELINE, ()), [])]
        name = metric.removeprefix("eval_")
        header = ["variant", "seeds", name, "Δ vs none", *columns]
        lines += [f"### {task}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant in order:
            runs = variants[variant]
            method, settings = variant[0], dict(variant[1])
            clean = [100 * r["results"][metric] for r in runs]
            delta = f"{statistics.mean(clean) - statistics.mean(baseline):+.1f}" if baseline else "–"
            cells = [variant_label(method, settings, default_epsilon(method)), str(len(runs)), mean_std(clean)]
            cells += [delta if method != BASELINE else "–"]
            cells += [mean_std(values_of(runs, measure)) for measure in columns.values()]
            lines.append("| " + " | ".join(cells) + " |")
        if plot_tradeoff(task, metric, variants, order, columns, plots_dir, style):
            lines += ["", f"![{task} trade-off](plots/tradeoff_{task}.png)"]
        lines.append("")
    return lines


def radius(variant):
    """The training radius of a (method, settings) variant; -1 for a method without one, to sort it first."""
    epsilon = dict(variant[1]).get("adv_epsilon", default_epsilon(variant[0]))
    return -1.0 if epsilon is None else epsilon


def plot_tradeoff(task, metric, variants, order, columns, plots_dir, style):
    """One panel per robustness measure some variant has for all its seeds; returns whether any panel was drawn."""
    plotted = [v for v in order if changes_only_radius(v)]  # a warm-up or other setting: table only
    panels = {}
    for title, measure in columns.items():
        by_method = defaultdict(list)
        for variant in plotted:
            robust = values_of(variants[variant], measure)
            if robust:
                clean = [100 * r["results"][metric] for r in variants[variant]]
                by_method[variant[0]].append((radius(variant), clean, robust))
        if by_method:
            panels[title] = by_method
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for axis, (title, by_method) in zip(axes[0], panels.items(), strict=True):
        for method, points in by_method.items():
            xs = [statistics.mean(robust) for _, _, robust in points]
            ys = [statistics.mean(clean) for _, clean, _ in points]
            axis.errorbar(
                xs, ys, xerr=[spread(robust) for _, _, robust in points], yerr=[spread(c) for _, c, _ in points],
                capsize=3, linestyle="-" if len(points) > 1 else "none", label=method, **style(method),
            )  # fmt: skip
            for (epsilon, _, _), x, y in zip(points, xs, ys, strict=True):
                if epsilon >= 0:  # none has no radius
                    axis.annotate(f"ε={epsilon:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        axis.set(xlabel=f"{title} (×100)", ylabel=f"clean {metric.removeprefix('eval_')} (×100)")
        axis.legend(fontsize=7)
    figure.suptitle(f"{task}: clean against robust, a point per (method, training ε), mean ± std over seeds")
    figure.tight_layout()
    figure.savefig(plots_dir / f"tradeoff_{task}.png", dpi=120)
    plt.close(figure)
    return True
