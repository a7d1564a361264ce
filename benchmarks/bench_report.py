#!/usr/bin/env python
"""Regenerates docs/RESULTS.md and its plots from the raw benchmark results alone.

Reads docs/results/quality.jsonl (`bench_quality.py`) and docs/results/speed.json (`bench_speed.py`); either may be
missing. Writes docs/RESULTS.md, docs/plots/quality_<task>.png, robustness_<task>.png (tasks evaluated under
attack), advglue_<task>.png, tradeoff_<task>.png (tasks with an ε sweep), speed.png and speed_growth.png. The paired
comparisons are `advglue_report.py` (AdvGLUE) and `word_attack_report.py` (PWWS and DeepWordBug).

    python benchmarks/bench_report.py
"""

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

# The scripts beside this one; this file runs as a script and as `benchmarks.bench_report` in the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import advglue_report  # noqa: E402
import bench_quality  # noqa: E402
import default_choice  # noqa: E402
import sweep_report  # noqa: E402
import word_attack_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# The AdvGLUE file the records were evaluated on, for the level of each example (the records keep its idx only).
ADVGLUE_FILE = ROOT.parent / "shared" / "advglue" / "dev.json"
DOCS = ROOT / "docs"
# The grid's methods, then those added to AdversarialMethod since (a method keeps its colour when one is added).
METHODS = list(dict.fromkeys([*bench_quality.METHODS, *bench_quality.ALL_METHODS]))
TASK_METRIC = {"sst2": "eval_accuracy", "mrpc": "eval_f1", "cola": "eval_matthews_correlation"}
# One colour and one marker per method or speed variant, the same in every plot: no two lines look alike.
# 16 speed variants: as many colours and markers.
COLOURS = [*plt.get_cmap("tab10").colors, "black", "goldenrod", "navy", "crimson", "teal", "olive"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "d", "H", "8", "x"]


def robust_columns(metric):
    """(results key, column title) of the robustness measurements: the task's metric under embedding PGD, then the
    embedding-neighbour word attack (SST-2 records from before PWWS and DeepWordBug, which have their own section)."""
    return [
        *[(bench_quality.pgd_key(metric, radius), f"PGD eps {radius}") for radius in bench_quality.PGD_RADII],
        ("eval_embedding_neighbour_accuracy_under_attack", "word subst."),
        ("eval_embedding_neighbour_success_rate", "subst. success"),
    ]


def mean_std(values):
    """'mean ± std' over seeds of fractions, ×100; one seed has no spread to show."""
    return advglue_report.mean_std([100 * v for v in values])


def defaults_and_named(records):
    """({(task, method): records at today's defaults}, {task: records of the pre-registered AdvGLUE variant}). The ε
    sweep's other runs have their own section; a record in both (the named variant is a default again) is in both."""
    by_run, named = defaultdict(list), defaultdict(list)
    for record in records:
        if not bench_quality.settings_of(record["method"], record["hyperparameters"]):
            by_run[(record["task"], record["method"])].append(record)
        if (record["method"], record["hyperparameters"]) == advglue_report.PREREGISTERED:
            named[record["task"]].append(record)
    return by_run, named


def quality_section(records):
    by_run, named = defaults_and_named(records)
    lines = ["## Quality: MiniLM on real GLUE", ""]
    lines += [
        "Mean ± standard deviation over seeds (×100), dev sets; each method at its documented defaults "
        "(`benchmarks/bench_quality.py`). `train min` is the training loop's wall time in the same runs, on a machine "
        "that was also running other work: step times are in the speed section. Its mean is split by the runs' torch "
        "thread count, `(Nt)` for N threads (most one-thread runs shared the machine with a second one-thread run) "
        "and `(?)` for runs recorded before the thread count was, so that only cells with the same mark compare "
        "methods.",
        "",
    ]
    for task, metric in TASK_METRIC.items():
        methods = [m for m in METHODS if (task, m) in by_run]
        if not methods:
            continue
        runs_of_task = [r for m in methods for r in by_run[(task, m)]]
        measured = {key for r in runs_of_task for key in r["results"]}
        robust = [(key, title) for key, title in robust_columns(metric) if key in measured]
        header = ["method", "seeds", metric.removeprefix("eval_"), *[title for _, title in robust], "train min"]
        lines += [f"### {task}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method in methods:
            runs = by_run[(task, method)]
            cells = [method, str(len(runs)), mean_std([r["results"][metric] for r in runs])]
            # A column some runs lack (measured only since a later run) shows none rather than a subset's mean.
            cells += [
                mean_std([r["results"][key] for r in runs]) if all(key in r["results"] for r in runs) else "–"
                for key, _ in robust
            ]
            cells.append(train_minutes(runs))
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"![{task}](plots/quality_{task}.png)", ""]
        plot_quality(task, metric, methods, by_run)
        radii = robust_radii(by_run[(task, methods[0])][0]["results"], metric)
        if radii and all(key in r["results"] for r in runs_of_task for key in radii.values()):
            lines += [f"![{task} robustness](plots/robustness_{task}.png)", ""]
            plot_robustness(task, metric, methods, by_run, radii)
        lines += advglue_report.advglue_section(
            task, metric, methods, by_run, DOCS / "plots", lambda m: line_style(m, METHODS), named[task]
        )
        if ADVGLUE_FILE.is_file() and any("advglue" in r for r in runs_of_task):
            levels = advglue_report.advglue_levels(ADVGLUE_FILE, task)
            lines += advglue_report.advglue_levels_section(task, methods, by_run, levels)
    return lines


def train_minutes(runs):
    """Mean training wall time in minutes per torch thread count, fewest threads first, e.g. '31.2 (1t) · 13.7 (?)'.

    A run's wall time depends on its threads and on what shared the machine, so runs of different thread counts are
    not averaged together."""
    by_threads = defaultdict(list)
    for run in runs:
        by_threads[run.get("threads")].append(run["results"]["train_runtime"] / 60)
    order = sorted(by_threads, key=lambda threads: (threads is None, threads))
    return " · ".join(f"{statistics.mean(by_threads[t]):.1f} ({'?' if t is None else f'{t}t'})" for t in order)


def plot_quality(task, metric, methods, by_run):
    figure, axis = plt.subplots(figsize=(5, 3.2))
    for x, method in enumerate(methods):
        values = [100 * r["results"][metric] for r in by_run[(task, method)]]
        axis.scatter([x] * len(values), values, color="tab:blue", alpha=0.6, label="one seed" if x == 0 else None)
        axis.errorbar(
            x + 0.15, statistics.mean(values), yerr=advglue_report.spread(values), fmt="o", color="black", capsize=4,
            label="mean ± std" if x == 0 else None,
        )  # fmt: skip
    axis.legend(fontsize=7)
    axis.set_xticks(range(len(methods)), methods)
    axis.set_ylabel(f"{metric.removeprefix('eval_')} (×100)")
    axis.set_title(f"{task}: dev metric per seed, mean ± std")
    figure.tight_layout()
    figure.savefig(DOCS / "plots" / f"quality_{task}.png", dpi=120)
    plt.close(figure)


def line_style(name, names):
    """The colour and marker of `name`, by its place in `names` (all methods, or all speed variants)."""
    index = names.index(name)
    return {"color": COLOURS[index % len(COLOURS)], "marker": MARKERS[index % len(MARKERS)]}


def robust_radii(results, metric):
    """{attack radius: results key} of the task's `metric` under the grid's embedding-space PGD radii that `results`
    hold, ε = 0 being the clean metric; empty when they hold none."""
    keys = {float(r): bench_quality.pgd_key(metric, r) for r in bench_quality.PGD_RADII}
    radii = {radius: key for radius, key in keys.items() if key in results}
    return {0.0: metric, **radii} if radii else {}


def plot_robustness(task, metric, methods, by_run, radii):
    """The task's dev `metric` against the attack radius, mean ± std over seeds: one panel per method (small multiples,
    since the methods' lines lie within a few points of each other), each with plain fine-tuning (`none`) for
    reference."""
    name = metric.removeprefix("eval_")
    curves = {}
    for method in methods:
        values = [[100 * r["results"][key] for r in by_run[(task, method)]] for key in radii.values()]
        curves[method] = [statistics.mean(v) for v in values], [advglue_report.spread(v) for v in values]
    others = [method for method in methods if method != "none"] or methods
    columns = min(4, len(others))
    rows = -(-len(others) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, 2.3 * rows + 0.5), sharex=True, sharey=True, squeeze=False
    )
    for axis, method in zip(axes.flat, others, strict=False):
        for m in ["none", method] if method != "none" and "none" in curves else [method]:
            means, spreads = curves[m]
            axis.errorbar(list(radii), means, yerr=spreads, capsize=3, label=m, **line_style(m, methods))
        axis.set_title(method, fontsize=9)
        axis.legend(fontsize=7)
    for axis in axes.flat[len(others) :]:
        axis.axis("off")
    for axis in axes[-1]:
        axis.set_xlabel("PGD radius ε (per example)", fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel(f"{name} (×100)", fontsize=8)
    figure.suptitle(f"{task}: dev {name} under embedding-space PGD (mean ± std over seeds)", fontsize=10)
    figure.tight_layout()
    figure.savefig(DOCS / "plots" / f"robustness_{task}.png", dpi=120)
    plt.close(figure)


def speed_section(speed):
    machine = speed["machine"]
    lines = ["## Speed and memory: one optimizer step, MiniLM, batch 32", ""]
    lines += [
        f"Measured by `benchmarks/bench_speed.py` on {machine['device']} ({machine['processor']}, "
        f"{machine['cpu_threads']} threads; torch {machine['torch']}, transformers {machine['transformers']}); "
        f"median of {speed['rounds']} interleaved rounds. `floor` is the pass-count floor (F: full forward+backward, "
        "I: forward + input-gradient backward, N: forward whose graph is dropped, O: optimizer step); `recipe-*` edit "
        "the embedding weight in place.",
        "",
    ]
    for shape_name, shape in speed["shapes"].items():
        title = (
            "real SST-2 rows, dynamic padding" if shape_name == "dynamic" else f"rows packed to {shape_name} tokens"
        )
        load = f"; load {shape['load'][0]:.1f} before, {shape['load'][1]:.1f} after" if "load" in shape else ""
        lines += [f"### {title} (mean {shape['mean_tokens_per_row']:.0f} tokens per row{load})", ""]
        has_memory = any("peak_memory_mib" in v for v in shape["variants"].values())
        header = ["variant", "median s", "min–max s", "× none", "× floor"] + (["peak MiB"] if has_memory else [])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant, v in shape["variants"].items():
            cells = [
                variant,
                f"{v['median_s']:.3f}",
                f"{v['min_s']:.3f}–{v['max_s']:.3f}",
                f"{v['ratio_to_none']:.2f}",
            ]
            cells.append("–" if v.get("ratio_to_floor") is None else f"{v['ratio_to_floor']:.2f}")
            if has_memory:
                cells.append(f"{v['peak_memory_mib']:.0f}" if "peak_memory_mib" in v else "–")  # a --no-memory run
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"{floor_times(shape['floors'])}.", ""]
        for run in shape.get("added_runs", []):
            lines += [
                f"{', '.join(run['variants'])}: measured in a later run (`--variants ... --update`), whose none took "
                f"{run['none']['median_s']:.3f} s and {floor_times(run['floors'])}; their × none and × floor are to "
                "those.",
                "",
            ]
    lines += targets_section(speed)
    lines += ["![speed](plots/speed.png)", "", "![growth](plots/speed_growth.png)", ""]
    plot_speed(speed)
    plot_growth(speed)
    return lines


def floor_times(floors):
    n = f", N = {floors['floor-N']:.3f} s" if "floor-N" in floors else ""
    return f"F = {floors['floor-F']:.3f} s, I = {floors['floor-I']:.3f} s{n}, O = {floors['floor-O']:.3f} s"


def targets_section(speed):
    """The benchmark's targets per shape: methods within 5 % of their floor; PGD-3 and FGM against the recipe."""
    lines = ["### Targets", ""]
    lines += [
        "Targets: every method within 1.05× its floor; pgd-k3 faster than the weight-editing PGD at every shape; "
        "peak memory never above the recipe's. Read a miss against the min–max spread of the tables above: variants "
        "that run the same passes (fgm and pgd-k1) show the noise of the machine.",
        "",
    ]
    lines += [
        "Target for SMART and R3F, which hold one graph at a time: peak memory no higher than PGD K=1's (peak RSS, "
        "glibc's mmap threshold fixed, `bench_speed.peak_memory_mib`). Peak × none is each method's peak over plain "
        "fine-tuning's, the highest of the shape.",
        "",
    ]
    header = [
        "shape", "worst method × floor", "smart-k1 / pgd-k1 peak", "r3f / pgd-k1 peak", "highest peak × none",
        "pgd-k3 / recipe time", "fgm / recipe time", "pgd-k3 / recipe peak",
    ]  # fmt: skip
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for shape_name, shape in speed["shapes"].items():
        v = shape["variants"]
        methods = [name for name in v if not name.startswith("recipe") and v[name].get("ratio_to_floor") is not None]
        worst = max(methods, key=lambda name: v[name]["ratio_to_floor"])
        cells = [shape_name, f"{worst} {v[worst]['ratio_to_floor']:.2f}"]
        measured = [name for name in v if not name.startswith("recipe") and "peak_memory_mib" in v[name]]
        for ours in ("smart-k1", "r3f"):
            both = ours in measured and "pgd-k1" in measured
            cells.append(f"{v[ours]['peak_memory_mib'] / v['pgd-k1']['peak_memory_mib']:.3f}" if both else "–")
        if "none" in measured:
            highest = max(measured, key=lambda name: v[name]["peak_memory_mib"])
            cells.append(f"{highest} {v[highest]['peak_memory_mib'] / v['none']['peak_memory_mib']:.2f}")
        else:
            cells.append("–")
        for ours, recipe, key in (
            ("pgd-k3", "recipe-pgd-k3", "median_s"),
            ("fgm", "recipe-fgm", "median_s"),
            ("pgd-k3", "recipe-pgd-k3", "peak_memory_mib"),
        ):
            measured = key in v.get(ours, {}) and key in v.get(recipe, {})
            cells.append(f"{v[ours][key] / v[recipe][key]:.2f}" if measured else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


# The panels of speed_growth.png: variants of similar cost together, so that their lines can be told apart.
GROWTH_PANELS = {
    "two passes (FGM's cost)": ["fgm", "recipe-fgm", "awp", "r3f"],
    "PGD, K steps": ["pgd-k1", "pgd-k2", "pgd-k3", "pgd-k5", "recipe-pgd-k3"],
    "FreeLB, SMART": ["freelb-k3", "smart-k1"],
    "synonym-aware": ["ascc-k3", "dne-k3", "a2t"],
}


def plot_growth(speed):
    """Step time (top) and peak memory (bottom) against the tokens per row: one column per group of variants
    (small multiples), each with plain fine-tuning (`none`) for reference."""
    shapes = list(speed["shapes"].values())
    variants = all_variants(speed)
    listed = {v for names in GROWTH_PANELS.values() for v in names}
    panels = {title: [v for v in names if v in variants] for title, names in GROWTH_PANELS.items()}
    panels["other"] = [v for v in variants if v not in listed and v != "none"]
    panels = {title: names for title, names in panels.items() if names}
    figure, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 6.4), sharex=True, squeeze=False)
    for column, (title, names) in enumerate(panels.items()):
        for variant in ["none", *names] if "none" in variants else names:
            points = sorted(
                (shape["mean_tokens_per_row"], shape["variants"][variant])
                for shape in shapes
                if variant in shape["variants"]
            )
            tokens = [t for t, _ in points]
            style = {"label": variant, "linestyle": "--" if variant.startswith("recipe") else "-"}
            style.update(line_style(variant, variants))
            axes[0, column].plot(tokens, [v["median_s"] for _, v in points], **style)
            if all("peak_memory_mib" in v for _, v in points):
                axes[1, column].plot(tokens, [v["peak_memory_mib"] for _, v in points], **style)
        axes[0, column].set_title(title, fontsize=10)
        axes[1, column].set_xlabel("tokens per row")
        for axis in axes[:, column]:
            axis.legend(fontsize=7)
    axes[0, 0].set_ylabel("seconds per step")
    axes[1, 0].set_ylabel("peak MiB")
    figure.suptitle("step time and peak memory vs row length", fontsize=11)
    figure.tight_layout()
    figure.savefig(DOCS / "plots" / "speed_growth.png", dpi=120)
    plt.close(figure)


def all_variants(speed):
    """Every variant of any shape, in first-seen order (a shape measured by an older run may lack some)."""
    return list(dict.fromkeys(v for shape in speed["shapes"].values() for v in shape["variants"]))


def plot_speed(speed):
    shapes = list(speed["shapes"])
    variants = all_variants(speed)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.8 / len(shapes)
    for s, shape in enumerate(shapes):
        values = speed["shapes"][shape]["variants"]
        present = [i for i, v in enumerate(variants) if v in values]
        xs = [i + s * width for i in present]
        axes[0].bar(xs, [values[variants[i]]["ratio_to_none"] for i in present], width, label=shape)
        # A2T has no pass-count floor: no bar.
        to_floor = [values[variants[i]]["ratio_to_floor"] for i in present]
        axes[1].bar(xs, [math.nan if r is None else r for r in to_floor], width, label=shape)
    for axis, title in zip(axes, ["step time / none", "step time / floor"], strict=True):
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(variants))], variants, rotation=45, ha="right")
        axis.set_title(title)
        axis.axhline(1.0, color="gray", linewidth=0.8)
    for axis in axes:
        axis.legend(title="length", fontsize=8)
    figure.tight_layout()
    figure.savefig(DOCS / "plots" / "speed.png", dpi=120)
    plt.close(figure)


def reproduce_section():
    """The commands behind the raw results; the per-run flags come from `bench_quality.py` itself."""
    lines = ["## How to reproduce", "", "From the repository root, with the GLUE files in `../shared/glue`:", ""]
    lines += [
        "- `python benchmarks/bench_speed.py` (`make bench`) measures every shape into `docs/results/speed.json`; "
        "`--lengths dynamic --update` re-measures one shape into the existing file, and "
        "`--lengths 64,128,256 --variants smart-k1,r3f,awp --update` adds variants to the shapes measured (how the "
        "SMART, R3F and AWP rows were added).",
        "- `python benchmarks/bench_quality.py --tasks sst2 --methods none fgm pgd freelb --seeds 1 2 3` "
        "(`make bench-quality` runs the whole grid) appends one line per run to `docs/results/quality.jsonl`; each "
        "run is `scripts/run_glue.py --task_name TASK --adv_method METHOD --seed SEED` with "
        f"`{' '.join(bench_quality.COMMON)}` and, per task:",
    ]
    for task, flags in bench_quality.TASKS.items():
        robustness = bench_quality.PGD_EVAL + bench_quality.word_attack_flags(task)
        advglue = bench_quality.advglue_flags(task, None)
        lines.append(f"  - {task}: `{' '.join(flags + robustness + advglue)}`")
    lines.append(
        "- The ε sweep: the same runs with `--settings adv_epsilon=E ...`. Each record keeps the `hyperparameters` it "
        "trained with; a variant's label gives what differs from today's defaults."
    )
    lines += ["- `python benchmarks/bench_report.py` (`make report`) writes this page and its plots.", ""]
    return lines


def main():
    (DOCS / "plots").mkdir(parents=True, exist_ok=True)
    lines = ["# Results", "", "Generated by `benchmarks/bench_report.py` from `docs/results/`; do not edit by hand."]
    lines += [""]
    lines += reproduce_section()
    quality = DOCS / "results" / "quality.jsonl"
    if quality.is_file():
        records = [json.loads(line) for line in quality.read_text().splitlines()]
        lines += quality_section(records)
        by_run, _ = defaults_and_named(records)
        lines += word_attack_report.word_attack_section(TASK_METRIC, METHODS, by_run)
        lines += sweep_report.sweep_section(records, TASK_METRIC, DOCS / "plots", lambda m: line_style(m, METHODS))
        lines += default_choice.choice_section(records, TASK_METRIC)
    speed = DOCS / "results" / "speed.json"
    if speed.is_file():
        lines += speed_section(json.loads(speed.read_text()))
    (DOCS / "RESULTS.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
