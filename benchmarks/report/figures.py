"""The report's plots: learning curves, sweeps, and the aggregate's profile and curve."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.report.fmt import direction, fmt_value, metric_name, short_name
from benchmarks.report.intervals import mean_ci
from benchmarks.report.points import Point, _mean_curve
from benchmarks.report.rows import _curve_rows

if TYPE_CHECKING:
    from benchmarks.report.aggregate import Aggregate

#: Most panels a row in every figure; width of one panel and dpi of the PNGs.
MAX_COLUMNS = 3
PANEL_WIDTH = 4.8
PANEL_HEIGHT = 3.4
DPI = 110


def _colors(names: Iterable[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _grid(
    count: int,
    height: float = PANEL_HEIGHT,
    width: float = PANEL_WIDTH,
    columns: int = MAX_COLUMNS,
) -> tuple[Any, Any]:
    """A figure of ``count`` panels, at most ``columns`` a row (unused ones hidden).

    Never larger than ``plots.MAX_FIGURE_INCHES``: panels shrink to fit (callers page many
    panels over several figures instead, see ``plots.pages``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plots import MAX_FIGURE_INCHES

    cols = max(1, min(columns, count))
    rows = math.ceil(count / cols)
    width = min(width, MAX_FIGURE_INCHES[0] / cols)
    height = min(height, (MAX_FIGURE_INCHES[1] - 0.6) / rows)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width * cols, height * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    return fig, axes


def _legend(fig: Any, axes: Any, title: str, ncol: int = 6) -> None:
    """One legend under the panels (every label once, ``ncol`` columns at most), a title."""
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncol=min(ncol, len(handles)),
            fontsize=8,
        )
    fig.suptitle(title, fontsize=11)


def _save_figure(fig: Any, path: Path) -> Path:
    """Write a figure as PNG (creating its folder) and release it."""
    import matplotlib.pyplot as plt

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


#: Curve panels: columns (two points of two metrics a row) and rows of one figure; more
#: panels go to further figures (``curves_<experiment>.2.png``, ...).
CURVE_COLUMNS = 4
CURVE_ROWS = 4


def plot_curves(
    experiment: str, points: list[Point], path: Path, metrics_per_point: int = 2
) -> list[Path]:
    """Learning curves of one experiment against rollouts.

    One panel per point and metric: the selection metric and the next report column (e.g.
    log-likelihood and excess MSE, or pass@1 and pass@k), ``CURVE_COLUMNS`` panels a row
    and ``CURVE_ROWS`` rows a figure (further figures: ``path`` with ``.2``, ``.3``, ...),
    each titled with its metric and task (wrapped). The target of the selection metric is a
    dotted line labelled "target"; seeds that diverged are left out and named in the panel;
    bands are clipped to the metric's range; under early stopping a star marks the selected
    checkpoint, where the table's value comes from.

    Returns:
        The figures written (none without panels).
    """
    from benchmarks import plots

    panels = []
    for point in points:
        metrics = list(dict.fromkeys([point.select_metric, *point.metrics]))
        panels += [(point, metric) for metric in metrics[:metrics_per_point]]
    if not panels:
        return []
    colors = _colors(dict.fromkeys(a for p in points for a in p.agents))
    written = []
    for index, page in enumerate(plots.pages(panels, CURVE_COLUMNS * CURVE_ROWS)):
        fig, axes = _grid(len(page), height=3.0, width=4.0, columns=CURVE_COLUMNS)
        _curve_panels(axes, page, colors)
        title = f"{experiment}: learning curves on the test split (mean, 95% CI over seeds)"
        if len(panels) > len(page):
            title += f", part {index + 1}"
        _legend(fig, axes, title)
        written.append(_save_figure(fig, plots.page_path(path, index)))
    return written


def _curve_panels(axes: Any, panels: list[tuple[Point, str]], colors: dict[str, Any]) -> None:
    from benchmarks import plots

    for ax, (point, metric) in zip(axes.flat, panels, strict=False):
        left_out = []
        marked = False
        for name, result in point.agents.items():
            kept = len(_curve_rows(result.rows, metric))
            if kept < len(result.rows):
                left_out.append(f"{name} {len(result.rows) - kept}/{len(result.rows)}")
            curve = _mean_curve(result.rows, metric)
            if curve is None:
                continue
            x, mean, half = curve
            style = _line_style(result.family, result.role)
            ax.plot(x, mean, style, color=colors[name], label=name, lw=1.6)
            low, high = plots.clip_band(metric, mean - half, mean + half)
            ax.fill_between(x, low, high, color=colors[name], alpha=0.15, lw=0)
            selected = plots.selected_point(result.rows, metric)
            if selected is not None:
                plots.mark_selected(ax, *selected, colors[name])
                marked = True
        if point.target is not None and metric == point.select_metric:
            ax.axhline(point.target, color="grey", lw=1.0, ls=":", label="target")
        if marked:
            plots.legend_selected(ax)
        if left_out:
            ax.text(
                0.01,
                0.01,
                "diverged seeds left out: " + ", ".join(left_out),
                transform=ax.transAxes,
                fontsize=7,
                color="firebrick",
            )
        ax.set_title(plots.wrap(f"{metric_name(metric)} — {point.label}"), fontsize=8)
        ax.set_xlabel("rollouts", fontsize=8)
        ax.set_ylabel(f"{metric_name(metric)} ({direction(metric)})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)


def plot_sweep(experiment: str, points: list[Point], key: str, path: Path) -> Path | None:
    """Final selection metric against a swept value, one panel per other combination."""
    swept = [p for p in points if key in p.sweep]
    if len({fmt_value(p.sweep[key]) for p in swept}) < 2:
        return None
    panels: dict[str, list[Point]] = defaultdict(list)
    for point in swept:
        others = [f"{short_name(k)}={fmt_value(v)}" for k, v in point.sweep.items() if k != key]
        panels[" ".join([point.env_base, *others])].append(point)
    fig, axes = _grid(len(panels))
    colors = _colors(dict.fromkeys(a for p in swept for a in p.agents))
    for ax, (title, group) in zip(axes.flat, panels.items(), strict=False):
        metric = group[0].select_metric
        series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        flat: dict[str, tuple[float, float]] = {}
        for point in group:
            for name, result in point.agents.items():
                mean, half = mean_ci(result.values(metric))
                if not math.isfinite(mean):
                    continue
                if all(key in r.sweep for r in result.rows):
                    series[name].append((float(point.sweep[key]), mean, half))
                else:
                    flat[name] = (mean, half)
        for name, pts in series.items():
            pts.sort()
            x = [p[0] for p in pts]
            y = [p[1] for p in pts]
            err = [0.0 if not math.isfinite(p[2]) else p[2] for p in pts]
            ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, color=colors[name], label=name)
        for name, (mean, _) in flat.items():
            ax.axhline(
                mean, color=colors[name], ls="--", lw=1.2, label=f"{name} (no {short_name(key)})"
            )
        values = [float(p.sweep[key]) for p in group]
        if min(values) > 0 and max(values) / min(values) >= 10:
            ax.set_xscale("log", base=2 if key in ("rollouts", "contexts") else 10)
        from benchmarks.plots import wrap

        ax.set_title(wrap(f"final {metric_name(metric)} — {title}", 60), fontsize=9)
        ax.set_xlabel(short_name(key))
        ax.set_ylabel(f"final {metric_name(metric)} ({direction(metric)})", fontsize=8)
        ax.grid(alpha=0.3)
    _legend(fig, axes, f"{experiment}: final metric against {short_name(key)} (mean, 95% CI)")
    return _save_figure(fig, path)


def _legend_columns(names: Iterable[str]) -> int:
    """Legend columns that fit an 8-inch figure: 6 for agent names, fewer for long names."""
    return max(1, min(6, 120 // (max(len(n) for n in names) + 6)))


def _algorithm_styles(
    agg: Aggregate, names: Iterable[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Line colour by agent and line style by setting values (one agent: one colour)."""
    names = list(names)
    agent = {name: agg.algorithms.get(name, (name, {}))[0] for name in names}
    by_agent = _colors(dict.fromkeys(agent.values()))
    dashes = ("-", "--", ":", "-.")
    variants: dict[str, list[str]] = defaultdict(list)
    styles = {}
    for name in names:
        variants[agent[name]].append(name)
        styles[name] = dashes[(len(variants[agent[name]]) - 1) % len(dashes)]
    return {name: by_agent[agent[name]] for name in names}, styles


def _plot_profile(agg: Aggregate, reps: int, seed: int, path: Path) -> Path:
    import numpy as np

    from benchmarks import stats

    every = np.concatenate([m.ravel() for m in agg.scores.values()])
    taus = np.linspace(min(0.0, float(every.min())), max(1.0, float(every.max())), 101)
    profiles = stats.performance_profile_ci(agg.scores, taus, reps=reps, seed=seed)
    fig, axes = _grid(1, height=4.2, width=8.0)
    ax = axes.flat[0]
    colors, styles = _algorithm_styles(agg, agg.scores)
    for name, band in profiles.items():
        ax.plot(taus, band.point, color=colors[name], ls=styles[name], label=name, lw=1.6)
        ax.fill_between(taus, band.low, band.high, color=colors[name], alpha=0.15, lw=0)
    for level, text in ((0.0, "random"), (1.0, "Bayes")):
        ax.axvline(level, color="grey", lw=0.8, ls=":")
        ax.text(level, 1.02, text, fontsize=7, ha="center", color="grey")
    ax.set_title(f"performance profile — {len(agg.tasks)} tasks × {_runs_text(agg)}", fontsize=9)
    ax.set_xlabel("normalized score τ (random 0, Bayes 1)")
    ax.set_ylabel("fraction of runs with score > τ (higher is better)", fontsize=8)
    ax.set_ylim(-0.02, 1.08)
    ax.grid(alpha=0.3)
    _legend(
        fig,
        axes,
        "aggregate: run-score distribution (95% stratified-bootstrap band)",
        _legend_columns(profiles),
    )
    return _save_figure(fig, path)


def _plot_efficiency(agg: Aggregate, tasks: list[Point], path: Path) -> Path:
    metrics = sorted({metric_name(p.select_metric) for p in tasks if p.task in agg.curve_tasks})
    fig, axes = _grid(1, height=4.2, width=8.0)
    ax = axes.flat[0]
    colors, styles = _algorithm_styles(agg, agg.curve)
    grid = agg.grid
    for name, band in agg.curve.items():
        ax.plot(grid, band.point, color=colors[name], ls=styles[name], label=name, lw=1.6)
        ax.fill_between(grid, band.low, band.high, color=colors[name], alpha=0.15, lw=0)
    title = f"sample efficiency — {len(agg.curve_tasks)} tasks × {_runs_text(agg)}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("rollouts")
    ax.set_ylabel(f"IQM normalized {', '.join(metrics)} (higher is better)", fontsize=8)
    ax.grid(alpha=0.3)
    _legend(
        fig,
        axes,
        "aggregate: IQM of normalized scores (95% stratified-bootstrap band)",
        _legend_columns(agg.curve),
    )
    return _save_figure(fig, path)


def _runs_text(agg: Aggregate) -> str:
    """``5 runs`` when every agent keeps as many runs per task, else ``5–10 runs``."""
    counts = sorted(set(agg.runs.values()))
    return f"{counts[0]} runs" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} runs"


def _line_style(family: str, role: str) -> str:
    """A curve's line style: its family's (SB3 dashed), else dotted references, solid agents."""
    import benchmarks.suite  # noqa: F401  (registers the built-in families: ours, sb3)
    from benchmarks.families import AGENT_FAMILIES

    entry = AGENT_FAMILIES.get(family)
    if entry is not None and entry.line_style is not None:
        return entry.line_style
    return ":" if role == "reference" else "-"
