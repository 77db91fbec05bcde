"""Result rows as the report reads them: one typed :class:`ResultRow` per run.

``load_rows`` reads a results directory once: ``benchmarks.results.read_rows`` parses the
JSON lines, ``benchmarks.results.row_problem`` (via ``latest_rows``) leaves malformed rows
out and lists them, and every row left becomes a :class:`ResultRow`. The rest of the report
reads rows through its attributes (``row.experiment``, ``row.metrics``), never by string key.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.runs import CorruptFileError, read_json
from benchmarks.results import RESULTS_FILE, latest_rows, read_rows
from maxrl_envs.references import as_float

#: The suite's identity, written by the runner (``benchmarks.run.SUITE_FILE``).
SUITE_FILE = "suite.json"

#: The checkpoints a run's metrics can be read at (docs/protocol.md, "Budgets"): with early
#: stopping, ``selected``, the checkpoint that scored best on the validation split (the
#: row's ``metrics``); without, ``last``, the run's last evaluation (its curve's last point).
CHECKPOINTS = ("selected", "last")


def check_checkpoint(checkpoint: str) -> str:
    """``checkpoint`` itself when it is one of :data:`CHECKPOINTS`.

    Raises:
        ValueError: Another value (naming it and the allowed ones).
    """
    if checkpoint not in CHECKPOINTS:
        raise ValueError(
            f"checkpoint={checkpoint!r} is not a checkpoint; allowed: {', '.join(CHECKPOINTS)} "
            "(selected: the best checkpoint on the validation split, with early stopping; "
            "last: the last evaluation, without)"
        )
    return checkpoint


def ignored_settings(family: str, method: str) -> tuple[str, ...]:
    """Run settings a row's method ignores, as its agent family's table entry says.

    The supervised references fit one label per context (``agents.objectives``: one rollout
    per context whatever N is), so a suite that sweeps ``group_size`` runs the same supervised
    run at every N: its rows match every N point, and runs that differ only in N are one run
    (:func:`run_identity`). A family or method the table does not know ignores nothing.
    """
    import benchmarks.suite  # noqa: F401  (registers the built-in families: ours, sb3)
    from benchmarks.families import AGENT_FAMILIES

    entry = AGENT_FAMILIES.get(family)
    try:
        return tuple(entry.ignored_settings(method)) if entry is not None else ()
    except ValueError:  # a method its family does not know (a plugin's, or a bare row)
        return ()


@dataclass(frozen=True, eq=False)
class ResultRow(Mapping[str, Any]):
    """One run's result row, typed: the fields the report reads.

    Built by :meth:`of` from a row ``benchmarks.results.row_problem`` accepts; a field the
    row does not have takes the default below. The row still reads as the JSON object it
    came from (``row["metrics"]``, ``row.get("selected_rollouts")``) for code that takes
    rows as mappings (the runner's rate choice, the plots, the summary tables).

    Attributes:
        run_id: The run's id.
        status: ``ok`` or ``failed``.
        phase: ``tune`` (validation) or ``final`` (reported); None if absent.
        cell: Cell key of the suite (None if absent).
        experiment: Experiment name.
        env_label: Environment label (with its swept settings).
        env_base: Environment name without them (default: ``env_label``).
        agent: Agent name.
        role: ``maxrl``, ``baseline`` or ``reference``.
        family: Agent family (``ours``, ``sb3``).
        select_metric: Metric the learning rate and checkpoints are chosen on.
        target_fraction: Fraction of the best baseline's improvement that is the target.
        seed: Seed (None if absent).
        lr: Learning rate (None: the family's default).
        sweep: Swept settings of the run's point.
        metrics: Final metrics as floats (non-finite ones included).
        curve: ``[rollouts, {tag: value}]`` evaluations, as stored.
        config: The run's configuration (None if absent).
        references: Reference levels as floats: predictor -> metric -> level.
        columns: Report columns the job lists (empty: the metrics decide).
        env_kwargs: Environment arguments of the run.
        method: Estimator of the run (``method``, else the config's ``estimator``).
        finished_at: When the run finished (None if absent).
        error: Error text of a failed run.
        data: The row as read.
    """

    run_id: str
    status: str
    phase: str | None = None
    cell: str | None = None
    experiment: str = ""
    env_label: str = ""
    env_base: str = ""
    agent: str = ""
    role: str = "baseline"
    family: str = ""
    select_metric: str = ""
    target_fraction: float = 0.9
    seed: int | None = None
    lr: float | None = None
    sweep: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    curve: Sequence[Sequence[Any]] = ()
    config: Mapping[str, Any] | None = None
    references: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    method: str | None = None
    finished_at: str | None = None
    error: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> ResultRow:
        """The typed row of a row as stored (a :class:`ResultRow` is returned as is)."""
        if isinstance(row, ResultRow):
            return row
        get = row.get
        config = get("config")
        metrics = get("metrics")
        listed = get("columns")
        env_label = str(get("env_label", ""))
        return cls(
            run_id=str(get("run_id")),
            status=str(get("status")),
            phase=get("phase"),
            cell=get("cell"),
            experiment=str(get("experiment", "")),
            env_label=env_label,
            env_base=str(get("env_base", env_label)),
            agent=str(get("agent", "")),
            role=str(get("role", "baseline")),
            family=str(get("family", "")),
            select_metric=str(get("select_metric") or ""),
            target_fraction=as_float(get("target_fraction", 0.9)),
            seed=get("seed"),
            lr=get("lr"),
            sweep=get("sweep") or {},
            metrics={str(k): as_float(v) for k, v in metrics.items()}
            if isinstance(metrics, Mapping)
            else {},
            curve=get("curve") or [],
            config=config if isinstance(config, Mapping) else None,
            references=_reference_levels(get("references")),
            columns=tuple(listed) if isinstance(listed, list) else (),
            env_kwargs=get("env_kwargs") or {},
            method=get("method") or (config or {}).get("estimator"),
            finished_at=get("finished_at") or None,
            error=str(get("error", "")),
            data=row,
        )

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def ignored(self) -> tuple[str, ...]:
        """The run settings its method ignores (:func:`ignored_settings`)."""
        return ignored_settings(str(self.family), str(self.method))

    @property
    def used_sweep(self) -> dict[str, Any]:
        """The sweep values the run depends on: its ``sweep`` less :attr:`ignored`."""
        return {k: v for k, v in self.sweep.items() if k not in self.ignored}

    @property
    def budget(self) -> float:
        """Rollout budget of the run: its config's ``budget``, else its curve's last x."""
        budget = as_float((self.config or {}).get("budget"))
        if math.isfinite(budget):
            return budget
        return as_float(self.curve[-1][0]) if self.curve else float("nan")

    def final_value(self, metric: str) -> float:
        """The run's final value of a metric: its row's, else its curve's last point's."""
        if metric in self.metrics:
            return self.metrics[metric]
        return as_float(self.curve[-1][1].get(metric)) if self.curve else float("nan")

    @property
    def last_metrics(self) -> dict[str, float]:
        """Test-split metrics at the run's last evaluation, without early stopping.

        The curve's last point as floats (empty for a row without a curve). ``metrics``
        holds the same metrics at the checkpoint early stopping selected; where that is the
        last evaluation the two agree up to the curve's float32 rounding.
        """
        if not self.curve:
            return {}
        values = self.curve[-1][1]
        return (
            {str(k): as_float(v) for k, v in values.items()} if isinstance(values, Mapping) else {}
        )

    def at_checkpoint(self, checkpoint: str) -> ResultRow:
        """The row with its metrics read at ``checkpoint`` (one of :data:`CHECKPOINTS`).

        ``selected``: the row itself. ``last``: a copy whose ``eval/*`` metrics (in
        ``metrics`` and in ``row["metrics"]``) are :attr:`last_metrics`; the run's other
        figures (``rollouts``, ``wall_time``, ``selected_rollouts``) are kept. A row without
        a curve has no ``eval/*`` metric at its last evaluation, so tables that read the
        copy leave it out.

        Raises:
            ValueError: ``checkpoint`` is not one of :data:`CHECKPOINTS`.
        """
        if check_checkpoint(checkpoint) == "selected":
            return self
        stored = self.data.get("metrics")
        kept = {
            k: v
            for k, v in (stored.items() if isinstance(stored, Mapping) else ())
            if not str(k).startswith("eval/")
        }
        return ResultRow.of({**self.data, "metrics": {**kept, **self.last_metrics}})

    def curve_points(self, metric: str) -> list[tuple[float, float]]:
        """The run's finite ``(rollouts, value)`` points of a metric (others skipped)."""
        pts = [(as_float(s), as_float(v.get(metric))) for s, v in self.curve]
        return [(s, v) for s, v in pts if math.isfinite(s) and math.isfinite(v)]

    def report_columns(self) -> list[str]:
        """Report columns of the row: its job's ``columns``, else the metrics it has."""
        if self.columns:
            return list(self.columns)
        preferred = [self.select_metric, "eval/log_likelihood", "eval/excess_mse", "eval/pass@1"]
        columns = [m for m in preferred if m and m in self.metrics]
        columns += sorted(
            m
            for m in self.metrics
            if m.startswith("eval/pass@") and m not in columns and m != "eval/pass@1"
        )
        return list(dict.fromkeys(columns))


def rows_at_checkpoint(rows: Iterable[Mapping[str, Any]], checkpoint: str) -> list[ResultRow]:
    """Every row read at ``checkpoint`` (:meth:`ResultRow.at_checkpoint`), in order.

    Points built from them (``build_points``) hold that checkpoint's values: with
    ``last``, the summary tables and claims (``--checkpoint last``, ``checkpoint = "last"``)
    read the results without early stopping.

    Raises:
        ValueError: ``checkpoint`` is not one of :data:`CHECKPOINTS`.
    """
    check_checkpoint(checkpoint)
    return [ResultRow.of(row).at_checkpoint(checkpoint) for row in rows]


def _reference_levels(refs: Any) -> dict[str, dict[str, float]]:
    """Stored reference levels as floats (empty for rows without ``references``)."""
    if not isinstance(refs, Mapping):
        return {}
    return {
        str(name): {str(k): as_float(v) for k, v in levels.items()}
        for name, levels in refs.items()
        if isinstance(levels, Mapping)
    }


def row_sweep(row: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep values a row's run depends on: its ``sweep`` less what its method ignores."""
    return ResultRow.of(row).used_sweep


def run_identity(row: Mapping[str, Any]) -> str:
    """What makes two rows the same run, whichever sweep points list them.

    A SHA-1 of the agent, environment label, seed, learning rate, :func:`row_sweep` and the
    row's ``config`` less the settings its method ignores (:func:`ignored_settings`): an SB3
    run, which ignores our agents' sweep settings, is one row listed at several points; the
    supervised runs of a ``group_size`` sweep are several rows of one identical run. Rows
    without a ``config`` are identified by their ``run_id``.
    """
    row = ResultRow.of(row)
    if row.config is None:
        return row.run_id
    key = {
        "agent": row.agent,
        "env_label": row.env_label,
        "seed": row.seed,
        "lr": row.lr,
        "sweep": row.used_sweep,
        "config": {k: v for k, v in row.config.items() if k not in row.ignored},
    }
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _final_value(row: Mapping[str, Any], metric: str) -> float:
    """A run's final value of a metric: its row's, else its curve's last point's."""
    return ResultRow.of(row).final_value(metric)


def _curve_rows(rows: Iterable[Mapping[str, Any]], metric: str) -> list[ResultRow]:
    """Runs whose curve of a metric is plotted: finite final value and some finite point."""
    typed = map(ResultRow.of, rows)
    return [r for r in typed if math.isfinite(r.final_value(metric)) and r.curve_points(metric)]


def load_rows(
    results_dir: str | os.PathLike[str], skipped: list[str] | None = None
) -> tuple[list[ResultRow], dict[str, Any]]:
    """The current rows of a results directory and its ``suite.json`` (empty if absent).

    Rows: the latest well-formed row of each run as a :class:`ResultRow`, without rows of an
    older suite version (:func:`current_rows`). A malformed row
    (``benchmarks.results.row_problem``) is left out and, when ``skipped`` is given,
    described there (run id and problem).

    Raises:
        CorruptFileError: ``suite.json`` exists but is not a JSON object of the fields the
            runner writes (naming it and the field).
        CorruptRowsError: ``results.jsonl.gz`` is damaged (naming it, and how to recover).
    """
    results_dir = Path(results_dir)
    bad: list[tuple[dict[str, Any], str]] = []
    latest = latest_rows(read_rows(results_dir / RESULTS_FILE), bad)
    rows = [ResultRow.of(row) for row in latest.values()]
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


def current_rows(rows: list[ResultRow], meta: dict[str, Any]) -> list[ResultRow]:
    """Rows of the suite as it was last run (``suite.json``), without stale ones.

    A results file keeps the rows of earlier versions of a suite (other budgets, envs or
    seeds). After a complete sweep ``suite.json`` lists its run ids; after an interrupted
    one, its cells and seeds; without ``suite.json`` every row counts.
    """
    if meta.get("run_ids"):
        wanted = set(meta["run_ids"])
        return [r for r in rows if r.run_id in wanted]
    cells = meta.get("cells")
    if not cells:
        return rows
    if not any("final_ids" in cell for cell in cells.values()):  # a suite.json of before
        return [
            r
            for r in rows
            if r.cell in cells and (r.phase == "tune" or r.seed in cells[r.cell]["seeds"])
        ]
    return [r for r in rows if r.run_id in _this_sweep(rows, cells)]


def _this_sweep(rows: list[ResultRow], cells: Mapping[str, Any]) -> set[str]:
    """Run ids of an interrupted sweep's rows, from its ``suite.json`` cells.

    Validation rows count when their run id is one of the cell's ``tune_ids``. Reported
    rows count at one rate only: the cell's single rate, or the rate this sweep's
    validation rows choose (``benchmarks.run.choose_rate``, once every validation run has a
    row), so reported rows of an earlier sweep at another rate, or with other settings (their
    run ids differ), do not count.
    """
    from benchmarks.run import choose_rate

    by_id = {r.run_id: r for r in rows}
    wanted: set[str] = set()
    for cell in cells.values():
        tune_ids = cell.get("tune_ids", [])
        finals = {float(lr): ids for lr, ids in cell.get("final_ids", [])}
        wanted.update(tune_ids)
        if not tune_ids:
            chosen = next(iter(finals), None)
        elif all(run_id in by_id for run_id in tune_ids):
            tune_rows = [by_id[run_id] for run_id in tune_ids]
            metric = cell.get("select_metric") or tune_rows[0].select_metric
            chosen = choose_rate(list(finals), metric, tune_rows)
        else:
            chosen = None  # validation unfinished: no reported run of this sweep yet
        if chosen is not None:
            wanted.update(finals.get(chosen, []))
    return wanted
