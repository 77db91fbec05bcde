"""Fit the cost model's per-family factors (``suite.COST_SCALE``) on measured study rows.

``python -m benchmarks.calibrate [DIR ...]`` (default: every ``docs/results/<suite>``) reads
each directory's rows and ``timing.txt`` and prints the fit and, per suite, the recorded CPU
time beside the estimate with the current factors.

The fit, in two steps:

1. Per agent family f (``suite.cost_family``: ``ours:<env shape>`` or ``sb3:<algorithm>``),
   the ratio of the measured seconds of its ok runs (each row's ``elapsed``, the run's wall
   time in its worker) to the cost model's (``suite.model_seconds``), summed over every
   committed run of the family: ``wall_f = sum(elapsed) / sum(model)``.
2. A run's wall time in a worker counts the time the worker waited for a core (other
   processes on a shared machine), which CPU time does not. One factor per machine load
   converts: ``cpu_per_wall``, the geometric mean over the suites of their recorded CPU time
   (user + system, ``timing.txt``: the whole command, driver and report included) over the
   sum of their rows' ``elapsed``.

``COST_SCALE[f] = wall_f * cpu_per_wall``, rounded to two significant digits.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.results import OK, RESULTS_FILE, latest_rows, read_rows
from benchmarks.suite import Job, cost_family, model_seconds

#: Where the committed study results live.
RESULTS_ROOT = Path(__file__).resolve().parents[1] / "docs" / "results"
_TIMING = re.compile(r"user ([0-9.]+) s, system ([0-9.]+) s")
_JOB_FIELDS = [f.name for f in dataclasses.fields(Job)]


def recorded_cpu_seconds(results_dir: str | Path) -> float | None:
    """A suite's recorded CPU time (user + system) from its ``timing.txt``, if it has one.

    Each line of ``timing.txt`` is one command that ran part of the suite (a suite resumed
    over several sessions has one line per piece), so the suite's time is their sum. A line
    with no measured CPU time (a piece that ran without ``benchmarks/run_study.sh``, written
    as ``not timed``) makes the total unknown: None, like a missing file.
    """
    path = Path(results_dir) / "timing.txt"
    if not path.exists():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = [_TIMING.search(line) for line in lines]
    if not found or not all(found):
        return None
    return sum(float(m.group(1)) + float(m.group(2)) for m in found if m)


def row_job(row: dict[str, Any]) -> Job:
    """The ``Job`` a result row ran (a row holds every field of its job)."""
    return Job(**{name: row[name] for name in _JOB_FIELDS})


@dataclasses.dataclass
class Fit:
    """The fitted factors and what they were fitted on.

    Attributes:
        scales: Family -> ``COST_SCALE`` factor.
        wall: Family -> ``(runs, measured seconds, model seconds)``.
        cpu_per_wall: The CPU-time over row-time factor.
        suites: Suite directory -> ``(recorded CPU seconds, sum of its rows' elapsed)``.
    """

    scales: dict[str, float]
    wall: dict[str, tuple[int, float, float]]
    cpu_per_wall: float
    suites: dict[str, tuple[float, float]]


def fit(dirs: Sequence[str | Path]) -> Fit:
    """Fit ``COST_SCALE`` on the rows of the given results directories (see the module)."""
    wall: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    suites = {}
    for folder in dirs:
        rows = [
            row
            for row in latest_rows(read_rows(Path(folder) / RESULTS_FILE)).values()
            if row.get("status") == OK and math.isfinite(float(row.get("elapsed", math.nan)))
        ]
        for row in rows:
            job = row_job(row)
            entry = wall[cost_family(job)]
            entry[0] += 1
            entry[1] += float(row["elapsed"])
            entry[2] += model_seconds(job)
        cpu = recorded_cpu_seconds(folder)
        if cpu is not None and rows:
            suites[str(folder)] = (cpu, sum(float(r["elapsed"]) for r in rows))
    logs = [math.log(cpu / elapsed) for cpu, elapsed in suites.values()]
    cpu_per_wall = math.exp(sum(logs) / len(logs)) if logs else 1.0
    scales = {
        family: float(f"{measured / model * cpu_per_wall:.2g}")
        for family, (_, measured, model) in sorted(wall.items())
    }
    return Fit(
        scales,
        {k: (int(n), m, e) for k, (n, m, e) in sorted(wall.items())},
        cpu_per_wall,
        suites,
    )


def committed_dirs() -> list[Path]:
    """Every finished committed suite (``docs/results/<suite>`` with packed rows).

    A suite whose sweep has not finished yet (its ``suite.json`` lists no ``run_ids``; a
    study suite committed part way, to be resumed) has no total time to calibrate on.
    """
    import json

    finished = []
    for rows in RESULTS_ROOT.glob("*/results.jsonl.gz"):
        meta = rows.parent / "suite.json"
        if meta.exists() and json.loads(meta.read_text(encoding="utf-8")).get("run_ids"):
            finished.append(rows.parent)
    return sorted(finished)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the fit and each suite's recorded CPU time beside its estimate."""
    from benchmarks.suite import COST_SCALE, estimate_suite_seconds, load_suite

    argv = list(sys.argv[1:] if argv is None else argv)
    dirs = [Path(d) for d in argv] or committed_dirs()
    result = fit(dirs)
    print(f"cpu_per_wall = {result.cpu_per_wall:.3f}")
    print(f"{'family':22} {'runs':>6} {'measured s':>11} {'model s':>9} {'fitted':>7} {'used':>6}")
    for family, (runs, measured, model) in result.wall.items():
        used = COST_SCALE.get(family)
        print(
            f"{family:22} {runs:6} {measured:11.0f} {model:9.0f} {result.scales[family]:7.2g} "
            f"{'-' if used is None else f'{used:.2g}':>6}"
        )
    print(f"{'suite':22} {'recorded CPU s':>14} {'estimate s':>10} {'ratio':>6}")
    for folder in dirs:
        cpu = recorded_cpu_seconds(folder)
        if cpu is None or not (folder / "suite.toml").exists():
            continue
        estimate = estimate_suite_seconds(load_suite(str(folder / "suite.toml")))
        print(f"{folder.name:22} {cpu:14.0f} {estimate:10.0f} {estimate / cpu:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
