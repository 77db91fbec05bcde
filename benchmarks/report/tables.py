"""The report's markdown tables: experiments, targets, selection, without early stopping."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agents.evaluation import LOWER_IS_BETTER, better
from benchmarks.report.fmt import (
    direction,
    fmt_exact,
    fmt_rollouts,
    format_ratio,
    md_cell,
    metric_name,
    point_label,
)
from benchmarks.report.intervals import summarize
from benchmarks.report.points import Point
from benchmarks.report.rows import ResultRow
from benchmarks.results import (
    OK,
    RESULTS_FILE,
)
from maxrl_envs.references import normalized_score

#: Reference predictors of a row's ``references``, in table order, with their display names.
REFERENCES = {
    "random": "random",
    "bayes_point": "Bayes point f(x)",
    "bayes_sampler": "Bayes sampler p(y|x)",
}


def experiment_table(points: list[Point]) -> str:
    """Markdown table of one experiment.

    One line per point and agent: learning rate, seeds (failed runs counted), mean ± 95% CI
    of every report column (best mean per point and metric in bold, among cells without
    diverged seeds), the normalized score of the selection metric when the point has
    reference levels, rollouts to target and the ratio to the fastest baseline. After the
    agents of a point with references, one italic line per reference predictor with its
    exact levels.
    """
    metrics: list[str] = []
    for point in points:
        for metric in point.metrics:
            if metric not in metrics:
                metrics.append(metric)
    normalized = any(point.references for point in points)
    header = [
        "environment",
        "agent",
        "lr",
        "seeds",
        *[m.removeprefix("eval/") for m in metrics],
        *(["normalized score"] if normalized else []),
        "rollouts to target",
        "vs best baseline",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for point in points:
        summaries = {
            (name, metric): result.summary(metric)
            for name, result in point.agents.items()
            for metric in metrics
        }
        best: dict[str, float] = {}
        for (_, metric), s in summaries.items():
            if (
                s.finite
                and not s.diverged
                and (metric not in best or better(metric, s.mean, best[metric]))
            ):
                best[metric] = s.mean
        for name, result in point.agents.items():
            cells = [
                point.label,
                result.agent,
                "default" if result.lr is None else f"{result.lr:g}",
                result.seeds_text(),
            ]
            for metric in metrics:
                s = summaries[name, metric]
                text = s.text()
                if s.finite and not s.diverged and s.mean == best.get(metric):
                    text = f"**{text}**"
                cells.append(text)
            if normalized:
                cells.append(
                    summarize(point.normalized(result)).text() if point.references else "–"
                )
            cells.append("–" if point.target is None else fmt_rollouts(result.to_target))
            cells.append(format_ratio(result.ratio, result.ratio_ci))
            lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
        for key, name in REFERENCES.items():
            if key not in point.references:
                continue
            levels = point.references[key]
            cells = [point.label, f"*{name}*", "–", "–"]
            cells += [fmt_exact(levels.get(metric, float("nan"))) for metric in metrics]
            if normalized:
                score = normalized_score(
                    point.select_metric, levels.get(point.select_metric), point.references
                )
                cells.append(fmt_exact(score))
            cells += ["–", "–"]
            lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
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


def selection_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """Markdown table of the learning-rate selection (validation runs, validation split).

    A rate with a failed or diverged (non-finite) validation run shows it beside its mean of
    the finite ones. Rows: :class:`ResultRow`, or rows as stored.
    """
    rows = [ResultRow.of(r) for r in rows]
    tune = [r for r in rows if r.phase == "tune"]
    if not tune:
        return "No learning-rate selection (every agent had a single setting)."
    chosen = {}
    for row in rows:
        if row.phase == "final" and row.status == OK:
            chosen[row.cell] = row.lr
    groups: dict[str | None, list[ResultRow]] = defaultdict(list)
    for row in tune:
        groups[row.cell].append(row)
    lines = [
        "| experiment | environment | agent | metric (validation split) "
        "| learning rates: mean | chosen |",
        "|---|---|---|---|---|---|",
    ]
    for cell, cell_rows in groups.items():
        first = cell_rows[0]
        metric = first.select_metric
        by_lr: dict[Any, list[float]] = defaultdict(list)
        failed: Counter[Any] = Counter()
        for row in cell_rows:
            if row.status == OK and metric in row.metrics:
                by_lr[row.lr].append(row.metrics[metric])
            else:
                failed[row.lr] += 1
        parts = []
        for lr in sorted(set(by_lr) | set(failed), key=lambda v: (v is None, v or 0.0)):
            s = summarize(by_lr.get(lr, []))
            name = "default" if lr is None else f"{lr:g}"
            notes = [f"{s.diverged} diverged"] if s.diverged else []
            notes += [f"{failed[lr]} failed"] if failed[lr] else []
            value = f"{s.mean:.4g}" if s.finite else "–"
            parts.append(f"{name}: {value}" + (f" ({', '.join(notes)})" if notes else ""))
        pick = chosen.get(cell)
        rates = sorted(lr for lr in set(by_lr) | set(failed) if lr is not None)
        shown = "–" if pick is None else f"{pick:g}"
        if pick is not None and len(rates) >= 3 and pick in (rates[0], rates[-1]):
            # The best rate sits at an end of the grid: a wider grid might have found better.
            shown += " (grid edge)"
        env = point_label(first.env_label, first.sweep)
        lines.append(
            "| "
            + " | ".join(
                md_cell(c)
                for c in (
                    first.experiment,
                    env,
                    first.agent,
                    metric.removeprefix("eval/"),
                    "; ".join(parts),
                    shown,
                )
            )
            + " |"
        )
    return "\n".join(lines)


#: Relative difference below which a run's last value counts as its selected one: the curve
#: logs values in float32 (a checkpoint selected at the last evaluation differs by ~5e-8).
SAME_VALUE_RTOL = 1e-6


def last_is_worse(metric: str, selected: float, last: float) -> bool:
    """Whether a run's value at its last evaluation is worse than at its selected checkpoint.

    Worse by more than float32 rounding (:data:`SAME_VALUE_RTOL`, relative to
    ``max(1, |selected|)``) in the metric's direction; a non-finite last value after a finite
    selected one (the run diverged after the checkpoint) is worse; after a non-finite
    selected value nothing is.
    """
    if not math.isfinite(selected):
        return False
    if not math.isfinite(last):
        return True
    close = abs(last - selected) <= SAME_VALUE_RTOL * max(1.0, abs(selected))
    return not close and better(metric, selected, last)


def early_stopping_table(points: Iterable[Point]) -> tuple[str, int, int] | None:
    """Markdown: per point and agent, the selection metric at both checkpoints of each run.

    Each cell reads its runs that have a curve (:attr:`ResultRow.last_metrics`; runs without
    one are left out of both columns): mean ± 95% t half-width of the selected checkpoint's
    value (early stopping, the row's ``metrics``) and of the last evaluation's, both on the
    test split, and ``last worse``: the seeds whose last value :func:`last_is_worse`.

    Returns:
        The table, the seeds whose last value is worse and the seeds counted; None when no
        run of the points has a curve.
    """
    points = list(points)
    several = len({p.select_metric for p in points}) > 1  # a metric column only then
    header = ["environment", "agent", *(["metric"] if several else [])]
    header += ["selected checkpoint", "last evaluation", "last worse"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    worse_total = seeds_total = 0
    for point in points:
        metric = point.select_metric
        for result in point.agents.values():
            pairs = [
                (r.metrics[metric], r.last_metrics[metric])
                for r in result.rows
                if metric in r.metrics and metric in r.last_metrics
            ]
            if not pairs:
                continue
            worse = sum(last_is_worse(metric, sel, last) for sel, last in pairs)
            worse_total += worse
            seeds_total += len(pairs)
            cells = [
                point.label,
                result.agent,
                *([metric_name(metric)] if several else []),
                summarize([sel for sel, _ in pairs]).text(),
                summarize([last for _, last in pairs]).text(),
                f"{worse} of {len(pairs)}",
            ]
            lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    if not seeds_total:
        return None
    return "\n".join(lines), worse_total, seeds_total


def early_stopping_text(experiments: Mapping[str, Iterable[Point]]) -> str | None:
    """The report's section "Without early stopping" (None when no run has a curve).

    Per experiment, :func:`early_stopping_table` under a line counting the seeds whose last
    evaluation is worse than their selected checkpoint.
    """
    parts = []
    for experiment, points in experiments.items():
        points = list(points)
        found = early_stopping_table(points)
        if found is None:
            continue
        table, worse, seeds = found
        metrics = dict.fromkeys(p.select_metric for p in points)
        directions = ", ".join(f"{metric_name(m)} ({direction(m)})" for m in metrics)
        parts += [
            f"### {experiment}",
            "",
            f"Selection metric{'s' if len(metrics) > 1 else ''} {directions}: the last "
            f"evaluation is worse than the selected checkpoint in {worse} of {seeds} seeds.",
            "",
            table,
            "",
        ]
    if not parts:
        return None
    intro = (
        "The tables above read each run at the checkpoint that scored best on the validation "
        "split (early stopping). Without early stopping a run ends at its last evaluation: "
        "below, the selection metric there beside the selected checkpoint's, both on the test "
        "split, mean ± 95% t half-width over the same seeds (runs without a learning curve "
        "are left out). Last worse: the seeds whose last value is worse than their selected "
        "one (beyond float32 rounding). Every summary table reads the last evaluation with "
        "`python -m benchmarks.summary ... --checkpoint last`."
    )
    return "\n".join([intro, "", *parts]).rstrip("\n")


def _skipped_text(skipped: list[str], results_dir: Path) -> str:
    """The section that lists malformed rows left out of the report."""
    lines = [
        "",
        "## Rows left out",
        "",
        f"{len(skipped)} row(s) of `{results_dir / RESULTS_FILE}` are malformed and count "
        "nowhere in this report (a rerun of the suite redoes their runs):",
        "",
    ]
    lines += [f"- {md_cell(text)[:300]}" for text in skipped[:50]]
    if len(skipped) > 50:
        lines.append(f"- ... and {len(skipped) - 50} more")
    return "\n".join(lines) + "\n"
