"""Result rows as the report reads them: loading, validation, the current sweep, run identity."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.runs import (
    CorruptFileError,
    read_json,
)
from benchmarks.results import (
    RESULTS_FILE,
    latest_rows,
    read_rows,
)
from maxrl_envs.references import as_float

#: The suite's identity, written by the runner (``benchmarks.run.SUITE_FILE``).
SUITE_FILE = "suite.json"


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


def _run_budget(row: Mapping[str, Any]) -> float:
    """Rollout budget of a run: its config's ``budget``, else its curve's last x."""
    budget = as_float((row.get("config") or {}).get("budget"))
    if math.isfinite(budget):
        return budget
    curve = row.get("curve") or []
    return as_float(curve[-1][0]) if curve else float("nan")


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
