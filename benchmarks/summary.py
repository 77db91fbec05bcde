r"""Compact tables of a results directory, for the study's write-up (``docs/results.md``).

A report (``benchmarks.report``) has every number of a suite; a summary table picks a few
of them side by side. Each table is a function of the committed rows only, printed by one
command that ``docs/results.md`` quotes above the table, and ``tests/test_results_doc.py``
checks that the committed rows still print every table as committed::

    python -m benchmarks.summary pivot docs/results/low-snr --metric eval/log_likelihood \\
        --agents maxrl,grpo,supervised,ppo
    python -m benchmarks.summary diff docs/results/low-snr --metric eval/log_likelihood \\
        --a maxrl --b supervised
    python -m benchmarks.summary aggregate docs/results/low-snr

``pivot``: one row per point (environment and sweep values), one column per agent with the
mean ± 95% t half-width over seeds (diverged seeds noted), then the exact random and best
Bayes levels. ``diff``: A − B per point with an uncorrected Welch 95% interval, and which is
better when the interval excludes 0 (``tie`` otherwise). ``verdicts``: A − B per point as the
protocol (``docs/protocol.md``) judges it: Holm-corrected interval within the comparison
family, TOST equivalence at 5% of the random-to-Bayes distance, and the verdict (win, loss,
equivalent, inconclusive). ``scoreboard``: one agent against every other, one line per
comparison family with its verdicts counted (``--raw``: the first edition's uncorrected
wins, ties and losses). ``efficiency``: per point, each agent's rollouts to the
report's target as a ratio to the fastest baseline, with its 95% bootstrap interval.
``aggregate``: the report's aggregate lines over the suite's tasks (environment points): IQM
per algorithm (an agent at the agent-side setting values it uses, e.g. ``maxrl N=16``) and
the probability of improvement between algorithms that share their setting values.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.evaluation import LOWER_IS_BETTER
from benchmarks.report import (
    Point,
    agent_settings,
    aggregate_over_tasks,
    as_float,
    best_reference,
    build_points,
    compute_targets,
    format_ratio,
    load_rows,
    run_identity,
    summarize,
)
from benchmarks.stats import Comparison, compare_cells, compare_family


def _points(results_dir: str | Path, experiment: str | None) -> list[Point]:
    return load_points(results_dir, experiment)[0]


def grid_edges(rows: Sequence[dict[str, Any]]) -> set[str]:
    """Cells whose chosen learning rate is the lowest or highest of a grid of 3 or more.

    The rule of the report's selection table ("(grid edge)"): the rates a cell's validation
    runs tried, and the rate its reported runs use.
    """
    tried: dict[str, set[float]] = {}
    chosen: dict[str, float] = {}
    for row in rows:
        lr = row.get("lr")
        if lr is None:
            continue
        if row.get("phase") == "tune":
            tried.setdefault(row["cell"], set()).add(float(lr))
        elif row.get("phase") == "final" and row.get("status") == "ok":
            chosen[row["cell"]] = float(lr)
    return {
        cell
        for cell, lr in chosen.items()
        if len(tried.get(cell, ())) >= 3 and lr in (min(tried[cell]), max(tried[cell]))
    }


def load_points(
    results_dir: str | Path, experiment: str | None = None
) -> tuple[list[Point], set[str]]:
    """The points of a results directory (one experiment, or all) and its grid-edge cells."""
    rows, meta = load_rows(results_dir)
    edges = grid_edges(rows)
    experiments = build_points(rows, meta.get("agents") or ())
    if experiment is not None:
        if experiment not in experiments:
            raise ValueError(
                f"experiment={experiment!r} is not in {results_dir}; allowed: "
                f"{', '.join(experiments)}"
            )
        return experiments[experiment], edges
    return [p for points in experiments.values() for p in points], edges


#: Shorter names of sweep keys in a summary's point labels.
SHORT = {"heteroscedastic=": "het=", "state_dependent_std=": "σ(x)="}


def _label(point: Point, experiment: bool) -> str:
    label = f"{point.experiment}: {point.label}" if experiment else point.label
    for long, short in SHORT.items():
        label = label.replace(long, short)
    return label


def _cell(values: list[float]) -> str:
    s = summarize(values)
    if not s.finite:
        return "–"
    text = f"{s.mean:.4g}" if not math.isfinite(s.half) else f"{s.mean:.4g} ± {s.half:.2g}"
    if s.finite < s.total:
        text += f" ({s.total - s.finite} diverged)"
    return text


def pivot(
    results_dir: str | Path,
    metric: str,
    agents: Sequence[str] | None = None,
    experiment: str | None = None,
) -> str:
    """Markdown: points x agents, mean ± 95% half-width of ``metric``, plus references.

    Args:
        results_dir: A suite's results directory.
        metric: An ``eval/*`` tag.
        agents: Columns (default: every agent, in the suite's order).
        experiment: Only this experiment's points (default: all, labelled with it).

    Returns:
        The table.
    """
    points = _points(results_dir, experiment)
    names = list(agents or dict.fromkeys(a for p in points for a in p.agents))
    header = ["point", *names, "random", "Bayes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in points:
        cells = [_label(point, experiment is None)]
        for name in names:
            result = point.agents.get(name)
            cells.append("–" if result is None else _cell(result.raw(metric)))
        if point.references:
            random = as_float((point.references.get("random") or {}).get(metric))
            bayes = best_reference(metric, point.references)
            cells += [f"{random:.4g}", f"{bayes:.4g}"]
        else:
            cells += ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def diff(
    results_dir: str | Path,
    metric: str,
    a: str,
    b: str,
    experiment: str | None = None,
) -> str:
    """Markdown: per point, A − B of ``metric`` with a Welch 95% interval and the verdict.

    Returns:
        The table (points where either agent is missing are skipped).
    """
    lines = [f"| point | {a} − {b} [95% CI] | better |", "|---|---|---|"]
    for point in _points(results_dir, experiment):
        if a not in point.agents or b not in point.agents:
            continue
        xs = [v for v in point.agents[a].raw(metric) if math.isfinite(v)]
        ys = [v for v in point.agents[b].raw(metric) if math.isfinite(v)]
        interval = compare_cells(xs, ys)
        verdict = _verdicts(point, metric, a, b) or "–"
        text = f"{interval.point:+.3g} [{interval.low:+.3g}, {interval.high:+.3g}]"
        lines.append(f"| {_label(point, experiment is None)} | {text} | {verdict} |")
    return "\n".join(lines)


def _verdicts(point: Point, metric: str, a: str, b: str) -> str | None:
    """``a``, ``b``, ``tie`` or None (missing / too few seeds) at one point (Welch 95%)."""
    if a not in point.agents or b not in point.agents:
        return None
    xs = [v for v in point.agents[a].raw(metric) if math.isfinite(v)]
    ys = [v for v in point.agents[b].raw(metric) if math.isfinite(v)]
    interval = compare_cells(xs, ys)
    if not math.isfinite(interval.low):
        return None
    lower = metric in LOWER_IS_BETTER
    if interval.low > 0:
        return b if lower else a
    if interval.high < 0:
        return a if lower else b
    return "tie"


def _identities(point: Point, agent: str) -> frozenset[str]:
    """The runs an agent brings to a point (``run_identity`` names the environment too)."""
    return frozenset(run_identity(r) for r in point.agents[agent].rows)


#: The protocol's equivalence margin: this fraction of the distance between the random and
#: Bayes levels of the metric at the point (``docs/protocol.md``).
MARGIN_FRACTION = 0.05
#: The protocol's family-wise error rate.
ALPHA = 0.05


def margin(point: Point, metric: str, fraction: float = MARGIN_FRACTION) -> float:
    """The equivalence margin at a point: ``fraction * |Bayes - random|`` of ``metric``.

    NaN (no equivalence test) where the point has no finite, distinct reference levels.
    """
    random = as_float((point.references.get("random") or {}).get(metric))
    gap = abs(best_reference(metric, point.references) - random) if point.references else math.nan
    return fraction * gap if math.isfinite(gap) and gap > 0 else math.nan


@dataclass
class Family:
    """One comparison family: A against B over points, Holm-corrected together.

    Attributes:
        opponent: B.
        at: A's values of the settings B ignores (``{}``: one family over every point).
        points: The points, each pair of run sets counted once.
        comparisons: One :class:`benchmarks.stats.Comparison` per point.
        edges: Per point, the agents (of A and B) whose chosen learning rate there sits on
            an edge of its grid (:func:`grid_edges`): such a comparison names no winner
            under the protocol until the grid is extended past the edge.
    """

    opponent: str
    at: dict[str, Any]
    points: list[Point] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    edges: list[list[str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """A's setting values of the family, as the tables write them (``all`` for none)."""
        if not self.at:
            return "all"
        text = " ".join(f"{k}={v}" for k, v in self.at.items())
        for long, short in {**SHORT, "group_size=": "N="}.items():
            text = text.replace(long, short)
        return text

    def tally(self) -> dict[str, int]:
        """Verdict -> number of points (``win``, ``equivalent``, ``inconclusive``, ``loss``)."""
        counts = dict.fromkeys(("win", "equivalent", "inconclusive", "loss"), 0)
        for c in self.comparisons:
            if c.verdict:
                counts[c.verdict] += 1
        return counts


def _finite(point: Point, agent: str, metric: str) -> list[float]:
    return [v for v in point.agents[agent].raw(metric) if math.isfinite(v)]


def families(
    points: Sequence[Point],
    metric: str,
    a: str,
    b: str,
    margin_fraction: float = MARGIN_FRACTION,
    alpha: float = ALPHA,
    edges: set[str] | frozenset[str] = frozenset(),
) -> list[Family]:
    """A against B as the protocol counts it: Holm families, each distinct run once.

    A family is every point where both agents have runs, except that where B ignores an
    agent-side setting that A varies (an SB3 agent and our sigma mode, the supervised
    reference and N), B brings the same runs to A's every value of it: the points then split
    into one family per value of A's, so no run of B counts twice in a family. A point
    whose two run sets were already counted in its family is skipped. Within a family the
    difference tests and, separately, the equivalence tests (margin:
    ``margin_fraction * |Bayes - random|``) are Holm-corrected at ``alpha``. ``edges``: the
    cells on a grid edge (:func:`grid_edges`), listed per point in ``Family.edges``.

    Returns:
        The families in first-seen order (empty when the agents never meet).
    """
    out: dict[str, Family] = {}
    counted: set[tuple[frozenset[str], frozenset[str]]] = set()
    for point in points:
        if a not in point.agents or b not in point.agents:
            continue
        if not point.agents[a].rows or not point.agents[b].rows:
            continue
        pair = (_identities(point, a), _identities(point, b))
        if pair in counted:
            continue
        counted.add(pair)
        mine = agent_settings(point.agents[a].rows[0])
        theirs = agent_settings(point.agents[b].rows[0])
        at = {k: v for k, v in mine.items() if k not in theirs}
        key = repr(sorted(at.items()))
        out.setdefault(key, Family(b, at)).points.append(point)
    higher = metric not in LOWER_IS_BETTER
    for family in out.values():
        pairs = [(_finite(p, a, metric), _finite(p, b, metric)) for p in family.points]
        margins = [margin(p, metric, margin_fraction) for p in family.points]
        family.comparisons = compare_family(pairs, margins, alpha, higher_is_better=higher)
        family.edges = [
            [agent for agent in (a, b) if any(r.get("cell") in edges for r in p.agents[agent].rows)]
            for p in family.points
        ]
    return list(out.values())


def verdicts(
    results_dir: str | Path,
    metric: str,
    a: str,
    b: str,
    experiment: str | None = None,
    margin_fraction: float = MARGIN_FRACTION,
    alpha: float = ALPHA,
) -> str:
    """Markdown: per point, A − B with its Holm-corrected interval, TOST and the verdict.

    The families of :func:`families`; the interval's level is the Holm-compatible one (it
    excludes 0 exactly when Holm rejects), the equivalence margin and the Holm-adjusted
    TOST p-value beside it.
    """
    lines = [
        f"| point | family | {a} − {b} [Holm interval] | level | margin | TOST p (Holm) "
        "| verdict | grid edge |",
        "|---|---|---|---|---|---|---|---|",
    ]
    points, edges = load_points(results_dir, experiment)
    for family in families(points, metric, a, b, margin_fraction, alpha, edges):
        for point, c, edge in zip(family.points, family.comparisons, family.edges, strict=True):
            text = f"{c.diff:+.3g} [{c.low:+.3g}, {c.high:+.3g}]"
            level = f"{c.level:.4f}" if math.isfinite(c.level) else "–"
            m = f"{c.margin:.3g}" if math.isfinite(c.margin) else "–"
            tp = f"{c.p_tost_holm:.3g}" if math.isfinite(c.p_tost_holm) else "–"
            lines.append(
                f"| {_label(point, experiment is None)} | {family.label} | {text} | {level} "
                f"| {m} | {tp} | {c.verdict or '–'} | {', '.join(edge) or '–'} |"
            )
    return "\n".join(lines)


def scoreboard(
    results_dir: str | Path,
    metric: str,
    agent: str,
    experiment: str | None = None,
    raw: bool = False,
    margin_fraction: float = MARGIN_FRACTION,
    alpha: float = ALPHA,
) -> str:
    """Markdown: ``agent`` against every other agent, one line per comparison family.

    Corrected (the protocol's, default): per family (:func:`families`), the points won,
    found equivalent (TOST at the margin), inconclusive and lost, from Holm-corrected
    intervals and equivalence tests, and at how many of its points either agent's learning
    rate sits on an edge of its grid (a verdict there is provisional). ``raw=True``: the
    first edition's table, points won, tied and lost by uncorrected Welch 95% intervals over
    all points, a comparison of the same two run sets counted once.
    """
    points, edges = load_points(results_dir, experiment)
    others = list(dict.fromkeys(a for p in points for a in p.agents if a != agent))
    if raw:
        return _raw_scoreboard(points, metric, agent, others)
    lines = [
        f"| {agent} vs | at | points | wins | equivalent | inconclusive | losses "
        "| on a grid edge |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for other in others:
        for family in families(points, metric, agent, other, margin_fraction, alpha, edges):
            n = family.tally()
            on_edge = sum(bool(e) for e in family.edges)
            lines.append(
                f"| {other} | {family.label} | {sum(n.values())} | {n['win']} | "
                f"{n['equivalent']} | {n['inconclusive']} | {n['loss']} | {on_edge} |"
            )
    return "\n".join(lines)


def _raw_scoreboard(points: list[Point], metric: str, agent: str, others: list[str]) -> str:
    """The first edition's uncorrected tally (``scoreboard --raw``)."""
    lines = [f"| {agent} vs | wins | ties | losses |", "|---|---|---|---|"]
    for other in others:
        counts = {"win": 0, "tie": 0, "loss": 0}
        counted: set[tuple[frozenset[str], frozenset[str]]] = set()
        for point in points:
            verdict = _verdicts(point, metric, agent, other)
            if verdict is None:
                continue
            pair = (_identities(point, agent), _identities(point, other))
            if pair in counted:
                continue
            counted.add(pair)
            counts["win" if verdict == agent else "tie" if verdict == "tie" else "loss"] += 1
        lines.append(f"| {other} | {counts['win']} | {counts['tie']} | {counts['loss']} |")
    return "\n".join(lines)


def efficiency(
    results_dir: str | Path,
    agents: Sequence[str] | None = None,
    experiment: str | None = None,
) -> str:
    """Markdown: per point, rollouts to the target as a ratio to the fastest baseline.

    The same computation as the report's "vs best baseline" column (``compute_targets``):
    the target is the best baseline's start plus 90% of its improvement on the selection
    metric, read off each agent's mean curve. ``not reached``: the agent's mean curve never
    reaches it; ``–``: no ratio (the agent is not at the point, is at the target from the
    start, or the point has no target because no baseline improved). < 1 is faster.
    """
    points = _points(results_dir, experiment)
    names = list(agents or dict.fromkeys(a for p in points for a in p.agents))
    header = ["point", "target", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in points:
        compute_targets(point)
        target = "none" if point.target is None else f"{point.target:.4g} ({point.target_agent})"
        cells = [_label(point, experiment is None), target]
        for name in names:
            result = point.agents.get(name)
            if result is None:
                cells.append("–")
            elif point.target is not None and result.to_target is None:
                cells.append("not reached")
            else:
                cells.append(format_ratio(result.ratio, result.ratio_ci))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregate(results_dir: str | Path, experiment: str | None = None) -> str:
    """The report's aggregate lines of a suite: its ``- `` notes and its tables, as written.

    The same computation as the report (``aggregate_over_tasks`` with its default bootstrap
    replicates and seed): a task per environment point, IQM per algorithm, probability of
    improvement between algorithms that share their agent-side setting values.
    """
    rows, meta = load_rows(results_dir)
    experiments = build_points(rows, meta.get("agents") or ())
    if experiment is not None:
        experiments = {experiment: experiments[experiment]}
    agg = aggregate_over_tasks(experiments)
    if agg is None:
        return "(fewer than two tasks with reference levels)"
    keep = [line for line in agg.text.splitlines() if line.startswith("|") or line.startswith("- ")]
    return "\n".join(keep)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.summary COMMAND DIR ...``; COMMAND as the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.summary", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pivot", "diff", "scoreboard", "verdicts", "efficiency", "aggregate"):
        p = sub.add_parser(name)
        p.add_argument("results_dir")
        p.add_argument("--experiment", default=None)
        if name not in ("aggregate", "efficiency"):
            p.add_argument("--metric", required=True)
        if name == "scoreboard":
            p.add_argument("--agent", required=True)
            p.add_argument(
                "--raw",
                action="store_true",
                help="the first edition's uncorrected wins / ties / losses",
            )
        if name in ("scoreboard", "verdicts"):
            p.add_argument("--margin-fraction", type=float, default=MARGIN_FRACTION)
            p.add_argument("--alpha", type=float, default=ALPHA)
        if name in ("pivot", "efficiency"):
            p.add_argument("--agents", default=None, help="comma-separated agent names")
        if name in ("diff", "verdicts"):
            p.add_argument("--a", required=True)
            p.add_argument("--b", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "pivot":
            agents = args.agents.split(",") if args.agents else None
            print(pivot(args.results_dir, args.metric, agents, args.experiment))
        elif args.command == "diff":
            print(diff(args.results_dir, args.metric, args.a, args.b, args.experiment))
        elif args.command == "scoreboard":
            print(
                scoreboard(
                    args.results_dir,
                    args.metric,
                    args.agent,
                    args.experiment,
                    args.raw,
                    args.margin_fraction,
                    args.alpha,
                )
            )
        elif args.command == "verdicts":
            print(
                verdicts(
                    args.results_dir,
                    args.metric,
                    args.a,
                    args.b,
                    args.experiment,
                    args.margin_fraction,
                    args.alpha,
                )
            )
        elif args.command == "efficiency":
            agents = args.agents.split(",") if args.agents else None
            print(efficiency(args.results_dir, agents, args.experiment))
        else:
            print(aggregate(args.results_dir, args.experiment))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
