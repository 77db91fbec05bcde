"""Executing one run in a worker and turning its outcome into a result row."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import provenance
from benchmarks.results import FAILED, OK

#: Folder of a suite's output directory that holds the run directories.
LOGS_DIR = "logs"
#: Lines of traceback kept in a failed row.
TRACEBACK_LINES = 25


def run_dir(results_dir: str | os.PathLike[str], job: dict[str, Any]) -> Path:
    """Run directory of a job: ``results_dir/logs/<experiment>/<run_id>``.

    Experiments become folders, so ``tensorboard --logdir results_dir/logs`` groups the
    runs of one report table together and overlays every agent's curves. Both names are
    made safe file names: path separators become ``_``, and a name of dots only (``..``)
    is spelt with ``_``, so a run directory never lies outside ``results_dir/logs``.
    """
    experiment = "".join(c if c.isalnum() or c in "-_." else "_" for c in job["experiment"])
    run_id = str(job["run_id"]).replace("/", "_").replace("\\", "_")
    experiment, run_id = (_not_dots(name) for name in (experiment, run_id))
    return Path(results_dir) / LOGS_DIR / experiment / run_id


def _not_dots(name: str) -> str:
    """A name made of dots only (``.``, ``..``) or empty, spelt with ``_`` instead."""
    return "_" * max(len(name), 1) if set(name) <= {"."} else name


def limit_threads(threads: int = 1) -> None:
    """Pin torch (and BLAS via the environment) to ``threads`` threads in this process."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    # Raises once set, or once parallel work has started in this process: keep the first.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


def read_curve(path: str | os.PathLike[str], prefix: str = "eval/") -> list[list[Any]]:
    """Evaluation curve from a run directory's TensorBoard events.

    Args:
        path: Run directory (all event files in it are read).
        prefix: Tags to keep.

    Returns:
        ``[[rollouts, {tag: value}], ...]`` sorted by rollouts; for a step logged twice
        (a resumed run) the latest value wins.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    accumulator.Reload()
    points: dict[int, dict[str, tuple[float, float]]] = {}
    for tag in accumulator.Tags().get("scalars", []):
        if not tag.startswith(prefix):
            continue
        for event in accumulator.Scalars(tag):
            slot = points.setdefault(int(event.step), {})
            if tag not in slot or event.wall_time >= slot[tag][0]:
                slot[tag] = (event.wall_time, float(event.value))
    return [
        [step, {tag: value for tag, (_, value) in sorted(slot.items())}]
        for step, slot in sorted(points.items())
    ]


@functools.lru_cache(maxsize=32)
def references(env_id: str, kwargs_json: str, split: str, pass_k: int) -> dict[str, Any]:
    """Exact reference levels of an env on a split (random, Bayes point, Bayes sampler).

    See ``maxrl_envs.references``; cached per worker, since every run of a cell shares them.
    """
    import maxrl_envs
    from maxrl_envs.references import reference_levels

    task = maxrl_envs.make_task(env_id, device="cpu", **json.loads(kwargs_json))
    return reference_levels(task.core, split=split, pass_k=pass_k, codec=task.codec)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def execute_job(
    job: dict[str, Any], results_dir: str, threads: int = 1, imports: Sequence[str] = ()
) -> dict[str, Any]:
    """Run one job to completion and return its result row; never raises.

    A finished run (``final.json`` in its run directory) is not retrained; an interrupted
    one continues from its checkpoint. Any exception becomes a ``failed`` row carrying the
    error and the end of its traceback.

    Args:
        job: ``Job.to_dict()``.
        results_dir: The suite's output directory.
        threads: Torch threads in this worker.
        imports: The suite's plugin modules, imported first (they register estimators,
            task kinds or env ids that the job may name).

    Returns:
        The row: the job's fields plus ``status``, ``metrics``, ``curve``, ``rollouts``,
        ``wall_time``, ``elapsed``, ``run_dir`` (relative to ``results_dir``), ``error``,
        ``host``, ``finished_at`` and ``provenance`` (``benchmarks.provenance``: package
        versions, git commit, device and threads).
    """
    started = time.perf_counter()
    row: dict[str, Any] = dict(job)
    directory = run_dir(results_dir, job)
    row["run_dir"] = str(directory.relative_to(results_dir))
    row["host"] = platform.node()
    try:
        from agents.runs import refuse_links_below

        # No folder between the results directory and the run directory may be a link.
        refuse_links_below(results_dir, directory)
        limit_threads(threads)
        if imports:
            from benchmarks.suite import import_plugins

            import_plugins(imports)
        row[provenance.KEY] = provenance.provenance(provenance.job_device(job), threads)
        metrics = _train_recovering(job, directory, threads, row)
        row["status"] = OK
        row["error"] = None
        row["metrics"] = {k: float(v) for k, v in metrics.items()}
        row["rollouts"] = float(metrics.get("rollouts", float("nan")))
        row["wall_time"] = float(metrics.get("wall_time", float("nan")))
        row["curve"] = read_curve(directory)
        config = job["config"]
        row["references"] = references(
            config["env_id"],
            json.dumps(config.get("env_kwargs", {}), sort_keys=True),
            config.get("eval_split", "test"),
            int(config.get("pass_k", 16)),
        )
    except BaseException as err:  # noqa: BLE001 - a crashed run is a row, the sweep goes on
        if isinstance(err, KeyboardInterrupt):
            raise
        row["status"] = FAILED
        row["error"] = f"{type(err).__name__}: {err}"
        row["traceback"] = "".join(traceback.format_exc().splitlines(True)[-TRACEBACK_LINES:])
        row["metrics"] = {}
        row["curve"] = []
    row["elapsed"] = time.perf_counter() - started
    row["finished_at"] = _now()
    return row


def failed_row(job: dict[str, Any], results_dir: str, error: str) -> dict[str, Any]:
    """The row of a job whose worker died before returning (no metrics)."""
    row = dict(job)
    row.update(
        status=FAILED,
        error=error,
        metrics={},
        curve=[],
        run_dir=str(run_dir(results_dir, job).relative_to(results_dir)),
        host=platform.node(),
        elapsed=float("nan"),
        finished_at=_now(),
    )
    row[provenance.KEY] = provenance.provenance(provenance.job_device(job))
    return row


#: Corrupt run files set aside in one run before it gives up (config, final, checkpoint).
MAX_RECOVERIES = 3


def _train_recovering(
    job: dict[str, Any], directory: Path, threads: int, row: dict[str, Any]
) -> dict[str, float]:
    """Train; a corrupt run file is set aside (kept, renamed) and the run restarts.

    Each recovery is recorded in ``row["recovered"]``, so the row says the run did not
    simply resume.
    """
    from agents.runs import CorruptFileError, set_aside

    for _ in range(MAX_RECOVERIES + 1):
        try:
            return _checked(job, directory, _train(job, directory, threads))
        except CorruptFileError as err:
            if len(row.get("recovered", [])) >= MAX_RECOVERIES:
                raise
            # Set aside the run directory's entry that holds the bad file (a checkpoint
            # folder as a whole), so the next attempt does not trip on its remains.
            entry = directory / err.path.relative_to(directory).parts[0]
            aside = set_aside(entry)
            row.setdefault("recovered", []).append(
                f"{err}; set aside as {aside.name}, the run restarted without it"
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _checked(job: dict[str, Any], directory: Path, metrics: dict[str, float]) -> dict[str, float]:
    """The run's metrics, refused when the job's selection metric or a column is missing.

    A finished run's metrics come from its ``final.json``: one that lacks a metric the
    report needs is corrupt (set aside, the run redone), so a seed is never counted without
    its value.
    """
    from agents.runs import FINAL, CorruptFileError

    wanted = [job.get("select_metric"), *job.get("columns", [])]
    missing = [m for m in wanted if isinstance(m, str) and m not in metrics]
    if not missing:
        return metrics
    final = directory / FINAL
    if final.exists():
        raise CorruptFileError(final, f"metric {missing[0]!r} is missing")
    raise ValueError(f"the run returned no {missing[0]!r} metric")


def _train(job: dict[str, Any], directory: Path, threads: int) -> dict[str, float]:
    directory.parent.mkdir(parents=True, exist_ok=True)
    paths = {"log_dir": str(directory.parent), "run_name": directory.name}
    from benchmarks.suite import get_family  # the built-in families register with the suite

    return dict(get_family(job["family"]).train(job["config"], paths, threads))
