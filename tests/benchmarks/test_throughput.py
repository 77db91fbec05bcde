"""``benchmarks/throughput.py``: the quick run works and writes the documented JSON.

No timing is asserted (timings belong to the script); only that every kind of row exists,
with the keys the docs and ``gpu_check.sh`` read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("throughput") / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--quick", "--quiet", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def test_quick_json_has_every_section(quick: tuple[dict, str]) -> None:
    result, _ = quick
    for key in (
        "schema",
        "date",
        "command",
        "machine",
        "machine_line",
        "settings",
        "trainer",
        "parts",
        "sb3",
        "memory",
        "estimator_share",
        "ratios",
        "targets",
    ):
        assert key in result, key
    machine = result["machine"]
    for key in ("cpu", "cpu_count", "gpu", "torch", "cuda", "torch_threads"):
        assert key in machine, key
    assert result["settings"]["quick"] is True
    assert result["memory"]["peak_rss_mib"] > 0
    assert set(result["targets"]) == {
        "maxrl_rollouts_per_s",
        "ratio_vs_ppo",
        "estimator_share",
        "big_group",
    }


def test_quick_rows_cover_tasks_estimators_parts_and_sb3(quick: tuple[dict, str]) -> None:
    result, stdout = quick
    measured = [r for r in result["trainer"] if r["status"] == "measured"]
    assert {(r["task"], r["estimator"]) for r in measured} == {
        (task, estimator)
        for task in ("regression", "classification", "tokens")
        for estimator in ("maxrl", "grpo")
    }
    for row in measured:
        assert row["unit"] == "rollouts/s" and row["stats"]["n"] == 2
        assert row["stats"]["min"] <= row["stats"]["median"] <= row["stats"]["max"]
        assert row["memory"]["rss_mib"] > 0
    big = [r for r in result["trainer"] if (r["num_groups"], r["group_size"]) == (256, 4096)]
    assert big and big[0]["status"].startswith("not measured")
    cuda = [r for r in result["trainer"] if r["device"] == "cuda"]
    if not torch.cuda.is_available():
        assert cuda and all(r["status"] == "not measured: no CUDA device" for r in cuda)
        assert "not measured: no CUDA device" in stdout
    parts = {(r["task"], r["estimator"], r["part"]) for r in result["parts"] if r["stats"]}
    assert {p for _, _, p in parts} == {"core", "sampling", "estimator", "backward_optimizer"}
    assert all(
        row["share"] is not None
        for row in result["estimator_share"]
        if not row["compile"] and row["device"] == "cpu"
    )
    algos = {(r["task"], r["algo"]) for r in result["sb3"] if r["stats"]}
    assert ("regression", "PPO") in algos and ("classification", "DQN") in algos
    ratios = {(r["task"], r["algo"]): r for r in result["ratios"]}
    assert ratios[("regression", "PPO")]["ratio"]["median"] > 0
    assert result["machine_line"] in stdout


def test_console_script_is_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["maxrl-throughput"] == "benchmarks.throughput:main"


def test_kernel_comparison_pairs_rounds_and_judges_targets() -> None:
    from benchmarks import throughput as tp

    def cell(kernel: str, rates: list[float], inner: list[float]) -> tp.Measurement:
        key = {"regime": "default", "group_size": 64, "num_groups": 1024, "kernel": kernel}
        out = tp.Measurement("kernel", key, "rollouts/s", samples=rates, inner=inner)
        out.wall, out.cpu = [1.0] * len(rates), [0.5] * len(rates)
        return out

    per_step = 1024 * 64
    fast = cell("fast", [4e6, 8e6], [0.1 * per_step / 4e6, 0.18 * per_step / 8e6])
    exact = cell("exact", [1e6, 2e6], [0.8 * per_step / 1e6, 0.5 * per_step / 2e6])
    (row,) = tp.derive_kernels([fast, exact])
    assert row["fast"]["share"]["samples"] == pytest.approx([0.1, 0.18])
    assert row["exact"]["share"]["samples"] == pytest.approx([0.8, 0.5])
    assert row["step_speedup"]["samples"] == pytest.approx([4.0, 4.0])
    assert row["estimator_speedup"]["samples"] == pytest.approx([32.0, 0.5 / 0.18 * 4])
    assert row["fast"]["cpu_per_wall"]["median"] == pytest.approx(0.5)
    targets = tp.kernel_targets([row])
    assert targets["estimator_share"]["value"] == pytest.approx(0.14)
    assert targets["estimator_share"]["met"] is True
    assert targets["rollouts_per_s_n256"]["met"] is None  # no row at (1024, 256)
    assert "estimator_share at B = 1024, N = 64: 14% (<= 15%) [met]" in "\n".join(
        tp.render_kernels([row])
    )
