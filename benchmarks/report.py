"""Report of a suite's results: markdown tables with confidence intervals, and plots.

``python -m benchmarks.report RESULTS_DIR`` (also run at the end of every sweep) reads
``RESULTS_DIR/results.jsonl`` and writes, next to the runs:

- ``report.md``: per experiment, one table with, for every environment (and sweep point)
  and agent, the learning rate chosen on validation runs, the seeds (failed runs counted),
  the mean and 95% confidence interval (t-distribution over seeds) of each final test
  metric, the normalized score, the rollouts needed to reach a target and their ratio to the
  best baseline; beside the agents, the reference levels of the environment (uniform random
  policy, Bayes point predictor f(x), Bayes sampler of p(y|x)). Then the aggregate over tasks
  (IQM and friends with stratified-bootstrap intervals, probability of improvement,
  performance profile and sample-efficiency curve, after Agarwal et al. 2021), the
  learning-rate selection, failed runs, the plots, and the commands that produced it all.
- ``plots/curves_<experiment>.png``: learning curves (mean over seeds with a 95% band clipped
  to the metric's range), one panel per environment, sweep point and metric, 4 panels a row
  and 4 rows a figure (more go to ``curves_<experiment>.2.png``, ...); under early stopping
  a star marks the selected checkpoint, where the table's value comes from.
- ``plots/sweep_<experiment>_<key>.png``: final metric against a swept value (``snr`` in
  the low-SNR suite, ``group_size`` N in the classification suite), one line per agent.
- ``plots/aggregate_intervals.png``, ``plots/aggregate_improvement.png``,
  ``plots/aggregate_profile.png`` and ``plots/aggregate_sample_efficiency.png``: the IQM,
  median, mean and optimality gap with their intervals, the probabilities of improvement
  (``benchmarks.plots``), the performance profile and the sample-efficiency curve of the
  aggregate (two tasks or more).

``python -m benchmarks.report A B`` compares two results directories cell by cell (Welch
95% interval of each difference of means, B - A) and prints the comparison
(``--out FILE`` also writes it).

Diverged seeds: a final row whose value of a metric is NaN or infinite counts as diverged
for that metric. Means and intervals use the finite seeds only, and the cell says so
(``-1.23 ± 0.05 (2/3 seeds, 1 diverged)``); a cell with a diverged seed is never bold.
Failed runs show in the seeds column (``3/5, 2 failed``).

Targets: for each environment (and sweep point), take the best baseline (the ``baseline``
agent, i.e. REINFORCE, RLOO, GRPO, Dr. GRPO or SB3, with the best final mean of the
selection metric); target = its initial value b0 + ``target_fraction`` (default 0.9) x
(its final mean - b0). An agent's rollouts-to-target is the first evaluation at which its
mean curve over seeds reaches the target; the ratio divides that by the fastest baseline's,
so < 1 means fewer rollouts than every baseline.

Normalized score of a metric value x: (x - random) / (bayes - random), with ``random`` the
uniform policy's level and ``bayes`` the better of the two Bayes references for that metric
(:func:`normalized_score`): 0 is the random policy, 1 the best Bayes predictor, whatever the
metric's direction.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.cli import Parser, fail
from agents.evaluation import LOWER_IS_BETTER, better
from agents.runs import (
    CorruptFileError,
    LinkError,
    NotRegularFileError,
    atomic_write_text,
    read_json,
    refuse_link,
)
from benchmarks.results import (
    FAILED,
    OK,
    RESULTS_FILE,
    CorruptRowsError,
    latest_rows,
    packed_path,
    read_rows,
    slug,
)
from maxrl_envs.references import as_float, best_reference, normalized_score

REPORT_FILE = "report.md"
#: The suite's identity, written by the runner (``benchmarks.run.SUITE_FILE``).
SUITE_FILE = "suite.json"
PLOTS_DIR = "plots"
#: Reference predictors of a row's ``references``, in table order, with their display names.
REFERENCES = {
    "random": "random",
    "bayes_point": "Bayes point f(x)",
    "bayes_sampler": "Bayes sampler p(y|x)",
}
#: Bootstrap replicates and seed of the aggregate's intervals (fixed: the report is
#: deterministic).
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0
#: Most panels a row in every figure; width of one panel and dpi of the PNGs.
MAX_COLUMNS = 3
PANEL_WIDTH = 4.8
PANEL_HEIGHT = 3.4
DPI = 110


def direction(metric: str) -> str:
    """``"lower is better"`` for ``LOWER_IS_BETTER`` metrics, else ``"higher is better"``."""
    return "lower is better" if metric in LOWER_IS_BETTER else "higher is better"


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its t confidence interval (nan for fewer than 2 values).

    Non-finite values are left out; callers that report means say how many
    (:func:`summarize`).

    Args:
        values: Per-seed values.
        confidence: Two-sided confidence level.

    Returns:
        ``(mean, half_width)``: half_width = t_{(1+c)/2, n-1} * s / sqrt(n).
    """
    clean = [v for v in (as_float(v) for v in values) if math.isfinite(v)]
    n = len(clean)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(clean) / n
    if not math.isfinite(mean):  # values near the float maximum: sum them scaled
        mean = math.fsum(v / n for v in clean)
    if n < 2:
        return mean, float("nan")
    from scipy import stats

    try:
        sd = math.sqrt(sum((v - mean) ** 2 for v in clean) / (n - 1))
    except OverflowError:  # e.g. -1e300: square the deviations scaled by the largest
        scale = max(abs(v - mean) for v in clean)
        if not math.isfinite(scale):
            return mean, math.inf
        sd = scale * math.sqrt(math.fsum(((v - mean) / scale) ** 2 for v in clean) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)


@dataclass(frozen=True)
class Summary:
    """Mean and interval of per-seed values, with the diverged (non-finite) ones counted.

    Attributes:
        mean: Mean of the finite values (nan if none).
        half: Half-width of its 95% t interval (nan for fewer than 2 finite values).
        finite: Number of finite values.
        total: Number of values (finite or not).
    """

    mean: float
    half: float
    finite: int
    total: int

    @property
    def diverged(self) -> int:
        """Values that are NaN or infinite."""
        return self.total - self.finite

    def text(self) -> str:
        """``mean ± half``, plus ``(f/n seeds, d diverged)`` when some values diverged."""
        text = _fmt(self.mean, self.half)
        if self.diverged:
            text += f" ({self.finite}/{self.total} seeds, {self.diverged} diverged)"
        return text


def summarize(values: Iterable[Any]) -> Summary:
    """:func:`mean_ci` of the finite values, counting the ones left out."""
    raw = [as_float(v) for v in values]
    finite = [v for v in raw if math.isfinite(v)]
    mean, half = mean_ci(finite)
    return Summary(mean, half, len(finite), len(raw))


def reached(metric: str, value: float, target: float) -> bool:
    """Whether a value meets the target (>= target, or <= for lower-is-better metrics)."""
    return value <= target if metric in LOWER_IS_BETTER else value >= target


def rollouts_to_target(curve: Sequence[Sequence[Any]], metric: str, target: float) -> float | None:
    """First evaluated rollout count at which a curve reaches the target, else None."""
    for step, values in curve:
        value = as_float(values.get(metric))
        if math.isfinite(value) and reached(metric, value, target):
            return float(step)
    return None


# ----------------------------------------------------------------------------- references


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


def _references(row: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """A row's reference levels as floats (empty for rows without ``references``)."""
    refs = row.get("references")
    if not isinstance(refs, Mapping):
        return {}
    return {
        str(name): {str(k): as_float(v) for k, v in levels.items()}
        for name, levels in refs.items()
        if isinstance(levels, Mapping)
    }


# ----------------------------------------------------------------------------- points


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
    rows: list[dict[str, Any]]
    lr: float | None
    failed: list[dict[str, Any]] = field(default_factory=list)
    to_target: float | None = None
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    expected: int | None = None

    def raw(self, metric: str) -> list[float]:
        """Per-seed final values of a metric, non-finite ones included (rows that have it)."""
        return [as_float(r["metrics"][metric]) for r in self.rows if metric in r.get("metrics", {})]

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
        return _point_label(self.env_label, self.sweep)

    @property
    def task(self) -> str:
        """``experiment: label``, the point's name among all tasks of a suite."""
        return f"{self.experiment}: {self.label}"

    def normalized(self, result: AgentResult, metric: str | None = None) -> list[float]:
        """Per-seed normalized scores of an agent's final values (NaN without references)."""
        metric = metric or self.select_metric
        return [normalized_score(metric, v, self.references) for v in result.raw(metric)]


def _point_label(env_label: str, sweep: Mapping[str, Any]) -> str:
    settings = [
        f"{_short(k)}={_fmt_value(v)}" for k, v in sweep.items() if not _in_label(k, v, env_label)
    ]
    return " · ".join([env_label, *settings]) if settings else env_label


def _short(key: str) -> str:
    return {"group_size": "N", "num_groups": "B", "rollouts": "N", "contexts": "B"}.get(key, key)


def _fmt_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _in_label(key: str, value: Any, label: str) -> bool:
    return f"{key}={_fmt_value(value)}" in label.split()


def _compatible(row_sweep: dict[str, Any], point_sweep: dict[str, Any]) -> bool:
    return all(point_sweep.get(k) == v for k, v in row_sweep.items())


#: Run settings a method ignores, by the row's ``method``. The supervised reference fits one
#: label per context (``agents.objectives.Supervised``: one rollout per context whatever N
#: is), so a suite that sweeps ``group_size`` runs the same supervised run at every N: its
#: rows match every N point, and runs that differ only in N are one run (:func:`run_identity`).
IGNORED_SETTINGS: dict[str, tuple[str, ...]] = {
    "supervised": ("group_size",),
    "supervised-ml": ("group_size",),
}


def _ignored(row: Mapping[str, Any]) -> tuple[str, ...]:
    method = row.get("method") or (row.get("config") or {}).get("estimator")
    return IGNORED_SETTINGS.get(str(method), ())


def row_sweep(row: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep values a row's run depends on: its ``sweep`` less ``IGNORED_SETTINGS``."""
    ignored = _ignored(row)
    return {k: v for k, v in (row.get("sweep") or {}).items() if k not in ignored}


def run_identity(row: Mapping[str, Any]) -> str:
    """What makes two rows the same run, whichever sweep points list them.

    A SHA-1 of the agent, environment label, seed, learning rate, :func:`row_sweep` and the
    row's ``config`` less the settings its method ignores (``IGNORED_SETTINGS``): an SB3
    run, which ignores our agents' sweep settings, is one row listed at several points; the
    supervised runs of a ``group_size`` sweep are several rows of one identical run. Rows
    without a ``config`` are identified by their ``run_id``.
    """
    config = row.get("config")
    if not isinstance(config, Mapping):
        return str(row["run_id"])
    ignored = _ignored(row)
    key = {
        "agent": row.get("agent"),
        "env_label": row.get("env_label"),
        "seed": row.get("seed"),
        "lr": row.get("lr"),
        "sweep": row_sweep(row),
        "config": {k: v for k, v in config.items() if k not in ignored},
    }
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def build_points(
    rows: Iterable[dict[str, Any]], agent_order: Sequence[str] = ()
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
        rows: Result rows (validation rows are ignored).
        agent_order: Agent names in display order (the suite's); others follow, first seen
            first.

    Returns:
        Experiment -> its points, in first-seen order.
    """
    final = [r for r in rows if r.get("phase") == "final" and r.get("status") in (OK, FAILED)]
    experiments: dict[str, list[Point]] = {}
    seen: dict[tuple[int, str], set[str]] = defaultdict(set)
    for row in sorted(final, key=lambda r: (-len(row_sweep(r)), r.get("status") != OK)):
        points = experiments.setdefault(row["experiment"], [])
        sweep = row_sweep(row)
        matches = [
            p for p in points if p.env_label == row["env_label"] and _compatible(sweep, p.sweep)
        ]
        if not matches:
            point = Point(
                experiment=row["experiment"],
                env_label=row["env_label"],
                env_base=row.get("env_base", row["env_label"]),
                sweep=sweep,
                metrics=_columns(row),
                select_metric=row["select_metric"],
                target_fraction=float(row.get("target_fraction", 0.9)),
            )
            points.append(point)
            matches = [point]
        identity = run_identity(row)
        for point in matches:
            runs = seen[id(point), row["agent"]]
            if identity in runs:
                continue  # the same run, listed again (e.g. supervised at another N)
            runs.add(identity)
            result = point.agents.setdefault(
                row["agent"],
                AgentResult(
                    row["agent"], row.get("role", "baseline"), row["family"], [], row.get("lr")
                ),
            )
            if row.get("status") == OK:
                result.rows.append(row)
                if result.lr is None:
                    result.lr = row.get("lr")
            else:
                result.failed.append(row)
    order = {r["run_id"]: i for i, r in enumerate(final)}
    rank = {name: i for i, name in enumerate(agent_order)}

    def first(result: AgentResult) -> int:
        return min(order[r["run_id"]] for r in [*result.rows, *result.failed])

    for points in experiments.values():
        for point in points:
            for result in point.agents.values():
                result.rows.sort(key=lambda r: order[r["run_id"]])
                result.failed.sort(key=lambda r: order[r["run_id"]])
            point.agents = dict(
                sorted(
                    point.agents.items(),
                    key=lambda kv: (rank.get(kv[0], len(rank)), first(kv[1])),
                )
            )
            point.references = next(
                (
                    refs
                    for result in point.agents.values()
                    for r in result.rows
                    if (refs := _references(r))
                ),
                {},
            )
        points.sort(key=lambda p: min(first(a) for a in p.agents.values()))
    return experiments


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


def _seed_curves(rows: list[dict[str, Any]], metric: str) -> tuple[Any, Any] | None:
    """Every finite seed's curve on the evaluations all of them reached: (grid, [seeds, x])."""
    import numpy as np

    curves = [_curve_points(r, metric) for r in _curve_rows(rows, metric)]
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


# ----------------------------------------------------------------------------- tables


def _fmt(mean: float, half: float) -> str:
    if not math.isfinite(mean):
        return "–"
    if not math.isfinite(half):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {half:.2g}"


def format_ratio(ratio: float | None, interval: tuple[float, float] | None) -> str:
    """``1.25× [0.9, 2.1]``: the ratio and its bootstrap interval (``∞`` when unbounded)."""
    if ratio is None:
        return "–"
    if interval is None:
        return f"{ratio:.2f}×"
    ends = [f"{v:.2f}" if math.isfinite(v) else "∞" for v in interval]
    return f"{ratio:.2f}× [{ends[0]}, {ends[1]}]"


def _fmt_exact(value: float) -> str:
    """An exact level: 4 significant digits, ``-inf``/``inf`` spelled out, ``–`` for NaN."""
    if math.isnan(value):
        return "–"
    return f"{value:.4g}" if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _fmt_rollouts(value: float | None) -> str:
    if value is None:
        return "not reached"
    return "0 (at start)" if value == 0 else f"{value:,.0f}"


def _md(text: str) -> str:
    """Text for a markdown table cell (``|`` escaped)."""
    return text.replace("|", "\\|")


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
            cells.append("–" if point.target is None else _fmt_rollouts(result.to_target))
            cells.append(format_ratio(result.ratio, result.ratio_ci))
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
        for key, name in REFERENCES.items():
            if key not in point.references:
                continue
            levels = point.references[key]
            cells = [point.label, f"*{name}*", "–", "–"]
            cells += [_fmt_exact(levels.get(metric, float("nan"))) for metric in metrics]
            if normalized:
                score = normalized_score(
                    point.select_metric, levels.get(point.select_metric), point.references
                )
                cells.append(_fmt_exact(score))
            cells += ["–", "–"]
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
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


def selection_table(rows: Iterable[dict[str, Any]]) -> str:
    """Markdown table of the learning-rate selection (validation runs, validation split).

    A rate with a failed or diverged (non-finite) validation run shows it beside its mean of
    the finite ones.
    """
    rows = list(rows)
    tune = [r for r in rows if r.get("phase") == "tune"]
    if not tune:
        return "No learning-rate selection (every agent had a single setting)."
    chosen = {}
    for row in rows:
        if row.get("phase") == "final" and row.get("status") == OK:
            chosen[row["cell"]] = row.get("lr")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in tune:
        groups[row["cell"]].append(row)
    lines = [
        "| experiment | environment | agent | metric (validation split) "
        "| learning rates: mean | chosen |",
        "|---|---|---|---|---|---|",
    ]
    for cell, cell_rows in groups.items():
        first = cell_rows[0]
        metric = first["select_metric"]
        by_lr: dict[Any, list[float]] = defaultdict(list)
        failed: Counter[Any] = Counter()
        for row in cell_rows:
            if row.get("status") == OK and metric in row.get("metrics", {}):
                by_lr[row["lr"]].append(as_float(row["metrics"][metric]))
            else:
                failed[row["lr"]] += 1
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
        env = _point_label(first["env_label"], first.get("sweep", {}))
        lines.append(
            "| "
            + " | ".join(
                _md(c)
                for c in (
                    first["experiment"],
                    env,
                    first["agent"],
                    metric.removeprefix("eval/"),
                    "; ".join(parts),
                    shown,
                )
            )
            + " |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- curves


def _final_value(row: Mapping[str, Any], metric: str) -> float:
    """A run's final value of a metric: its row's, else its curve's last point's."""
    if metric in row.get("metrics", {}):
        return as_float(row["metrics"][metric])
    curve = row.get("curve") or []
    return as_float(curve[-1][1].get(metric)) if curve else float("nan")


def _curve_points(row: Mapping[str, Any], metric: str) -> list[tuple[float, float]]:
    """A run's finite ``(rollouts, value)`` points of a metric (non-finite points skipped)."""
    pts = [(as_float(s), as_float(v.get(metric))) for s, v in row.get("curve") or []]
    return [(s, v) for s, v in pts if math.isfinite(s) and math.isfinite(v)]


def _curve_rows(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Runs whose curve of a metric is plotted: finite final value and some finite point."""
    return [r for r in rows if math.isfinite(_final_value(r, metric)) and _curve_points(r, metric)]


def _mean_curve(rows: list[dict[str, Any]], metric: str) -> tuple[Any, Any, Any] | None:
    """Mean curve over seeds with a 95% t band, on the evaluations every seed reached.

    Seeds whose final value diverged are left out (the plot says so); non-finite points of
    the others are skipped (interpolated over).
    """
    import numpy as np

    curves = [_curve_points(r, metric) for r in _curve_rows(rows, metric)]
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


# ----------------------------------------------------------------------------- plots


def _colors(names: Iterable[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _grid(
    count: int,
    height: float = PANEL_HEIGHT,
    width: float = PANEL_WIDTH,
    columns: int = MAX_COLUMNS,
) -> tuple[Any, Any]:
    """A figure of ``count`` panels, at most ``columns`` a row (unused ones hidden).

    Never larger than ``plots.MAX_FIGURE_INCHES``: panels shrink to fit (callers page many
    panels over several figures instead, see ``plots.pages``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.plots import MAX_FIGURE_INCHES

    cols = max(1, min(columns, count))
    rows = math.ceil(count / cols)
    width = min(width, MAX_FIGURE_INCHES[0] / cols)
    height = min(height, (MAX_FIGURE_INCHES[1] - 0.6) / rows)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(width * cols, height * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for ax in list(axes.flat)[count:]:
        ax.axis("off")
    return fig, axes


def _legend(fig: Any, axes: Any, title: str, ncol: int = 6) -> None:
    """One legend under the panels (every label once, ``ncol`` columns at most), a title."""
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncol=min(ncol, len(handles)),
            fontsize=8,
        )
    fig.suptitle(title, fontsize=11)


def _save_figure(fig: Any, path: Path) -> Path:
    """Write a figure as PNG (creating its folder) and release it."""
    import matplotlib.pyplot as plt

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def _metric_name(metric: str) -> str:
    return metric.removeprefix("eval/")


#: Curve panels: columns (two points of two metrics a row) and rows of one figure; more
#: panels go to further figures (``curves_<experiment>.2.png``, ...).
CURVE_COLUMNS = 4
CURVE_ROWS = 4


def plot_curves(
    experiment: str, points: list[Point], path: Path, metrics_per_point: int = 2
) -> list[Path]:
    """Learning curves of one experiment against rollouts.

    One panel per point and metric: the selection metric and the next report column (e.g.
    log-likelihood and excess MSE, or pass@1 and pass@k), ``CURVE_COLUMNS`` panels a row
    and ``CURVE_ROWS`` rows a figure (further figures: ``path`` with ``.2``, ``.3``, ...),
    each titled with its metric and task (wrapped). The target of the selection metric is a
    dotted line labelled "target"; seeds that diverged are left out and named in the panel;
    bands are clipped to the metric's range; under early stopping a star marks the selected
    checkpoint, where the table's value comes from.

    Returns:
        The figures written (none without panels).
    """
    from benchmarks import plots

    panels = []
    for point in points:
        metrics = list(dict.fromkeys([point.select_metric, *point.metrics]))
        panels += [(point, metric) for metric in metrics[:metrics_per_point]]
    if not panels:
        return []
    colors = _colors(dict.fromkeys(a for p in points for a in p.agents))
    written = []
    for index, page in enumerate(plots.pages(panels, CURVE_COLUMNS * CURVE_ROWS)):
        fig, axes = _grid(len(page), height=3.0, width=4.0, columns=CURVE_COLUMNS)
        _curve_panels(axes, page, colors)
        title = f"{experiment}: learning curves on the test split (mean, 95% CI over seeds)"
        if len(panels) > len(page):
            title += f", part {index + 1}"
        _legend(fig, axes, title)
        written.append(_save_figure(fig, plots.page_path(path, index)))
    return written


def _curve_panels(axes: Any, panels: list[tuple[Point, str]], colors: dict[str, Any]) -> None:
    from benchmarks import plots

    for ax, (point, metric) in zip(axes.flat, panels, strict=False):
        left_out = []
        marked = False
        for name, result in point.agents.items():
            kept = len(_curve_rows(result.rows, metric))
            if kept < len(result.rows):
                left_out.append(f"{name} {len(result.rows) - kept}/{len(result.rows)}")
            curve = _mean_curve(result.rows, metric)
            if curve is None:
                continue
            x, mean, half = curve
            style = "--" if result.family == "sb3" else ":" if result.role == "reference" else "-"
            ax.plot(x, mean, style, color=colors[name], label=name, lw=1.6)
            low, high = plots.clip_band(metric, mean - half, mean + half)
            ax.fill_between(x, low, high, color=colors[name], alpha=0.15, lw=0)
            selected = plots.selected_point(result.rows, metric)
            if selected is not None:
                plots.mark_selected(ax, *selected, colors[name])
                marked = True
        if point.target is not None and metric == point.select_metric:
            ax.axhline(point.target, color="grey", lw=1.0, ls=":", label="target")
        if marked:
            plots.legend_selected(ax)
        if left_out:
            ax.text(
                0.01,
                0.01,
                "diverged seeds left out: " + ", ".join(left_out),
                transform=ax.transAxes,
                fontsize=7,
                color="firebrick",
            )
        ax.set_title(plots.wrap(f"{_metric_name(metric)} — {point.label}"), fontsize=8)
        ax.set_xlabel("rollouts", fontsize=8)
        ax.set_ylabel(f"{_metric_name(metric)} ({direction(metric)})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)


def plot_sweep(experiment: str, points: list[Point], key: str, path: Path) -> Path | None:
    """Final selection metric against a swept value, one panel per other combination."""
    swept = [p for p in points if key in p.sweep]
    if len({_fmt_value(p.sweep[key]) for p in swept}) < 2:
        return None
    panels: dict[str, list[Point]] = defaultdict(list)
    for point in swept:
        others = [f"{_short(k)}={_fmt_value(v)}" for k, v in point.sweep.items() if k != key]
        panels[" ".join([point.env_base, *others])].append(point)
    fig, axes = _grid(len(panels))
    colors = _colors(dict.fromkeys(a for p in swept for a in p.agents))
    for ax, (title, group) in zip(axes.flat, panels.items(), strict=False):
        metric = group[0].select_metric
        series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
        flat: dict[str, tuple[float, float]] = {}
        for point in group:
            for name, result in point.agents.items():
                mean, half = mean_ci(result.values(metric))
                if not math.isfinite(mean):
                    continue
                if all(key in r.get("sweep", {}) for r in result.rows):
                    series[name].append((float(point.sweep[key]), mean, half))
                else:
                    flat[name] = (mean, half)
        for name, pts in series.items():
            pts.sort()
            x = [p[0] for p in pts]
            y = [p[1] for p in pts]
            err = [0.0 if not math.isfinite(p[2]) else p[2] for p in pts]
            ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, color=colors[name], label=name)
        for name, (mean, _) in flat.items():
            ax.axhline(
                mean, color=colors[name], ls="--", lw=1.2, label=f"{name} (no {_short(key)})"
            )
        values = [float(p.sweep[key]) for p in group]
        if min(values) > 0 and max(values) / min(values) >= 10:
            ax.set_xscale("log", base=2 if key in ("rollouts", "contexts") else 10)
        from benchmarks.plots import wrap

        ax.set_title(wrap(f"final {_metric_name(metric)} — {title}", 60), fontsize=9)
        ax.set_xlabel(_short(key))
        ax.set_ylabel(f"final {_metric_name(metric)} ({direction(metric)})", fontsize=8)
        ax.grid(alpha=0.3)
    _legend(fig, axes, f"{experiment}: final metric against {_short(key)} (mean, 95% CI)")
    return _save_figure(fig, path)


# ----------------------------------------------------------------------------- aggregate

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


def _run_budget(row: Mapping[str, Any]) -> float:
    """Rollout budget of a run: its config's ``budget``, else its curve's last x."""
    budget = as_float((row.get("config") or {}).get("budget"))
    if math.isfinite(budget):
        return budget
    curve = row.get("curve") or []
    return as_float(curve[-1][0]) if curve else float("nan")


#: One run of an agent at a task: its normalized score (the floor if it diverged), its row,
#: and whether it diverged.
TaskRun = tuple[float, dict[str, Any], bool]


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
    for row in sorted(result.rows, key=lambda r: (r.get("seed", 0), r["run_id"])):
        value = _final_value(row, point.select_metric)
        score = normalized_score(point.select_metric, value, point.references)
        diverged = not math.isfinite(score)
        out.append((floor if diverged else score, row, diverged))
    return out


def agent_settings(row: Mapping[str, Any]) -> dict[str, Any]:
    """The agent-side sweep values a row's run uses: :func:`row_sweep` less the environment's.

    A sweep value is the environment's when the row's ``env_kwargs`` carry it or its env
    label names it (``snr=0.1``); the rest (``state_dependent_std``, ``group_size``) are
    settings of the agent. A setting the agent ignores is not in its rows' sweep (an SB3
    agent's) or is dropped by ``IGNORED_SETTINGS`` (the supervised reference's N).
    """
    env_kwargs = row.get("env_kwargs") or {}
    label = str(row.get("env_label", ""))
    return {
        k: v
        for k, v in row_sweep(row).items()
        if k not in env_kwargs and not _in_label(k, v, label)
    }


def algorithm_name(agent: str, settings: Mapping[str, Any]) -> str:
    """``agent`` plus its agent-side setting values as the per-cell tables write them."""
    return " ".join([agent, *(f"{_short(k)}={_fmt_value(v)}" for k, v in settings.items())])


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
    from benchmarks import stats

    left_out_tasks: dict[str, str] = {}
    tasks: list[Point] = []
    candidates, merged, algorithms = aggregate_tasks(experiments)
    for point in candidates:
        if not point.references:
            continue
        metric = point.select_metric
        unit = normalized_score(metric, best_reference(metric, point.references), point.references)
        gap, noise = _reference_gap(point)
        if math.isnan(unit):
            left_out_tasks[point.task] = (
                f"its reference levels of {_metric_name(metric)} do not normalize "
                "(missing, infinite, or random = Bayes)"
            )
        elif not gap > noise:
            # At very low SNR the Bayes level can sit within sampling noise of random (or
            # below it on a finite split): normalized units would then be noise.
            left_out_tasks[point.task] = (
                f"the Bayes level of {_metric_name(metric)} is only {gap:.3g} better than "
                f"random, within the agents' seed noise ({noise:.3g}: twice their median "
                "standard error), so normalized scores would be noise"
            )
        elif gap < MIN_REFERENCE_GAP:
            left_out_tasks[point.task] = (
                f"the Bayes level of {_metric_name(metric)} is only {gap:.3g} better than "
                f"random, less than the protocol's {MIN_REFERENCE_GAP:g} (docs/protocol.md), "
                "so a normalized unit would magnify seed noise"
            )
        else:
            tasks.append(point)
    if len(tasks) < 2:
        return None
    names = [p.task for p in tasks]
    floors = {p.task: _task_floor(p) for p in tasks}
    agents = [a for a in algorithms if any(a in p.agents for p in tasks)]
    runs: dict[str, dict[str, list[TaskRun]]] = {}
    left_out_agents: dict[str, list[str]] = {}
    for agent in agents:
        per_task = {
            p.task: _task_runs(p, p.agents[agent], floors[p.task]) if agent in p.agents else []
            for p in tasks
        }
        missing = [task for task, values in per_task.items() if not values]
        if missing:
            left_out_agents[agent] = missing
        else:
            k = min(len(v) for v in per_task.values())
            runs[agent] = {task: values[:k] for task, values in per_task.items()}
    role = {name: r.role for p in tasks for name, r in p.agents.items()}
    agg = Aggregate(names, {}, {}, {}, {}, left_out_agents, left_out_tasks, merged, floors)
    agg.algorithms = {a: algorithms[a] for a in agents}
    if runs:
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
        if plots_dir is not None:
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
    agg.text = _aggregate_text(agg, reps, seed)
    return agg


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
        found = {_run_budget(r) for r in used}
        if not all(_curve_points(r, point.select_metric) for r in used):
            no_curve.append(point.task)
        elif len(found) != 1 or not all(math.isfinite(b) and b > 0 for b in found):
            mixed.append(point.task)
            framings |= {str((r.get("config") or {}).get("framing", "rollouts")) for r in used}
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
        _curve_points(row, p.select_metric)[0][0]
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
                    for x, v in row.get("curve") or []
                ]
                pts = [(x, y if math.isfinite(y) else floor) for x, y in pts if math.isfinite(x)]
                out[i, j] = np.interp(grid, [x for x, _ in pts], [y for _, y in pts])
        curves[agent] = out
    return curves, grid


def _legend_columns(names: Iterable[str]) -> int:
    """Legend columns that fit an 8-inch figure: 6 for agent names, fewer for long names."""
    return max(1, min(6, 120 // (max(len(n) for n in names) + 6)))


def _algorithm_styles(
    agg: Aggregate, names: Iterable[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Line colour by agent and line style by setting values (one agent: one colour)."""
    names = list(names)
    agent = {name: agg.algorithms.get(name, (name, {}))[0] for name in names}
    by_agent = _colors(dict.fromkeys(agent.values()))
    dashes = ("-", "--", ":", "-.")
    variants: dict[str, list[str]] = defaultdict(list)
    styles = {}
    for name in names:
        variants[agent[name]].append(name)
        styles[name] = dashes[(len(variants[agent[name]]) - 1) % len(dashes)]
    return {name: by_agent[agent[name]] for name in names}, styles


def _plot_profile(agg: Aggregate, reps: int, seed: int, path: Path) -> Path:
    import numpy as np

    from benchmarks import stats

    every = np.concatenate([m.ravel() for m in agg.scores.values()])
    taus = np.linspace(min(0.0, float(every.min())), max(1.0, float(every.max())), 101)
    profiles = stats.performance_profile_ci(agg.scores, taus, reps=reps, seed=seed)
    fig, axes = _grid(1, height=4.2, width=8.0)
    ax = axes.flat[0]
    colors, styles = _algorithm_styles(agg, agg.scores)
    for name, band in profiles.items():
        ax.plot(taus, band.point, color=colors[name], ls=styles[name], label=name, lw=1.6)
        ax.fill_between(taus, band.low, band.high, color=colors[name], alpha=0.15, lw=0)
    for level, text in ((0.0, "random"), (1.0, "Bayes")):
        ax.axvline(level, color="grey", lw=0.8, ls=":")
        ax.text(level, 1.02, text, fontsize=7, ha="center", color="grey")
    ax.set_title(f"performance profile — {len(agg.tasks)} tasks × {_runs_text(agg)}", fontsize=9)
    ax.set_xlabel("normalized score τ (random 0, Bayes 1)")
    ax.set_ylabel("fraction of runs with score > τ (higher is better)", fontsize=8)
    ax.set_ylim(-0.02, 1.08)
    ax.grid(alpha=0.3)
    _legend(
        fig,
        axes,
        "aggregate: run-score distribution (95% stratified-bootstrap band)",
        _legend_columns(profiles),
    )
    return _save_figure(fig, path)


def _plot_efficiency(agg: Aggregate, tasks: list[Point], path: Path) -> Path:
    metrics = sorted({_metric_name(p.select_metric) for p in tasks if p.task in agg.curve_tasks})
    fig, axes = _grid(1, height=4.2, width=8.0)
    ax = axes.flat[0]
    colors, styles = _algorithm_styles(agg, agg.curve)
    grid = agg.grid
    for name, band in agg.curve.items():
        ax.plot(grid, band.point, color=colors[name], ls=styles[name], label=name, lw=1.6)
        ax.fill_between(grid, band.low, band.high, color=colors[name], alpha=0.15, lw=0)
    title = f"sample efficiency — {len(agg.curve_tasks)} tasks × {_runs_text(agg)}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("rollouts")
    ax.set_ylabel(f"IQM normalized {', '.join(metrics)} (higher is better)", fontsize=8)
    ax.grid(alpha=0.3)
    _legend(
        fig,
        axes,
        "aggregate: IQM of normalized scores (95% stratified-bootstrap band)",
        _legend_columns(agg.curve),
    )
    return _save_figure(fig, path)


def _fmt_interval(interval: Any) -> str:
    return f"{interval.point:.3g} [{interval.low:.3g}, {interval.high:.3g}]"


def _runs_text(agg: Aggregate) -> str:
    """``5 runs`` when every agent keeps as many runs per task, else ``5–10 runs``."""
    counts = sorted(set(agg.runs.values()))
    return f"{counts[0]} runs" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} runs"


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
        cells.setdefault((agent_x, algorithm_name(agent_y, extra)), {})[column] = _fmt_interval(
            interval
        )
    lines = [
        "| X | Y | " + " | ".join(f"P(X > Y) {_md(c)}" for c in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for (x, y), by_column in cells.items():
        row = [by_column.get(c, "–") for c in columns]
        lines.append(f"| {_md(x)} | {_md(y)} | " + " | ".join(row) + " |")
    return lines


def _aggregate_text(agg: Aggregate, reps: int, seed: int) -> str:
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
    unit = "algorithm" if agg.merged else "agent"
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
    if not agg.scores:
        lines.append(f"No {unit} has a run on every task: nothing to aggregate.")
        return "\n".join(lines)
    names = list(agg.intervals)
    header = [
        unit,
        *[f"{n} (lower is better)" if n == "Optimality gap" else n for n in names],
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for agent in agg.scores:
        cells = [agent, *[_fmt_interval(agg.intervals[n][agent]) for n in names]]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    lines.append("")
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
                lines.append(f"| {_md(x)} | {_md(y)} | {_fmt_interval(interval)} |")
        lines.append("")
    else:
        lines += [
            "No `maxrl`-role agent among the included agents: no probability of improvement.",
            "",
        ]
    if agg.curve_tasks:
        lines.append(
            f"Sample-efficiency curve over {len(agg.curve_tasks)} tasks that share one rollout "
            f"budget: each run's curve interpolated on {CURVE_POINTS} evenly spaced rollout "
            "counts."
        )
    if agg.curve_note:
        lines.append(agg.curve_note)
    return "\n".join(lines).rstrip()


# ----------------------------------------------------------------------------- compare


def load_rows(
    results_dir: str | os.PathLike[str], skipped: list[str] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The current rows of a results directory and its ``suite.json`` (empty if absent).

    Rows: the latest well-formed row of each run, without rows of an older suite version
    (:func:`current_rows`). A malformed row (``benchmarks.results.row_problem``) is left out
    and, when ``skipped`` is given, described there (run id and problem).

    Raises:
        CorruptFileError: ``suite.json`` exists but is not a JSON object of the fields the
            runner writes (naming it and the field).
        CorruptRowsError: ``results.jsonl.gz`` is damaged (naming it, and how to recover).
    """
    results_dir = Path(results_dir)
    bad: list[tuple[dict[str, Any], str]] = []
    rows = list(latest_rows(read_rows(results_dir / RESULTS_FILE), bad).values())
    if skipped is not None:
        skipped += [f"{_row_name(row)}: {problem}" for row, problem in bad]
    meta_path = results_dir / SUITE_FILE
    meta = read_json(meta_path) if meta_path.exists() else {}
    problem = suite_meta_problem(meta)
    if problem:
        raise CorruptFileError(meta_path, problem)
    return current_rows(rows, meta), meta


def _row_name(row: Any) -> str:
    run_id = row.get("run_id") if isinstance(row, dict) else None
    return f"row {run_id}" if isinstance(run_id, str) else "a row without a run id"


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def suite_meta_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with a ``suite.json`` (None when the report can use it).

    Each field the runner writes, where present, must have its type: ``suite``,
    ``description``, ``source``, ``command`` strings; ``imports``, ``experiments``,
    ``agents``, ``run_ids`` lists of strings; ``cells`` an object of cell key -> {``seeds``:
    integers, and optionally ``select_metric``, ``tune_ids`` and ``final_ids`` (pairs of a
    rate and run ids)}.
    """
    for key in ("suite", "description", "source", "command"):
        if key in meta and not isinstance(meta[key], str):
            return f"'{key}' must be a string, got {json.dumps(meta[key], default=str)[:40]}"
    for key in ("imports", "experiments", "agents", "run_ids"):
        if key in meta and not _str_list(meta[key]):
            return (
                f"'{key}' must be a list of strings, got {json.dumps(meta[key], default=str)[:40]}"
            )
    cells = meta.get("cells", {})
    if not isinstance(cells, dict):
        return f"'cells' must be an object of cell keys, got {json.dumps(cells, default=str)[:40]}"
    for key, cell in cells.items():
        where = f"'cells' entry {key[:12]!r}"
        if not isinstance(cell, dict):
            return f"{where} must be an object, got {json.dumps(cell, default=str)[:40]}"
        seeds = cell.get("seeds")
        if not (
            isinstance(seeds, list)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)
        ):
            return f"{where}: 'seeds' must be a list of integers"
        if "select_metric" in cell and not isinstance(cell["select_metric"], str):
            return f"{where}: 'select_metric' must be a metric name"
        if "tune_ids" in cell and not _str_list(cell["tune_ids"]):
            return f"{where}: 'tune_ids' must be a list of run ids"
        finals = cell.get("final_ids", [])
        if not isinstance(finals, list) or not all(
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], (int, float))
            and not isinstance(pair[0], bool)
            and _str_list(pair[1])
            for pair in finals
        ):
            return f"{where}: 'final_ids' must be a list of [learning rate, [run ids]]"
    return None


def _cells(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str, str], list[dict[str, Any]]]:
    """Final ``ok`` rows by cell: (experiment, env_label, sweep as sorted JSON, agent)."""
    cells: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("phase") == "final" and row.get("status") == OK:
            key = (
                str(row["experiment"]),
                str(row["env_label"]),
                json.dumps(row.get("sweep", {}), sort_keys=True),
                str(row["agent"]),
            )
            cells.setdefault(key, []).append(row)
    return cells


def _cell_name(key: tuple[str, str, str, str]) -> str:
    experiment, env_label, sweep, agent = key
    return f"{experiment} | {_point_label(env_label, json.loads(sweep))} | {agent}"


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
        metrics = list(dict.fromkeys([*_columns(rows_a[0]), *_columns(rows_b[0])]))
        for metric in metrics:
            sides = []
            for rows in (rows_a, rows_b):
                raw = [as_float(r["metrics"][metric]) for r in rows if metric in r["metrics"]]
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
                _point_label(env_label, json.loads(sweep)),
                agent,
                _metric_name(metric),
                _side_text(raw_a, fin_a),
                _side_text(raw_b, fin_b),
                delta,
                "**changed**" if is_changed else "",
            ]
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
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
    text = _fmt_exact(sum(finite) / len(finite)) if finite else "–"
    text += f" (n={len(finite)}"
    if len(finite) < len(raw):
        text += f", {len(raw) - len(finite)} diverged"
    return text + ")"


# ----------------------------------------------------------------------------- report


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
    """

    results_dir: Path
    path: Path
    tables: dict[str, str]
    plots: list[Path]
    failed: list[dict[str, Any]]
    command: str
    targets: dict[str, str] = field(default_factory=dict)
    aggregate: Aggregate | None = None
    experiments: dict[str, list[Point]] = field(default_factory=dict)
    markdown: str = ""

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
    failed = [r for r in rows if r.get("status") != OK]
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
    )
    report.markdown = _markdown(report, meta, rows)
    if skipped:
        report.markdown += _skipped_text(skipped, results_dir)
    return report


def _expect_seeds(experiments: Mapping[str, list[Point]], cells: Mapping[str, Any]) -> None:
    """Tell each agent result how many seeds its cell asked for (``suite.json``)."""
    for points in experiments.values():
        for point in points:
            for result in point.agents.values():
                asked = [
                    len(cells[r["cell"]]["seeds"])
                    for r in [*result.rows, *result.failed]
                    if r.get("cell") in cells
                ]
                result.expected = max(asked) if asked else None


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
    lines += [f"- {_md(text)[:300]}" for text in skipped[:50]]
    if len(skipped) > 50:
        lines.append(f"- ... and {len(skipped) - 50} more")
    return "\n".join(lines) + "\n"


def current_rows(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the suite as it was last run (``suite.json``), without stale ones.

    A results file keeps the rows of earlier versions of a suite (other budgets, envs or
    seeds). After a complete sweep ``suite.json`` lists its run ids; after an interrupted
    one, its cells and seeds; without ``suite.json`` every row counts.
    """
    if meta.get("run_ids"):
        wanted = set(meta["run_ids"])
        return [r for r in rows if r.get("run_id") in wanted]
    cells = meta.get("cells")
    if not cells:
        return rows
    if not any("final_ids" in cell for cell in cells.values()):  # a suite.json of before
        return [
            r
            for r in rows
            if r.get("cell") in cells
            and (r.get("phase") == "tune" or r.get("seed") in cells[r["cell"]]["seeds"])
        ]
    return [r for r in rows if r.get("run_id") in _this_sweep(rows, cells)]


def _this_sweep(rows: list[dict[str, Any]], cells: Mapping[str, Any]) -> set[str]:
    """Run ids of an interrupted sweep's rows, from its ``suite.json`` cells.

    Validation rows count when their run id is one of the cell's ``tune_ids``. Reported
    rows count at one rate only: the cell's single rate, or the rate this sweep's
    validation rows choose (``benchmarks.run.choose_rate``, once every validation run has a
    row), so reported rows of an earlier sweep at another rate, or with other settings (their
    run ids differ), do not count.
    """
    from benchmarks.run import choose_rate

    by_id = {r["run_id"]: r for r in rows}
    wanted: set[str] = set()
    for cell in cells.values():
        tune_ids = cell.get("tune_ids", [])
        finals = {float(lr): ids for lr, ids in cell.get("final_ids", [])}
        wanted.update(tune_ids)
        if not tune_ids:
            chosen = next(iter(finals), None)
        elif all(run_id in by_id for run_id in tune_ids):
            tune_rows = [by_id[run_id] for run_id in tune_ids]
            metric = cell.get("select_metric") or tune_rows[0].get("select_metric", "")
            chosen = choose_rate(list(finals), metric, tune_rows)
        else:
            chosen = None  # validation unfinished: no reported run of this sweep yet
        if chosen is not None:
            wanted.update(finals.get(chosen, []))
    return wanted


def _columns(row: dict[str, Any]) -> list[str]:
    """Report columns of a row: its job's ``columns``, else the metrics it has."""
    listed = row.get("columns")
    if isinstance(listed, list) and listed:
        return list(listed)
    values = row.get("metrics", {})
    preferred = [row.get("select_metric")] + [
        "eval/log_likelihood",
        "eval/excess_mse",
        "eval/pass@1",
    ]
    columns = [m for m in preferred if m and m in values]
    columns += sorted(
        m for m in values if m.startswith("eval/pass@") and m not in columns and m != "eval/pass@1"
    )
    return list(dict.fromkeys(columns))


def _markdown(report: Report, meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    results_dir = report.results_dir
    # Not the time of writing: the newest row's, so rebuilding an unchanged report changes
    # nothing (committed reports do not churn).
    newest = max((str(r["finished_at"]) for r in rows if r.get("finished_at")), default=None)
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
    if report.aggregate is not None:
        lines += ["## Aggregate over tasks", "", report.aggregate.text, ""]
        for plot in report.aggregate.plots:
            lines += [f"![{plot.stem}]({plot.relative_to(report.path.parent)})", ""]
    from benchmarks.summary import bins_markdown  # hard contexts: per-bin tables

    lines += bins_markdown(report.experiments, plots=report.plots, relative_to=here)
    lines += ["## Learning-rate selection", "", selection_table(rows), ""]
    if report.failed:
        lines += ["## Failed runs", "", "| run | error |", "|---|---|"]
        for row in report.failed:
            error = str(row.get("error", "")).replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| `{row['run_id']}` | {error} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report DIR`` writes DIR's report; ``... A B`` compares A and B.

    With one directory: write its report (into ``--report-dir`` if given) and print its
    tables; where the report cannot be written (a read-only results directory), print the
    whole report instead. With two: print the comparison of B against A
    (:func:`compare_results`), and write it to ``--out FILE`` if given. Exit status 2 when a
    directory has no results file, a file of it is corrupt, or the arguments are wrong.
    """
    parser = Parser(
        prog="maxrl-report",
        description=__doc__.split("\n")[0],
        epilog="Trust: the report reads only JSON (results.jsonl[.gz], suite.json) and imports "
        "nothing from DIR; malformed rows are left out and listed. A results directory is "
        "still code for the runner (resuming loads SB3 checkpoints through pickle), so "
        "resume only directories you trust. Nothing is written through a symbolic link.",
    )
    parser.add_argument(
        "results_dirs",
        nargs="+",
        metavar="DIR",
        help="a suite's output directory (e.g. runs/quick); two to compare them (A B)",
    )
    parser.add_argument("--out", help="with two directories: also write the comparison here")
    parser.add_argument(
        "--report-dir",
        help="with one directory: write report.md and plots/ here instead of into DIR "
        "(e.g. when DIR is read-only)",
    )
    parser.add_argument(
        "--csv",
        metavar="PATH",
        help="with one directory: also write its rows as a tidy CSV table, one line per run "
        "and metric (benchmarks.results.to_frame; needs pandas: pip install 'maxrl-bench[data]')",
    )
    args = parser.parse_args(argv)
    if args.csv and len(args.results_dirs) != 1:
        print("error: --csv is for one directory", file=sys.stderr)
        return 2
    if len(args.results_dirs) > 2:
        return fail(parser.prog, "give one results directory, or two to compare")
    if args.out and len(args.results_dirs) == 1:
        return fail(parser.prog, "--out is for comparisons (two directories)")
    if args.report_dir and len(args.results_dirs) == 2:
        return fail(parser.prog, "--report-dir is for one directory (use --out to compare)")
    paths = [Path(p) for p in args.results_dirs]
    for path in paths:
        if not (path / RESULTS_FILE).exists() and not packed_path(path / RESULTS_FILE).exists():
            print(f"error: {path / RESULTS_FILE} does not exist", file=sys.stderr)
            return 2
    try:
        if len(paths) == 2:
            text = compare_results(*paths)
            print(text, end="")
            if args.out:
                atomic_write_text(Path(args.out), text)
                print(f"comparison: {args.out}")
            return 0
        code = _report(paths[0], args.report_dir)
        if args.csv:
            code = code or _write_csv(paths[0], args.csv)
        return code
    except CorruptFileError as err:
        print(
            f"error: {err}; move it away (the report then counts every row) or rerun the suite",
            file=sys.stderr,
        )
        return 2
    except (CorruptRowsError, LinkError, NotRegularFileError) as err:
        print(
            f"error: {err if isinstance(err, CorruptRowsError) else err.strerror}", file=sys.stderr
        )
        return 2


def _write_csv(results_dir: Path, out: str) -> int:
    """``--csv``: write the tidy table of a results directory; 2 with a one-line error."""
    from benchmarks.export import write_csv

    try:
        print(f"csv:    {write_csv(results_dir, out)}")
    except ImportError as err:
        print(f"error: --csv {out}: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: --csv {out}: cannot write it ({err.strerror or err})", file=sys.stderr)
        return 2
    return 0


def _report(results_dir: Path, report_dir: str | None) -> int:
    """Write and summarize one report; print all of it where it cannot be written."""
    try:
        report = write_report(results_dir, report_dir=report_dir)
    except (LinkError, NotRegularFileError):
        raise
    except OSError as err:
        if report_dir is not None:
            print(f"error: cannot write the report into {report_dir}: {err}", file=sys.stderr)
            return 2
        report = build_report(results_dir, plots=False)
        print(report.markdown)
        print(
            f"note: cannot write into {results_dir} ({err}); the report is printed above, "
            "without plots. Use --report-dir DIR to write it (and its plots) elsewhere.",
            file=sys.stderr,
        )
        return 0
    print(report.summary_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
