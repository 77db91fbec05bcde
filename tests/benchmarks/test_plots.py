"""Report plots: bands inside the metric's range, the selected checkpoint marked, sizes capped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from testrows import final_row

from benchmarks import plots
from benchmarks import report as report_module
from benchmarks.report import build_points, plot_curves, write_report
from benchmarks.report import figures as report_figures
from benchmarks.results import append_row

LL = "eval/log_likelihood"
MSE = "eval/excess_mse"


def run_row(agent: str, seed: int, env: str, mse_end: float, selected: float | None) -> dict:
    """A final row: MSE falls from 1 to ``mse_end``; early stopping chose ``selected``."""
    metrics = {LL: -1.0 - seed, MSE: mse_end}
    if selected is not None:
        metrics["selected_rollouts"] = selected
    return final_row(
        agent,
        seed,
        env,
        run_id=f"{env}-{agent}-{seed}",
        cell=f"{env}-{agent}",
        env_base=env,
        sweep={},
        select_metric=LL,
        columns=[LL, MSE],
        target_fraction=0.9,
        config={"budget": 1000},
        metrics=metrics,
        curve=[
            [0, {LL: -5.0, MSE: 1.0}],
            [500, {LL: -2.0, MSE: 0.5 * mse_end}],
            [1000, {LL: -1.5 - seed, MSE: mse_end}],
        ],
    )


def rows(envs=("a",), selected=(400.0, 600.0)) -> list[dict]:
    # Seeds' MSE 0.01 and 2.0: the 95% t-band of their mean reaches far below 0.
    return [
        run_row(agent, seed, env, (0.01, 2.0)[seed], None if selected is None else selected[seed])
        for env in envs
        for agent in ("maxrl", "grpo")
        for seed in (0, 1)
    ]


@pytest.fixture
def figures(monkeypatch) -> list:
    captured = []

    def capture(fig, path: Path) -> Path:
        captured.append((path.name, fig))
        return path

    monkeypatch.setattr(report_figures, "_save_figure", capture)
    return captured


def test_bands_stay_in_the_metric_range() -> None:
    low, high = plots.clip_band(MSE, np.array([-0.5, 0.1]), np.array([0.2, 0.3]))
    assert list(low) == [0.0, 0.1] and list(high) == [0.2, 0.3]
    low, high = plots.clip_band("eval/pass@16", np.array([-0.1]), np.array([1.2]))
    assert (low[0], high[0]) == (0.0, 1.0)
    low, high = plots.clip_band(LL, np.array([-50.0]), np.array([3.0]))
    assert (low[0], high[0]) == (-50.0, 3.0)


def test_curves_clip_the_band_and_mark_the_selected_checkpoint(tmp_path, figures) -> None:
    (point,) = build_points(rows())["e"]
    assert plot_curves("e", [point], tmp_path / "curves_e.png") == [tmp_path / "curves_e.png"]
    ((_, fig),) = figures
    ll_ax, mse_ax = [ax for ax in fig.axes if ax.axison]
    bands = [c for c in mse_ax.collections if len(c.get_paths())]
    assert bands and min(p.vertices[:, 1].min() for c in bands for p in c.get_paths()) >= 0.0
    unclipped = report_module._mean_curve(point.agents["maxrl"].rows, MSE)
    assert (unclipped[1] - unclipped[2]).min() < 0  # the t-band itself went below 0
    # One star per agent at (mean selected rollouts, mean final value): the table's value.
    for ax, metric in ((ll_ax, LL), (mse_ax, MSE)):
        stars = [line for line in ax.lines if line.get_marker() == "*" and len(line.get_xdata())]
        assert len(stars) == 2
        expected = np.mean([r["metrics"][metric] for r in point.agents["maxrl"].rows])
        assert (stars[0].get_xdata()[0], stars[0].get_ydata()[0]) == pytest.approx((500, expected))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert plots.SELECTED_LABEL in legend


def test_no_star_without_early_stopping(tmp_path, figures) -> None:
    (point,) = build_points(rows(selected=None))["e"]
    plot_curves("e", [point], tmp_path / "curves_e.png")
    ((_, fig),) = figures
    assert not [line for ax in fig.axes for line in ax.lines if line.get_marker() == "*"]
    assert "★" not in plots.curves_caption(point.agents["maxrl"].rows)


def test_many_panels_go_to_pages_of_capped_size(tmp_path, figures, monkeypatch) -> None:
    monkeypatch.setattr(report_figures, "CURVE_ROWS", 1)  # 4 panels a figure
    points = build_points(rows(envs=("a", "b", "c")))["e"]  # 3 points x 2 metrics
    written = plot_curves("e", points, tmp_path / "curves_e.png")
    assert [p.name for p in written] == ["curves_e.png", "curves_e.2.png"]
    assert [sum(ax.axison for ax in fig.axes) for _, fig in figures] == [4, 2]
    for _, fig in figures:
        width, height = fig.get_size_inches()
        assert width <= plots.MAX_FIGURE_INCHES[0] and height <= plots.MAX_FIGURE_INCHES[1]
    assert plots.wrap("x " * 40, 20).count("\n") == 3


def test_report_captions_the_curves_and_shows_the_aggregate_plots(tmp_path: Path) -> None:
    for r in rows(envs=("a", "b")):
        r["references"] = {
            "random": {LL: -5.0, MSE: 2.0},
            "bayes_point": {LL: 0.0, MSE: 0.0},
            "bayes_sampler": {LL: -0.5, MSE: 0.0},
        }
        append_row(tmp_path / "results.jsonl", r)
    text = write_report(tmp_path).path.read_text(encoding="utf-8")
    assert "★ marks the selected checkpoint" in text
    assert text.index("![curves_e]") < text.index("Curves: mean over seeds")
    assert "![aggregate_intervals](plots/aggregate_intervals.png)" in text
    assert "![aggregate_improvement](plots/aggregate_improvement.png)" in text
    from PIL import Image

    for name in ("aggregate_intervals.png", "aggregate_improvement.png"):
        with Image.open(tmp_path / "plots" / name) as image:
            assert 400 < image.width <= 16 * 110 and image.height <= 15 * 110
