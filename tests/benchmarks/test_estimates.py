"""The cost model's estimates match the committed suites' recorded CPU times."""

from __future__ import annotations

import pytest

from benchmarks.calibrate import committed_dirs, recorded_cpu_seconds
from benchmarks.suite import COST_SCALE, estimate_suite_seconds, load_suite

TIMED = [d for d in committed_dirs() if recorded_cpu_seconds(d) is not None]


def test_every_committed_suite_has_a_timing() -> None:
    # Every finished suite records its commands' times; a piece that ran untimed (written
    # "not timed") leaves its CPU total unknown and the suite out of the estimate check.
    assert all((d / "timing.txt").exists() for d in committed_dirs())
    assert len(TIMED) >= 5


def test_recorded_cpu_time_sums_the_pieces_of_a_resumed_suite(tmp_path) -> None:
    timing = tmp_path / "timing.txt"
    assert recorded_cpu_seconds(tmp_path) is None
    timing.write_text(
        "2026-12-07T01:00:00Z exit 0 after 100 s: wall 99.5 s, user 150.25 s, system 4.75 s\n"
        "2026-12-07T02:00:00Z exit 0 after 50 s: wall 49.0 s, user 60.0 s, system 5.0 s\n",
        encoding="utf-8",
    )
    assert recorded_cpu_seconds(tmp_path) == 220.0
    with timing.open("a", encoding="utf-8") as handle:
        handle.write("2026-12-06 first pieces (582 runs): not timed\n")
    assert recorded_cpu_seconds(tmp_path) is None


@pytest.mark.parametrize("folder", TIMED, ids=lambda d: d.name)
def test_estimate_is_within_a_factor_of_1_5_of_the_recorded_cpu_time(folder) -> None:
    estimate = estimate_suite_seconds(load_suite(str(folder / "suite.toml")))
    recorded = recorded_cpu_seconds(folder)
    assert recorded / 1.5 <= estimate <= recorded * 1.5, (folder.name, estimate, recorded)


def test_every_family_of_the_committed_rows_is_calibrated() -> None:
    assert {"ours:numeric", "ours:categorical", "ours:sequence", "sb3:PPO"} <= set(COST_SCALE)
    # A factor corrects the model's shape by at most a few times; one far outside says the
    # model itself is wrong for that family.
    assert all(0 < scale < 2.5 for scale in COST_SCALE.values())
