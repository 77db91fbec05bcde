"""Points: final rows grouped by experiment, environment and sweep point, with targets."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.evaluation import LOWER_IS_BETTER, better
from benchmarks.report.fmt import point_label
from benchmarks.report.intervals import Summary, mean_ci, rollouts_to_target, summarize
from benchmarks.report.rows import ResultRow, _curve_rows, run_identity
from benchmarks.results import (
    FAILED,
    OK,
)
from maxrl_envs.references import normalized_score


@dataclass
class AgentResult:
    """Final rows of one agent at one point (environment and sweep values) of an experiment.

    Attributes:
        agent: Agent name.
        role: ``maxrl``, ``baseline`` or ``reference``.
        family: ``ours`` or ``sb3``.
        rows: Final rows with status ``ok``.
        lr: Learning rate of the final runs (None: SB3 default).
        failed: Final rows with status ``failed`` (runs that raised).
        to_target: Rollouts its mean curve needs to reach the point's target.
        ratio: ``to_target`` over the fastest baseline's.
        ratio_ci: 95% stratified-bootstrap percentile interval of ``ratio`` (seeds of every
            agent resampled, the target held fixed; ``inf`` when a replicate never reaches
            it).
    """

    agent: str
    role: str
    family: str
    rows: list[ResultRow]
    lr: float | None
    failed: list[ResultRow] = field(default_factory=list)
    to_target: float | None = None
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    expected: int | None = None

    def raw(self, metric: str) -> list[float]:
        """Per-seed final values of a metric, non-finite ones included (rows that have it)."""
        return [r.metrics[metric] for r in self.rows if metric in r.metrics]

    def values(self, metric: str) -> list[float]:
        """Per-seed finite final values of a metric (diverged seeds left out)."""
        return [v for v in self.raw(metric) if math.isfinite(v)]

    def summary(self, metric: str) -> Summary:
        """Mean, interval and diverged seeds of a metric."""
        return summarize(self.raw(metric))

    def seeds_text(self) -> str:
        """Reported runs, and the failed ones if any (``3/5, 2 failed``).

        When the suite asked for more seeds than have a row (``expected``, from
        ``suite.json``), the count says of how many: ``2 of 3`` (``1 of 3, 1 failed``).
        """
        total = len(self.rows) + len(self.failed)
        if self.expected is not None and self.expected > total:
            failed = f", {len(self.failed)} failed" if self.failed else ""
            return f"{len(self.rows)} of {self.expected}{failed}"
        if not self.failed:
            return str(len(self.rows))
        return f"{len(self.rows)}/{total}, {len(self.failed)} failed"


@dataclass
class Point:
    """An environment and sweep point of an experiment, with every agent's results.

    ``references`` holds the environment's reference levels on the test split (from the
    final rows' ``references``; empty for rows without them).
    """

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
    references: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Environment label plus the swept run settings (e.g. ``N=64``)."""
        return point_label(self.env_label, self.sweep)

    @property
    def task(self) -> str:
        """``experiment: label``, the point's name among all tasks of a suite."""
        return f"{self.experiment}: {self.label}"

    def normalized(self, result: AgentResult, metric: str | None = None) -> list[float]:
        """Per-seed normalized scores of an agent's final values (NaN without references)."""
        metric = metric or self.select_metric
        return [normalized_score(metric, v, self.references) for v in result.raw(metric)]


def _compatible(row_sweep: dict[str, Any], point_sweep: dict[str, Any]) -> bool:
    return all(point_sweep.get(k) == v for k, v in row_sweep.items())


def build_points(
    rows: Iterable[Mapping[str, Any]], agent_order: Sequence[str] = ()
) -> dict[str, list[Point]]:
    """Group final rows into experiments and points.

    A row joins every point of its experiment and environment whose sweep values include
    its own (:func:`row_sweep`: less the settings its method ignores), so an SB3 agent
    (which ignores N) appears at every N of a group_size sweep, and so does the
    supervised reference. At one point an agent lists each run once (:func:`run_identity`:
    the supervised rows of N = 4 and N = 16 are one run). Rows with status ``ok`` are the
    agent's results; ``failed`` ones are counted beside them (an agent whose runs all failed
    still gets its line).

    Args:
        rows: Result rows (:class:`ResultRow`, or rows as stored; validation rows are
            ignored).
        agent_order: Agent names in display order (the suite's); others follow, first seen
            first.

    Returns:
        Experiment -> its points, in first-seen order.
    """
    final = [
        row
        for row in map(ResultRow.of, rows)
        if row.phase == "final" and row.status in (OK, FAILED)
    ]
    experiments: dict[str, list[Point]] = {}
    seen: dict[tuple[int, str], set[str]] = defaultdict(set)
    for row in sorted(final, key=lambda r: (-len(r.used_sweep), r.status != OK)):
        points = experiments.setdefault(row.experiment, [])
        identity = run_identity(row)
        for point in _points_of(row, points):
            runs = seen[id(point), row.agent]
            if identity in runs:
                continue  # the same run, listed again (e.g. supervised at another N)
            runs.add(identity)
            _add_run(point, row)
    _order_points(experiments, final, agent_order)
    return experiments


def _points_of(row: ResultRow, points: list[Point]) -> list[Point]:
    """The points of an experiment a row joins; a new point (appended) if none fits."""
    sweep = row.used_sweep
    matches = [p for p in points if p.env_label == row.env_label and _compatible(sweep, p.sweep)]
    if not matches:
        point = Point(
            experiment=row.experiment,
            env_label=row.env_label,
            env_base=row.env_base,
            sweep=sweep,
            metrics=row.report_columns(),
            select_metric=row.select_metric,
            target_fraction=row.target_fraction,
        )
        points.append(point)
        matches = [point]
    return matches


def _add_run(point: Point, row: ResultRow) -> None:
    """Count a run at a point: among its agent's results (ok) or failed runs."""
    result = point.agents.setdefault(
        row.agent, AgentResult(row.agent, row.role, row.family, [], row.lr)
    )
    if row.status == OK:
        result.rows.append(row)
        if result.lr is None:
            result.lr = row.lr
    else:
        result.failed.append(row)


def _order_points(
    experiments: dict[str, list[Point]], final: list[ResultRow], agent_order: Sequence[str]
) -> None:
    """Sort rows, agents and points in first-seen order (agents in ``agent_order`` first)."""
    order = {r.run_id: i for i, r in enumerate(final)}
    rank = {name: i for i, name in enumerate(agent_order)}

    def first(result: AgentResult) -> int:
        return min(order[r.run_id] for r in [*result.rows, *result.failed])

    for points in experiments.values():
        for point in points:
            for result in point.agents.values():
                result.rows.sort(key=lambda r: order[r.run_id])
                result.failed.sort(key=lambda r: order[r.run_id])
            point.agents = dict(
                sorted(
                    point.agents.items(),
                    key=lambda kv: (rank.get(kv[0], len(rank)), first(kv[1])),
                )
            )
            point.references = next(
                (
                    dict(r.references)
                    for result in point.agents.values()
                    for r in result.rows
                    if r.references
                ),
                {},
            )
        points.sort(key=lambda p: min(first(a) for a in p.agents.values()))


def compute_targets(point: Point) -> None:
    """Fill the point's target and every agent's rollouts-to-target and ratio.

    The target comes from the best baseline (best final mean of the selection metric among
    ``baseline`` agents, over finite seeds): its initial mean b0 plus ``target_fraction`` of
    its improvement, b0 + f (b_final - b0). Rollouts to target are read off each agent's
    mean curve over seeds (diverged seeds left out); the ratio divides them by the fastest
    baseline's.
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
        _ratio_intervals(point)


#: Bootstrap replicates of the rollouts-to-target ratio.
RATIO_REPS = 1000


def _seed_curves(rows: Iterable[Mapping[str, Any]], metric: str) -> tuple[Any, Any] | None:
    """Every finite seed's curve on the evaluations all of them reached: (grid, [seeds, x])."""
    import numpy as np

    curves = [r.curve_points(metric) for r in _curve_rows(rows, metric)]
    if not curves:
        return None
    grid = np.array(sorted({x for pts in curves for x, _ in pts}))
    grid = grid[grid <= min(pts[-1][0] for pts in curves)]
    if grid.size == 0:
        return None
    values = np.stack([np.interp(grid, [x for x, _ in p], [v for _, v in p]) for p in curves])
    return grid, values


def _ratio_intervals(point: Point, reps: int = RATIO_REPS, seed: int = 0) -> None:
    """95% bootstrap intervals of every agent's rollouts-to-target ratio.

    Each replicate resamples every agent's seeds with replacement (independently per
    agent), recomputes each mean curve, the rollouts at which it first reaches the (fixed)
    target, and the ratio to the fastest baseline of that replicate. A replicate that never
    reaches the target counts as infinitely slow, so an upper end of ``inf`` says the agent
    (or every baseline) missed the target in more than 2.5% of the replicates.
    """
    import numpy as np

    assert point.target is not None
    metric, target = point.select_metric, point.target
    lower = metric in LOWER_IS_BETTER
    rng = np.random.default_rng(seed)
    times: dict[str, Any] = {}
    for name, result in point.agents.items():
        curves = _seed_curves(result.rows, metric)
        if curves is None:
            continue
        grid, values = curves
        picks = rng.integers(0, values.shape[0], size=(reps, values.shape[0]))
        means = values[picks].mean(axis=1)  # [reps, grid]
        hit = means <= target if lower else means >= target
        first = np.where(hit.any(axis=1), grid[hit.argmax(axis=1)], np.inf)
        times[name] = first
    baselines = [times[n] for n, r in point.agents.items() if r.role == "baseline" and n in times]
    if not baselines:
        return
    fastest = np.min(np.stack(baselines), axis=0)
    fastest = np.where(fastest > 0, fastest, np.nan)  # a baseline at the target from the start
    for name, result in point.agents.items():
        if result.ratio is None or name not in times:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = times[name] / fastest
        ratios = ratios[~np.isnan(ratios)]
        if ratios.size:
            low, high = np.quantile(ratios, [0.025, 0.975], method="inverted_cdf")
            result.ratio_ci = (float(low), float(high))


def _mean_curve(rows: Iterable[Mapping[str, Any]], metric: str) -> tuple[Any, Any, Any] | None:
    """Mean curve over seeds with a 95% t band, on the evaluations every seed reached.

    Seeds whose final value diverged are left out (the plot says so); non-finite points of
    the others are skipped (interpolated over).
    """
    import numpy as np

    curves = [r.curve_points(metric) for r in _curve_rows(rows, metric)]
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


def _expect_seeds(experiments: Mapping[str, list[Point]], cells: Mapping[str, Any]) -> None:
    """Tell each agent result how many seeds its cell asked for (``suite.json``)."""
    for points in experiments.values():
        for point in points:
            for result in point.agents.values():
                asked = [
                    len(cells[r.cell]["seeds"])
                    for r in [*result.rows, *result.failed]
                    if r.cell in cells
                ]
                result.expected = max(asked) if asked else None
