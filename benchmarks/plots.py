"""The report's plots of the aggregate (rliable's two standard views) and plot helpers.

Beside the performance profile and the sample-efficiency curve (``benchmarks.report``):

- ``aggregate_intervals.png``: each algorithm's IQM, median, mean and optimality gap with
  their 95% stratified-bootstrap intervals, one panel per aggregate (the interval plot of
  Agarwal et al. 2021, Fig. 1).
- ``aggregate_improvement.png``: the probability of improvement P(X > Y) of every compared
  pair with its interval, and the line at 0.5 (no preference).
- ``bins_<metric>.png`` (rows with per-difficulty-bin tags, the hard-contexts suite): MaxRL
  − GRPO and MaxRL − REINFORCE per bin against the bin's initial pass rate (log x axis), one
  line per N with its Holm-corrected intervals, one panel per opponent and framing
  (``plot_bin_differences``).

Helpers the curve plots use: titles wrapped to the panel (``wrap``), panels paged so that no
figure grows past ``MAX_FIGURE_INCHES`` (``pages``, ``page_path``), confidence bands clipped
to the metric's range (``clip_band``) and the checkpoint early stopping selected
(``selected_point``), which is where the report's table value comes from.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from benchmarks.report import Aggregate, Point

T = TypeVar("T")

#: Largest figure (width, height) in inches; at the report's 110 dpi, 1760 x 1650 pixels.
MAX_FIGURE_INCHES = (16.0, 15.0)
#: Characters of a panel title's line (titles are wrapped, never cut off or overlapping).
TITLE_WIDTH = 52
#: Marker and legend text of the checkpoint early stopping selected.
SELECTED_MARKER = "*"
SELECTED_LABEL = "selected checkpoint (early stopping): the table's value"
#: Ranges of metrics (None: unbounded on that side); bands are clipped to them.
METRIC_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "eval/excess_mse": (0.0, None),
    "eval/success_rate": (0.0, 1.0),
    "eval/reward": (0.0, 1.0),
}


def metric_bounds(metric: str) -> tuple[float | None, float | None]:
    """The range of a metric: pass@k and the rates lie in [0, 1], excess MSE is >= 0."""
    if metric.startswith("eval/pass@"):
        return 0.0, 1.0
    return METRIC_BOUNDS.get(metric, (None, None))


def clip_band(metric: str, low: Any, high: Any) -> tuple[Any, Any]:
    """A confidence band's edges clipped to the metric's range (e.g. excess MSE >= 0).

    A t-interval around a mean of nonnegative values can reach below 0; the metric cannot.
    """
    import numpy as np

    lower, upper = metric_bounds(metric)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    return np.clip(low, lower, upper), np.clip(high, lower, upper)


def wrap(text: str, width: int = TITLE_WIDTH) -> str:
    """A title wrapped on spaces into lines of at most ``width`` characters."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def pages(items: Sequence[T], per_page: int) -> list[list[T]]:
    """``items`` in consecutive pages of at most ``per_page`` (at least one page)."""
    per_page = max(1, per_page)
    return [list(items[i : i + per_page]) for i in range(0, len(items), per_page)] or [[]]


def page_path(path: Path, index: int) -> Path:
    """The file of page ``index`` (0-based): ``curves_x.png``, ``curves_x.2.png``, ..."""
    return path if index == 0 else path.with_name(f"{path.stem}.{index + 1}{path.suffix}")


def selected_point(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[float, float] | None:
    """Where the report's value of an agent sits when early stopping chose its checkpoints.

    Returns:
        ``(mean selected rollouts, mean final value)`` over the seeds with a finite final
        value and a recorded ``selected_rollouts``: the final value (the report's table) is
        the selected checkpoint's, not the curve's last point. None without early stopping.
    """
    from benchmarks.report import _final_value, as_float

    xs, ys = [], []
    for row in rows:
        metrics = row.get("metrics") or {}
        if "selected_rollouts" not in metrics:
            continue
        x, y = as_float(metrics["selected_rollouts"]), _final_value(row, metric)
        if math.isfinite(x) and math.isfinite(y):
            xs.append(x)
            ys.append(y)
    if not xs:
        return None
    return sum(xs) / len(xs), sum(ys) / len(ys)


def mark_selected(ax: Any, x: float, y: float, color: Any) -> None:
    """Draw the selected-checkpoint marker (``legend_selected`` adds its legend entry)."""
    ax.plot([x], [y], SELECTED_MARKER, color=color, ms=11, mec="black", mew=0.6, zorder=5)


def legend_selected(ax: Any) -> None:
    """The legend entry of the selected-checkpoint markers (an empty, labelled line)."""
    ax.plot([], [], SELECTED_MARKER, color="white", ms=11, mec="black", label=SELECTED_LABEL)


def curves_caption(rows: Iterable[Mapping[str, Any]]) -> str:
    """The report's caption of an experiment's learning curves."""
    text = (
        "Curves: mean over seeds with a 95% t-band, the band clipped to the metric's range "
        "(excess MSE >= 0, pass@k in [0, 1])."
    )
    if any("selected_rollouts" in (row.get("metrics") or {}) for row in rows):
        text += (
            " Early stopping: ★ marks the selected checkpoint (mean selected rollouts over "
            "seeds, at the table's mean), which is what the table reports; a curve may end "
            "elsewhere."
        )
    return text


def _interval_rows(ax: Any, names: list[str], intervals: list[Any], colors: list[Any]) -> None:
    for i, (interval, color) in enumerate(zip(intervals, colors, strict=True)):
        y = len(names) - 1 - i
        ax.barh(
            y,
            interval.high - interval.low,
            left=interval.low,
            height=0.6,
            color=color,
            alpha=0.35,
            lw=0,
        )
        ax.plot([interval.point] * 2, [y - 0.3, y + 0.3], color=color, lw=2.2)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(list(reversed(names)), fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def plot_intervals(agg: Aggregate, path: Path) -> Path | None:
    """The aggregates (IQM, median, mean, optimality gap) with 95% intervals, per algorithm."""
    from benchmarks.report import _algorithm_styles, _grid, _runs_text, _save_figure

    if not agg.intervals or not agg.scores:
        return None
    names = list(agg.scores)
    colors, _ = _algorithm_styles(agg, names)
    height = min(MAX_FIGURE_INCHES[1] - 1.0, max(2.4, 0.32 * len(names) + 1.2))
    aggregates = list(agg.intervals)
    fig, axes = _grid(len(aggregates), height=height, width=3.6, columns=len(aggregates))
    for k, (ax, name) in enumerate(zip(axes.flat, aggregates, strict=False)):
        _interval_rows(
            ax, names, [agg.intervals[name][a] for a in names], [colors[a] for a in names]
        )
        better = "lower is better" if name == "Optimality gap" else "higher is better"
        ax.set_title(f"{name} ({better})", fontsize=9)
        ax.set_xlabel("normalized score", fontsize=8)
        if k:
            ax.set_yticklabels([])
    fig.suptitle(
        wrap(
            f"aggregate over {len(agg.tasks)} tasks × {_runs_text(agg)}: point estimate and "
            "95% stratified-bootstrap interval (random 0, Bayes 1)",
            110,
        ),
        fontsize=10,
    )
    return _save_figure(fig, path)


def plot_improvement(agg: Aggregate, path: Path) -> Path | None:
    """P(X > Y) of every compared pair with its 95% interval; 0.5 is no preference."""
    from benchmarks.report import _algorithm_styles, _grid, _runs_text, _save_figure

    if not agg.improvement:
        return None
    pairs = list(agg.improvement)
    names = [f"{x}  vs  {y}" for x, y in pairs]
    colors, _ = _algorithm_styles(agg, dict.fromkeys(x for x, _ in pairs))
    height = min(MAX_FIGURE_INCHES[1] - 1.0, max(2.4, 0.3 * len(pairs) + 1.4))
    width = min(MAX_FIGURE_INCHES[0], 5.0 + 0.06 * max(len(n) for n in names))
    fig, axes = _grid(1, height=height, width=width)
    ax = axes.flat[0]
    _interval_rows(ax, names, [agg.improvement[p] for p in pairs], [colors[x] for x, _ in pairs])
    ax.axvline(0.5, color="grey", lw=1.0, ls=":")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("P(X > Y): a run of X scores higher than a run of Y on a random task", fontsize=8)
    title = (
        f"probability of improvement — {len(agg.tasks)} tasks × {_runs_text(agg)} "
        "(95% stratified-bootstrap interval; > 0.5 favours X)"
    )
    fig.suptitle(wrap(title, int(width * 11)), fontsize=9)
    return _save_figure(fig, path)


def plot_bin_differences(
    experiments: Mapping[str, Sequence[Point]],
    path: Path,
    agent: str | None = None,
    opponents: Sequence[str] | None = None,
    metric: str = "log_likelihood",
) -> Path | None:
    """A − B per difficulty bin against the bin's initial pass rate, one line per N.

    One panel per opponent (rows) and experiment, i.e. framing (columns); x: the bin's
    uniform-policy pass rate on a log axis; y: the difference of the mean per-bin ``metric``
    (default the exact log pass rate) with its Holm-compatible interval, the family being
    the bins of one experiment and N (``benchmarks.summary.bin_families``, the protocol's).
    Lines of different N are nudged apart along x so their intervals do not hide each
    other.

    Args:
        experiments: Experiment -> points (``benchmarks.report.build_points``).
        path: The PNG to write.
        agent: A (default: the MaxRL of record present, ``summary.maxrl_agent``).
        opponents: The B's (default GRPO and REINFORCE, those present).
        metric: The bin metric (``eval/bin<b>/<metric>``).

    Returns:
        The file written, or None when no experiment has bins for A and an opponent.
    """
    from benchmarks.report import _grid, _save_figure
    from benchmarks.summary import BIN_OPPONENTS

    panels = _bin_panels(experiments, agent, list(opponents or BIN_OPPONENTS), metric)
    if not panels:
        return None
    columns = len({p[0] for p in panels})
    fig, axes = _grid(len(panels), height=3.6, width=5.2, columns=columns)
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for ax, (experiment, a, b, families) in zip(axes.flat, panels, strict=False):
        _draw_bin_panel(ax, experiment, a, b, families, metric, cmap)
    fig.suptitle(
        wrap(
            f"per difficulty bin: difference of mean {metric} over seeds with its "
            "Holm-corrected interval (family: the bins of one framing and N); > 0 favours "
            "MaxRL",
            int(fig.get_figwidth() * 14),
        ),
        fontsize=9,
    )
    return _save_figure(fig, path)


def _bin_panels(
    experiments: Mapping[str, Sequence[Point]],
    agent: str | None,
    opponents: Sequence[str],
    metric: str,
) -> list[tuple[str, str, str, list[Any]]]:
    """The (experiment, A, B, bin families) of each panel, opponents by rows, with data only."""
    from benchmarks.summary import bin_families, maxrl_agent

    panels = []
    for b in opponents:
        for experiment, points in experiments.items():
            a = agent or maxrl_agent(points)
            families = bin_families(points, a, b, metric) if a else []
            if families:
                panels.append((experiment, a, b, families))
    return panels


def _draw_bin_panel(
    ax: Any, experiment: str, a: str, b: str, families: Sequence[Any], metric: str, cmap: Any
) -> None:
    """Draw one panel: A − B per bin against its pass rate, one nudged line per N."""
    count = len(families)
    for i, family in enumerate(families):
        c = family.comparisons
        nudge = 1.06 ** (i - (count - 1) / 2)
        xs = [r * nudge for r in family.rates]
        ys = [x.diff for x in c]
        low = [x.diff - x.low if math.isfinite(x.low) else 0.0 for x in c]
        high = [x.high - x.diff if math.isfinite(x.high) else 0.0 for x in c]
        label = " ".join(
            f"{'N' if k == 'group_size' else k}={v}" for k, v in family.point.sweep.items()
        )
        ax.errorbar(
            xs,
            ys,
            yerr=[low, high],
            marker="o",
            ms=3.5,
            lw=1.4,
            capsize=2.5,
            color=cmap(i / max(1, count - 1) * 0.9),
            label=label or family.point.env_label,
        )
    ax.axhline(0.0, color="grey", lw=1.0, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("initial pass rate of the bin (uniform policy)", fontsize=8)
    ax.set_ylabel(f"{a} − {b}: {metric}", fontsize=8)
    ax.set_title(wrap(f"{experiment}: {a} − {b}"), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title_fontsize=7, title="line per N")


#: File name of the per-bin plot in the report's plots folder.
BINS_PLOT = "bins_log_likelihood.png"


def bin_plots(experiments: Mapping[str, Sequence[Point]], plots_dir: Path | None) -> list[Path]:
    """The report's per-bin plot (:func:`plot_bin_differences`): ``[path]``, or ``[]``.

    Nothing without a plots folder or without rows carrying per-difficulty-bin tags.
    """
    if plots_dir is None:
        return []
    from benchmarks.summary import has_bins

    if not has_bins(experiments):
        return []
    path = plot_bin_differences(experiments, plots_dir / BINS_PLOT)
    return [path] if path else []
