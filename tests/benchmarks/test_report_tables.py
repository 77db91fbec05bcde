"""Report: confidence intervals, targets, points across sweeps, plots; learning-rate choice;
diverged seeds and failed runs; reference levels beside the agents."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.report import (
    build_points,
    compute_targets,
    experiment_table,
    mean_ci,
    rollouts_to_target,
    run_identity,
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


def supervised_row(seed: int, n: int, final: float) -> dict:
    """A supervised run at group size ``n``: its config differs from N = 4's only in N."""
    config = {"estimator": "supervised", "group_size": n, "seed": seed, "budget": 200}
    return row(
        "supervised",
        seed,
        [-2.0, final],
        role="reference",
        method="supervised",
        sweep={"group_size": n},
        config=config,
    )


def test_supervised_ignores_n_and_counts_each_run_once() -> None:
    rows = [
        *[
            row("maxrl", s, [-2.0, -1.0], role="maxrl", sweep={"group_size": n}, method="maxrl")
            for n in (4, 16, 64)
            for s in (0, 1)
        ],
        # The supervised runs at N = 4 and N = 16 are the same two runs (N is ignored); they
        # stand at N = 64 too, where the suite ran none.
        *[supervised_row(s, n, -0.5 - s) for n in (4, 16) for s in (0, 1)],
    ]
    points = build_points(rows)["e"]
    assert [p.label for p in points] == ["env · N=4", "env · N=16", "env · N=64"]
    for point in points:
        supervised = point.agents["supervised"]
        assert [r["seed"] for r in supervised.rows] == [0, 1]  # not [0, 1, 0, 1]
        assert supervised.raw(METRIC) == [-0.5, -1.5]
        assert len(point.agents["maxrl"].rows) == 2
    assert run_identity(supervised_row(0, 4, -1.0)) == run_identity(supervised_row(0, 64, -1.0))
    assert run_identity(supervised_row(0, 4, -1.0)) != run_identity(supervised_row(1, 4, -1.0))
    # Our estimators do depend on N: their runs at two N are two runs.
    maxrl = [r for r in rows if r["agent"] == "maxrl" and r["seed"] == 0]
    assert run_identity({**maxrl[0], "config": {"group_size": 4}}) != run_identity(
        {**maxrl[1], "config": {"group_size": 16}}
    )


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


# ----------------------------------------------------------------------------- diverged seeds


def test_a_diverged_seed_is_counted_and_left_out_of_the_mean() -> None:
    rows = [
        row("maxrl", 0, [-3.0, -1.0], role="maxrl"),
        row("maxrl", 1, [-3.0, -2.0], role="maxrl"),
        {**row("maxrl", 2, [-3.0, -2.5], role="maxrl"), "metrics": {METRIC: "nan"}},
        {**row("maxrl", 3, [-3.0, -2.5], role="maxrl"), "metrics": {METRIC: "-inf"}},
        *[row("grpo", s, [-3.0, -2.8]) for s in (0, 1)],
    ]
    (point,) = build_points(rows)["e"]
    summary = point.agents["maxrl"].summary(METRIC)
    assert summary.mean == -1.5  # the mean of the two finite seeds, -1 and -2
    assert (summary.finite, summary.total, summary.diverged) == (2, 4, 2)
    assert point.agents["maxrl"].values(METRIC) == [-1.0, -2.0]
    table = experiment_table([point])
    half = 12.706204736174705 * math.sqrt(0.5) / math.sqrt(2)  # t_{0.975, 1} s / sqrt(n)
    assert f"| -1.5 ± {half:.2g} (2/4 seeds, 2 diverged) |" in table
    # A cell with diverged seeds is never bold, even with the best finite mean.
    assert "**-1.5" not in table and "| **-2.8 ± 0** |" in table


def test_one_nan_seed_in_a_written_report(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    for seed, final in enumerate([-1.0, -2.0, float("nan")]):
        append_row(results, row("maxrl", seed, [-3.0, final], role="maxrl"))
    for seed in (0, 1, 2):
        append_row(results, row("grpo", seed, [-3.0, -2.5]))
    text = write_report(tmp_path).path.read_text()
    line = next(x for x in text.splitlines() if x.startswith("| env | maxrl |"))
    assert "1 diverged" in line and "(2/3 seeds, 1 diverged)" in line
    assert line.split(" | ")[4].startswith("-1.5 ± ")  # mean of the finite seeds only


def test_failed_runs_show_in_the_seeds_column() -> None:
    failed = {"status": "failed", "metrics": {}, "curve": [], "error": "boom"}
    rows = [
        *[row("grpo", s, [-3.0, -2.0]) for s in (0, 1, 2)],
        *[{**row("grpo", s, [-3.0]), **failed} for s in (3, 4)],
        *[{**row("rloo", s, [-3.0]), **failed} for s in (0, 1)],
    ]
    (point,) = build_points(rows)["e"]
    assert point.agents["grpo"].seeds_text() == "3/5, 2 failed"
    table = experiment_table([point])
    assert "| env | grpo | 0.01 | 3/5, 2 failed | **-2 ± 0** |" in table
    assert "| env | rloo | 0.01 | 0/2, 2 failed | – | – |" in table  # never hidden


def test_learning_curves_skip_non_finite_points_and_diverged_seeds() -> None:
    from benchmarks.report import _mean_curve

    gap = row("maxrl", 0, [-3.0, -2.0, -1.0])
    gap["curve"][1][1][METRIC] = "nan"  # interpolated over: the run still counts
    other = row("maxrl", 1, [-3.0, -2.0, -3.0])
    diverged = row("maxrl", 2, [-3.0, -2.0, -1.0])
    diverged["curve"][2][1][METRIC] = "inf"
    diverged["metrics"][METRIC] = "inf"
    x, mean, _ = _mean_curve([gap, other, diverged], METRIC)
    assert list(x) == [0, 100, 200]
    assert list(mean) == [-3.0, (-2.0 - 2.0) / 2, (-1.0 - 3.0) / 2]


def test_selection_table_counts_failed_and_diverged_rates() -> None:
    from benchmarks.report import selection_table

    tune = {**row("maxrl", 10000, [-3.0, -1.0]), "phase": "tune", "cell": "c"}
    rows = [
        {**tune, "lr": 0.01, "metrics": {METRIC: -1.0}},
        {**tune, "lr": 0.1, "metrics": {METRIC: "nan"}},
        {**tune, "lr": 0.1, "status": "failed", "metrics": {}},
        {**tune, "phase": "final", "lr": 0.01},
    ]
    table = selection_table(rows)
    assert "0.01: -1; 0.1: – (1 diverged, 1 failed) | 0.01 |" in table


# ----------------------------------------------------------------------------- references

REFS = {
    "random": {METRIC: -5.0, "eval/excess_mse": 2.0},
    "bayes_point": {METRIC: "-inf", "eval/excess_mse": 0.0},
    "bayes_sampler": {METRIC: -1.0, "eval/excess_mse": 0.0},
}


def test_reference_levels_sit_beside_the_agents() -> None:
    rows = [
        *[row("maxrl", s, [-3.0, -2.0 - s], role="maxrl", references=REFS) for s in (0, 1)],
        *[row("grpo", s, [-3.0, -3.0], references=REFS) for s in (0, 1)],
    ]
    (point,) = build_points(rows)["e"]
    assert point.references["bayes_point"][METRIC] == -math.inf
    table = experiment_table([point])
    lines = table.splitlines()
    assert lines[0].endswith("| normalized score | rollouts to target | vs best baseline |")
    # Exact levels, no interval, no rollouts to target; normalized: 0 and 1 by construction.
    assert lines[-3:] == [
        "| env | *random* | – | – | -5 | 2 | 0 | – | – |",
        "| env | *Bayes point f(x)* | – | – | -inf | 0 | -inf | – | – |",
        "| env | *Bayes sampler p(y\\|x)* | – | – | -1 | 0 | 1 | – | – |",
    ]
    # maxrl: finals -2 and -3 -> normalized (x + 5) / 4 = 0.75 and 0.5; grpo: -3 -> 0.5.
    assert point.normalized(point.agents["maxrl"]) == [0.75, 0.5]
    assert "| 0.625 ± " in lines[2] and "| 0.5 ± 0 |" in lines[3]


def test_rows_without_references_keep_the_old_table() -> None:
    (point,) = build_points([row("grpo", 0, [-3.0, -2.0])])["e"]
    table = experiment_table([point])
    assert point.references == {}
    assert "normalized" not in table and "*random*" not in table


def test_ratio_interval_collapses_for_identical_seeds_and_opens_when_a_seed_misses() -> None:
    from benchmarks.report import build_points, compute_targets

    # The baseline reaches the target (-1.2) at 200 in every seed, "steady" at 100 in every
    # seed. "flaky": four seeds overshoot to 0 at 100, one never improves: its mean reaches
    # the target at 100, but a bootstrap replicate that draws the bad seed 3 or more times
    # out of 5 (probability 5.8% > 2.5%) never does.
    rows = [row("base", s, [-3.0, -2.0, -1.0, -1.0]) for s in range(3)]
    rows += [row("steady", s, [-3.0, -1.0, -1.0, -1.0], role="maxrl") for s in range(3)]
    flaky = [[-3.0, 0.0, 0.0, 0.0]] * 4 + [[-3.0, -3.0, -3.0, -3.0]]
    rows += [row("flaky", s, c, role="maxrl") for s, c in enumerate(flaky)]
    (point,) = build_points(rows)["e"]
    compute_targets(point)
    assert point.target == pytest.approx(-3.0 + 0.9 * 2.0)
    steady, flaky_result = point.agents["steady"], point.agents["flaky"]
    assert steady.ratio == pytest.approx(0.5) and steady.ratio_ci == (0.5, 0.5)
    assert flaky_result.ratio == pytest.approx(0.5)
    low, high = flaky_result.ratio_ci  # type: ignore[misc]
    assert low == pytest.approx(0.5) and high == math.inf


def test_selection_table_flags_a_rate_at_the_grid_edge() -> None:
    from benchmarks.report import selection_table

    def tune(lr: float, value: float, agent: str) -> dict:
        base = row(agent, 10_000, [value], phase="tune", lr=lr, cell=agent)
        base["run_id"] = f"{agent}-{lr}"
        return base

    rows = [tune(lr, v, "a") for lr, v in [(0.1, -1.0), (0.3, -2.0), (0.9, -3.0)]]
    rows += [tune(lr, v, "b") for lr, v in [(0.1, -2.0), (0.3, -1.0), (0.9, -3.0)]]
    rows += [row("a", 0, [-1.0], lr=0.1, cell="a"), row("b", 0, [-1.0], lr=0.3, cell="b")]
    table = selection_table(rows)
    lines = {line.split(" | ")[2]: line for line in table.splitlines()[2:]}
    assert lines["a"].endswith("| 0.1 (grid edge) |")
    assert lines["b"].endswith("| 0.3 |")
