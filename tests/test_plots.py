"""The report's plots can be read: a legend on every panel, no two lines of a panel drawn alike, and the robustness
plot as small multiples (one panel per method, beside plain fine-tuning), regenerated from docs/results."""

import json
import shutil
from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from matplotlib.container import ErrorbarContainer
from matplotlib.lines import Line2D

from benchmarks import bench_report

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    """{file name: matplotlib figure} of a `bench_report.py` run on the repository's raw results."""
    docs = tmp_path_factory.mktemp("docs")
    shutil.copytree(RESULTS, docs / "results")
    saved = {}
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(bench_report, "DOCS", docs)
    monkeypatch.setattr(bench_report.plt, "close", lambda figure: saved.update({len(saved): figure}))
    original_savefig = bench_report.plt.Figure.savefig

    def savefig(figure, path, *args, **kwargs):
        figure._saved_as = Path(path).name
        return original_savefig(figure, path, *args, **kwargs)

    monkeypatch.setattr(bench_report.plt.Figure, "savefig", savefig)
    bench_report.main()
    monkeypatch.undo()
    return {figure._saved_as: figure for figure in saved.values()}


def line_styles(axis):
    handles, _ = axis.get_legend_handles_labels()
    lines = [h[0] if isinstance(h, ErrorbarContainer) else h for h in handles]
    return [
        (to_hex(line.get_color()), line.get_marker(), line.get_linestyle())
        for line in lines
        if isinstance(line, Line2D)
    ]


def test_every_panel_has_a_legend_and_distinct_lines(figures):
    assert {"robustness_sst2.png", "speed.png", "speed_growth.png", "quality_sst2.png"} <= set(figures)
    for name, figure in figures.items():
        panels = [axis for axis in figure.axes if axis.axison]
        for axis in panels:
            assert axis.get_legend() is not None, f"{name}: panel {axis.get_title()!r} has no legend"
            styles = line_styles(axis)
            assert len(set(styles)) == len(styles), f"{name}: panel {axis.get_title()!r} repeats a line style"


def test_robustness_is_one_panel_per_method_beside_plain_fine_tuning(figures):
    panels = [axis for axis in figures["robustness_sst2.png"].axes if axis.axison]
    records = [json.loads(line) for line in (RESULTS / "quality.jsonl").read_text().splitlines()]
    measured = {r["method"] for r in records if r["task"] == "sst2"}
    assert [axis.get_title() for axis in panels] == [m for m in bench_report.METHODS if m in measured - {"none"}]
    assert len(panels) >= 6  # fgm, pgd, freelb, smart, r3f, awp
    for axis in panels:
        assert axis.get_legend_handles_labels()[1] == ["none", axis.get_title()]


@pytest.mark.parametrize("task, metric", [("mrpc", "f1"), ("cola", "matthews_correlation")])
def test_robustness_is_drawn_in_the_tasks_own_metric(figures, task, metric):
    """The plot shows the metric of its task's table (F1, Matthews), from the clean value at ε = 0 to the radii."""
    records = [json.loads(line) for line in (RESULTS / "quality.jsonl").read_text().splitlines()]
    plain = [r["results"] for r in records if r["task"] == task and r["method"] == "none"]
    panel = next(axis for axis in figures[f"robustness_{task}.png"].axes if axis.axison)
    assert panel.get_ylabel() == f"{metric} (×100)"
    handles, labels = panel.get_legend_handles_labels()
    line = handles[labels.index("none")][0]
    radii = [0.0, *bench_report.bench_quality.PGD_RADII]
    keys = [f"eval_{metric}", *[f"eval_robust_{metric}_eps{r}" for r in bench_report.bench_quality.PGD_RADII]]
    assert list(line.get_xdata()) == [float(r) for r in radii]
    expected = [100 * sum(results[key] for results in plain) / len(plain) for key in keys]
    assert list(line.get_ydata()) == pytest.approx(expected, abs=1e-9)
