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
``bins``: the hard-contexts suite's per-difficulty-bin tables (rows with ``eval/bin<b>/...``
tags): per experiment and bin metric, each agent's mean per bin and N beside the bin's initial
(uniform-policy) pass rate, and with ``--agent A --vs B`` the protocol's verdicts of A − B per
bin, one Holm family per experiment and N over the bins::

    python -m benchmarks.summary bins DIR --agent maxrl-binary --vs grpo,reinforce

``--checkpoint`` (``pivot``, ``diff``, ``verdicts``, ``scoreboard``, ``bins``): which
checkpoint of each run the table reads (``benchmarks.report.rows_at_checkpoint``).
``selected``, the default: the checkpoint that scored best on the validation split, the
results with early stopping (the rows' ``metrics``). ``last``: the run's last evaluation,
the results without early stopping (its curve's last point; a run without a curve is left
out). The protocol reports both (``docs/protocol.md``, "Budgets")::

    python -m benchmarks.summary verdicts docs/results/low-snr --metric eval/log_likelihood \\
        --a maxrl --b grpo --checkpoint last
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.evaluation import LOWER_IS_BETTER
from benchmarks.report import (
    CHECKPOINTS,
    Point,
    agent_settings,
    aggregate_over_tasks,
    as_float,
    best_reference,
    build_points,
    compute_targets,
    format_ratio,
    load_rows,
    rows_at_checkpoint,
    run_identity,
    summarize,
)
from benchmarks.stats import Comparison, compare_cells, compare_family


def _points(
    results_dir: str | Path, experiment: str | None, checkpoint: str = "selected"
) -> list[Point]:
    return load_points(results_dir, experiment, checkpoint)[0]


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
    results_dir: str | Path, experiment: str | None = None, checkpoint: str = "selected"
) -> tuple[list[Point], set[str]]:
    """The points of a results directory (one experiment, or all) and its grid-edge cells.

    ``checkpoint``: the runs' values at the selected checkpoint (with early stopping, the
    default) or at their ``last`` evaluation (without; :func:`rows_at_checkpoint`).

    Raises:
        ValueError: An unknown experiment or checkpoint.
    """
    rows, meta = load_rows(results_dir)
    rows = rows_at_checkpoint(rows, checkpoint)
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
    checkpoint: str = "selected",
) -> str:
    """Markdown: points x agents, mean ± 95% half-width of ``metric``, plus references.

    Args:
        results_dir: A suite's results directory.
        metric: An ``eval/*`` tag.
        agents: Columns (default: every agent, in the suite's order).
        experiment: Only this experiment's points (default: all, labelled with it).
        checkpoint: ``selected`` (with early stopping) or ``last`` (without).

    Returns:
        The table.
    """
    points = _points(results_dir, experiment, checkpoint)
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
    checkpoint: str = "selected",
) -> str:
    """Markdown: per point, A − B of ``metric`` with a Welch 95% interval and the verdict.

    ``checkpoint``: ``selected`` (with early stopping) or ``last`` (without).

    Returns:
        The table (points where either agent is missing are skipped).
    """
    lines = [f"| point | {a} − {b} [95% CI] | better |", "|---|---|---|"]
    for point in _points(results_dir, experiment, checkpoint):
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
    checkpoint: str = "selected",
) -> str:
    """Markdown: per point, A − B with its Holm-corrected interval, TOST and the verdict.

    The families of :func:`families`; the interval's level is the Holm-compatible one (it
    excludes 0 exactly when Holm rejects), the equivalence margin and the Holm-adjusted
    TOST p-value beside it. ``checkpoint``: ``selected`` (with early stopping) or ``last``
    (without).
    """
    lines = [
        f"| point | family | {a} − {b} [Holm interval] | level | margin | TOST p (Holm) "
        "| verdict | grid edge |",
        "|---|---|---|---|---|---|---|---|",
    ]
    points, edges = load_points(results_dir, experiment, checkpoint)
    for family in families(points, metric, a, b, margin_fraction, alpha, edges):
        for point, c, edge in zip(family.points, family.comparisons, family.edges, strict=True):
            text, level, m, tp = _comparison_cells(c)
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
    checkpoint: str = "selected",
) -> str:
    """Markdown: ``agent`` against every other agent, one line per comparison family.

    Corrected (the protocol's, default): per family (:func:`families`), the points won,
    found equivalent (TOST at the margin), inconclusive and lost, from Holm-corrected
    intervals and equivalence tests, and at how many of its points either agent's learning
    rate sits on an edge of its grid (a verdict there is provisional). ``raw=True``: the
    first edition's table, points won, tied and lost by uncorrected Welch 95% intervals over
    all points, a comparison of the same two run sets counted once. ``checkpoint``:
    ``selected`` (with early stopping) or ``last`` (without).
    """
    points, edges = load_points(results_dir, experiment, checkpoint)
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


#: A per-difficulty-bin tag (``agents.evaluation.bin_tags``): ``eval/bin<b>/<metric>``.
BIN_TAG = re.compile(r"eval/bin(\d+)/(.+)")
#: The MaxRL of record on binary rewards, then its fallbacks, for the bins report.
MAXRL_NAMES = ("maxrl-binary", "maxrl-auto", "maxrl")
#: The opponents of the bins plot and verdicts (issue 19: MaxRL − GRPO, MaxRL − REINFORCE).
BIN_OPPONENTS = ("grpo", "reinforce")


def _bin_tags(points: Sequence[Point]) -> dict[str, list[int]]:
    """Bin metric name (``log_likelihood``, ``pass@1``, ...) -> the levels rows report it at."""
    found: dict[str, set[int]] = {}
    for point in points:
        for result in point.agents.values():
            for row in result.rows:
                for tag in row.get("metrics") or {}:
                    match = BIN_TAG.fullmatch(tag)
                    if match:
                        found.setdefault(match.group(2), set()).add(int(match.group(1)))
    order = {"log_likelihood": 0, "log_likelihood_mc": 0, "pass@1": 1}
    return {name: sorted(found[name]) for name in sorted(found, key=lambda n: (order.get(n, 2), n))}


def has_bins(experiments: Mapping[str, Sequence[Point]]) -> bool:
    """Whether any row of the experiments carries per-difficulty-bin tags."""
    return any(_bin_tags(points) for points in experiments.values())


def bin_pass_rate(point: Point, level: int) -> float:
    """The initial pass rate of a difficulty bin: the uniform policy's, k_b / C.

    k_b = 2^(b+1) − 1 accepted classes (``maxrl_envs.hard``) among the point's C classes (its
    rows' ``num_classes`` env argument, else the env's default of 1000).
    """
    from maxrl_envs.hard import DEFAULT_CLASSES

    classes = DEFAULT_CLASSES
    for result in point.agents.values():
        for row in result.rows:
            kwargs = row.get("env_kwargs") or {}
            if kwargs.get("num_classes") is not None:
                classes = int(kwargs["num_classes"])
                break
    return (2 ** (level + 1) - 1) / classes


def bin_margin(
    metric: str, rate: float, pass_k: int | None = None, fraction: float = MARGIN_FRACTION
) -> float:
    """The protocol's equivalence margin in a bin: ``fraction`` of its random-to-Bayes gap.

    Every context is solvable, so Bayes passes everywhere (log pass rate 0, pass@k 1); the
    uniform policy's levels are log r, r and 1 − (1 − r)^k for the bin's pass rate r.
    """
    if metric.startswith("log_likelihood"):
        return fraction * abs(math.log(rate))
    k = pass_k if pass_k is not None else int(metric.removeprefix("pass@"))
    return fraction * (1.0 - rate) ** k


@dataclass
class BinFamily:
    """A against B per difficulty bin at one point (experiment and N): one Holm family.

    Attributes:
        point: The point.
        levels: The bins b.
        rates: Each bin's initial pass rate (:func:`bin_pass_rate`).
        comparisons: One :class:`benchmarks.stats.Comparison` per bin.
    """

    point: Point
    levels: list[int]
    rates: list[float]
    comparisons: list[Comparison]


def bin_families(
    points: Sequence[Point],
    a: str,
    b: str,
    metric: str = "log_likelihood",
    margin_fraction: float = MARGIN_FRACTION,
    alpha: float = ALPHA,
) -> list[BinFamily]:
    """A − B per bin of ``eval/bin<b>/<metric>``, Holm-corrected over the bins of each point.

    The protocol's comparison family of the hard-contexts suite is an agent pair, a metric
    and N (a point) over the difficulty bins: Welch differences and TOST equivalence at
    5% of each bin's random-to-Bayes gap (:func:`bin_margin`), each Holm-corrected over the
    bins. Points where either agent is missing are skipped.
    """
    levels = _bin_tags(points).get(metric, [])
    higher = not metric.startswith("excess")
    out = []
    for point in points:
        if a not in point.agents or b not in point.agents or not levels:
            continue
        rates = [bin_pass_rate(point, level) for level in levels]
        tags = [f"eval/bin{level}/{metric}" for level in levels]
        pairs = [(_finite(point, a, tag), _finite(point, b, tag)) for tag in tags]
        margins = [bin_margin(metric, r, fraction=margin_fraction) for r in rates]
        comparisons = compare_family(pairs, margins, alpha, higher_is_better=higher)
        out.append(BinFamily(point, list(levels), rates, comparisons))
    return out


def _n_label(point: Point) -> str:
    return " ".join(f"{_short_key(k)}={v}" for k, v in point.sweep.items()) or point.env_label


def _short_key(key: str) -> str:
    return "N" if key == "group_size" else key


def bin_table(points: Sequence[Point], metric: str, agents: Sequence[str] | None = None) -> str:
    """Markdown: per bin and point, each agent's mean ± 95% half-width of a bin metric."""
    levels = _bin_tags(points).get(metric, [])
    names = list(agents or dict.fromkeys(a for p in points for a in p.agents))
    header = ["bin", "initial pass rate", "point", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for level in levels:
        for point in points:
            cells = [str(level), f"{bin_pass_rate(point, level):.3g}", _n_label(point)]
            for name in names:
                result = point.agents.get(name)
                values = [] if result is None else result.raw(f"eval/bin{level}/{metric}")
                cells.append(_cell(values) if values else "–")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bin_verdict_table(
    points: Sequence[Point],
    a: str,
    b: str,
    metric: str = "log_likelihood",
    margin_fraction: float = MARGIN_FRACTION,
    alpha: float = ALPHA,
) -> str:
    """Markdown: A − B per bin and point, Holm interval, TOST p, verdict (:func:`bin_families`)."""
    lines = [
        f"| point | bin | initial pass rate | {a} − {b} [Holm interval] | level | margin "
        "| TOST p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family in bin_families(points, a, b, metric, margin_fraction, alpha):
        for level, rate, c in zip(family.levels, family.rates, family.comparisons, strict=True):
            text, lvl, m, tp = _comparison_cells(c)
            lines.append(
                f"| {_n_label(family.point)} | {level} | {rate:.3g} | {text} | {lvl} | {m} "
                f"| {tp} | {c.verdict or '–'} |"
            )
    return "\n".join(lines)


def maxrl_agent(points: Sequence[Point]) -> str | None:
    """The MaxRL of record among the points' agents (:data:`MAXRL_NAMES`, first present)."""
    present = {a for p in points for a in p.agents}
    return next((name for name in MAXRL_NAMES if name in present), None)


def bins_markdown(
    experiments: Mapping[str, Sequence[Point]],
    agent: str | None = None,
    opponents: Sequence[str] = BIN_OPPONENTS,
    plots: Sequence[Path] = (),
    relative_to: Path | None = None,
) -> list[str]:
    """The report's section of per-difficulty-bin tables (no lines without bin tags).

    Per experiment: one table per bin metric (:func:`bin_table`), then the verdicts of
    ``agent`` (default :func:`maxrl_agent`) against each opponent on the log pass rate
    (:func:`bin_verdict_table`); the plots among ``plots`` named ``bins_*`` are linked
    after them.
    """
    if not has_bins(experiments):
        return []
    lines = [
        "## Per difficulty bin",
        "",
        "Each bin b holds the contexts whose window accepts 2^(b+1) − 1 of the C classes; its "
        "initial pass rate is the uniform policy's, (2^(b+1) − 1) / C. Means ± 95% t "
        "half-width over seeds on the test split. Verdicts: A − B per bin, one Holm family "
        "per experiment and N over the bins, equivalence margin 5% of the bin's "
        "random-to-Bayes gap (docs/protocol.md).",
        "",
    ]
    for experiment, points in experiments.items():
        tags = _bin_tags(points)
        if not tags:
            continue
        for metric in tags:
            lines += [f"### {experiment}: {metric} per bin", "", bin_table(points, metric), ""]
        a = agent or maxrl_agent(points)
        metric = next(iter(tags))
        for b in opponents:
            if a is None or not bin_families(points, a, b, metric):
                continue
            lines += [
                f"### {experiment}: {a} − {b}, {metric} per bin",
                "",
                bin_verdict_table(points, a, b, metric),
                "",
            ]
    for plot in (p for p in plots if p.name.startswith("bins_")):
        shown = plot.relative_to(relative_to) if relative_to else plot
        lines += [f"![{plot.stem}]({shown})", ""]
    return lines


def bins(
    results_dir: str | Path,
    metric: str | None = None,
    agent: str | None = None,
    opponents: Sequence[str] = (),
    experiment: str | None = None,
    margin_fraction: float = MARGIN_FRACTION,
    alpha: float = ALPHA,
    checkpoint: str = "selected",
) -> str:
    """Markdown: the per-bin tables of a results directory, and A's verdicts per bin.

    Args:
        results_dir: A suite's results directory whose rows carry ``eval/bin<b>/...`` tags.
        metric: One bin metric (``log_likelihood``, ``pass@1``, ``pass@16``); default all.
        agent: A of the verdict tables (none without ``opponents``).
        opponents: The B of each verdict table.
        experiment: Only this experiment (default: each in turn).
        margin_fraction: The equivalence margin's fraction of the random-to-Bayes gap.
        alpha: The family-wise error rate.
        checkpoint: ``selected`` (with early stopping) or ``last`` (without).

    Raises:
        ValueError: No bin tags in the rows, or an unknown metric or checkpoint.
    """
    rows, meta = load_rows(results_dir)
    experiments = build_points(rows_at_checkpoint(rows, checkpoint), meta.get("agents") or ())
    if experiment is not None:
        if experiment not in experiments:
            raise ValueError(
                f"experiment={experiment!r} is not in {results_dir}; allowed: "
                f"{', '.join(experiments)}"
            )
        experiments = {experiment: experiments[experiment]}
    if not has_bins(experiments):
        raise ValueError(f"results_dir={str(results_dir)!r} has no eval/bin<b>/... tags")
    out = []
    for name, points in experiments.items():
        tags = _bin_tags(points)
        if metric is not None and metric not in tags:
            raise ValueError(
                f"metric={metric!r} is not a bin metric here; allowed: {', '.join(tags)}"
            )
        for m in [metric] if metric else tags:
            out += [f"### {name}: {m} per bin", "", bin_table(points, m), ""]
            for b in opponents:
                if agent is None:
                    raise ValueError("--vs needs --agent (the A of A − B)")
                out += [
                    f"### {name}: {agent} − {b}, {m} per bin",
                    "",
                    bin_verdict_table(points, agent, b, m, margin_fraction, alpha),
                    "",
                ]
    return "\n".join(out).rstrip()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.summary COMMAND DIR ...``; COMMAND as the module docstring."""
    args = _parser().parse_args(argv)
    try:
        print(_run_command(args))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    """The command-line parser: one subcommand per summary, each with its options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.summary", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("pivot", "diff", "scoreboard", "verdicts", "efficiency", "aggregate", "bins"):
        p = sub.add_parser(name)
        p.add_argument("results_dir")
        p.add_argument("--experiment", default=None)
        if name == "bins":
            p.add_argument("--metric", default=None, help="a bin metric, e.g. log_likelihood")
            p.add_argument("--agent", default=None, help="A of the per-bin verdicts")
            p.add_argument("--vs", default="", help="comma-separated B's of the verdicts")
        elif name not in ("aggregate", "efficiency"):
            p.add_argument("--metric", required=True)
        if name == "scoreboard":
            p.add_argument("--agent", required=True)
            p.add_argument(
                "--raw",
                action="store_true",
                help="the first edition's uncorrected wins / ties / losses",
            )
        if name in ("scoreboard", "verdicts", "bins"):
            p.add_argument("--margin-fraction", type=float, default=MARGIN_FRACTION)
            p.add_argument("--alpha", type=float, default=ALPHA)
        if name in ("pivot", "efficiency"):
            p.add_argument("--agents", default=None, help="comma-separated agent names")
        if name in ("diff", "verdicts"):
            p.add_argument("--a", required=True)
            p.add_argument("--b", required=True)
        if name in CHECKPOINT_COMMANDS:
            p.add_argument("--checkpoint", default="selected", help=CHECKPOINT_HELP)
    return parser


#: The subcommands that take ``--checkpoint``.
CHECKPOINT_COMMANDS = ("pivot", "diff", "scoreboard", "verdicts", "bins")
CHECKPOINT_HELP = (
    f"which checkpoint of each run to read, one of {', '.join(CHECKPOINTS)}: selected "
    "(default), the checkpoint that scored best on the validation split (with early "
    "stopping); last, the run's last evaluation (without early stopping; runs without a "
    "curve are left out)"
)


def _run_command(args: argparse.Namespace) -> str:
    """The text of the summary the parsed command asks for."""
    if args.command == "pivot":
        agents = args.agents.split(",") if args.agents else None
        return pivot(args.results_dir, args.metric, agents, args.experiment, args.checkpoint)
    if args.command == "diff":
        return diff(args.results_dir, args.metric, args.a, args.b, args.experiment, args.checkpoint)
    if args.command == "scoreboard":
        return scoreboard(
            args.results_dir,
            args.metric,
            args.agent,
            args.experiment,
            args.raw,
            args.margin_fraction,
            args.alpha,
            args.checkpoint,
        )
    if args.command == "verdicts":
        return verdicts(
            args.results_dir,
            args.metric,
            args.a,
            args.b,
            args.experiment,
            args.margin_fraction,
            args.alpha,
            args.checkpoint,
        )
    if args.command == "bins":
        opponents = [b for b in args.vs.split(",") if b]
        return bins(
            args.results_dir,
            args.metric,
            args.agent,
            opponents,
            args.experiment,
            args.margin_fraction,
            args.alpha,
            args.checkpoint,
        )
    if args.command == "efficiency":
        agents = args.agents.split(",") if args.agents else None
        return efficiency(args.results_dir, agents, args.experiment)
    return aggregate(args.results_dir, args.experiment)


def _comparison_cells(c: Any) -> tuple[str, str, str, str]:
    """A verdict table's cells of one comparison: difference [interval], level, margin, TOST p."""

    def number(value: float, spec: str) -> str:
        return format(value, spec) if math.isfinite(value) else "–"

    return (
        f"{c.diff:+.3g} [{c.low:+.3g}, {c.high:+.3g}]",
        number(c.level, ".4f"),
        number(c.margin, ".3g"),
        number(c.p_tost_holm, ".3g"),
    )


if __name__ == "__main__":
    sys.exit(main())
