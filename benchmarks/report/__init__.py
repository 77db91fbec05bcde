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
  performance profile and sample-efficiency curve, after Agarwal et al. 2021), the results
  without early stopping (each cell's selection metric at its runs' last evaluation beside
  the selected checkpoint's), the learning-rate selection, failed runs, the plots, and the
  commands that produced it all.
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

from typing import Any

from benchmarks.report.aggregate import (
    BOOTSTRAP_REPS,
    BOOTSTRAP_SEED,
    CURVE_POINTS,
    MIN_REFERENCE_GAP,
    Aggregate,
    TaskRun,
    agent_settings,
    aggregate_over_tasks,
    aggregate_tasks,
    algorithm_name,
)
from benchmarks.report.build import (
    PLOTS_DIR,
    REPORT_FILE,
    Report,
    build_report,
    write_report,
)
from benchmarks.report.cli import (
    main,
)
from benchmarks.report.compare import (
    compare_results,
)
from benchmarks.report.figures import (
    CURVE_COLUMNS,
    CURVE_ROWS,
    DPI,
    MAX_COLUMNS,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    plot_curves,
    plot_sweep,
)
from benchmarks.report.fmt import (
    direction,
    format_ratio,
)
from benchmarks.report.intervals import (
    Summary,
    mean_ci,
    reached,
    rollouts_to_target,
    summarize,
)
from benchmarks.report.points import (
    RATIO_REPS,
    AgentResult,
    Point,
    build_points,
    compute_targets,
)
from benchmarks.report.rows import (
    CHECKPOINTS,
    SUITE_FILE,
    ResultRow,
    check_checkpoint,
    current_rows,
    ignored_settings,
    load_rows,
    row_sweep,
    rows_at_checkpoint,
    run_identity,
    suite_meta_problem,
)
from benchmarks.report.sections import SECTIONS, report_section
from benchmarks.report.tables import (
    REFERENCES,
    experiment_table,
    selection_table,
)
from maxrl_envs.references import as_float, best_reference, normalized_score

__all__ = [
    "AgentResult",
    "Aggregate",
    "BOOTSTRAP_REPS",
    "BOOTSTRAP_SEED",
    "CHECKPOINTS",
    "CURVE_COLUMNS",
    "CURVE_POINTS",
    "CURVE_ROWS",
    "DPI",
    "ignored_settings",
    "MAX_COLUMNS",
    "MIN_REFERENCE_GAP",
    "PANEL_HEIGHT",
    "PANEL_WIDTH",
    "PLOTS_DIR",
    "Point",
    "RATIO_REPS",
    "REFERENCES",
    "REPORT_FILE",
    "Report",
    "ResultRow",
    "SECTIONS",
    "SUITE_FILE",
    "Summary",
    "TaskRun",
    "agent_settings",
    "aggregate_over_tasks",
    "aggregate_tasks",
    "algorithm_name",
    "as_float",
    "best_reference",
    "build_points",
    "build_report",
    "check_checkpoint",
    "compare_results",
    "compute_targets",
    "current_rows",
    "direction",
    "experiment_table",
    "format_ratio",
    "load_rows",
    "main",
    "mean_ci",
    "normalized_score",
    "plot_curves",
    "plot_sweep",
    "reached",
    "report_section",
    "rollouts_to_target",
    "row_sweep",
    "rows_at_checkpoint",
    "run_identity",
    "selection_table",
    "suite_meta_problem",
    "summarize",
    "write_report",
]

#: Private helpers that ``benchmarks.plots`` draws with and tests call, by module. They are
#: looked up in their module on each access (PEP 562), not copied here, so a helper patched
#: in its module (``benchmarks.report.figures._save_figure``) is the one every caller gets.
_FORWARDED = {
    "_algorithm_styles": "figures",
    "_grid": "figures",
    "_runs_text": "figures",
    "_save_figure": "figures",
    "_final_value": "rows",
    "_mean_curve": "points",
}


def __getattr__(name: str) -> Any:
    if name not in _FORWARDED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_FORWARDED[name]}"), name)
