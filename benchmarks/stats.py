"""Aggregate statistics over runs and tasks, with stratified bootstrap confidence intervals.

The protocol of Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of the
Statistical Precipice" (NeurIPS; the ``rliable`` library), written from the paper's
definitions with numpy and scipy only.

Data model: for one agent, a **score matrix** of shape ``[runs, tasks]`` of normalized
scores, where runs are seeds and tasks are environments or sweep points; column ``j`` of every
agent's matrix is the same task. Matrices must be complete and finite: a missing or diverged
run is not silently dropped (that would bias every aggregate towards the runs that
survived). Build matrices with :func:`score_matrix` / :func:`score_matrices`, which turn
``{task: [per-seed values]}`` into a matrix and either require equal run counts or truncate
every task to the same number of runs, explicitly.

Aggregates (each reduces the last two axes of ``[..., runs, tasks]``, so a whole batch of
bootstrap resamples is aggregated in one call):

- :func:`iqm`: interquartile mean, the mean of all runs x tasks scores after dropping
  ``floor(0.25 n)`` of the ``n`` scores from each end (``scipy.stats.trim_mean(x, 0.25)``).
- :func:`mean`: mean of all scores. :func:`median`: median over tasks of the per-task mean
  score. :func:`optimality_gap`: ``gamma - mean(min(score, gamma))``.

Intervals: :func:`stratified_bootstrap_ci` (any aggregate),
:func:`probability_of_improvement_ci`, :func:`performance_profile_ci` and
:func:`sample_efficiency_curve` use the **stratified bootstrap**: every replicate resamples,
independently for each task, that task's runs with replacement (so a task keeps its number
of runs and runs never move between tasks), and the interval is the **percentile interval**,
the ``(1 - c) / 2`` and ``(1 + c) / 2`` quantiles of the replicates (numpy's default linear
interpolation, as ``scipy.stats.bootstrap(..., method='percentile')``). A percentile
interval need not contain the point estimate (e.g. a median over few runs); the point is
always the statistic of the original data. Replicates are drawn in vectorized batches
(bounded in memory; the batch size never changes the result) from
``numpy.random.default_rng(seed)``; each agent gets a fresh generator from the same seed, so
an agent's interval depends only on its own scores, the statistic, ``reps`` and ``seed``,
never on which other agents are in the mapping.

:func:`compare_cells` is separate: a Welch t interval for the difference of two means of
per-seed values (one cell of two result directories), not a bootstrap.

Verdicts of one agent against another over a family of points (``docs/protocol.md``):
:func:`difference_test` (Welch or paired t test), :func:`holm` (Holm's step-down correction,
with the confidence level of each hypothesis' compatible interval), :func:`tost` (two
one-sided tests of equivalence within a margin), :func:`verdict` (win / loss from a corrected
interval, equivalent from a corrected TOST, else inconclusive) and :func:`compare_family`,
which applies them to every point of a family.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _scipy_stats

Statistic = Callable[[np.ndarray], Any]
"""An aggregate: ``[..., runs, tasks]`` array -> ``[...]`` array (a float for a matrix)."""

# Upper bound on the elements of one batch of resampled data (about 32 MiB of float64):
# replicates are drawn in as few batches as fit under it.
_MAX_BATCH_ELEMENTS = 1 << 22


class Interval(NamedTuple):
    """A point estimate with the two ends of its confidence interval.

    Floats for a scalar statistic; arrays of one shape for a vector-valued one (a
    performance profile over taus, a sample-efficiency curve over x points).
    """

    point: Any
    low: Any
    high: Any


# ----------------------------------------------------------------------------- validation


def _check_scores(
    scores: ArrayLike, name: str, *, rank: int | None = 2, min_rank: int | None = None
) -> np.ndarray:
    """Float array of the given rank (or at least ``min_rank``), non-empty and finite."""
    try:
        x = np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a numeric array; got {scores!r:.80}") from error
    if rank is not None and x.ndim != rank:
        axes = "[runs, tasks]" if rank == 2 else "[runs, tasks, points]"
        raise ValueError(f"{name} must be a {rank}-D {axes} array; got shape {x.shape}")
    if min_rank is not None and x.ndim < min_rank:
        raise ValueError(
            f"{name} must have at least {min_rank} axes [..., runs, tasks]; got shape {x.shape}"
        )
    if x.size == 0:
        raise ValueError(f"{name} must not be empty (every axis >= 1); got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite (missing runs are not allowed: build complete matrices, "
            f"e.g. with score_matrix); got {int(bad.sum())} non-finite of {x.size} entries, "
            f"the first at index {first} (value {x[first]}), shape {x.shape}"
        )
    return x


def _check_reps(reps: int) -> int:
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"reps must be an integer >= 1; got {reps!r}")
    return int(reps)


def _check_confidence(confidence: float) -> float:
    try:
        c = float(confidence)
    except (TypeError, ValueError) as error:
        raise ValueError(f"confidence must be a number in (0, 1); got {confidence!r}") from error
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must be in (0, 1) (e.g. 0.95); got {confidence!r}")
    return c


def _check_taus(taus: ArrayLike) -> np.ndarray:
    t = np.asarray(taus, dtype=float)
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
        raise ValueError(
            f"taus must be a non-empty 1-D array of finite thresholds; got shape {t.shape}"
            + ("" if t.size == 0 or np.isfinite(t).all() else " with non-finite values")
        )
    return t


def _check_agents(arrays: Mapping[str, ArrayLike], name: str, rank: int) -> dict[str, np.ndarray]:
    """Validated arrays per agent, all with the same number of tasks (axis 1)."""
    if not isinstance(arrays, Mapping):
        raise ValueError(f"{name} must be a mapping agent -> array; got {type(arrays).__name__}")
    if not arrays:
        raise ValueError(f"{name} must name at least one agent; got an empty mapping")
    checked = {
        agent: _check_scores(a, f"{name}[{agent!r}]", rank=rank) for agent, a in arrays.items()
    }
    first, tasks = next((agent, a.shape[1]) for agent, a in checked.items())
    for agent, a in checked.items():
        if a.shape[1] != tasks:
            raise ValueError(
                f"{name}[{agent!r}] has {a.shape[1]} tasks (shape {a.shape}) but "
                f"{name}[{first!r}] has {tasks}; every agent needs the same tasks, as columns "
                f"in the same order"
            )
    return checked


# ----------------------------------------------------------------------------- matrices


def score_matrix(
    scores: Mapping[str, Sequence[float]], runs: int | str = "equal", *, name: str = "scores"
) -> tuple[np.ndarray, list[str]]:
    """A ``[runs, tasks]`` score matrix from per-task lists of per-seed values.

    Args:
        scores: Task -> its per-seed values, in seed order; columns follow the mapping's order.
        runs: How many runs to keep per task. ``"equal"``: every task must have the same
            number of values, all kept. ``"min"``: keep the first ``k`` values of every task,
            ``k`` the smallest count. An int ``k``: keep the first ``k`` values of every task,
            each of which must have at least ``k``.
        name: What to call ``scores`` in error messages (e.g. the agent).

    Returns:
        ``(matrix, tasks)``: the ``[runs, tasks]`` float matrix and the task names (column
        order).

    Raises:
        ValueError: No tasks, a task with no values, unequal counts with ``runs="equal"``, a
            task with fewer than ``runs`` values, a bad ``runs``, or a non-finite / missing
            (None) value among the kept ones.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError(
            f"{name} must be a non-empty mapping task -> per-seed values; got {scores!r:.80}"
        )
    counts = {task: len(values) for task, values in scores.items()}
    if min(counts.values()) == 0:
        empty = [t for t, n in counts.items() if n == 0]
        raise ValueError(f"{name}: every task needs at least one value; none for {empty}")
    if isinstance(runs, str) and runs == "equal":
        if len(set(counts.values())) > 1:
            raise ValueError(
                f"{name}: tasks have unequal numbers of runs {counts}; pass runs='min' (or an "
                f"int) to keep the first runs of every task"
            )
        keep = next(iter(counts.values()))
    elif isinstance(runs, str) and runs == "min":
        keep = min(counts.values())
    elif isinstance(runs, (int, np.integer)) and not isinstance(runs, bool) and runs >= 1:
        keep = int(runs)
        short = {t: n for t, n in counts.items() if n < keep}
        if short:
            raise ValueError(f"{name}: runs={keep} but these tasks have fewer values: {short}")
    else:
        raise ValueError(f"runs must be 'equal', 'min' or an integer >= 1; got {runs!r}")
    columns = []
    for task, values in scores.items():
        kept = list(values)[:keep]
        if any(v is None for v in kept):
            raise ValueError(f"{name}[{task!r}] has a missing (None) value among {kept}")
        columns.append(np.asarray(kept, dtype=float))
    matrix = _check_scores(np.stack(columns, axis=1), name)
    return matrix, list(scores)


def score_matrices(
    scores: Mapping[str, Mapping[str, Sequence[float]]], runs: int | str = "equal"
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Score matrices of several agents over the same tasks, columns in one order.

    Args:
        scores: Agent -> task -> per-seed values. Every agent must have the same set of
            tasks; columns follow the first agent's task order.
        runs: As in :func:`score_matrix`, applied to each agent separately (agents may keep
            different numbers of runs).

    Returns:
        ``(matrices, tasks)``: agent -> ``[runs, tasks]`` matrix, and the task names.

    Raises:
        ValueError: No agents, agents with different task sets, or any error of
            :func:`score_matrix`.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty mapping agent -> task -> values")
    first = next(iter(scores))
    tasks = list(scores[first])
    matrices = {}
    for agent, per_task in scores.items():
        if set(per_task) != set(tasks):
            raise ValueError(
                f"scores[{agent!r}] has tasks {sorted(map(str, per_task))} but "
                f"scores[{first!r}] has {sorted(map(str, tasks))}; every agent needs the "
                f"same tasks"
            )
        matrices[agent], _ = score_matrix(
            {t: per_task[t] for t in tasks}, runs, name=f"scores[{agent!r}]"
        )
    return matrices, tasks


# ----------------------------------------------------------------------------- aggregates


def _result(out: np.ndarray) -> Any:
    return float(out) if np.ndim(out) == 0 else out


def iqm(scores: ArrayLike) -> Any:
    """Interquartile mean of all runs x tasks scores.

    Drops the ``floor(0.25 n)`` lowest and highest of the ``n = runs * tasks`` scores and
    averages the rest (``scipy.stats.trim_mean(scores.flatten(), 0.25)``, as rliable).

    Args:
        scores: ``[runs, tasks]`` matrix, or a batch ``[..., runs, tasks]``.

    Returns:
        A float for a matrix; an array of shape ``[...]`` for a batch.
    """
    x = _check_scores(scores, "scores", rank=None, min_rank=2)
    return _result(_scipy_stats.trim_mean(x.reshape(*x.shape[:-2], -1), 0.25, axis=-1))


def mean(scores: ArrayLike) -> Any:
    """Mean of all runs x tasks scores.

    Args:
        scores: ``[runs, tasks]`` matrix, or a batch ``[..., runs, tasks]``.

    Returns:
        A float for a matrix; an array of shape ``[...]`` for a batch.
    """
    x = _check_scores(scores, "scores", rank=None, min_rank=2)
    return _result(x.mean(axis=(-2, -1)))


def median(scores: ArrayLike) -> Any:
    """Median over tasks of the per-task mean score (rliable's aggregate median).

    Args:
        scores: ``[runs, tasks]`` matrix, or a batch ``[..., runs, tasks]``.

    Returns:
        A float for a matrix; an array of shape ``[...]`` for a batch.
    """
    x = _check_scores(scores, "scores", rank=None, min_rank=2)
    return _result(np.median(x.mean(axis=-2), axis=-1))


def optimality_gap(scores: ArrayLike, gamma: float = 1.0) -> Any:
    """How far scores fall short of ``gamma``: ``gamma - mean(min(score, gamma))``.

    Lower is better; scores above ``gamma`` earn nothing extra. Use
    ``functools.partial(optimality_gap, gamma=...)`` as a bootstrap statistic.

    Args:
        scores: ``[runs, tasks]`` matrix, or a batch ``[..., runs, tasks]``.
        gamma: The target normalized score (1 = e.g. the reference level).

    Returns:
        A float for a matrix; an array of shape ``[...]`` for a batch.
    """
    x = _check_scores(scores, "scores", rank=None, min_rank=2)
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be finite; got {gamma!r}")
    return _result(gamma - np.minimum(x, gamma).mean(axis=(-2, -1)))


AGGREGATES: dict[str, Statistic] = {
    "IQM": iqm,
    "Mean": mean,
    "Median": median,
    "Optimality gap": optimality_gap,
}
"""The four aggregates of the protocol by display name (optimality gap: lower is better)."""


# ----------------------------------------------------------------------------- bootstrap


def resample_indices(rng: np.random.Generator, reps: int, runs: int, tasks: int) -> np.ndarray:
    """Run indices of a batch of stratified bootstrap resamples.

    Args:
        rng: Source of randomness.
        reps: Number of resamples.
        runs: Runs per task.
        tasks: Number of tasks.

    Returns:
        Integer array ``[reps, runs, tasks]``: entry ``[r, i, j]`` is the run of task ``j``
        placed at row ``i`` of resample ``r``, drawn uniformly with replacement, independently
        for every ``(r, i, j)``; a task's column only ever receives that task's runs.
    """
    return rng.integers(0, runs, size=(reps, runs, tasks))


def stratified_resample(scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Apply :func:`resample_indices` to scores.

    Args:
        scores: ``[runs, tasks]`` or ``[runs, tasks, points]`` array (a points axis, e.g. of
            learning curves, travels with its run).
        indices: ``[reps, runs, tasks]`` run indices.

    Returns:
        ``[reps, runs, tasks]`` (or ``[reps, runs, tasks, points]``):
        ``out[r, i, j] = scores[indices[r, i, j], j]``.
    """
    return scores[indices, np.arange(scores.shape[1])]


def _apply(statistic: Statistic, batch: np.ndarray, vectorized: bool) -> np.ndarray:
    """The statistic of every ``[runs, tasks]`` matrix of ``batch`` ``[..., runs, tasks]``."""
    lead = batch.shape[:-2]
    if vectorized:
        out = np.asarray(statistic(batch), dtype=float)
        if out.shape[: len(lead)] != lead:
            raise ValueError(
                f"statistic returned shape {out.shape} for a batch of shape {batch.shape}; a "
                f"vectorized statistic must reduce the last two axes [..., runs, tasks] to "
                f"[...] = {lead} (pass vectorized=False for one that takes a single matrix)"
            )
        return out
    flat = batch.reshape(-1, *batch.shape[-2:])
    outs = [np.asarray(statistic(m), dtype=float) for m in flat]
    return np.stack(outs).reshape(*lead, *outs[0].shape)


def _replicates(
    arrays: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    reps: int,
    rngs: Sequence[np.random.Generator],
    work_per_rep: int,
) -> np.ndarray:
    """``reps`` replicates of ``statistic(*resampled arrays)``, drawn in memory-bound batches.

    Each array ``[runs, tasks, ...]`` is resampled within tasks with indices from its own
    generator (so the replicates do not depend on the batch size); ``statistic`` maps the
    resampled batches ``[k, runs, tasks, ...]`` to ``[k, ...]``.
    """
    batch = max(1, _MAX_BATCH_ELEMENTS // max(1, work_per_rep))
    outs = []
    for start in range(0, reps, batch):
        k = min(batch, reps - start)
        resampled = [
            stratified_resample(a, resample_indices(rng, k, a.shape[0], a.shape[1]))
            for a, rng in zip(arrays, rngs, strict=True)
        ]
        outs.append(np.asarray(statistic(*resampled), dtype=float))
    return np.concatenate(outs)


def _percentile_interval(point: Any, replicates: np.ndarray, confidence: float) -> Interval:
    low, high = np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return Interval(_result(np.asarray(point)), _result(low), _result(high))


def _rngs(seed: int | None, count: int = 1) -> list[np.random.Generator]:
    """``[default_rng(seed)]``, or ``count`` independent generators spawned from the seed."""
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}")
    if count == 1:
        return [np.random.default_rng(seed)]
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


def stratified_bootstrap_ci(
    matrices: Mapping[str, ArrayLike],
    statistic: Statistic,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    *,
    vectorized: bool = True,
) -> dict[str, Interval]:
    """Aggregate of each agent with its stratified-bootstrap percentile interval.

    Args:
        matrices: Agent -> ``[runs, tasks]`` score matrix (complete and finite; agents may
            differ in runs but not in tasks).
        statistic: Aggregate, e.g. :func:`iqm`. Vectorized (default): takes ``[..., runs,
            tasks]`` and returns ``[...]``, as every aggregate of this module. With
            ``vectorized=False`` it takes one ``[runs, tasks]`` matrix and returns a float
            (called once per replicate: slower).
        reps: Bootstrap replicates (>= 1).
        confidence: Two-sided level, in (0, 1).
        seed: Seed of ``numpy.random.default_rng``, fresh per agent (None: unseeded).
        vectorized: Whether ``statistic`` takes batches.

    Returns:
        Agent -> ``Interval(point, low, high)``: the statistic of the agent's matrix and the
        percentile interval of ``reps`` replicates, each resampling every task's runs with
        replacement, independently per task.

    Raises:
        ValueError: Bad matrices (not 2-D, empty, non-finite, tasks differ between agents),
            ``reps`` < 1, ``confidence`` outside (0, 1), or a statistic that does not reduce
            a batch as declared.
    """
    checked = _check_agents(matrices, "matrices", 2)
    reps, confidence = _check_reps(reps), _check_confidence(confidence)
    out = {}
    for agent, x in checked.items():
        point = _apply(statistic, x[None], vectorized)[0]
        replicates = _replicates(
            [x], lambda b: _apply(statistic, b, vectorized), reps, _rngs(seed), x.size
        )
        out[agent] = _percentile_interval(point, replicates, confidence)
    return out


# ----------------------------------------------------------------------------- improvement


def _poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean over tasks of P(X > Y) + P(X = Y) / 2; x ``[..., n, tasks]``, y ``[..., m, tasks]``."""
    a, b = x[..., :, None, :], y[..., None, :, :]
    wins = (a > b).mean(axis=(-3, -2)) + 0.5 * (a == b).mean(axis=(-3, -2))
    return wins.mean(axis=-1)


def _check_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = _check_scores(x, "x"), _check_scores(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same tasks (axis 1); got x of shape {x.shape} and y of "
            f"shape {y.shape}"
        )
    return x, y


def probability_of_improvement(x: ArrayLike, y: ArrayLike) -> float:
    """Probability that agent X beats agent Y on a random task, averaged over tasks.

    For each task, ``P(X > Y) = U / (n m)`` with ``U`` the Mann-Whitney statistic of X's
    ``n`` runs against Y's ``m``: the fraction of the ``n m`` pairs (X run, Y run) that X
    wins, a tie counting 1/2. The result is the mean over tasks.

    Args:
        x: ``[n, tasks]`` scores of agent X.
        y: ``[m, tasks]`` scores of agent Y (same tasks; ``m`` may differ from ``n``).

    Returns:
        A probability in [0, 1]; ``poi(x, y) + poi(y, x) == 1``.

    Raises:
        ValueError: Non-2-D, empty or non-finite input, or different numbers of tasks.
    """
    x, y = _check_pair(x, y)
    return float(_poi(x, y))


def probability_of_improvement_ci(
    x: ArrayLike,
    y: ArrayLike,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> Interval:
    """:func:`probability_of_improvement` with a stratified-bootstrap percentile interval.

    Every replicate resamples, within each task, X's runs and (independently) Y's runs with
    replacement; X's and Y's indices come from two generators spawned from ``seed``
    (``numpy.random.SeedSequence(seed).spawn(2)``).

    Args:
        x: ``[n, tasks]`` scores of agent X.
        y: ``[m, tasks]`` scores of agent Y.
        reps: Bootstrap replicates (>= 1).
        confidence: Two-sided level, in (0, 1).
        seed: Seed of ``numpy.random.default_rng`` (None: unseeded).

    Returns:
        ``Interval(point, low, high)`` of floats.

    Raises:
        ValueError: As :func:`probability_of_improvement`, ``reps`` < 1 or ``confidence``
            outside (0, 1).
    """
    x, y = _check_pair(x, y)
    reps, confidence = _check_reps(reps), _check_confidence(confidence)
    work = x.shape[0] * y.shape[0] * x.shape[1] + x.size + y.size
    replicates = _replicates([x, y], _poi, reps, _rngs(seed, 2), work)
    return _percentile_interval(_poi(x, y), replicates, confidence)


# ----------------------------------------------------------------------------- profiles


def _profile(x: np.ndarray, taus: np.ndarray) -> np.ndarray:
    return (x[..., None] > taus).mean(axis=(-3, -2))


def performance_profile(scores: ArrayLike, taus: ArrayLike) -> np.ndarray:
    """Run-score distribution: the fraction of all runs x tasks scores above each threshold.

    Args:
        scores: ``[runs, tasks]`` matrix, or a batch ``[..., runs, tasks]``.
        taus: ``[k]`` thresholds.

    Returns:
        ``[k]`` (or ``[..., k]``) array: entry ``i`` is the fraction of scores ``> taus[i]``
        (strictly).

    Raises:
        ValueError: Fewer than 2 axes, empty or non-finite scores, or taus not a non-empty
            finite 1-D array.
    """
    x = _check_scores(scores, "scores", rank=None, min_rank=2)
    return _profile(x, _check_taus(taus))


def performance_profile_ci(
    matrices: Mapping[str, ArrayLike],
    taus: ArrayLike,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> dict[str, Interval]:
    """Each agent's performance profile with pointwise stratified-bootstrap bands.

    Args:
        matrices: Agent -> ``[runs, tasks]`` score matrix (same tasks for every agent).
        taus: ``[k]`` thresholds.
        reps: Bootstrap replicates (>= 1).
        confidence: Two-sided level of each pointwise band, in (0, 1).
        seed: Seed of ``numpy.random.default_rng``, fresh per agent (None: unseeded).

    Returns:
        Agent -> ``Interval(point, low, high)`` of ``[k]`` arrays.

    Raises:
        ValueError: As :func:`stratified_bootstrap_ci` and :func:`performance_profile`.
    """
    checked = _check_agents(matrices, "matrices", 2)
    t = _check_taus(taus)
    reps, confidence = _check_reps(reps), _check_confidence(confidence)
    out = {}
    for agent, x in checked.items():
        replicates = _replicates(
            [x], lambda b: _profile(b, t), reps, _rngs(seed), x.size * (t.size + 1)
        )
        out[agent] = _percentile_interval(_profile(x, t), replicates, confidence)
    return out


# ----------------------------------------------------------------------------- curves


def sample_efficiency_curve(
    curves: Mapping[str, ArrayLike],
    statistic: Statistic = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    *,
    vectorized: bool = True,
) -> dict[str, Interval]:
    """The aggregate at every x point of learning curves, with stratified-bootstrap bands.

    A replicate resamples whole runs (a run's curve stays together) within each task, then
    aggregates each x point's ``[runs, tasks]`` matrix.

    Args:
        curves: Agent -> ``[runs, tasks, points]`` scores at shared x points (e.g. rollouts
            of the evaluations; interpolate runs onto one grid first). Same tasks for every
            agent; numbers of runs and points may differ between agents.
        statistic: Aggregate, as in :func:`stratified_bootstrap_ci` (default :func:`iqm`).
        reps: Bootstrap replicates (>= 1).
        confidence: Two-sided level of each pointwise band, in (0, 1).
        seed: Seed of ``numpy.random.default_rng``, fresh per agent (None: unseeded).
        vectorized: Whether ``statistic`` takes batches ``[..., runs, tasks]``.

    Returns:
        Agent -> ``Interval(point, low, high)`` of ``[points]`` arrays.

    Raises:
        ValueError: Curves not 3-D, empty, non-finite or with different tasks, ``reps`` < 1,
            ``confidence`` outside (0, 1), or a statistic that does not reduce as declared.
    """
    checked = _check_agents(curves, "curves", 3)
    reps, confidence = _check_reps(reps), _check_confidence(confidence)
    out = {}
    for agent, c in checked.items():
        point = _apply(statistic, np.moveaxis(c, -1, 0), vectorized)
        replicates = _replicates(
            [c],
            lambda b: _apply(statistic, np.moveaxis(b, -1, 1), vectorized),
            reps,
            _rngs(seed),
            c.size,
        )
        out[agent] = _percentile_interval(point, replicates, confidence)
    return out


# ----------------------------------------------------------------------------- cells


def compare_cells(a_values: ArrayLike, b_values: ArrayLike, confidence: float = 0.95) -> Interval:
    """Difference of two means of per-seed values with a Welch t interval.

    For comparing one cell (agent, environment, sweep point) of two result directories:
    ``diff = mean(a) - mean(b)``, standard error ``se = sqrt(s_a^2 / n_a + s_b^2 / n_b)``
    (sample variances), Welch-Satterthwaite degrees of freedom
    ``df = se^4 / ((s_a^2 / n_a)^2 / (n_a - 1) + (s_b^2 / n_b)^2 / (n_b - 1))``, and
    ``diff -/+ t_{(1 + c) / 2, df} se``, as ``scipy.stats.ttest_ind(a, b,
    equal_var=False).confidence_interval(c)``.

    Args:
        a_values: ``[n_a]`` per-seed values of cell A.
        b_values: ``[n_b]`` per-seed values of cell B.
        confidence: Two-sided level, in (0, 1).

    Returns:
        ``Interval(diff, low, high)`` of floats. ``low`` and ``high`` are nan when either
        side has fewer than 2 values (``diff`` too when either has none); when both sides
        have zero variance the interval collapses to ``(diff, diff)``.

    Raises:
        ValueError: Input not 1-D, a non-finite value, or ``confidence`` outside (0, 1).
    """
    confidence = _check_confidence(confidence)
    sides = []
    for name, values in (("a_values", a_values), ("b_values", b_values)):
        v = np.asarray(values, dtype=float)
        if v.ndim != 1:
            raise ValueError(
                f"{name} must be a 1-D sequence of per-seed values; got shape {v.shape}"
            )
        if not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite (drop failed runs explicitly); got {v}")
        sides.append(v)
    a, b = sides
    nan = float("nan")
    if a.size == 0 or b.size == 0:
        return Interval(nan, nan, nan)
    diff = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return Interval(diff, nan, nan)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Interval(diff, diff, diff)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Interval(diff, diff - half, diff + half)


# ----------------------------------------------------------------------------- verdicts

VERDICTS = ("win", "loss", "equivalent", "inconclusive")
"""What a comparison of agent A with agent B can conclude (``docs/protocol.md``)."""


class DifferenceTest(NamedTuple):
    """A t test of the difference of two means (Welch) or the mean of paired differences.

    Attributes:
        diff: ``mean(a) - mean(b)`` (unpaired) or ``mean(a - b)`` (paired).
        se: Its standard error (0 when every value agrees; NaN with too few values).
        df: Degrees of freedom of the t distribution (Welch-Satterthwaite, or ``n - 1``).
        p: Two-sided p-value of ``diff = 0`` (NaN when ``se`` is NaN; 1 or 0 when ``se`` is 0
            and ``diff`` is or is not 0).
    """

    diff: float
    se: float
    df: float
    p: float


def _per_seed(values: ArrayLike, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of per-seed values; got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite (drop failed runs explicitly); got {v}")
    return v


def difference_test(
    a_values: ArrayLike, b_values: ArrayLike, paired: bool = False
) -> DifferenceTest:
    """Welch's t test of ``mean(a) - mean(b)``, or the one-sample t test of paired differences.

    Unpaired: ``se = sqrt(s_a^2 / n_a + s_b^2 / n_b)`` and Welch-Satterthwaite ``df`` (as
    :func:`compare_cells` and ``scipy.stats.ttest_ind(a, b, equal_var=False)``). Paired (the
    same seeds on both sides, e.g. two agents sharing data and initialization per seed):
    ``d = a - b``, ``se = s_d / sqrt(n)``, ``df = n - 1`` (``scipy.stats.ttest_rel``).

    Args:
        a_values: ``[n_a]`` per-seed values of A.
        b_values: ``[n_b]`` per-seed values of B (``n_b = n_a`` when paired, in seed order).
        paired: Whether the values are paired by position.

    Returns:
        The :class:`DifferenceTest`; ``se``, ``df`` and ``p`` are NaN when a side has fewer
        than 2 values (and ``diff`` too when a side has none).

    Raises:
        ValueError: Input not 1-D or not finite, or paired sides of different lengths.
    """
    a, b = _per_seed(a_values, "a_values"), _per_seed(b_values, "b_values")
    nan = float("nan")
    if paired:
        if a.size != b.size:
            raise ValueError(
                f"paired values need the same number of seeds on both sides; got {a.size} "
                f"and {b.size}"
            )
        d = a - b
        if d.size == 0:
            return DifferenceTest(nan, nan, nan, nan)
        diff = float(d.mean())
        if d.size < 2:
            return DifferenceTest(diff, nan, nan, nan)
        se, df = float(d.std(ddof=1)) / math.sqrt(d.size), float(d.size - 1)
    else:
        if a.size == 0 or b.size == 0:
            return DifferenceTest(nan, nan, nan, nan)
        diff = float(a.mean() - b.mean())
        if a.size < 2 or b.size < 2:
            return DifferenceTest(diff, nan, nan, nan)
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = math.sqrt(va + vb)
        df = (
            float((va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)))
            if se > 0
            else float(a.size + b.size - 2)
        )
    if se == 0.0:
        return DifferenceTest(diff, 0.0, df, 1.0 if diff == 0 else 0.0)
    p = float(2.0 * _scipy_stats.t.sf(abs(diff) / se, df))
    return DifferenceTest(diff, se, df, min(1.0, p))


def t_interval(test: DifferenceTest, confidence: float) -> tuple[float, float]:
    """The two-sided ``confidence`` t interval ``diff -/+ t_{(1 + c) / 2, df} se`` of a test.

    It excludes 0 exactly when ``test.p < 1 - confidence``. NaN ends with too few values;
    ``(diff, diff)`` when ``se`` is 0.
    """
    confidence = _check_confidence(confidence)
    if not math.isfinite(test.se):
        return float("nan"), float("nan")
    if test.se == 0.0:
        return test.diff, test.diff
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, test.df)) * test.se
    return test.diff - half, test.diff + half


def _check_alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError) as error:
        raise ValueError(f"alpha must be a number in (0, 1); got {alpha!r}") from error
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha must be in (0, 1) (e.g. 0.05); got {alpha!r}")
    return a


class Holm(NamedTuple):
    """Holm's step-down correction of a family of p-values (lists in the input's order).

    Attributes:
        adjusted: Holm-adjusted p-values ``max_{j <= rank} min(1, (m - j + 1) p_(j))``;
            NaN where the input is NaN (such hypotheses are not in the family: ``m``
            counts the finite p-values only).
        reject: Whether the hypothesis is rejected at ``alpha`` (``adjusted < alpha``).
        levels: The confidence level of each hypothesis' Holm-compatible interval:
            ``1 - alpha / (m - r + 1)`` with ``r`` its rank, or the rank of the first
            hypothesis not rejected when that comes earlier. A two-sided interval at this
            level excludes 0 exactly when the hypothesis is rejected (NaN for NaN inputs).
    """

    adjusted: list[float]
    reject: list[bool]
    levels: list[float]


def holm(p_values: Sequence[float], alpha: float = 0.05) -> Holm:
    """Holm's (1979) step-down correction, controlling the family-wise error rate at ``alpha``.

    Sort the ``m`` finite p-values ``p_(1) <= ... <= p_(m)``; reject ``H_(1), ..., H_(k)``
    for the largest ``k`` such that ``p_(j) < alpha / (m - j + 1)`` for every ``j <= k``.
    Ties keep their input order.

    Args:
        p_values: One p-value per hypothesis of the family (NaN: not tested, left out).
        alpha: Family-wise error rate, in (0, 1).

    Returns:
        The :class:`Holm` correction.

    Raises:
        ValueError: A p-value outside [0, 1] or ``alpha`` outside (0, 1).
    """
    alpha = _check_alpha(alpha)
    p = [float(v) for v in p_values]
    for i, v in enumerate(p):
        if not math.isnan(v) and not 0.0 <= v <= 1.0:
            raise ValueError(f"p_values[{i}] must be in [0, 1] (or NaN: not tested); got {v}")
    order = sorted((i for i, v in enumerate(p) if not math.isnan(v)), key=lambda i: p[i])
    m = len(order)
    nan = float("nan")
    adjusted, reject, levels = [nan] * len(p), [False] * len(p), [nan] * len(p)
    running, stopped = 0.0, None
    for rank, i in enumerate(order, start=1):
        running = max(running, min(1.0, (m - rank + 1) * p[i]))
        adjusted[i] = running
        if stopped is None and not p[i] < alpha / (m - rank + 1):
            stopped = rank
        reject[i] = stopped is None
        levels[i] = 1.0 - alpha / (m - (rank if stopped is None else stopped) + 1)
    return Holm(adjusted, reject, levels)


class Equivalence(NamedTuple):
    """Two one-sided tests (TOST) of ``|diff| < margin``.

    Attributes:
        diff: The difference (as :func:`difference_test`).
        low: Lower end of the ``1 - 2 alpha`` interval (equivalent at ``alpha`` exactly when
            it lies inside ``(-margin, margin)``).
        high: Its upper end.
        p: ``max(p_lower, p_upper)``: ``p_lower`` of ``H0: diff <= -margin`` and ``p_upper``
            of ``H0: diff >= margin`` (NaN with too few values).
        margin: The equivalence margin (> 0).
    """

    diff: float
    low: float
    high: float
    p: float
    margin: float


def tost(
    a_values: ArrayLike,
    b_values: ArrayLike,
    margin: float,
    alpha: float = 0.05,
    paired: bool = False,
) -> Equivalence:
    """Schuirmann's two one-sided t tests: is ``mean(a) - mean(b)`` within ``+/- margin``?

    With the standard error and degrees of freedom of :func:`difference_test` (Welch, or
    paired differences): ``p_lower = P(T > (diff + margin) / se)``, ``p_upper =
    P(T < (diff - margin) / se)``; equivalence at ``alpha`` when ``max(p_lower, p_upper) <
    alpha``, i.e. when the ``1 - 2 alpha`` interval lies within ``(-margin, margin)``.

    Args:
        a_values: ``[n_a]`` per-seed values of A.
        b_values: ``[n_b]`` per-seed values of B.
        margin: Equivalence margin in the metric's units, > 0.
        alpha: Level of each one-sided test, in (0, 0.5).
        paired: As :func:`difference_test`.

    Returns:
        The :class:`Equivalence` (``p`` NaN when a side has fewer than 2 values; with zero
        standard error ``p`` is 0 inside the margin and 1 outside).

    Raises:
        ValueError: A margin that is not a positive finite number, ``alpha`` outside
            (0, 0.5), or bad values (as :func:`difference_test`).
    """
    alpha = _check_alpha(alpha)
    if not alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) for two one-sided tests; got {alpha!r}")
    try:
        delta = float(margin)
    except (TypeError, ValueError) as error:
        raise ValueError(f"margin must be a positive number; got {margin!r}") from error
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"margin must be a positive finite number; got {margin!r}")
    test = difference_test(a_values, b_values, paired)
    low, high = t_interval(test, 1.0 - 2.0 * alpha)
    if not math.isfinite(test.se):
        return Equivalence(test.diff, low, high, float("nan"), delta)
    if test.se == 0.0:
        return Equivalence(test.diff, low, high, 0.0 if abs(test.diff) < delta else 1.0, delta)
    p_lower = float(_scipy_stats.t.sf((test.diff + delta) / test.se, test.df))
    p_upper = float(_scipy_stats.t.cdf((test.diff - delta) / test.se, test.df))
    return Equivalence(test.diff, low, high, max(p_lower, p_upper), delta)


def verdict(low: float, high: float, equivalent: bool, higher_is_better: bool = True) -> str:
    """The verdict of A against B from a corrected interval of ``A - B`` and an equivalence test.

    ``win`` (A better) or ``loss`` when the (Holm-corrected) interval excludes 0, in the
    metric's direction; otherwise ``equivalent`` when the (corrected) TOST says so; otherwise
    ``inconclusive``. A difference both significant and within the margin is a win or loss:
    its direction is established, however small (the table shows its size).

    Args:
        low: Lower end of the corrected interval of ``A - B`` (NaN: no interval).
        high: Upper end.
        equivalent: Whether the corrected equivalence test concluded ``|A - B| < margin``.
        higher_is_better: The metric's direction.

    Returns:
        One of :data:`VERDICTS`.
    """
    if math.isfinite(low) and low > 0:
        return "win" if higher_is_better else "loss"
    if math.isfinite(high) and high < 0:
        return "loss" if higher_is_better else "win"
    return "equivalent" if equivalent else "inconclusive"


class Comparison(NamedTuple):
    """One hypothesis of a comparison family (:func:`compare_family`).

    Attributes:
        diff: ``A - B`` (means, or mean of paired differences).
        low: Lower end of the Holm-compatible interval (level ``level``).
        high: Upper end.
        level: Confidence level of that interval (:class:`Holm`).
        p: Raw two-sided p-value of ``diff = 0``.
        p_holm: Holm-adjusted p-value within the family.
        margin: Equivalence margin (NaN: no equivalence test).
        p_tost: Raw TOST p-value (NaN without a margin).
        p_tost_holm: Holm-adjusted TOST p-value within the family's equivalence tests.
        verdict: One of :data:`VERDICTS`, or ``""`` when the hypothesis could not be tested
            (too few values).
    """

    diff: float
    low: float
    high: float
    level: float
    p: float
    p_holm: float
    margin: float
    p_tost: float
    p_tost_holm: float
    verdict: str


def compare_family(
    pairs: Sequence[tuple[ArrayLike, ArrayLike]],
    margins: Sequence[float] | None = None,
    alpha: float = 0.05,
    paired: bool = False,
    higher_is_better: bool = True,
) -> list[Comparison]:
    """Holm-corrected verdicts of A against B over a family of points.

    Each pair is A's and B's per-seed values at one point. The difference tests
    (:func:`difference_test`, two-sided) are Holm-corrected together at ``alpha``, and so,
    separately, are the equivalence tests (:func:`tost`, each at its own margin); a point's
    verdict (:func:`verdict`) comes from its Holm-compatible interval and its corrected TOST.

    Args:
        pairs: ``[(a_values, b_values), ...]``, one per point.
        margins: One equivalence margin per point (NaN or None: that point has no
            equivalence test and can only be a win, a loss or inconclusive); None: none.
        alpha: Family-wise error rate of each of the two corrections, in (0, 0.5).
        paired: As :func:`difference_test`.
        higher_is_better: The metric's direction.

    Returns:
        One :class:`Comparison` per pair, in order.

    Raises:
        ValueError: ``margins`` of another length, or any error of :func:`difference_test`
            or :func:`tost`.
    """
    alpha = _check_alpha(alpha)
    if margins is None:
        margins = [float("nan")] * len(pairs)
    if len(margins) != len(pairs):
        raise ValueError(f"margins must have one value per pair ({len(pairs)}); got {len(margins)}")
    tests = [difference_test(a, b, paired) for a, b in pairs]
    nan = float("nan")
    equivalences = []
    for (a, b), margin in zip(pairs, margins, strict=True):
        m = nan if margin is None else float(margin)
        equivalences.append(tost(a, b, m, alpha, paired) if math.isfinite(m) else None)
    corrected = holm([t.p for t in tests], alpha)
    corrected_tost = holm([nan if e is None else e.p for e in equivalences], alpha)
    out = []
    for i, test in enumerate(tests):
        level = corrected.levels[i]
        low, high = t_interval(test, level) if math.isfinite(level) else (nan, nan)
        e = equivalences[i]
        tested = math.isfinite(test.p)
        out.append(
            Comparison(
                diff=test.diff,
                low=low,
                high=high,
                level=level,
                p=test.p,
                p_holm=corrected.adjusted[i],
                margin=nan if e is None else e.margin,
                p_tost=nan if e is None else e.p,
                p_tost_holm=corrected_tost.adjusted[i],
                verdict=verdict(low, high, corrected_tost.reject[i], higher_is_better)
                if tested
                else "",
            )
        )
    return out
