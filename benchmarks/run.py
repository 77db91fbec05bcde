"""Run a benchmark suite: ``python -m benchmarks.run SUITE`` (console script ``maxrl-bench``).

The runner loads a suite (``benchmarks/suites/SUITE.toml`` or a path), validates every
run's config before anything starts, then schedules the runs on a backend (a local process
pool, or Ray with ``--backend ray``) and appends one row per finished run to
``OUT/SUITE/results.jsonl``. Validation runs (learning-rate selection on the validation split)
go first; as soon as all of a cell's validation runs are in, its reported runs start at the
chosen rate. Rerunning the same command skips runs that have an ``ok`` row, retries failed
ones, and resumes interrupted ones from their checkpoints; a sweep killed at any moment
loses at most the runs in flight. At the end the report (``benchmarks.report``) is written
next to the runs and its main table printed.

Examples::

    python -m benchmarks.run quick                 # the demo: < 10 minutes on 2 CPU cores
    python -m benchmarks.run low-snr --workers 8
    python -m benchmarks.run full --backend ray --address auto
    python -m benchmarks.run quick --dry-run       # validate; list the runs still to run

Trust: a suite file and a results directory are code, not data. A suite's ``imports`` and
env ids written ``module:Id`` import Python modules; resuming a run loads its SB3 checkpoint
(``model.zip``, ``replay.pkl``) through pickle. Run only suites and results directories you
trust. ``--dry-run`` imports nothing unless ``--import-plugins`` is given.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.cli import Parser, activation_hint, fail
from agents.evaluation import LOWER_IS_BETTER
from agents.runs import CorruptFileError, LinkError, atomic_write_json, read_json, refuse_link
from benchmarks.results import (
    FAILED,
    OK,
    RESULTS_FILE,
    CorruptRowsError,
    LockedError,
    ResultsLock,
    append_row,
    latest_rows,
    plain,
    read_rows,
)
from benchmarks.suite import (
    TUNE_SEED_BASE,
    Cell,
    Job,
    Suite,
    SuiteError,
    available_suites,
    estimate_seconds,
    estimate_suite_seconds,
    get_family,
    load_suite,
    validate_suite,
)
from maxrl_envs.validation import did_you_mean

#: Written next to the results: the suite's identity and the command that ran it.
SUITE_FILE = "suite.json"


@dataclass
class SweepSummary:
    """What a sweep did.

    Attributes:
        results_dir: The suite's output directory.
        total: Runs in the suite.
        ran: Runs executed now (ok or failed).
        skipped: Runs already finished before this sweep.
        failed: Runs whose latest row is ``failed`` (including skipped cells).
        chosen_lr: Cell key -> learning rate chosen on validation runs.
        run_ids: Every run of the suite as it stands (done now or before), in order.
        elapsed: Seconds.
    """

    results_dir: Path
    total: int = 0
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    chosen_lr: dict[str, float] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def choose_lr(cell: Cell, rows: Sequence[dict[str, Any]]) -> float | None:
    """Learning rate with the best mean ``select_metric`` over a cell's validation rows.

    A rate is eligible only when every one of its validation runs finished with a finite
    value: a rate that failed or diverged (NaN, inf) on any tuning seed is never chosen, even
    if its other seeds score best (a single lucky seed must not pick a rate that diverges).

    Args:
        cell: A tuned cell.
        rows: Its validation rows.

    Returns:
        The chosen rate (ties go to the earlier grid entry), or None if no rate is eligible.
    """
    return choose_rate(cell.lr_grid, cell.select_metric, rows)


def choose_rate(grid: Sequence[float], metric: str, rows: Sequence[dict[str, Any]]) -> float | None:
    """``choose_lr`` from a grid and a metric (what ``suite.json`` records of a cell)."""
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    best: tuple[float, float] | None = None
    for lr in grid:
        mine = [r for r in rows if r.get("lr") == lr]
        values = [metric_value(r, metric) for r in mine]
        if not mine or not all(value is not None and math.isfinite(value) for value in values):
            continue
        score = sign * sum(values) / len(values)  # type: ignore[arg-type]
        if best is None or score > best[0]:
            best = (score, lr)
    return None if best is None else best[1]


def metric_value(row: dict[str, Any], metric: str) -> float | None:
    """A row's value of a metric (non-finite ones as floats), or None if failed or absent."""
    if row.get("status") != OK or metric not in row.get("metrics", {}):
        return None
    try:
        return float(row["metrics"][metric])
    except (TypeError, ValueError):
        return None


def _summary_line(row: dict[str, Any], fresh: bool, shown: Sequence[str]) -> str:
    lr = "default" if row.get("lr") is None else f"{row['lr']:g}"
    head = (
        f"[{row.get('status', '?'):>6}] {row['experiment']} | {row['env_label']} | "
        f"{row['agent']} {row['phase']} lr={lr} seed={row['seed']}"
    )
    if row.get("status") != OK:
        return f"{head} | {row.get('error')}"
    metrics = row.get("metrics", {})
    shown = [m for m in shown if m in metrics][:3]
    values = " ".join(f"{m.removeprefix('eval/')}={metrics[m]:.4g}" for m in shown)
    took = f"{row.get('elapsed', float('nan')):.1f}s" if fresh else "done earlier"
    return f"{head} | {values} | {took}"


class Sweep:
    """One pass over a suite: the queue of runs, what finished, and the cells' chosen rates.

    Validation runs go first, SB3's first among them (the longest runs); as soon as all of
    a tuned cell's validation runs are in, ``release`` queues its reported runs at the
    chosen rate. Rows are appended by this process only.

    Args:
        suite: The suite (validated).
        results_dir: Its output directory.
        retry_failed: Rerun runs whose latest row is ``failed``.
        say: Where one-line summaries go.
        advance: Called with the number of runs accounted for (a progress bar's update).
    """

    def __init__(
        self,
        suite: Suite,
        results_dir: Path,
        *,
        retry_failed: bool,
        say: Callable[[str], None],
        advance: Callable[[int], None],
    ) -> None:
        self.suite = suite
        self.results_path = results_dir / RESULTS_FILE
        self.retry_failed = retry_failed
        self.say = say
        self.advance = advance
        self.latest = latest_rows(read_rows(self.results_path))
        self.summary = SweepSummary(results_dir=results_dir, total=suite.total_runs())
        self.tuned = {cell.key: cell for cell in suite.cells if cell.needs_tuning}
        self.pending_tune: dict[str, set[str]] = {key: set() for key in self.tuned}
        self.tune_rows: dict[str, list[dict[str, Any]]] = {key: [] for key in self.tuned}
        # Families that queue first (SB3's slow runs) start first.
        initial = sorted(suite.initial_jobs(), key=lambda j: not get_family(j.family).queue_first)
        for job in initial:
            if job.phase == "tune":
                self.pending_tune[job.cell].add(job.run_id)
        self.queue = list(reversed(initial))  # pop() from the end
        # A rough ETA: the cost model's estimate of what is left, calibrated by how long the
        # runs of this sweep actually took against their estimates.
        self.estimate_left = estimate_suite_seconds(suite)
        self.estimated_done = 0.0
        self.actual_done = 0.0

    def eta(self, slots: int) -> float:
        """Rough seconds left with ``slots`` parallel runs."""
        scale = self.actual_done / self.estimated_done if self.estimated_done > 0 else 1.0
        return max(0.0, self.estimate_left) * min(max(scale, 0.2), 5.0) / max(slots, 1)

    def next_job(self) -> Job | None:
        """The next run to submit, accounting at once for runs that are already done."""
        while self.queue:
            job = self.queue.pop()
            row = self.latest.get(job.run_id)
            done = row is not None and (
                row.get("status") == OK or (row.get("status") == FAILED and not self.retry_failed)
            )
            if not done:
                return job
            self.finish(job, row, fresh=False)  # type: ignore[arg-type]
        return None

    def finish(self, job: Job, row: dict[str, Any], fresh: bool) -> None:
        """Record a finished run (appending its row if it ran now); release tuned cells."""
        summary = self.summary
        summary.run_ids.append(job.run_id)
        estimate = estimate_seconds(job)
        self.estimate_left -= estimate
        if fresh and math.isfinite(float(row.get("elapsed", math.nan))):
            self.estimated_done += estimate
            self.actual_done += float(row["elapsed"])
        if fresh:
            append_row(self.results_path, row)
            summary.ran += 1
            self.say(_summary_line(row, fresh, job.columns))
        else:
            summary.skipped += 1
        if row.get("status") != OK:
            summary.failed += 1
        self.advance(1)
        if job.phase == "tune":
            self.pending_tune[job.cell].discard(job.run_id)
            self.tune_rows[job.cell].append(row)
            if not self.pending_tune[job.cell]:
                self.release(self.tuned[job.cell])

    def release(self, cell: Cell) -> None:
        """Queue a tuned cell's reported runs at the rate its validation runs chose."""
        lr = choose_lr(cell, self.tune_rows[cell.key])
        seeds = cell.settings["seeds"]
        if lr is None:
            self.say(
                f"[  skip] {cell.experiment} | {cell.env.label} | {cell.agent.name}: no "
                f"validation run succeeded, so its {len(seeds)} reported runs are skipped"
            )
            self.summary.failed += len(seeds)
            self.advance(len(seeds))
            self.estimate_left -= len(seeds) * estimate_seconds(cell.job(seeds[0], None, "final"))
            return
        self.summary.chosen_lr[cell.key] = lr
        self.queue.extend(reversed(self.suite.final_jobs(cell, lr)))


def run_suite(
    suite: Suite,
    results_dir: str | os.PathLike[str],
    backend: Any,
    *,
    command: str = "",
    progress: bool = True,
    retry_failed: bool = True,
    echo: Callable[[str], None] | None = None,
) -> SweepSummary:
    """Run every run of a validated suite that has no ``ok`` row yet.

    Args:
        suite: The suite (validate it first with ``validate_suite``).
        results_dir: Output directory of this suite (rows, run directories, report).
        backend: A ``benchmarks.backends.Backend``.
        command: The command line that started the sweep (recorded for the report).
        progress: Show a tqdm bar over runs (on a terminal; else ``PlainProgress`` lines).
        retry_failed: Rerun runs whose latest row is ``failed``.
        echo: Where the one-line summaries go (default: through tqdm, or print).

    Returns:
        A summary of the sweep.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    meta = suite_meta(suite, command, threads=getattr(backend, "threads", None))
    recorded = _read_meta(results_dir / SUITE_FILE)
    # A bar only on a terminal: redirected to a file, its redraws pile up (tens of KB).
    interactive = progress and sys.stderr.isatty()
    bar = _progress_bar(suite, progress, interactive)
    sweep = Sweep(
        suite,
        results_dir,
        retry_failed=retry_failed,
        say=echo or (tqdm.write if interactive else print),
        advance=bar.update,
    )
    interrupted = False
    try:
        started_meta = _drive(sweep, backend, bar, results_dir / SUITE_FILE, meta)
    except BaseException:  # Ctrl-C, or the driver failing: stop the runs in flight too
        interrupted = True
        raise
    finally:
        bar.close()
        backend.close(cancel=interrupted)
        sweep.summary.elapsed = time.perf_counter() - started
    _write_final_meta(results_dir / SUITE_FILE, meta, recorded, started_meta, sweep.summary)
    return sweep.summary


def _progress_bar(suite: Suite, progress: bool, interactive: bool) -> Any:
    """The sweep's progress display: a tqdm bar on a terminal, else ``PlainProgress`` lines."""
    from tqdm.auto import tqdm

    if progress and not interactive:
        return PlainProgress(suite.name, suite.total_runs())
    return tqdm(
        total=suite.total_runs(),
        unit="run",
        desc=suite.name,
        disable=not progress,
        dynamic_ncols=True,
        # tqdm's own ETA assumes equal runs; the postfix has one from each run's cost.
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} runs "
        "[{elapsed}{postfix}]",
    )


def _drive(sweep: Sweep, backend: Any, bar: Any, meta_path: Path, meta: dict[str, Any]) -> bool:
    """Keep the backend's slots busy until the queue is done; whether any run started.

    suite.json is written when the first run starts (so an interrupted sweep's report
    knows the suite's cells).
    """
    started_meta = False
    while sweep.queue or backend.in_flight:
        while backend.in_flight < backend.slots:
            job = sweep.next_job()
            if job is None:
                break
            if not started_meta:
                atomic_write_json(meta_path, meta)
                started_meta = True
            backend.submit(job.to_dict())
        if backend.in_flight:
            for job_dict, row in backend.wait():
                sweep.finish(Job(**job_dict), row, fresh=True)
            bar.set_postfix_str(f"ETA ~{_minutes(sweep.eta(backend.slots))} (rough)")
    return started_meta


def _write_final_meta(
    meta_path: Path,
    meta: dict[str, Any],
    recorded: dict[str, Any] | None,
    started_meta: bool,
    summary: SweepSummary,
) -> None:
    """Write suite.json at the end of a sweep, unless nothing ran and the record is the same.

    A sweep that runs nothing and finds the same suite recorded leaves the file as it is
    (no churn of committed records).
    """
    final = {**meta, "run_ids": summary.run_ids}
    if not started_meta and recorded is not None:
        # Nothing ran: how and where the recorded runs ran is still the recorded command's.
        final = {k: v for k, v in final.items() if k not in RUN_CONTEXT_KEYS}
        final.update({k: recorded[k] for k in RUN_CONTEXT_KEYS if k in recorded})
    if started_meta or recorded is None or not same_suite(recorded, final):
        atomic_write_json(meta_path, final)


#: ``suite.json`` keys that say how and where a sweep ran, not which suite it is.
RUN_CONTEXT_KEYS = ("command", "source", "provenance")


def same_suite(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two ``suite.json`` records describe the same suite and runs.

    The command, the suite file's path and provenance (how and where it ran) are left out
    of the comparison, and so is the order of the run ids.
    """

    def identity(meta: dict[str, Any]) -> str:
        import json

        kept = {k: v for k, v in meta.items() if k not in RUN_CONTEXT_KEYS}
        # The order of run ids is the order runs finished in; the set is what counts.
        kept["run_ids"] = sorted(kept.get("run_ids") or ())
        return json.dumps(kept, sort_keys=True, default=str)

    return identity(a) == identity(b)


def _read_meta(path: Path) -> dict[str, Any] | None:
    """A recorded ``suite.json``, or None when it is missing or unreadable."""
    try:
        return read_json(path)
    except (FileNotFoundError, CorruptFileError):
        return None


def suite_meta(suite: Suite, command: str, threads: int | None = None) -> dict[str, Any]:
    """What ``suite.json`` records: the suite's identity, the command that ran it, provenance.

    Args:
        suite: The suite.
        command: The command line that started the sweep.
        threads: Torch threads per run (None: this process's).

    Returns:
        The record; ``provenance`` holds the package versions, git commit, the devices the
        runs use and the threads per run (``benchmarks.provenance``).
    """
    from benchmarks.provenance import job_device, provenance

    devices = sorted({job_device(job.to_dict()) for job in suite.initial_jobs()})
    return {
        "provenance": provenance(", ".join(devices) or None, threads),
        "suite": suite.name,
        "description": suite.description,
        "source": suite.source,
        "command": command,
        "imports": suite.imports,
        "experiments": list(dict.fromkeys(c.experiment for c in suite.cells)),
        "agents": list(dict.fromkeys(c.agent.name for c in suite.cells)),
        # What the report keeps when the file also holds rows of an older suite version.
        "cells": {c.key: cell_meta(suite, c) for c in suite.cells},
    }


def cell_meta(suite: Suite, cell: Cell) -> dict[str, Any]:
    """What ``suite.json`` records of a cell, so a report counts only this sweep's rows.

    The reported seeds; the run ids of its validation runs (``tune_ids``, empty when there
    are none) and its metric of choice; and, for every rate of its grid, the run ids of its
    reported runs at that rate (``final_ids``). Run ids carry a digest of each run's whole
    config, so rows of an earlier sweep with other settings (another grid, select_metric,
    tune_* setting or rate) are not among them.
    """
    tune = [TUNE_SEED_BASE + i for i in range(int(cell.settings["tune_seeds"]))]
    tune_ids = (
        [cell.job(seed, lr, "tune").run_id for lr in cell.lr_grid for seed in tune]
        if cell.needs_tuning
        else []
    )
    return {
        "seeds": list(cell.settings["seeds"]),
        "select_metric": cell.select_metric,
        "tune_ids": tune_ids,
        "final_ids": [[lr, [j.run_id for j in suite.final_jobs(cell, lr)]] for lr in cell.lr_grid],
    }


@dataclass
class Pending:
    """What a rerun of a suite would run, given the rows already in its results directory.

    Attributes:
        jobs: Runs that would start (validation runs, and reported runs whose rate is known).
        finished: Runs already done (an ``ok`` row; a ``failed`` one too without retries).
        later: Reported runs of tuned cells whose validation runs are not all done: their
            learning rate (hence their runs) is chosen only once those finish.
        skipped: Reported runs of cells where no validation run succeeded (never run).
    """

    jobs: list[Job] = field(default_factory=list)
    finished: int = 0
    later: int = 0
    skipped: int = 0


def pending_runs(suite: Suite, results_dir: Path, retry_failed: bool = True) -> Pending:
    """The runs a sweep of ``suite`` into ``results_dir`` would execute (see ``Pending``).

    Reads the rows (read-only, no lock): a finished tuned cell's reported runs are those at
    the rate :func:`choose_lr` picks from its validation rows, as the sweep would.
    """
    latest = latest_rows(read_rows(results_dir / RESULTS_FILE))

    def done(job: Job) -> bool:
        status = (latest.get(job.run_id) or {}).get("status")
        return status == OK or (status == FAILED and not retry_failed)

    pending = Pending()
    initial = suite.initial_jobs()
    for job in initial:
        if done(job):
            pending.finished += 1
        else:
            pending.jobs.append(job)
    for cell in suite.cells:
        if not cell.needs_tuning:
            continue
        seeds = len(cell.settings["seeds"])
        tune = [job for job in initial if job.cell == cell.key and job.phase == "tune"]
        if not all(done(job) for job in tune):
            pending.later += seeds
            continue
        lr = choose_lr(cell, [latest[job.run_id] for job in tune])
        if lr is None:
            pending.skipped += seeds
            continue
        for job in suite.final_jobs(cell, lr):
            if done(job):
                pending.finished += 1
            else:
                pending.jobs.append(job)
    return pending


def dry_run_text(suite: Suite, results_dir: Path, retry_failed: bool = True) -> str:
    """What ``--dry-run`` prints: the runs a sweep would execute now, and how many are done."""
    pending = pending_runs(suite, results_dir, retry_failed)
    total = suite.total_runs()
    lines = [
        f"{pending.finished} of {total} runs are finished in {results_dir}; "
        f"{len(pending.jobs)} would run now" + (":" if pending.jobs else "")
    ]
    for job in pending.jobs:
        lines.append(
            f"  {job.phase:5} {job.experiment} | {job.env_label} | {job.agent} "
            f"lr={'default' if job.lr is None else f'{job.lr:g}'} seed={job.seed}"
        )
    if pending.later:
        lines.append(
            f"  ... plus {pending.later} reported runs at the learning rates chosen on validation"
        )
    if pending.skipped:
        lines.append(
            f"  ({pending.skipped} reported runs are skipped: no validation run of their cell "
            "succeeded)"
        )
    if pending.jobs or pending.later:
        cost = sum(estimate_seconds(job) for job in pending.jobs)
        lines.append(f"rough cost of the runs listed: {_minutes(cost)} CPU")
    else:
        lines.append("nothing to run: a rerun would only rewrite the report")
    return "\n".join(lines)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds {text!r}: expected integers like 0,1,2"
        ) from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r}: expected integers >= 0 like 0,1,2")
    return seeds


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


EXAMPLES = """examples:
  maxrl-bench --list                         suites, their runs and rough cost
  maxrl-bench quick                          the demo (README: its measured time)
  maxrl-bench quick --dry-run                validate; list the runs a rerun would start
  maxrl-bench low-snr --workers 2 --seeds 0,1,2,3,4
  maxrl-bench my-suite.toml --out results    any suite file; results in results/<name>
  maxrl-bench full --backend ray --address auto

Rerunning a command resumes it: finished runs are skipped, interrupted ones continue from
their checkpoints. One runner at a time may use a results directory (a lock file there).
Trust: suite files and results directories are code. A suite's imports and module:Id env
ids import Python modules; resuming loads SB3 checkpoints (model.zip, replay.pkl) through
pickle. Run only suites and results directories you trust. --dry-run imports nothing
unless --import-plugins is given. Nothing is written through a symbolic link.
Threads: each run uses --threads torch threads (default 1, fastest for these small
networks) and --workers defaults to the CPUs available divided by --threads.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (one-line errors and ``--version``: ``agents.cli``)."""
    parser = Parser(
        prog="maxrl-bench",
        description="Run a maxrl-bench suite and write its results, logs and report.",
        epilog=EXAMPLES,
    )
    parser.add_argument("suite", nargs="?", help="suite name (see --list) or path to a .toml file")
    parser.add_argument(
        "--list", action="store_true", help="list the shipped suites (runs, rough cost) and exit"
    )
    parser.add_argument("--out", default="runs", help="output root; results go to OUT/SUITE")
    parser.add_argument(
        "--backend", choices=("local", "ray"), default="local", help="where runs go"
    )
    parser.add_argument("--address", default=None, help="Ray cluster address (--backend ray)")
    parser.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="parallel runs (default: CPUs available // --threads, so cores are never "
        "oversubscribed)",
    )
    parser.add_argument("--threads", type=_positive, default=1, help="torch threads per run")
    parser.add_argument(
        "--seeds", type=_parse_seeds, default=None, help="override the reported seeds, e.g. 0,1"
    )
    parser.add_argument("--budget", type=_positive, default=None, help="override rollouts per run")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, say how many runs are finished and list those that would run; run "
        "nothing; imports no plugin (suite imports, module:Id env ids) unless --import-plugins",
    )
    parser.add_argument(
        "--import-plugins",
        action="store_true",
        help="with --dry-run: import the suite's plugins to validate what they register "
        "(a suite file is code: only for suites you trust); a real run always imports them",
    )
    parser.add_argument("--skip-failed", action="store_true", help="do not retry failed runs")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (without a terminal, progress is a plain line every "
        f"{PLAIN_PROGRESS_PERCENT}%% of the runs or {PLAIN_PROGRESS_SECONDS:.0f} s)",
    )
    return parser


#: Without a terminal, a plain progress line at least every this share of the runs (%) ...
PLAIN_PROGRESS_PERCENT = 10
#: ... or this many seconds, whichever comes first (and never more often than per run).
PLAIN_PROGRESS_SECONDS = 30.0


class PlainProgress:
    """The progress bar's stand-in without a terminal: a plain line now and then.

    tqdm redraws its bar with carriage returns, which a log file keeps as one long line of
    every update. This prints ``NAME: DONE/TOTAL runs (P%), ELAPSED elapsed[, ETA]`` when
    another ``PLAIN_PROGRESS_PERCENT`` percent of the runs is done or
    ``PLAIN_PROGRESS_SECONDS`` have passed since the last line, and at the end.

    Args:
        name: The suite's name.
        total: Runs in the suite.
        write: Where lines go (default: stderr, as tqdm's bar).
        clock: Seconds since some origin (``time.monotonic``; tests pass a fake).
    """

    def __init__(
        self,
        name: str,
        total: int,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.total, self.n = name, total, 0
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.clock = clock
        self.started = self.last_time = clock()
        self.last_n = 0
        self.postfix = ""

    def update(self, count: int = 1) -> None:
        """Count ``count`` more runs accounted for; print a line when one is due."""
        self.n += count
        step = max(1, math.ceil(self.total * PLAIN_PROGRESS_PERCENT / 100))
        now = self.clock()
        due = self.n // step > self.last_n // step or now - self.last_time >= PLAIN_PROGRESS_SECONDS
        if due and self.n > self.last_n and self.n < self.total:
            self._line(now)

    def set_postfix_str(self, text: str) -> None:
        """Keep ``text`` (the rough ETA) for the next line."""
        self.postfix = text

    def close(self) -> None:
        """Print the last line (if runs were accounted for since the previous one)."""
        if self.n > self.last_n:
            self._line(self.clock())

    def _line(self, now: float) -> None:
        percent = 100 * self.n / self.total if self.total else 100.0
        extra = f", {self.postfix}" if self.postfix and self.n < self.total else ""
        self.write(
            f"{self.name}: {self.n}/{self.total} runs ({percent:.0f}%), "
            f"{_minutes(now - self.started)} elapsed{extra}"
        )
        self.last_n, self.last_time = self.n, now


def _command_line(argv: Sequence[str]) -> str:
    program = sys.argv[0] if sys.argv else ""
    prefix = "python -m benchmarks.run" if program.endswith(("run.py", "-m")) else "maxrl-bench"
    return " ".join([prefix, *map(shlex.quote, argv)])


def _minutes(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def list_suites() -> str:
    """One line per shipped suite: description, runs and a rough cost."""
    lines = ["suites (runs; rough CPU time on one core of the project's 2-core machine):"]
    names = available_suites()
    width = max(map(len, names), default=0)
    rows: list[tuple[str, str, str, str]] = []  # name, runs, cost, summary
    for name in names:
        try:
            suite = load_suite(name)
        except SuiteError as err:
            rows.append((name, "", "", f"(invalid: {err})"))
            continue
        summary = " ".join(suite.description.split())
        summary = summary.split(". ")[0].rstrip(".")
        if len(summary) > 64:
            summary = summary[:63].rsplit(" ", 1)[0] + " ..."
        cost = "~" + _minutes(estimate_suite_seconds(suite))
        rows.append((name, f"{suite.total_runs()} runs", f"{cost} CPU", summary))
    runs_width = max((len(row[1]) for row in rows), default=0)
    cost_width = max((len(row[2]) for row in rows), default=0)
    for name, runs, cost, summary in rows:
        if not runs:
            lines.append(f"  {name:<{width}}  {summary}")
            continue
        lines.append(
            f"  {name:<{width}}  {runs:>{runs_width}}  {cost:>{cost_width}}  {summary}".rstrip()
        )
    lines.append("Wall time is about CPU time / --workers. Run one: maxrl-bench NAME")
    return "\n".join(lines)


class Terminated(KeyboardInterrupt):
    """SIGTERM in the driver, raised like Ctrl-C so the same clean stop runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``maxrl-bench`` / ``python -m benchmarks.run``.

    SIGTERM stops the driver as Ctrl-C does: the runs in flight are stopped (their
    checkpoints kept), the finished rows stay, and one line says how to resume.

    Returns:
        0 when every run finished, 1 when some failed, 2 on bad input (nothing ran),
        130 when interrupted (Ctrl-C), 143 when terminated (SIGTERM).
    """
    import threading

    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if on_main_thread else None
    try:
        return _main(argv)
    except KeyboardInterrupt as err:  # before any run started
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(f"\nmaxrl-bench: {what} before any run started; nothing ran", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    finally:
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    # The driver only validates and schedules; one thread avoids OpenMP spin-waits that
    # slow it down badly while the workers keep every core busy.
    from benchmarks.jobs import limit_threads

    limit_threads(1)
    if args.list or args.suite is None:
        print(list_suites())
        return 0 if args.list else fail("maxrl-bench", "name a suite to run (or --list)")
    overrides: dict[str, Any] = {}
    if args.seeds is not None:
        overrides["seeds"] = args.seeds
    if args.budget is not None:
        overrides["budget"] = args.budget
    try:
        plugins = args.import_plugins or not args.dry_run
        suite = load_suite(args.suite, overrides, plugins=plugins)
        print(f"suite {suite.name!r}: validating {len(suite.cells)} cells ...", flush=True)
        checked = validate_suite(suite)
    except SuiteError as err:
        hint = ""
        if "not a known suite" in str(err):
            hint = did_you_mean(args.suite, available_suites())
        return fail("maxrl-bench", f"{err}{hint}")
    results_dir = Path(args.out) / suite.name
    print(
        f"suite {suite.name!r}: {len(suite.cells)} cells, {suite.total_runs()} runs "
        f"({checked} configs validated; rough cost {_minutes(estimate_suite_seconds(suite))} "
        f"CPU); results in {results_dir}"
    )
    if args.dry_run:
        print(dry_run_text(suite, results_dir, retry_failed=not args.skip_failed))
        return 0
    try:
        lock = ResultsLock(results_dir)
    except (OSError, LockedError) as err:
        print(f"error: {plain(err)}", file=sys.stderr)
        return 2
    with lock:
        problem = _unusable(results_dir)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        return _run(args, argv, suite, results_dir)


#: Entries of a results directory the runner writes (the lock is checked as it is taken).
WRITTEN = (RESULTS_FILE, RESULTS_FILE + ".gz", SUITE_FILE, "report.md", "plots", "logs")


def _unusable(results_dir: Path) -> str | None:
    """Why the runner must not use a results directory (None when it may).

    An entry it writes that is a symbolic link (a write would follow it out of the
    directory), or a damaged ``results.jsonl.gz`` (the runner would not know what is done).
    """
    try:
        for name in WRITTEN:
            folder = name in ("plots", "logs")
            refuse_link(results_dir / name, "folder" if folder else "file")
            if folder and (results_dir / name).exists() and not (results_dir / name).is_dir():
                return f"{results_dir / name} is not a folder; remove or rename it"
        read_rows(results_dir / RESULTS_FILE)
    except LinkError as err:
        return plain(err)
    except CorruptRowsError as err:
        return str(err)
    except OSError as err:
        return f"cannot read the rows in {results_dir}: {plain(err)}"
    return None


def _run(args: argparse.Namespace, argv: Sequence[str], suite: Suite, results_dir: Path) -> int:
    """Run a validated suite under its results directory's lock."""
    from benchmarks.backends import default_workers, import_ray, make_backend

    if args.backend == "ray":
        try:
            import_ray()
        except ImportError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    workers = args.workers or max(1, default_workers() // args.threads)
    try:
        backend = make_backend(
            args.backend,
            str(results_dir),
            workers=workers if args.backend == "local" or args.workers else None,
            address=args.address,
            threads=args.threads,
            imports=suite.imports,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"backend: {backend.describe()}")
    command = _command_line(argv)
    try:
        summary = run_suite(
            suite,
            results_dir,
            backend,
            command=command,
            progress=not args.no_progress,
            retry_failed=not args.skip_failed,
        )
    except KeyboardInterrupt as err:
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        print(
            f"\n{what}; the runs in flight were stopped, finished runs are in "
            f"{results_dir / RESULTS_FILE}. Rerun the same command to resume: {command}",
            file=sys.stderr,
        )
        return 143 if isinstance(err, Terminated) else 130
    except OSError as err:
        print(
            f"error: {plain(err)}. Every row written so far is intact in "
            f"{results_dir / RESULTS_FILE}; fix the cause and rerun the same command to resume.",
            file=sys.stderr,
        )
        return 1
    print(
        f"{summary.ran} runs ran, {summary.skipped} were already done, {summary.failed} failed "
        f"({summary.elapsed:.0f} s)"
    )
    if not args.no_report:
        from benchmarks.report import write_report

        # The command comes from suite.json: a sweep that ran nothing kept the recorded one.
        report = write_report(results_dir)
        print()
        print(report.summary_text())
        hint = activation_hint()
        if hint:
            print(f"note: {hint}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
