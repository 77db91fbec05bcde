"""Per-difficulty-bin tables, verdicts and plot of the hard-contexts suite, on synthetic rows."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from benchmarks.plots import BINS_PLOT
from benchmarks.report import build_points, build_report, load_rows
from benchmarks.results import append_row
from benchmarks.summary import bin_families, bin_margin, bin_pass_rate, bins, main

AGENTS = ("maxrl-binary", "grpo", "reinforce")
LEVELS = 3
CLASSES = 100  # bins' initial pass rates 1/100, 3/100, 7/100
SEEDS = 3
OFFSET = {"maxrl-binary": 0.0, "grpo": -0.5, "reinforce": -1.0}


def log_pass(agent: str, level: int, n: int, seed: int, experiment: str) -> float:
    """A made-up per-bin log pass rate: MaxRL ahead, more so in hard bins and at large N."""
    gap = OFFSET[agent] * (LEVELS - level) * (1.0 + (n == 64))
    return -3.0 + level + gap + 0.02 * seed**2 + 0.1 * (experiment == "equal-rollouts")


def pass1(agent: str, level: int, n: int, seed: int) -> float:
    return 0.1 * (level + 1) + 0.05 * (AGENTS.index(agent) + (n == 64)) + 0.01 * seed


def row(agent: str, n: int, seed: int, experiment: str) -> dict:
    metrics = {}
    for b in range(LEVELS):
        metrics[f"eval/bin{b}/log_likelihood"] = log_pass(agent, b, n, seed, experiment)
        metrics[f"eval/bin{b}/pass@1"] = pass1(agent, b, n, seed)
        metrics[f"eval/bin{b}/pass@4"] = min(1.0, 3 * pass1(agent, b, n, seed))
    ll = statistics.mean(metrics[f"eval/bin{b}/log_likelihood"] for b in range(LEVELS))
    metrics["eval/log_likelihood"] = ll
    sweep = {"group_size": n}
    return {
        "run_id": f"{experiment}-{agent}-{n}-{seed}",
        "cell": f"{experiment}-{agent}-{n}",
        "experiment": experiment,
        "env_label": "hard contexts",
        "env_base": "hard contexts",
        "env_id": "MaxRLHardContexts-v0",
        "env_kwargs": {"num_classes": CLASSES, "levels": LEVELS},
        "agent": agent,
        "role": "maxrl" if agent.startswith("maxrl") else "baseline",
        "family": "ours",
        "method": agent,
        "lr": 0.01,
        "seed": seed,
        "phase": "final",
        "status": "ok",
        "sweep": sweep,
        "select_metric": "eval/log_likelihood",
        "columns": ["eval/log_likelihood"],
        "target_fraction": 0.9,
        "config": {"seed": seed, **sweep, "experiment": experiment},
        "metrics": metrics,
        "curve": [[0, {"eval/log_likelihood": -5.0}], [100, {"eval/log_likelihood": ll}]],
    }


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for experiment in ("equal-steps", "equal-rollouts"):
        for agent in AGENTS:
            for n in (4, 64):
                for seed in range(SEEDS):
                    append_row(tmp_path / "results.jsonl", row(agent, n, seed, experiment))
    return tmp_path


def cell_mean(cell: str) -> float:
    return float(cell.split(" ± ")[0])


def test_bin_table_holds_each_agents_mean_per_bin_and_n(results: Path) -> None:
    text = bins(results, metric="log_likelihood", experiment="equal-steps")
    lines = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["bin", "initial pass rate", "point", *AGENTS]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]
    assert len(body) == LEVELS * 2
    for cells in body:
        level, rate, n = int(cells[0]), float(cells[1]), int(cells[2].removeprefix("N="))
        assert rate == pytest.approx((2 ** (level + 1) - 1) / CLASSES, rel=1e-3)
        for agent, cell in zip(AGENTS, cells[3:], strict=True):
            expected = statistics.mean(
                log_pass(agent, level, n, s, "equal-steps") for s in range(SEEDS)
            )
            assert cell_mean(cell) == pytest.approx(expected, abs=5e-4)
    pass_table = bins(results, metric="pass@1", experiment="equal-steps")
    row_b1_n64 = next(
        line for line in pass_table.splitlines() if line.startswith("| 1 | 0.03 | N=64")
    )
    grpo = row_b1_n64.strip("|").split("|")[4]
    assert cell_mean(grpo) == pytest.approx(
        statistics.mean(pass1("grpo", 1, 64, s) for s in range(3))
    )


def test_bin_verdicts_are_differences_of_means_holm_corrected_over_the_bins(
    results: Path,
) -> None:
    rows, meta = load_rows(results)
    points = build_points(rows)["equal-rollouts"]
    families = bin_families(points, "maxrl-binary", "grpo")
    assert [f.point.sweep["group_size"] for f in families] == [4, 64]
    for family in families:
        n = family.point.sweep["group_size"]
        assert family.levels == list(range(LEVELS))
        assert family.rates == pytest.approx([0.01, 0.03, 0.07])
        for level, c in zip(family.levels, family.comparisons, strict=True):
            diff = statistics.mean(
                log_pass("maxrl-binary", level, n, s, "equal-rollouts")
                - log_pass("grpo", level, n, s, "equal-rollouts")
                for s in range(SEEDS)
            )
            assert c.diff == pytest.approx(diff)  # 0.5 (LEVELS - b) (1 + [N = 64]) > 0
            # The Holm-compatible interval of a 3-hypothesis family: level 1 - 0.05 / 3 for
            # the smallest p (the hardest bin, largest gap, same noise), 0.95 at least.
            assert c.low < c.diff < c.high
            assert 1 - 0.05 - 1e-12 <= c.level <= 1 - 0.05 / LEVELS + 1e-12
            assert c.margin == pytest.approx(0.05 * abs(math.log(family.rates[level])))
        assert family.comparisons[0].level == pytest.approx(1 - 0.05 / LEVELS)
        assert family.comparisons[0].verdict == "win"
    assert bin_margin("pass@4", 0.25) == pytest.approx(0.05 * 0.75**4)
    assert bin_pass_rate(points[0], 8) == pytest.approx(511 / CLASSES)


def test_bins_command_prints_verdicts_and_refuses_bad_input(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bins", str(results), "--agent", "maxrl-binary", "--vs", "grpo,reinforce"]) == 0
    out = capsys.readouterr().out
    assert "equal-steps: maxrl-binary − reinforce, log_likelihood per bin" in out
    assert "equal-rollouts: pass@4 per bin" in out
    assert main(["bins", str(results), "--metric", "pass@9"]) == 2
    assert "metric='pass@9'" in capsys.readouterr().err


def test_report_has_the_bin_section_and_writes_the_plot(results: Path, tmp_path: Path) -> None:
    report = build_report(results, "test", report_dir=tmp_path / "report")
    plot = tmp_path / "report" / "plots" / BINS_PLOT
    assert plot in report.plots and plot.stat().st_size > 10_000
    assert "## Per difficulty bin" in report.markdown
    assert f"](plots/{BINS_PLOT})" in report.markdown
    assert "equal-steps: maxrl-binary − grpo, log_likelihood per bin" in report.markdown
