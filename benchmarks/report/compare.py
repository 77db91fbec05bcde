"""Comparison of two results directories, cell by cell."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable

from benchmarks.report.fmt import fmt_exact, md_cell, metric_name, point_label
from benchmarks.report.rows import ResultRow, load_rows
from benchmarks.results import (
    OK,
)


def _cells(rows: Iterable[ResultRow]) -> dict[tuple[str, str, str, str], list[ResultRow]]:
    """Final ``ok`` rows by cell: (experiment, env_label, sweep as sorted JSON, agent)."""
    cells: dict[tuple[str, str, str, str], list[ResultRow]] = {}
    for row in rows:
        if row.phase == "final" and row.status == OK:
            key = (row.experiment, row.env_label, json.dumps(row.sweep, sort_keys=True), row.agent)
            cells.setdefault(key, []).append(row)
    return cells


def _cell_name(key: tuple[str, str, str, str]) -> str:
    experiment, env_label, sweep, agent = key
    return f"{experiment} | {point_label(env_label, json.loads(sweep))} | {agent}"


def compare_results(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> str:
    """Markdown comparison of two results directories, cell by cell.

    Cells match by experiment, environment, sweep values and agent. For every cell in both
    and every report column: the mean over finite seeds in A and in B (seeds and diverged
    seeds counted), the difference B − A with its Welch 95% interval
    (``stats.compare_cells``) and "changed" when the interval excludes 0. Cells found in
    one directory only are listed.

    Args:
        a: Results directory A (the reference, e.g. the previous version).
        b: Results directory B.

    Returns:
        The markdown text.
    """
    from benchmarks import stats

    cells_a, cells_b = _cells(load_rows(a)[0]), _cells(load_rows(b)[0])
    both = [key for key in cells_a if key in cells_b]
    lines = [
        f"# maxrl-bench comparison: A = `{a}`, B = `{b}`",
        "",
        "Final test metrics per cell (experiment, environment and sweep point, agent): mean "
        "over finite seeds (n = seeds; diverged seeds are left out and counted), B − A with "
        "a Welch 95% interval; **changed** when the interval excludes 0. Needs ≥ 2 seeds on "
        "each side.",
        "",
    ]
    changed = 0
    if both:
        lines += [
            "| experiment | environment | agent | metric | A | B | B − A [95% CI] | |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for key in both:
        experiment, env_label, sweep, agent = key
        rows_a, rows_b = cells_a[key], cells_b[key]
        metrics = list(dict.fromkeys([*rows_a[0].report_columns(), *rows_b[0].report_columns()]))
        for metric in metrics:
            sides = []
            for rows in (rows_a, rows_b):
                raw = [r.metrics[metric] for r in rows if metric in r.metrics]
                sides.append((raw, [v for v in raw if math.isfinite(v)]))
            (raw_a, fin_a), (raw_b, fin_b) = sides
            if not raw_a and not raw_b:
                continue
            diff = stats.compare_cells(fin_b, fin_a)
            is_changed = math.isfinite(diff.low) and (diff.low > 0 or diff.high < 0)
            changed += is_changed
            if math.isfinite(diff.low):
                delta = f"{diff.point:+.4g} [{diff.low:+.3g}, {diff.high:+.3g}]"
            else:
                delta = "–" if math.isnan(diff.point) else f"{diff.point:+.4g} (no interval)"
            cells = [
                experiment,
                point_label(env_label, json.loads(sweep)),
                agent,
                metric_name(metric),
                _side_text(raw_a, fin_a),
                _side_text(raw_b, fin_b),
                delta,
                "**changed**" if is_changed else "",
            ]
            lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    if both:
        lines += ["", f"{len(both)} cells in both, {changed} (cell, metric) changed.", ""]
    else:
        lines += ["No cell is in both directories.", ""]
    for name, only in (
        ("A", [k for k in cells_a if k not in cells_b]),
        ("B", [k for k in cells_b if k not in cells_a]),
    ):
        if only:
            lines += [f"Only in {name} ({len(only)}):", ""]
            lines += [f"- {_cell_name(k)}" for k in only]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _side_text(raw: list[float], finite: list[float]) -> str:
    if not raw:
        return "–"
    text = fmt_exact(sum(finite) / len(finite)) if finite else "–"
    text += f" (n={len(finite)}"
    if len(finite) < len(raw):
        text += f", {len(raw) - len(finite)} diverged"
    return text + ")"
