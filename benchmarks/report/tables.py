"""The markdown tables of the report: per experiment, targets, learning-rate selection."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agents.evaluation import LOWER_IS_BETTER, better
from benchmarks.report.fmt import fmt_exact, fmt_rollouts, format_ratio, md_cell, point_label
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
