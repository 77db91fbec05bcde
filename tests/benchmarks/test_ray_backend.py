"""The Ray backend on a local instance gives the same rows as the process pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.results import RESULTS_FILE, read_rows
from benchmarks.run import main

ray = pytest.importorskip("ray")

# Fields that legitimately differ between two executions of the same run.
VOLATILE = ("wall_time", "elapsed", "finished_at", "host", "traceback")


def comparable(row: dict) -> dict:
    row = {k: v for k, v in row.items() if k not in VOLATILE}
    row["metrics"] = {k: v for k, v in row["metrics"].items() if k != "wall_time"}
    return row


def test_ray_backend_matches_the_pool(
    tiny_run: Path, tmp_path: Path, suite_writer, tiny_suite_text: str
) -> None:
    suite = suite_writer(tmp_path, tiny_suite_text)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code = main(
            [str(suite), "--out", str(tmp_path / "out"), "--backend", "ray", "--no-progress"]
        )
    finally:
        ray.shutdown()
    assert code == 0
    pool = {r["run_id"]: comparable(r) for r in read_rows(tiny_run / RESULTS_FILE)}
    with_ray = {r["run_id"]: comparable(r) for r in read_rows(tmp_path / "out/tiny" / RESULTS_FILE)}
    assert set(with_ray) == set(pool) and len(pool) == 6
    for run_id, row in pool.items():
        assert with_ray[run_id] == row, run_id
    assert (tmp_path / "out/tiny/report.md").exists()
