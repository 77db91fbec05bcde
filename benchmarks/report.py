"""Report of a suite's results: markdown tables with confidence intervals, and plots.

``python -m benchmarks.report RESULTS_DIR`` (also run at the end of every sweep) reads
``RESULTS_DIR/results.jsonl`` and writes, next to the runs:

- ``report.md``: per experiment, one table with, for every environment (and sweep point)
  and agent, the learning rate chosen on validation runs, the number of seeds, the mean and
  95% confidence interval (t-distribution over seeds) of each final test metric, the
  rollouts needed to reach a target, and their ratio to the best baseline; then the
  learning-rate selection, failed runs, the plots, and the commands that produced it all.
- ``plots/curves_<experiment>.png``: learning curves (selection metric against rollouts,
  mean over seeds with a 95% band), one panel per environment and sweep point.
- ``plots/sweep_<experiment>_<key>.png``: final metric against a swept value (``snr`` in
  the low-SNR suite, ``rollouts`` N in the rollout-scaling suite), one line per agent.

Targets: for each environment (and sweep point), take the best baseline (the ``baseline``
agent, i.e. REINFORCE, RLOO, GRPO, Dr. GRPO or SB3, with the best final mean of the
selection metric); target = its initial value b0 + ``target_fraction`` (default 0.9) x
(its final mean - b0). An agent's rollouts-to-target is the first evaluation at which its
mean curve over seeds reaches the target; the ratio divides that by the fastest baseline's,
so < 1 means fewer rollouts than every baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agents.evaluation import LOWER_IS_BETTER, better
from benchmarks.results import OK, RESULTS_FILE, latest_rows, read_rows, slug

REPORT_FILE = "report.md"
PLOTS_DIR = "plots"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its t confidence interval (nan for fewer than 2 values).

    Args:
        values: Per-seed values.
        confidence: Two-sided confidence level.

    Returns:
        ``(mean, half_width)``: half_width = t_{(1+c)/2, n-1} * s / sqrt(n).
    """
    clean = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(clean)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(clean) / n
    if n < 2:
        return mean, float("nan")
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in clean) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)


def reached(metric: str, value: float, target: float) -> bool:
    """Whether a value meets the target (>= target, or <= for lower-is-better metrics)."""
    return value <= target if metric in LOWER_IS_BETTER else value >= target


def rollouts_to_target(curve: Sequence[Sequence[Any]], metric: str, target: float) -> float | None:
    """First evaluated rollout count at which a curve reaches the target, else None."""
    for step, values in curve:
        value = values.get(metric)
        if (
            value is not None
            and math.isfinite(float(value))
            and reached(metric, float(value), target)
        ):
            return float(step)
    return None


@dataclass
class AgentResult:
    """Final rows of one agent at one point (environment and sweep values) of an experiment."""

    agent: str
    role: str
    family: str
    rows: list[dict[str, Any]]
    lr: float | None
    to_target: float | None = None
    ratio: float | None = None

    def values(self, metric: str) -> list[float]:
        """Per-seed final values of a metric."""
        return [float(r["metrics"][metric]) for r in self.rows if metric in r.get("metrics", {})]


@dataclass
class Point:
    """An environment and sweep point of an experiment, with every agent's results."""

    experiment: str
    env_label: str
    env_base: str
    sweep: dict[str, Any]
    metrics: list[str]
    select_metric: str
    target_fraction: float
    agents: dict[str, AgentResult] = field(default_factory=dict)
    target: float | None = None
    target_agent: str | None = None

    @property
    def label(self) -> str:
        """Environment label plus the swept run settings (e.g. ``N=64``)."""
        settings = [
            f"{_short(k)}={_fmt_value(v)}"
            for k, v in self.sweep.items()
            if not _in_label(k, v, self.env_label)
        ]
        return " · ".join([self.env_label, *settings]) if settings else self.env_label


def _short(key: str) -> str:
    return {"group_size": "N", "num_groups": "B", "rollouts": "N", "contexts": "B"}.get(key, key)


def _fmt_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _in_label(key: str, value: Any, label: str) -> bool:
    return f"{key}={_fmt_value(value)}" in label.split()


def _compatible(row_sweep: dict[str, Any], point_sweep: dict[str, Any]) -> bool:
    return all(point_sweep.get(k) == v for k, v in row_sweep.items())


def build_points(
    rows: Iterable[dict[str, Any]], agent_order: Sequence[str] = ()
) -> dict[str, list[Point]]:
    """Group final ``ok`` rows into experiments and points.

    A row joins every point of its experiment and environment whose sweep values include
    its own, so an SB3 agent (which ignores N) appears at every N of a rollout-scaling sweep.

    Args:
        rows: Result rows (validation and failed rows are ignored).
        agent_order: Agent names in display order (the suite's); others follow, first seen
            first.

    Returns:
        Experiment -> its points, in first-seen order.
    """
    final = [r for r in rows if r.get("phase") == "final" and r.get("status") == OK]
    experiments: dict[str, list[Point]] = {}
    for row in sorted(final, key=lambda r: -len(r.get("sweep", {}))):
        points = experiments.setdefault(row["experiment"], [])
        matches = [
            p
            for p in points
            if p.env_label == row["env_label"] and _compatible(row.get("sweep", {}), p.sweep)
        ]
        if not matches:
            point = Point(
                experiment=row["experiment"],
                env_label=row["env_label"],
                env_base=row.get("env_base", row["env_label"]),
                sweep=dict(row.get("sweep", {})),
                metrics=_columns(row),
                select_metric=row["select_metric"],
                target_fraction=float(row.get("target_fraction", 0.9)),
            )
            points.append(point)
            matches = [point]
        for point in matches:
            result = point.agents.setdefault(
                row["agent"],
                AgentResult(
                    row["agent"], row.get("role", "baseline"), row["family"], [], row.get("lr")
                ),
            )
            result.rows.append(row)
    order = {r["run_id"]: i for i, r in enumerate(final)}
    rank = {name: i for i, name in enumerate(agent_order)}
    for points in experiments.values():
        for point in points:
            for result in point.agents.values():
                result.rows.sort(key=lambda r: order[r["run_id"]])
            point.agents = dict(
                sorted(
                    point.agents.items(),
                    key=lambda kv: (
                        rank.get(kv[0], len(rank)),
                        min(order[r["run_id"]] for r in kv[1].rows),
                    ),
                )
            )
        points.sort(
            key=lambda p: min(order[r["run_id"]] for a in p.agents.values() for r in a.rows)
        )
    return experiments


def compute_targets(point: Point) -> None:
    """Fill the point's target and every agent's rollouts-to-target and ratio.

    The target comes from the best baseline (best final mean of the selection metric among
    ``baseline`` agents): its initial mean b0 plus ``target_fraction`` of its improvement,
    b0 + f (b_final - b0). Rollouts to target are read off each agent's mean curve over
    seeds; the ratio divides them by the fastest baseline's.
    """
    metric = point.select_metric
    curves = {name: _mean_curve(result.rows, metric) for name, result in point.agents.items()}
    candidates = []
    for name, result in point.agents.items():
        final, _ = mean_ci(result.values(metric))
        if result.role == "baseline" and curves[name] is not None and math.isfinite(final):
            candidates.append((final, name))
    if not candidates:
        return
    pick = min if metric in LOWER_IS_BETTER else max
    final, name = pick(candidates)
    start = float(curves[name][1][0])  # type: ignore[index]
    if not better(metric, final, start):
        return
    point.target = start + point.target_fraction * (final - start)
    point.target_agent = name
    for agent, result in point.agents.items():
        curve = curves[agent]
        if curve is not None:
            result.to_target = rollouts_to_target(
                [[x, {metric: y}] for x, y in zip(curve[0], curve[1], strict=True)],
                metric,
                point.target,
            )
    times = [
        r.to_target
        for r in point.agents.values()
        if r.role == "baseline" and r.to_target is not None and r.to_target > 0
    ]
    if times:
        fastest = min(times)
        for result in point.agents.values():
            if result.to_target:  # an agent at the target from the start has no ratio
                result.ratio = result.to_target / fastest


def _fmt(mean: float, half: float) -> str:
    if not math.isfinite(mean):
        return "–"
    if not math.isfinite(half):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {half:.2g}"


def _fmt_rollouts(value: float | None) -> str:
    if value is None:
        return "not reached"
    return "0 (at start)" if value == 0 else f"{value:,.0f}"


def experiment_table(points: list[Point]) -> str:
    """Markdown table of one experiment (best mean per point and metric in bold)."""
    metrics: list[str] = []
    for point in points:
        for metric in point.metrics:
            if metric not in metrics:
                metrics.append(metric)
    header = [
        "environment",
        "agent",
        "lr",
        "seeds",
        *[m.removeprefix("eval/") for m in metrics],
        "rollouts to target",
        "vs best baseline",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for point in points:
        best: dict[str, float] = {}
        for metric in metrics:
            for result in point.agents.values():
                mean, _ = mean_ci(result.values(metric))
                if math.isfinite(mean) and (
                    metric not in best or better(metric, mean, best[metric])
                ):
                    best[metric] = mean
        for result in point.agents.values():
            cells = [
                point.label,
                result.agent,
                "default" if result.lr is None else f"{result.lr:g}",
                str(len(result.rows)),
            ]
            for metric in metrics:
                mean, half = mean_ci(result.values(metric))
                text = _fmt(mean, half)
                if metric in best and math.isfinite(mean) and mean == best[metric]:
                    text = f"**{text}**"
                cells.append(text)
            cells.append("–" if point.target is None else _fmt_rollouts(result.to_target))
            cells.append("–" if result.ratio is None else f"{result.ratio:.2f}×")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _targets_text(points: list[Point]) -> str:
    parts = []
    for point in points:
        if point.target is None:
            parts.append(f"- {point.label}: no target (no baseline improved on its start)")
            continue
        sign = "≤" if point.select_metric in LOWER_IS_BETTER else "≥"
        parts.append(
            f"- {point.label}: {point.select_metric} {sign} {point.target:.4g} "
            f"({point.target_fraction:g} of {point.target_agent}'s improvement)"
        )
    return "\n".join(parts)


def selection_table(rows: Iterable[dict[str, Any]]) -> str:
    """Markdown table of the learning-rate selection (validation runs, validation split)."""
    tune = [r for r in rows if r.get("phase") == "tune"]
    if not tune:
        return "No learning-rate selection (every agent had a single setting)."
    chosen = {}
    for row in rows:
        if row.get("phase") == "final" and row.get("family") == "ours":
            chosen[row["cell"]] = row.get("lr")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in tune:
        groups[row["cell"]].append(row)
    lines = [
        "| experiment | environment | agent | metric (validation split) "
        "| learning rates: mean | chosen |",
        "|---|---|---|---|---|---|",
    ]
    for cell, cell_rows in groups.items():
        first = cell_rows[0]
        metric = first["select_metric"]
        by_lr: dict[float, list[float]] = defaultdict(list)
        failed: set[float] = set()
        for row in cell_rows:
            if row.get("status") == OK and metric in row.get("metrics", {}):
                by_lr[row["lr"]].append(float(row["metrics"][metric]))
            else:
                failed.add(row["lr"])
        parts = []
        for lr in sorted(set(by_lr) | failed):
            if by_lr.get(lr):
                parts.append(f"{lr:g}: {sum(by_lr[lr]) / len(by_lr[lr]):.4g}")
            else:
                parts.append(f"{lr:g}: failed")
        pick = chosen.get(cell)
        sweep = " ".join(
            f"{_short(k)}={_fmt_value(v)}"
            for k, v in first.get("sweep", {}).items()
            if not _in_label(k, v, first["env_label"])
        )
        env = f"{first['env_label']} {sweep}".strip()
        lines.append(
            f"| {first['experiment']} | {env} | {first['agent']} | {metric.removeprefix('eval/')} "
            f"| {'; '.join(parts)} | {'–' if pick is None else f'{pick:g}'} |"
        )
    return "\n".join(lines)


def _mean_curve(rows: list[dict[str, Any]], metric: str) -> tuple[Any, Any, Any] | None:
    import numpy as np

    curves = []
    for row in rows:
        pts = [(float(s), float(v[metric])) for s, v in row.get("curve", []) if metric in v]
        pts = [(s, v) for s, v in pts if math.isfinite(v)]
        if len(pts) >= 1:
            curves.append(pts)
    if not curves:
        return None
    grid = np.array(sorted({s for pts in curves for s, _ in pts}))
    end = min(pts[-1][0] for pts in curves)
    grid = grid[grid <= end]
    if grid.size == 0:
        return None
    values = np.stack([np.interp(grid, [s for s, _ in p], [v for _, v in p]) for p in curves])
    mean = values.mean(0)
    if len(curves) > 1:
        from scipy import stats

        half = stats.t.ppf(0.975, len(curves) - 1) * values.std(0, ddof=1) / math.sqrt(len(curves))
    else:
        half = np.zeros_like(mean)
    return grid, mean, half


def _colors(names: Iterable[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _save_figure(fig: Any, path: Path) -> Path:
    """Write a figure as PNG (creating its folder) and release it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(
    experiment: str, points: list[Point], path: Path, metrics_per_point: int = 2
) -> Path | None:
    """Learning curves of one experiment against rollouts.

    One panel per point and metric: the selection metric and the next report column (e.g.
    log-likelihood and excess MSE, or pass@1 and pass@k), so a point's panels sit side by
    side. The target of the selection metric is drawn as a dotted line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for point in points:
        metrics = list(dict.fromkeys([point.select_metric, *point.metrics]))
        panels += [(point, metric) for metric in metrics[:metrics_per_point]]
    if not panels:
        return None
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    colors = _colors(dict.fromkeys(a for p in points for a in p.agents))
    for ax, (point, metric) in zip(axes.flat, panels, strict=False):
        for name, result in point.agents.items():
            curve = _mean_curve(result.rows, metric)
            if curve is None:
                continue
            x, mean, half = curve
            style = "--" if result.family == "sb3" else ":" if result.role == "reference" else "-"
            ax.plot(x, mean, style, color=colors[name], label=name, lw=1.6)
            ax.fill_between(x, mean - half, mean + half, color=colors[name], alpha=0.15, lw=0)
        if point.target is not None and metric == point.select_metric:
            ax.axhline(point.target, color="grey", lw=0.8, ls=":")
        ax.set_title(point.label, fontsize=9)
        ax.set_xlabel("rollouts")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(8, len(labels)),
        fontsize=8,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.suptitle(f"{experiment}: learning curves (mean, 95% CI over seeds)", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    return _save_figure(fig, path)


def plot_sweep(experiment: str, points: list[Point], key: str, path: Path) -> Path | None:
    """Final selection metric against a swept value, one panel per other combination."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    swept = [p for p in points if key in p.sweep]
    if len({_fmt_value(p.sweep[key]) for p in swept}) < 2:
        return None
    panels: dict[str, list[Point]] = defaultdict(list)
    for point in swept:
        others = [f"{_short(k)}={_fmt_value(v)}" for k, v in point.sweep.items() if k != key]
        panels[" ".join([point.env_base, *others])].append(point)
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
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
                if all(key in r.get("sweep", {}) for r in result.rows):
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
                mean, color=colors[name], ls="--", lw=1.2, label=f"{name} (no {_short(key)})"
            )
        values = [float(p.sweep[key]) for p in group]
        if min(values) > 0 and max(values) / min(values) >= 10:
            ax.set_xscale("log", base=2 if key in ("rollouts", "contexts") else 10)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(_short(key))
        ax.set_ylabel(f"final {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"{experiment}: final metric against {_short(key)} (mean, 95% CI)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _save_figure(fig, path)


@dataclass
class Report:
    """A written report.

    Attributes:
        results_dir: The suite's output directory.
        path: ``report.md``.
        tables: Experiment -> markdown table.
        plots: PNG files written.
        failed: Latest rows with status ``failed``.
        command: The command that ran the suite.
    """

    results_dir: Path
    path: Path
    tables: dict[str, str]
    plots: list[Path]
    failed: list[dict[str, Any]]
    command: str
    targets: dict[str, str] = field(default_factory=dict)

    def summary_text(self) -> str:
        """The main tables and where the report, plots and logs are."""
        parts = []
        for experiment, table in self.tables.items():
            parts += [f"## {experiment}", table, ""]
        if not self.tables:
            parts.append("(no finished reported runs yet)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed run(s): see {self.path}")
        parts.append(f"report: {self.path}")
        if self.plots:
            parts.append(f"plots:  {self.plots[0].parent}/ ({len(self.plots)} PNG)")
        parts.append(f"logs:   tensorboard --logdir {self.results_dir / 'logs'}")
        return "\n".join(parts)


def write_report(results_dir: str | os.PathLike[str], command: str | None = None) -> Report:
    """Write ``report.md`` and the plots of a suite's results directory.

    Args:
        results_dir: Directory holding ``results.jsonl`` (``OUT/SUITE``).
        command: Command that ran the suite; default: the one recorded in ``suite.json``.

    Returns:
        The report.
    """
    results_dir = Path(results_dir)
    rows = list(latest_rows(read_rows(results_dir / RESULTS_FILE)).values())
    meta_path = results_dir / "suite.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    rows = current_rows(rows, meta)
    command = command or meta.get("command") or ""
    experiments = build_points(rows, meta.get("agents") or ())
    order = meta.get("experiments") or list(experiments)
    experiments = {e: experiments[e] for e in [*order, *experiments] if e in experiments}
    tables, targets, plots = {}, {}, []
    plots_dir = results_dir / PLOTS_DIR
    for experiment, points in experiments.items():
        for point in points:
            compute_targets(point)
        tables[experiment] = experiment_table(points)
        targets[experiment] = _targets_text(points)
        curve_plot = plot_curves(
            experiment, points, plots_dir / f"curves_{slug(experiment, None)}.png"
        )
        if curve_plot:
            plots.append(curve_plot)
        keys = dict.fromkeys(k for p in points for k in p.sweep)
        for key in keys:
            sweep_plot = plot_sweep(
                experiment,
                points,
                key,
                plots_dir / f"sweep_{slug(experiment, None)}_{slug(key, None)}.png",
            )
            if sweep_plot:
                plots.append(sweep_plot)
    failed = [r for r in rows if r.get("status") != OK]
    report = Report(results_dir, results_dir / REPORT_FILE, tables, plots, failed, command, targets)
    _atomic_text(report.path, _markdown(report, meta, rows))
    return report


def current_rows(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the suite as it was last run (``suite.json``), without stale ones.

    A results file keeps the rows of earlier versions of a suite (other budgets, envs or
    seeds). After a complete sweep ``suite.json`` lists its run ids; after an interrupted
    one, its cells and seeds; without ``suite.json`` every row counts.
    """
    if meta.get("run_ids"):
        wanted = set(meta["run_ids"])
        return [r for r in rows if r.get("run_id") in wanted]
    cells = meta.get("cells")
    if not cells:
        return rows
    return [
        r
        for r in rows
        if r.get("cell") in cells
        and (r.get("phase") == "tune" or r.get("seed") in cells[r["cell"]]["seeds"])
    ]


def _columns(row: dict[str, Any]) -> list[str]:
    """Report columns of a row: its job's ``columns``, else the metrics it has."""
    listed = row.get("columns")
    if isinstance(listed, list) and listed:
        return list(listed)
    values = row.get("metrics", {})
    preferred = [row.get("select_metric")] + [
        "eval/log_likelihood",
        "eval/excess_mse",
        "eval/pass@1",
    ]
    columns = [m for m in preferred if m and m in values]
    columns += sorted(
        m for m in values if m.startswith("eval/pass@") and m not in columns and m != "eval/pass@1"
    )
    return list(dict.fromkeys(columns))


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _markdown(report: Report, meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    results_dir = report.results_dir
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = [
        f"# maxrl-bench report: {meta.get('suite', results_dir.name)}",
        "",
        meta.get("description", "").strip(),
        "",
        f"- Produced by: `{report.command or '(unknown)'}`",
        f"- Report written by: `python -m benchmarks.report {results_dir}` ({now})",
        f"- Rows: `{results_dir / RESULTS_FILE}`; TensorBoard: "
        f"`tensorboard --logdir {results_dir / 'logs'}`",
        "",
        "Final metrics are on the test split, mean ± 95% confidence half-width "
        "(t-distribution over seeds); the best mean per environment is in bold. Learning "
        "rates of our agents were chosen on validation runs (separate seeds, validation "
        "split); SB3 agents use their fixed zoo-style defaults. Rollouts to target: first "
        "evaluation at "
        "which the agent's mean curve reaches the target below (90% of the best baseline's "
        "improvement by default); vs best baseline: that divided by the fastest baseline's "
        "(REINFORCE, RLOO, GRPO, Dr. GRPO, SB3), < 1 is faster.",
        "",
    ]
    for experiment, table in report.tables.items():
        lines += [f"## {experiment}", "", table, "", "Targets:", "", report.targets[experiment], ""]
        for plot in report.plots:
            if plot.name.startswith(
                (f"curves_{slug(experiment, None)}.", f"sweep_{slug(experiment, None)}_")
            ):
                lines += [f"![{plot.stem}]({plot.relative_to(results_dir)})", ""]
    lines += ["## Learning-rate selection", "", selection_table(rows), ""]
    if report.failed:
        lines += ["## Failed runs", "", "| run | error |", "|---|---|"]
        for row in report.failed:
            error = str(row.get("error", "")).replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| `{row['run_id']}` | {error} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report RESULTS_DIR``: write the report and print its tables."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("results_dir", help="a suite's output directory, e.g. runs/quick")
    args = parser.parse_args(argv)
    path = Path(args.results_dir)
    if not (path / RESULTS_FILE).exists():
        print(f"error: {path / RESULTS_FILE} does not exist", file=sys.stderr)
        return 2
    report = write_report(path)
    print(report.summary_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
