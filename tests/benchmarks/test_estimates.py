"""The cost model's estimates match the committed suites' recorded CPU times."""

from __future__ import annotations

import pytest

from benchmarks.calibrate import committed_dirs, recorded_cpu_seconds
from benchmarks.suite import COST_SCALE, estimate_suite_seconds, load_suite

TIMED = [d for d in committed_dirs() if recorded_cpu_seconds(d) is not None]


def test_every_committed_suite_has_a_timing() -> None:
    assert len(TIMED) == len(committed_dirs()) >= 5


@pytest.mark.parametrize("folder", TIMED, ids=lambda d: d.name)
def test_estimate_is_within_a_factor_of_1_5_of_the_recorded_cpu_time(folder) -> None:
    estimate = estimate_suite_seconds(load_suite(str(folder / "suite.toml")))
    recorded = recorded_cpu_seconds(folder)
    assert recorded / 1.5 <= estimate <= recorded * 1.5, (folder.name, estimate, recorded)


def test_every_family_of_the_committed_rows_is_calibrated() -> None:
    assert {"ours:numeric", "ours:categorical", "ours:sequence", "sb3:PPO"} <= set(COST_SCALE)
    assert all(0 < scale < 1.5 for scale in COST_SCALE.values())
