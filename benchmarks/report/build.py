"""The report of a results directory: its tables, plots and ``report.md``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.runs import (
    atomic_write_text,
    refuse_link,
)
from benchmarks.report.aggregate import Aggregate, aggregate_over_tasks
from benchmarks.report.figures import plot_curves, plot_sweep
from benchmarks.report.points import Point, _expect_seeds, build_points, compute_targets
from benchmarks.report.rows import ResultRow, load_rows
from benchmarks.report.sections import section_lines
from benchmarks.report.tables import _skipped_text, _targets_text, experiment_table
from benchmarks.results import (
    OK,
    RESULTS_FILE,
    slug,
)

REPORT_FILE = "report.md"


PLOTS_DIR = "plots"


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
        targets: Experiment -> the text of its targets.
        aggregate: The aggregate over tasks (None with fewer than two tasks).
        experiments: Experiment -> its points.
        markdown: The text of ``report.md``.
        rows: The current rows of the results directory.
    """

    results_dir: Path
    path: Path
    tables: dict[str, str]
    plots: list[Path]
    failed: list[ResultRow]
    command: str
    targets: dict[str, str] = field(default_factory=dict)
    aggregate: Aggregate | None = None
    experiments: dict[str, list[Point]] = field(default_factory=dict)
    markdown: str = ""
    rows: list[ResultRow] = field(default_factory=list)

    def summary_text(self) -> str:
        """The main tables and where the report, plots and logs are."""
        parts = []
        for experiment, table in self.tables.items():
            parts += [f"## {experiment}", table, ""]
        if not self.tables:
            parts.append("(no finished reported runs yet)")
        if self.aggregate is not None:
            parts += ["## Aggregate over tasks", self.aggregate.text, ""]
        if self.failed:
            parts.append(f"{len(self.failed)} failed run(s): see {self.path}")
        parts.append(f"report: {self.path}")
        if self.plots:
            parts.append(f"plots:  {self.plots[0].parent}/ ({len(self.plots)} PNG)")
        parts.append(f"logs:   tensorboard --logdir {self.results_dir / 'logs'}")
        return "\n".join(parts)


def write_report(
    results_dir: str | os.PathLike[str],
    command: str | None = None,
    report_dir: str | os.PathLike[str] | None = None,
) -> Report:
    """Write ``report.md`` and the plots of a suite's results directory.

    Args:
        results_dir: Directory holding ``results.jsonl`` (``OUT/SUITE``).
        command: Command that ran the suite; default: the one recorded in ``suite.json``.
        report_dir: Where ``report.md`` and ``plots/`` go (default: ``results_dir``), e.g.
            somewhere writable when the results directory is read-only.

    Returns:
        The report.

    Raises:
        CorruptFileError: ``suite.json`` cannot be read.
        OSError: The report or a plot cannot be written (e.g. a read-only directory).
    """
    report = build_report(results_dir, command, report_dir)
    report.path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report.path, report.markdown)
    return report


def build_report(
    results_dir: str | os.PathLike[str],
    command: str | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
) -> Report:
    """The report of a results directory; only its plots are written (``plots=False``: none).

    Args:
        results_dir: Directory holding ``results.jsonl``.
        command: Command that ran the suite; default: the one recorded in ``suite.json``.
        report_dir: Where the report and its plots belong (default: ``results_dir``).
        plots: Draw and write the plots (into ``report_dir/plots``).

    Returns:
        The report, its markdown in ``Report.markdown`` (not written).
    """
    results_dir = Path(results_dir)
    report_dir = results_dir if report_dir is None else Path(report_dir)
    skipped: list[str] = []
    rows, meta = load_rows(results_dir, skipped)
    command = command or meta.get("command") or ""
    experiments = build_points(rows, meta.get("agents") or ())
    _expect_seeds(experiments, meta.get("cells") or {})
    order = meta.get("experiments") or list(experiments)
    experiments = {e: experiments[e] for e in [*order, *experiments] if e in experiments}
    tables, targets, written = {}, {}, []
    plots_dir = report_dir / PLOTS_DIR if plots else None
    if plots_dir is not None:  # no plot is written through a link
        refuse_link(plots_dir, "folder")
        for entry in plots_dir.iterdir() if plots_dir.is_dir() else ():
            refuse_link(entry)
    for experiment, points in experiments.items():
        for point in points:
            compute_targets(point)
        tables[experiment] = experiment_table(points)
        targets[experiment] = _targets_text(points)
        if plots_dir is None:
            continue
        written += plot_curves(
            experiment, points, plots_dir / f"curves_{slug(experiment, None)}.png"
        )
        keys = dict.fromkeys(k for p in points for k in p.sweep)
        for key in keys:
            sweep_plot = plot_sweep(
                experiment,
                points,
                key,
                plots_dir / f"sweep_{slug(experiment, None)}_{slug(key, None)}.png",
            )
            if sweep_plot:
                written.append(sweep_plot)
    aggregate = aggregate_over_tasks(experiments, plots_dir)
    if aggregate is not None:
        written += aggregate.plots
    from benchmarks.plots import bin_plots  # hard contexts: per-bin differences

    written += bin_plots(experiments, plots_dir)
    failed = [r for r in rows if r.status != OK]
    report = Report(
        results_dir,
        report_dir / REPORT_FILE,
        tables,
        written,
        failed,
        command,
        targets,
        aggregate,
        experiments,
        rows=rows,
    )
    report.markdown = _markdown(report, meta, rows)
    if skipped:
        report.markdown += _skipped_text(skipped, results_dir)
    return report


def _markdown(report: Report, meta: dict[str, Any], rows: list[ResultRow]) -> str:
    results_dir = report.results_dir
    # Not the time of writing: the newest row's, so rebuilding an unchanged report changes
    # nothing (committed reports do not churn).
    newest = max((str(r.finished_at) for r in rows if r.finished_at), default=None)
    written = f"rows up to {newest}" if newest else "no finished rows"
    here = report.path.parent
    elsewhere = f" --report-dir {here}" if here != results_dir else ""
    lines = [
        f"# maxrl-bench report: {meta.get('suite', results_dir.name)}",
        "",
        meta.get("description", "").strip(),
        "",
        f"- Produced by: `{report.command or '(unknown)'}`",
        f"- Report written by: `python -m benchmarks.report {results_dir}{elsewhere}` ({written})",
        f"- Rows: `{results_dir / RESULTS_FILE}`; TensorBoard: "
        f"`tensorboard --logdir {results_dir / 'logs'}`",
        "",
        "Final metrics are on the test split, mean ± 95% confidence half-width "
        "(t-distribution over seeds); the best mean per environment is in bold. Seeds: "
        "reported runs (with failed runs, `3/5, 2 failed`). A seed whose final value of a "
        "metric is NaN or infinite is **diverged** for that metric: the mean and interval use "
        "the finite seeds only and the cell says how many (`(2/3 seeds, 1 diverged)`); such a "
        "cell is never bold. Learning rates were chosen on validation runs (separate seeds, "
        "validation split). Rollouts to target: first evaluation at which the agent's mean "
        "curve reaches the target below (90% of the best baseline's improvement by default); "
        "vs best baseline: that divided by the fastest baseline's (REINFORCE, RLOO, GRPO, "
        "Dr. GRPO, SB3), < 1 is faster, with a 95% bootstrap interval over seeds (the target held "
        "fixed; ∞ when more than 2.5% of the resamples never reach it).",
        "",
    ]
    if any(p.references for points in report.experiments.values() for p in points):
        lines += [
            "Reference levels (italic lines, exact values on the test split): *random*, the "
            "uniform policy; *Bayes point f(x)*, the deterministic Bayes predictor; *Bayes "
            "sampler p(y|x)*, draws from the true law of y given x. The gap between them "
            "is what noise makes irreducible: no agent should beat the better Bayes level. "
            "Normalized score: the selection metric as (x − random) / (Bayes − random), Bayes "
            "the better of the two Bayes references (0 = random, 1 = Bayes).",
            "",
        ]
    for experiment, table in report.tables.items():
        lines += [f"## {experiment}", "", table, "", "Targets:", "", report.targets[experiment], ""]
        curves = [p for p in report.plots if p.name.startswith(f"curves_{slug(experiment, None)}.")]
        sweeps = [p for p in report.plots if p.name.startswith(f"sweep_{slug(experiment, None)}_")]
        for plot in curves:
            lines += [f"![{plot.stem}]({plot.relative_to(report.path.parent)})", ""]
        if curves:
            from benchmarks.plots import curves_caption

            points = report.experiments[experiment]
            lines += [
                curves_caption(r for p in points for a in p.agents.values() for r in a.rows),
                "",
            ]
        for plot in sweeps:
            lines += [f"![{plot.stem}]({plot.relative_to(report.path.parent)})", ""]
    lines += section_lines(report)
    return "\n".join(lines)
