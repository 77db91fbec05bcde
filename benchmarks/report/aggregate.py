"""The aggregate over tasks of normalized scores (Agarwal et al. 2021)."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.evaluation import LOWER_IS_BETTER
from benchmarks.report.figures import _plot_efficiency, _plot_profile
from benchmarks.report.fmt import (
    fmt_interval,
    fmt_value,
    in_label,
    md_cell,
    metric_name,
    short_name,
)
from benchmarks.report.points import AgentResult, Point
from benchmarks.report.rows import ResultRow, run_identity
from maxrl_envs.references import as_float, best_reference, normalized_score

#: Bootstrap replicates and seed of the aggregate's intervals (fixed: the report is
#: deterministic).
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0


#: The protocol's exclusion rule for normalized aggregates (``docs/protocol.md``): a task
#: enters only if its Bayes level beats random by at least this much on the selection metric,
#: in the metric's own units (nats for a log-likelihood, probability for a pass rate), beside
#: beating the agents' seed noise (:func:`_reference_gap`). Below it one normalized unit is a
#: sliver of the metric and normalized scores swing with seed noise.
MIN_REFERENCE_GAP = 0.02


def _reference_gap(point: Point) -> tuple[float, float]:
    """How much better the Bayes level is than random on the selection metric, and the noise.

    The noise is twice the median over agents of the standard error of their final values
    (std over seeds / sqrt(seeds)): a gap below it cannot be told from seed-to-seed noise.
    """
    metric = point.select_metric
    random = as_float((point.references.get("random") or {}).get(metric))
    gap = best_reference(metric, point.references) - random
    if metric in LOWER_IS_BETTER:
        gap = -gap
    errors = []
    for result in point.agents.values():
        values = [v for v in result.values(metric) if math.isfinite(v)]
        if len(values) >= 2:
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            errors.append(std / math.sqrt(len(values)))
    errors.sort()
    median = errors[len(errors) // 2] if errors else 0.0
    return gap, 2.0 * median


#: Evaluation points of the sample-efficiency curve (evenly spaced up to the budget).
CURVE_POINTS = 21


@dataclass
class Aggregate:
    """The aggregate over tasks of normalized scores (Agarwal et al. 2021).

    Attributes:
        tasks: Task names (``experiment: environment point``), the columns of every score
            matrix.
        runs: Algorithm -> its runs per task: the fewest distinct runs it has on any task (it
            keeps its first that many by seed number).
        scores: Algorithm -> ``[runs, tasks]`` normalized scores of the selection metric.
        intervals: Aggregate name (``stats.AGGREGATES``) -> algorithm -> point and 95%
            interval.
        improvement: ``(maxrl algorithm, other algorithm)`` -> probability of improvement
            with its interval; the two share their values of every setting both use.
        left_out_agents: Algorithm -> tasks it has no run on (left out of the aggregate).
        left_out_tasks: Task -> why it is not a task (no normalizable reference levels).
        merged: The agent-side sweep settings (:func:`agent_settings`), which split an agent
            into algorithms (none: every algorithm is an agent).
        floors: Task -> the score of a diverged run there (:func:`_task_floor`).
        floored: Algorithm -> its diverged runs scored at the floor (among the kept runs).
        curve_tasks: Tasks of the sample-efficiency curve (one shared budget).
        curve_note: Which tasks the curve leaves out and why ("" if none).
        grid: Rollout counts of the sample-efficiency curve (None without a curve).
        curve: Algorithm -> IQM of normalized scores at every ``grid`` point, with its band.
        algorithms: Algorithm -> ``(agent, agent-side setting values)`` (:func:`aggregate_tasks`).
        text: The markdown section.
        plots: PNGs written.
    """

    tasks: list[str]
    runs: dict[str, int]
    scores: dict[str, Any]
    intervals: dict[str, dict[str, Any]]
    improvement: dict[tuple[str, str], Any]
    left_out_agents: dict[str, list[str]]
    left_out_tasks: dict[str, str]
    merged: list[str] = field(default_factory=list)
    floors: dict[str, float] = field(default_factory=dict)
    floored: dict[str, int] = field(default_factory=dict)
    curve_tasks: list[str] = field(default_factory=list)
    curve_note: str = ""
    grid: Any = None
    curve: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    plots: list[Path] = field(default_factory=list)
    algorithms: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


#: One run of an agent at a task: its normalized score (the floor if it diverged), its row,
#: and whether it diverged.
TaskRun = tuple[float, ResultRow, bool]


def _task_floor(point: Point) -> float:
    """The score of a diverged run at a task: min(0, the worst finite score of any run there).

    A diverged run (non-finite final selection metric) is not dropped: dropping it would
    score an agent on the runs that survived. It counts at a floor: 0, the uniform random
    policy, since a policy that ends in NaN or infinite outputs predicts nothing better than
    chance; and no higher than any run that finished on the task (of any agent), so an agent
    never gains by diverging instead of finishing badly. The floor is fixed per task (every
    agent and bootstrap replicate sees the same one). Rank statistics (IQM, probability of
    improvement) treat a diverged run as the worst on its task (tied with the worst finished
    run when that is below random).
    """
    scores = [
        normalized_score(point.select_metric, value, point.references)
        for result in point.agents.values()
        for value in result.raw(point.select_metric)
    ]
    return min([0.0, *(v for v in scores if math.isfinite(v))])


def _task_runs(point: Point, result: AgentResult, floor: float) -> list[TaskRun]:
    """Every distinct run of an agent at a task in seed order, diverged ones at ``floor``."""
    out = []
    for row in sorted(result.rows, key=lambda r: (0 if r.seed is None else r.seed, r.run_id)):
        value = row.final_value(point.select_metric)
        score = normalized_score(point.select_metric, value, point.references)
        diverged = not math.isfinite(score)
        out.append((floor if diverged else score, row, diverged))
    return out


def agent_settings(row: Mapping[str, Any]) -> dict[str, Any]:
    """The agent-side sweep values a row's run uses: :func:`row_sweep` less the environment's.

    A sweep value is the environment's when the row's ``env_kwargs`` carry it or its env
    label names it (``snr=0.1``); the rest (``state_dependent_std``, ``group_size``) are
    settings of the agent. A setting the agent ignores is not in its rows' sweep (an SB3
    agent's) or is dropped by ``rows.ignored_settings`` (the supervised reference's N).
    """
    row = ResultRow.of(row)
    return {
        k: v
        for k, v in row.used_sweep.items()
        if k not in row.env_kwargs and not in_label(k, v, row.env_label)
    }


def algorithm_name(agent: str, settings: Mapping[str, Any]) -> str:
    """``agent`` plus its agent-side setting values as the per-cell tables write them."""
    return " ".join([agent, *(f"{short_name(k)}={fmt_value(v)}" for k, v in settings.items())])


def aggregate_tasks(
    experiments: Mapping[str, list[Point]],
) -> tuple[list[Point], list[str], dict[str, tuple[str, dict[str, Any]]]]:
    """The aggregate's tasks and algorithms (the layout of Agarwal et al. 2021).

    A task is an environment point: experiment, environment and the values of the
    environment's sweep keys. An algorithm is an agent with the values of the agent-side
    sweep settings its runs use (:func:`agent_settings`): maxrl at N = 16 (``maxrl N=16``)
    and at N = 64 are two algorithms, and so are maxrl with a shared and with a
    state-dependent sigma. An agent that ignores a setting (SB3 agents ignore sigma mode and
    N, the supervised reference ignores N) is one algorithm: :func:`build_points` lists its
    run at every value of the setting, and here each distinct run (:func:`run_identity`)
    counts once per task. The points of a task merge only when their reference levels agree
    (else they stay apart). Without agent-side sweep settings a task is a point and an
    algorithm an agent.

    Args:
        experiments: Experiment -> points (as :func:`build_points`).

    Returns:
        ``(tasks, settings, algorithms)``: the tasks as points (first-seen order) whose
        ``agents`` are keyed by algorithm, the agent-side setting keys, and algorithm ->
        ``(agent, setting values)`` (by agent, then first-seen setting values).
    """
    tasks: list[Point] = []
    keys: list[str] = []
    found: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    for name, points in experiments.items():
        merged: dict[str, Point] = {}
        counted: dict[tuple[str, str], set[str]] = defaultdict(set)  # (task, algorithm): runs
        for point in points:
            rows = [r for result in point.agents.values() for r in [*result.rows, *result.failed]]
            agent_keys = {k for r in rows for k in agent_settings(r)}
            keys += [k for k in point.sweep if k in agent_keys and k not in keys]
            sweep = {k: v for k, v in point.sweep.items() if k not in agent_keys}
            key = json.dumps(
                [point.env_label, sweep, point.references], sort_keys=True, default=str
            )
            task = merged.get(key)
            if task is None:
                task = merged[key] = Point(
                    experiment=name,
                    env_label=point.env_label,
                    env_base=point.env_base,
                    sweep=sweep,
                    metrics=list(point.metrics),
                    select_metric=point.select_metric,
                    target_fraction=point.target_fraction,
                    references=point.references,
                )
            for agent, result in point.agents.items():
                for status, theirs in (("rows", result.rows), ("failed", result.failed)):
                    for row in theirs:
                        settings = agent_settings(row)
                        algorithm = algorithm_name(agent, settings)
                        found.setdefault(agent, {}).setdefault(algorithm, (agent, settings))
                        into = task.agents.setdefault(
                            algorithm,
                            AgentResult(algorithm, result.role, result.family, [], result.lr),
                        )
                        identity = run_identity(row)
                        if identity not in counted[(key, algorithm)]:
                            counted[(key, algorithm)].add(identity)
                            getattr(into, status).append(row)
        tasks += merged.values()
    algorithms = {a: v for variants in found.values() for a, v in variants.items()}
    order = list(algorithms)
    for task in tasks:
        task.agents = dict(sorted(task.agents.items(), key=lambda kv: order.index(kv[0])))
    return tasks, keys, algorithms


def aggregate_over_tasks(
    experiments: Mapping[str, list[Point]],
    plots_dir: Path | None = None,
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> Aggregate | None:
    """Aggregate normalized scores over every task with reference levels.

    A task (:func:`aggregate_tasks`) is an environment point (experiment, environment and
    the environment's sweep values) whose final rows carry ``references`` that normalize
    its selection metric; an algorithm is an agent at the values of the agent-side sweep
    settings it uses (``maxrl N=16``), each distinct run counted once per task. A run's
    score is the :func:`normalized_score` of its final selection metric; a diverged run
    (non-finite) scores the task's floor (:func:`_task_floor`) and is counted per
    algorithm. Algorithms need a run on every task (others are left out and listed); each
    keeps its first ``k`` runs of every task by seed, ``k`` the fewest it has on any task,
    so its score matrix is complete ``[k, tasks]`` (``stats.score_matrices``). Then, with
    95% stratified-bootstrap percentile intervals (``reps`` replicates, ``seed``): IQM,
    median, mean and optimality gap per algorithm, the probability of improvement of every
    algorithm of a ``maxrl``-role agent over each algorithm of another agent that shares
    its values of every setting both use (:func:`_comparable`: maxrl N=16 vs grpo N=16,
    and vs the supervised reference, which ignores N), the performance profile and, over
    the tasks that share one rollout budget, the
    sample-efficiency curve (IQM of the normalized selection metric on a common grid of
    ``CURVE_POINTS`` rollout counts, each run's curve interpolated linearly, non-finite
    evaluations at the floor).

    Args:
        experiments: Experiment -> points (as :func:`build_points`).
        plots_dir: Where to write the two plots (None: no plots).
        reps: Bootstrap replicates.
        seed: Bootstrap seed.

    Returns:
        The aggregate, or None with fewer than two tasks.
    """
    candidates, merged, algorithms = aggregate_tasks(experiments)
    tasks, left_out_tasks = _normalizable_tasks(candidates)
    if len(tasks) < 2:
        return None
    floors = {p.task: _task_floor(p) for p in tasks}
    agents = [a for a in algorithms if any(a in p.agents for p in tasks)]
    runs, left_out_agents = _kept_runs(tasks, agents, floors)
    names = [p.task for p in tasks]
    agg = Aggregate(names, {}, {}, {}, {}, left_out_agents, left_out_tasks, merged, floors)
    agg.algorithms = {a: algorithms[a] for a in agents}
    if runs:
        _score(agg, tasks, runs, reps, seed)
        if plots_dir is not None:
            _plot_aggregate(agg, tasks, plots_dir, reps, seed)
    agg.text = _aggregate_text(agg, reps, seed)
    return agg


def _normalizable_tasks(candidates: list[Point]) -> tuple[list[Point], dict[str, str]]:
    """The tasks whose reference levels normalize, and why each other one is left out.

    A task needs reference levels whose Bayes level beats random by more than the agents'
    seed noise (:func:`_reference_gap`) and by at least ``MIN_REFERENCE_GAP``; tasks
    without reference levels are skipped silently.
    """
    tasks: list[Point] = []
    left_out: dict[str, str] = {}
    for point in candidates:
        if not point.references:
            continue
        metric = point.select_metric
        unit = normalized_score(metric, best_reference(metric, point.references), point.references)
        gap, noise = _reference_gap(point)
        if math.isnan(unit):
            left_out[point.task] = (
                f"its reference levels of {metric_name(metric)} do not normalize "
                "(missing, infinite, or random = Bayes)"
            )
        elif not gap > noise:
            # At very low SNR the Bayes level can sit within sampling noise of random (or
            # below it on a finite split): normalized units would then be noise.
            left_out[point.task] = (
                f"the Bayes level of {metric_name(metric)} is only {gap:.3g} better than "
                f"random, within the agents' seed noise ({noise:.3g}: twice their median "
                "standard error), so normalized scores would be noise"
            )
        elif gap < MIN_REFERENCE_GAP:
            left_out[point.task] = (
                f"the Bayes level of {metric_name(metric)} is only {gap:.3g} better than "
                f"random, less than the protocol's {MIN_REFERENCE_GAP:g} (docs/protocol.md), "
                "so a normalized unit would magnify seed noise"
            )
        else:
            tasks.append(point)
    return tasks, left_out


def _kept_runs(
    tasks: list[Point], agents: list[str], floors: Mapping[str, float]
) -> tuple[dict[str, dict[str, list[TaskRun]]], dict[str, list[str]]]:
    """Each algorithm's first ``k`` runs of every task (``k``: its fewest on any task).

    Returns:
        ``(runs, left_out)``: algorithm -> task -> its kept runs, and algorithm -> the tasks
        it has no run on (such an algorithm is left out).
    """
    runs: dict[str, dict[str, list[TaskRun]]] = {}
    left_out: dict[str, list[str]] = {}
    for agent in agents:
        per_task = {
            p.task: _task_runs(p, p.agents[agent], floors[p.task]) if agent in p.agents else []
            for p in tasks
        }
        missing = [task for task, values in per_task.items() if not values]
        if missing:
            left_out[agent] = missing
        else:
            k = min(len(v) for v in per_task.values())
            runs[agent] = {task: values[:k] for task, values in per_task.items()}
    return runs, left_out


def _score(
    agg: Aggregate,
    tasks: list[Point],
    runs: Mapping[str, Mapping[str, list[TaskRun]]],
    reps: int,
    seed: int,
) -> None:
    """Fill the aggregate's score matrices, intervals, improvements and efficiency curve."""
    from benchmarks import stats

    role = {name: r.role for p in tasks for name, r in p.agents.items()}
    agg.runs = {a: len(next(iter(per_task.values()))) for a, per_task in runs.items()}
    agg.floored = {
        a: sum(diverged for v in per_task.values() for _, _, diverged in v)
        for a, per_task in runs.items()
    }
    matrices, _ = stats.score_matrices(
        {
            a: {t: [score for score, _, _ in v] for t, v in per_task.items()}
            for a, per_task in runs.items()
        }
    )
    agg.scores = matrices
    for name, statistic in stats.AGGREGATES.items():
        agg.intervals[name] = stats.stratified_bootstrap_ci(
            matrices, statistic, reps=reps, seed=seed
        )
    for x in (a for a in matrices if role.get(a) == "maxrl"):
        for y in (a for a in matrices if _comparable(agg.algorithms, x, a)):
            agg.improvement[x, y] = stats.probability_of_improvement_ci(
                matrices[x], matrices[y], reps=reps, seed=seed
            )
    curves, agg.grid = _efficiency_curves(tasks, runs, agg)
    if curves:
        agg.curve = stats.sample_efficiency_curve(curves, stats.iqm, reps=reps, seed=seed)


def _plot_aggregate(
    agg: Aggregate, tasks: list[Point], plots_dir: Path, reps: int, seed: int
) -> None:
    """Write the aggregate's plots into ``plots_dir`` (listed in ``agg.plots``)."""
    from benchmarks import plots

    for plot in (
        plots.plot_intervals(agg, plots_dir / "aggregate_intervals.png"),
        plots.plot_improvement(agg, plots_dir / "aggregate_improvement.png"),
    ):
        if plot is not None:
            agg.plots.append(plot)
    agg.plots.append(_plot_profile(agg, reps, seed, plots_dir / "aggregate_profile.png"))
    if agg.curve:
        agg.plots.append(
            _plot_efficiency(agg, tasks, plots_dir / "aggregate_sample_efficiency.png")
        )


def _comparable(algorithms: Mapping[str, tuple[str, dict[str, Any]]], x: str, y: str) -> bool:
    """Whether a probability of improvement of ``x`` over ``y`` answers one question.

    They are different agents and agree on the value of every agent-side setting both use:
    maxrl N=16 vs grpo N=16 (never grpo N=256), and vs supervised, which ignores N.
    """
    (agent_x, settings_x), (agent_y, settings_y) = algorithms[x], algorithms[y]
    shared = settings_x.keys() & settings_y.keys()
    return agent_x != agent_y and all(settings_x[k] == settings_y[k] for k in shared)


def _efficiency_curves(
    tasks: list[Point],
    runs: Mapping[str, Mapping[str, list[TaskRun]]],
    agg: Aggregate,
) -> tuple[dict[str, Any], Any]:
    """``[k, tasks, points]`` normalized curves per agent on one rollout grid, and the grid.

    ``k`` is the agent's runs per task. Only tasks whose used runs share one budget join,
    and of those the budget most tasks have; ``agg.curve_tasks`` and ``agg.curve_note`` say
    which. A non-finite evaluation scores the task's floor (``agg.floors``).
    """
    import numpy as np

    budgets: dict[str, float] = {}
    mixed: list[str] = []
    no_curve: list[str] = []
    framings: set[str] = set()
    for point in tasks:
        used = [row for per_task in runs.values() for _, row, _ in per_task[point.task]]
        found = {r.budget for r in used}
        if not all(r.curve_points(point.select_metric) for r in used):
            no_curve.append(point.task)
        elif len(found) != 1 or not all(math.isfinite(b) and b > 0 for b in found):
            mixed.append(point.task)
            framings |= {str((r.config or {}).get("framing", "rollouts")) for r in used}
        else:
            budgets[point.task] = found.pop()
    notes = []
    if mixed:
        note = "agents with different budgets"
        if len(framings) > 1:
            note += f" (framings {', '.join(sorted(framings))})"
        notes.append(f"{note}: {', '.join(mixed)}")
    if no_curve:
        notes.append(f"runs without a finite curve: {', '.join(no_curve)}")
    if not budgets:
        agg.curve_note = "No sample-efficiency curve: " + "; ".join(notes) + "."
        return {}, None
    counts = Counter(budgets.values())
    budget = max(counts, key=lambda b: (counts[b], -list(budgets.values()).index(b)))
    other = [t for t, b in budgets.items() if b != budget]
    if other:
        notes.append(f"other budgets than {budget:,.0f} rollouts: {', '.join(other)}")
    chosen = [p for p in tasks if budgets.get(p.task) == budget]
    agg.curve_tasks = [p.task for p in chosen]
    if notes:
        agg.curve_note = "Left out of the sample-efficiency curve (" + "; ".join(notes) + ")."
    starts = [
        row.curve_points(p.select_metric)[0][0]
        for p in chosen
        for per_task in runs.values()
        for _, row, _ in per_task[p.task]
    ]
    grid = np.linspace(max(0.0, max(starts)), budget, CURVE_POINTS)
    curves = {}
    for agent, per_task in runs.items():
        out = np.empty((agg.runs[agent], len(chosen), grid.size))
        for j, point in enumerate(chosen):
            floor = agg.floors[point.task]
            for i, (_, row, _) in enumerate(per_task[point.task]):
                pts = [
                    (
                        as_float(x),
                        normalized_score(
                            point.select_metric, v.get(point.select_metric), point.references
                        ),
                    )
                    for x, v in row.curve
                ]
                pts = [(x, y if math.isfinite(y) else floor) for x, y in pts if math.isfinite(x)]
                out[i, j] = np.interp(grid, [x for x, _ in pts], [y for _, y in pts])
        curves[agent] = out
    return curves, grid


def _improvement_table(agg: Aggregate) -> list[str]:
    """The probabilities of improvement with agent-side settings: a column per setting value.

    A row is a maxrl-role agent X and another agent Y; a column the setting values of X's
    algorithm, Y at the same values (or Y itself where it ignores them).
    """
    cells: dict[tuple[str, str], dict[str, str]] = {}
    columns: list[str] = []
    for (x, y), interval in agg.improvement.items():
        agent_x, settings_x = agg.algorithms[x]
        agent_y, settings_y = agg.algorithms[y]
        column = algorithm_name("", settings_x).strip() or "any"
        # Y's settings are implied by the column unless X ignores one of them.
        extra = {k: v for k, v in settings_y.items() if k not in settings_x}
        columns += [column] if column not in columns else []
        cells.setdefault((agent_x, algorithm_name(agent_y, extra)), {})[column] = fmt_interval(
            interval
        )
    lines = [
        "| X | Y | " + " | ".join(f"P(X > Y) {md_cell(c)}" for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for (x, y), by_column in cells.items():
        row = [by_column.get(c, "–") for c in columns]
        lines.append(f"| {md_cell(x)} | {md_cell(y)} | " + " | ".join(row) + " |")
    return lines


def _aggregate_text(agg: Aggregate, reps: int, seed: int) -> str:
    """The markdown section of the aggregate: its protocol, what counts, its tables."""
    unit = "algorithm" if agg.merged else "agent"
    lines = _aggregate_notes(agg, reps, seed, unit)
    if not agg.scores:
        lines.append(f"No {unit} has a run on every task: nothing to aggregate.")
        return "\n".join(lines)
    lines += _interval_table(agg, unit)
    lines += _improvement_text(agg)
    if agg.curve_tasks:
        lines.append(
            f"Sample-efficiency curve over {len(agg.curve_tasks)} tasks that share one rollout "
            f"budget: each run's curve interpolated on {CURVE_POINTS} evenly spaced rollout "
            "counts."
        )
    if agg.curve_note:
        lines.append(agg.curve_note)
    return "\n".join(lines).rstrip()


def _aggregate_notes(agg: Aggregate, reps: int, seed: int, unit: str) -> list[str]:
    """The protocol, tasks, algorithms, runs kept, diverged runs and what is left out."""
    lines = [
        "Score of a run: the normalized score of its final selection metric on the test split, "
        "(x − random) / (Bayes − random), 0 = uniform random policy, 1 = the better Bayes "
        "reference. Protocol of Agarwal et al. (2021), *Deep Reinforcement Learning at the "
        "Edge of the Statistical Precipice* (NeurIPS): intervals are 95% **stratified-"
        f"bootstrap percentile intervals** ({reps} replicates, seed {seed}; every replicate "
        "resamples each task's runs with replacement).",
        "",
        f"- Tasks ({len(agg.tasks)}): " + "; ".join(agg.tasks),
    ]
    if agg.merged:
        ignoring = [
            agent
            for agent in dict.fromkeys(agent for agent, _ in agg.algorithms.values())
            if any(a == agent and not settings for a, settings in agg.algorithms.values())
        ]
        lines.append(
            f"- Algorithms: an agent at each value of the agent-side settings it uses "
            f"({', '.join(agg.merged)}), a task being an environment point; "
            + (
                f"an agent that ignores them ({', '.join(ignoring)}) is one algorithm, "
                "each of its distinct runs counted once per task"
                if ignoring
                else "every agent uses them"
            )
        )
    if agg.scores:
        counts = set(agg.runs.values())
        if len(counts) == 1:
            runs = f"{counts.pop()} per {unit} and task"
        else:
            runs = "per task " + ", ".join(f"{a} {n}" for a, n in agg.runs.items())
        lines.append(
            f"- Runs: {runs}, the fewest distinct runs the {unit} has on any task (it keeps "
            "its first ones by seed); failed runs never count"
        )
        floored = {a: n for a, n in agg.floored.items() if n}
        rule = (
            "scored at the task's floor, the lower of 0 (random) and the worst finite score "
            "of any run on the task, never dropped"
        )
        if floored:
            lines.append(
                "- Diverged runs (non-finite final metric) "
                + rule
                + ": "
                + ", ".join(f"{a} {n}" for a, n in floored.items())
                + (f"; 0 for every other {unit}" if len(floored) < len(agg.floored) else "")
            )
        else:
            lines.append(f"- Diverged runs: none (a diverged run would be {rule})")
    for agent, missing in agg.left_out_agents.items():
        lines.append(f"- Left out: {agent} (no run on {'; '.join(missing)})")
    for task, why in agg.left_out_tasks.items():
        lines.append(f"- Not a task: {task} ({why})")
    lines.append("")
    return lines


def _interval_table(agg: Aggregate, unit: str) -> list[str]:
    """The aggregates with their intervals, one line per algorithm."""
    names = list(agg.intervals)
    header = [
        unit,
        *[f"{n} (lower is better)" if n == "Optimality gap" else n for n in names],
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for agent in agg.scores:
        cells = [agent, *[fmt_interval(agg.intervals[n][agent]) for n in names]]
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    lines.append("")
    return lines


def _improvement_text(agg: Aggregate) -> list[str]:
    """The probabilities of improvement, or why there are none."""
    lines: list[str] = []
    if agg.improvement:
        lines += [
            "Probability of improvement P(X > Y): the chance that a run of X scores higher "
            "than a run of Y on a random task (ties count 1/2), averaged over tasks; > 0.5 "
            "favours X."
            + (
                " Columns: the agent-side setting values of X, Y at the same values (an agent "
                "that ignores a setting is compared at every value), with 95% CIs."
                if agg.merged
                else ""
            ),
            "",
        ]
        if agg.merged:
            lines += _improvement_table(agg)
        else:
            lines += ["| X | Y | P(X > Y) [95% CI] |", "|---|---|---|"]
            for (x, y), interval in agg.improvement.items():
                lines.append(f"| {md_cell(x)} | {md_cell(y)} | {fmt_interval(interval)} |")
        lines.append("")
    else:
        lines += [
            "No `maxrl`-role agent among the included agents: no probability of improvement.",
            "",
        ]
    return lines
