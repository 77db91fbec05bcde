"""Results as data: a tidy pandas table of a results directory, and rliable's score layout.

``to_frame(DIR)`` (also ``benchmarks.results.to_frame``) returns one row per run and metric
(``curves=True``: per run, evaluation and metric), with the run's labels as columns, so the
usual pandas idioms work on it directly::

    frame = to_frame("docs/results/low-snr-offpolicy")
    final = frame[(frame.phase == "final") & (frame.metric == "eval/log_likelihood")]
    final.groupby(["env_label", "agent"]).value.agg(["mean", "std", "count"])

``maxrl-report DIR --csv PATH`` writes the same table as CSV. pandas is an optional extra
(``pip install "maxrl-bench[data]"``); nothing else in the project needs it.

``to_rliable(DIR)`` returns the report's aggregate inputs in the layout of rliable (Agarwal et
al. 2021), ``{algorithm: ndarray[runs, tasks]}`` of normalized scores, so its plotting and
interval code takes them as they are (see docs/benchmarks.md, "Results as data").
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Labels of a run copied into every row of the frame (in this order), before the sweep.
RUN_COLUMNS = (
    "suite",
    "experiment",
    "env_id",
    "env_label",
    "kind",
    "head",
    "agent",
    "family",
    "method",
    "role",
    "phase",
    "lr",
    "seed",
    "run_id",
    "status",
    "select_metric",
)
#: Columns from a row's ``provenance`` (None for rows written before it was recorded).
PROVENANCE_COLUMNS = ("git_commit", "device", "threads")
#: Prefix of the columns holding a run's sweep values (``sweep.snr``, ``sweep.group_size``).
SWEEP_PREFIX = "sweep."


def _require_pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "to_frame needs pandas, an optional extra: pip install 'maxrl-bench[data]' "
            "(or pip install pandas)"
        ) from None
    return pd


def _labels(row: dict[str, Any], sweep_keys: list[str]) -> dict[str, Any]:
    labels = {name: row.get(name) for name in RUN_COLUMNS}
    provenance = row.get("provenance") or {}
    labels.update({name: provenance.get(name) for name in PROVENANCE_COLUMNS})
    sweep = row.get("sweep") or {}
    labels.update({SWEEP_PREFIX + key: sweep.get(key) for key in sweep_keys})
    return labels


def _value(value: Any) -> float:
    """A metric value as a float; anything unreadable is NaN.

    NaN and infinities stay themselves (rows store them as strings in strict JSON).
    """
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def to_frame(path: str | os.PathLike[str], curves: bool = False) -> pd.DataFrame:
    """A tidy table of a results directory: one row per run and metric.

    The runs are the ones the report reads (``benchmarks.report.load_rows``: the latest row
    of each run of the suite's current version), validation (``phase == "tune"``) and
    reported (``"final"``) runs alike; failed runs have no metrics, hence no rows.

    Args:
        path: A suite's results directory (``OUT/SUITE``, or a committed
            ``docs/results/<suite>``).
        curves: Instead of the final metrics, every evaluation of the learning curves (the
            ``eval/`` tags logged during training), with the rollouts at which it was taken.

    Returns:
        Columns ``RUN_COLUMNS``, ``PROVENANCE_COLUMNS``, ``sweep.<key>`` for every swept
        setting of the suite, then ``metric`` and ``value`` (``curves=False``) or
        ``rollouts``, ``metric`` and ``value`` (``curves=True``). Values are floats (NaN or
        infinite for a diverged run).

    Raises:
        ImportError: pandas is not installed.
        FileNotFoundError: ``path`` holds no results file.
    """
    from benchmarks.report import load_rows
    from benchmarks.results import RESULTS_FILE, packed_path

    pd = _require_pandas()
    folder = Path(path)
    if not (folder / RESULTS_FILE).exists() and not packed_path(folder / RESULTS_FILE).exists():
        raise FileNotFoundError(
            f"path={str(path)!r} holds no {RESULTS_FILE} (or {RESULTS_FILE}.gz); allowed: a "
            "suite's results directory (OUT/SUITE)"
        )
    rows, _ = load_rows(folder)
    sweep_keys = list(dict.fromkeys(k for row in rows for k in row.get("sweep") or {}))
    records = []
    for row in rows:
        labels = _labels(row, sweep_keys)
        if curves:
            for rollouts, values in row.get("curve") or []:
                for metric, value in values.items():
                    records.append(
                        {
                            **labels,
                            "rollouts": _value(rollouts),
                            "metric": metric,
                            "value": _value(value),
                        }
                    )
        else:
            for metric, value in (row.get("metrics") or {}).items():
                records.append({**labels, "metric": metric, "value": _value(value)})
    columns = [
        *RUN_COLUMNS,
        *PROVENANCE_COLUMNS,
        *(SWEEP_PREFIX + key for key in sweep_keys),
        *(("rollouts",) if curves else ()),
        "metric",
        "value",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def write_csv(
    path: str | os.PathLike[str], out: str | os.PathLike[str], curves: bool = False
) -> Path:
    """Write :func:`to_frame` of a results directory as CSV (atomically); return ``out``."""
    from agents.runs import atomic_write_text

    frame = to_frame(path, curves=curves)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, frame.to_csv(index=False))
    return out


def to_rliable(
    path: str | os.PathLike[str], *, return_tasks: bool = False
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], list[str]]:
    """The report's aggregate scores in rliable's layout: ``{algorithm: [runs, tasks]}``.

    Exactly the matrices behind the report's "Aggregate over tasks" section
    (``benchmarks.report.aggregate_over_tasks``): normalized scores of the final selection
    metric (0 = uniform random policy, 1 = Bayes), diverged runs at their task's floor, each
    algorithm's first ``k`` runs by seed on every task, the columns in one task order.

    Args:
        path: A suite's results directory.
        return_tasks: Also return the task names (the columns, in order).

    Returns:
        The matrices (empty when the suite has fewer than two normalizable tasks or no
        algorithm with a run on every task), or ``(matrices, tasks)``.
    """
    from benchmarks.report import aggregate_over_tasks, build_points, load_rows

    rows, meta = load_rows(path)
    experiments = build_points(rows, meta.get("agents") or ())
    # The experiments in the report's order (suite.json's), which orders the tasks.
    order = meta.get("experiments") or list(experiments)
    experiments = {e: experiments[e] for e in [*order, *experiments] if e in experiments}
    # One bootstrap replicate: only the score matrices are wanted, not their intervals.
    aggregate = aggregate_over_tasks(experiments, None, reps=1)
    scores = {} if aggregate is None else {k: v.copy() for k, v in aggregate.scores.items()}
    tasks = [] if aggregate is None or not scores else list(aggregate.tasks)
    return (scores, tasks) if return_tasks else scores
