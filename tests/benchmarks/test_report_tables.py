"""Report: confidence intervals, targets, points across sweeps, plots; learning-rate choice."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.report import (
    build_points,
    compute_targets,
    mean_ci,
    rollouts_to_target,
    write_report,
)
from benchmarks.results import append_row
from benchmarks.run import choose_lr
from benchmarks.suite import load_suite

METRIC = "eval/log_likelihood"


def row(agent: str, seed: int, curve: list[float], *, role: str = "baseline", **extra) -> dict:
    """A final ok row whose curve is evaluated at 0, 100, 200, ..."""
    points = [[100 * i, {METRIC: v, "eval/excess_mse": -v}] for i, v in enumerate(curve)]
    base = {
        "run_id": f"{agent}-{seed}-{extra.get('sweep', {})}",
        "cell": f"{agent}-{extra.get('sweep', {})}",
        "experiment": "e",
        "env_label": "env",
        "env_base": "env",
        "agent": agent,
        "role": role,
        "family": "sb3" if agent == "ppo" else "ours",
        "lr": None if agent == "ppo" else 0.01,
        "seed": seed,
        "phase": "final",
        "status": "ok",
        "sweep": {},
        "select_metric": METRIC,
        "columns": [METRIC, "eval/excess_mse"],
        "target_fraction": 0.9,
        "metrics": dict(points[-1][1]),
        "curve": points,
    }
    base.update(extra)
    return base


def test_mean_ci_uses_the_t_distribution() -> None:
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert math.isnan(mean_ci([5.0])[1]) and mean_ci([5.0])[0] == 5.0
    assert math.isnan(mean_ci([])[0])


def test_rollouts_to_target_respects_the_metric_direction() -> None:
    curve = [
        [0, {METRIC: -3.0, "eval/excess_mse": 3.0}],
        [100, {METRIC: -1.0, "eval/excess_mse": 1.0}],
    ]
    assert rollouts_to_target(curve, METRIC, -2.0) == 100
    assert rollouts_to_target(curve, METRIC, 0.0) is None
    assert rollouts_to_target(curve, "eval/excess_mse", 2.0) == 100
    assert rollouts_to_target(curve, "eval/excess_mse", 5.0) == 0


def test_target_from_best_baseline_and_ratio_to_fastest() -> None:
    rows = [
        *[row("grpo", s, [-3.0, -2.5, -2.0, -1.5, -1.0]) for s in (0, 1)],
        *[row("reinforce", s, [-3.0, -2.8, -2.6, -2.4, -2.2]) for s in (0, 1)],
        *[row("maxrl", s, [-3.0, -1.5, -1.0, -0.9, -0.8], role="maxrl") for s in (0, 1)],
    ]
    (point,) = build_points(rows)["e"]
    compute_targets(point)
    assert point.target_agent == "grpo"
    assert point.target == pytest.approx(-3.0 + 0.9 * 2.0)
    assert point.agents["grpo"].to_target == 400
    assert point.agents["maxrl"].to_target == 200
    assert point.agents["maxrl"].ratio == pytest.approx(0.5)
    assert point.agents["reinforce"].to_target is None


def test_sb3_row_without_n_joins_every_n_point() -> None:
    rows = [
        *[row("maxrl", 0, [-2.0, -1.0], role="maxrl", sweep={"rollouts": n}) for n in (4, 16)],
        row("ppo", 0, [-2.0, -1.5]),
    ]
    points = build_points(rows)["e"]
    assert len(points) == 2
    assert all(set(p.agents) == {"maxrl", "ppo"} for p in points)
    assert {p.label for p in points} == {"env · N=4", "env · N=16"}


def test_report_writes_tables_and_sweep_plots(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    for n, gain in ((4, 0.5), (16, 1.0), (64, 1.5)):
        for seed in (0, 1, 2):
            append_row(
                results,
                row(
                    "maxrl",
                    seed,
                    [-3.0, -3.0 + gain + 0.01 * seed],
                    role="maxrl",
                    sweep={"rollouts": n},
                ),
            )
            append_row(
                results, row("grpo", seed, [-3.0, -2.5 + 0.01 * seed], sweep={"rollouts": n})
            )
    for seed in (0, 1, 2):
        append_row(results, row("ppo", seed, [-3.0, -2.9 + 0.01 * seed]))
    append_row(
        results,
        {
            **row("grpo", 9, [-3.0]),
            "run_id": "bad",
            "status": "failed",
            "error": "boom | pipe",
            "metrics": {},
            "curve": [],
        },
    )
    report = write_report(tmp_path, command="maxrl-bench test")
    text = report.path.read_text()
    assert "Produced by: `maxrl-bench test`" in text
    assert "| env · N=64 | maxrl | 0.01 | 3 | **-1.49 ± 0.025** |" in text
    assert "## Failed runs" in text and "boom \\| pipe" in text
    names = {p.name for p in report.plots}
    assert names == {"curves_e.png", "sweep_e_rollouts.png"}
    assert all(p.stat().st_size > 5_000 for p in report.plots)
    assert "env · N=16" in report.summary_text()


def test_choose_lr_by_validation_metric(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'name = "t"\n[settings]\nseeds = [0]\nbudget = 1024\nrollouts = 4\ncontexts = 8\n'
        'lr_grid = [0.001, 0.01, 0.1]\n[[experiments]]\nname = "e"\n'
        'envs = [{ id = "MaxRLRegression-v0" }]\nagents = ["maxrl"]\n'
    )
    (cell,) = load_suite(str(path)).cells
    rows = [
        {"lr": 0.001, "status": "ok", "metrics": {METRIC: -2.0}},
        {"lr": 0.01, "status": "ok", "metrics": {METRIC: -1.0}},
        {"lr": 0.01, "status": "ok", "metrics": {METRIC: -1.4}},
        {"lr": 0.1, "status": "failed", "metrics": {}},
        {"lr": 0.1, "status": "ok", "metrics": {METRIC: float("nan")}},
    ]
    assert choose_lr(cell, rows) == 0.01
    cell.settings["select_metric"] = "eval/excess_mse"
    mse = [
        {"lr": lr, "status": "ok", "metrics": {"eval/excess_mse": v}}
        for lr, v in ((0.001, 0.3), (0.01, 0.5), (0.1, 0.2))
    ]
    assert choose_lr(cell, mse) == 0.1  # lower is better
    assert choose_lr(cell, []) is None
