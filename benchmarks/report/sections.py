"""The sections of ``report.md`` after the experiments' tables: a table of titled renderers.

``SECTIONS`` maps a section's title to a function of the :class:`~benchmarks.report.Report`
that returns the section's markdown, or None to leave the section out. ``report.md`` writes
them in order after the per-experiment tables: the built-in ones (aggregate over tasks, per
difficulty bin, without early stopping, learning-rate selection, failed runs), then those a
plugin adds with :func:`report_section` (docs/contributing.md, "A new report section").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from benchmarks.report.tables import early_stopping_text, selection_table

if TYPE_CHECKING:
    from benchmarks.report.build import Report

#: A section's renderer: the report -> the section's markdown (None: no section).
SectionRenderer = Callable[["Report"], "str | None"]

#: Section title -> its renderer, in the order ``report.md`` writes them.
SECTIONS: dict[str, SectionRenderer] = {}


def report_section(title: str) -> Callable[[SectionRenderer], SectionRenderer]:
    """Register a function as the section ``title`` of every report (it goes last).

    Args:
        title: The section's heading; a title no other section has.

    Returns:
        A decorator that registers the function and returns it unchanged.

    Raises:
        ValueError: ``title`` is empty or already a section's.
    """
    if not title or title in SECTIONS:
        raise ValueError(
            f"title={title!r} is {'empty' if not title else 'already a report section'}; "
            f"allowed: a new title (taken: {', '.join(SECTIONS)})"
        )

    def register(render: SectionRenderer) -> SectionRenderer:
        SECTIONS[title] = render
        return render

    return register


def section_lines(report: Report) -> list[str]:
    """The markdown lines of every section that has something to say."""
    lines: list[str] = []
    for title, render in SECTIONS.items():
        body = render(report)
        if body is not None:
            lines += [f"## {title}", "", body, ""]
    return lines


@report_section("Aggregate over tasks")
def _aggregate_section(report: Report) -> str | None:
    if report.aggregate is None:
        return None
    here = report.path.parent
    images = [f"![{plot.stem}]({plot.relative_to(here)})" for plot in report.aggregate.plots]
    return "\n\n".join([report.aggregate.text, *images])


@report_section("Per difficulty bin")
def _bins_section(report: Report) -> str | None:
    from benchmarks.summary import bins_markdown  # hard contexts: per-bin tables

    here = report.path.parent
    lines = bins_markdown(report.experiments, plots=report.plots, relative_to=here)
    # bins_markdown writes its own heading and blank line first, and ends with a blank line.
    return "\n".join(lines[2:-1]) if lines else None


@report_section("Without early stopping")
def _early_stopping_section(report: Report) -> str | None:
    return early_stopping_text(report.experiments)


@report_section("Learning-rate selection")
def _selection_section(report: Report) -> str:
    return selection_table(report.rows)


@report_section("Failed runs")
def _failed_section(report: Report) -> str | None:
    if not report.failed:
        return None
    lines = ["| run | error |", "|---|---|"]
    for row in report.failed:
        error = row.error.replace("|", "\\|").replace("\n", " ")[:300]
        lines.append(f"| `{row.run_id}` | {error} |")
    return "\n".join(lines)
