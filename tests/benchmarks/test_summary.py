"""Summary tables of a results directory: the scoreboard counts each comparison once, the
aggregate prints the report's per-algorithm lines."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import aggregate_over_tasks, build_points, load_rows
from benchmarks.results import append_row
from benchmarks.summary import aggregate, scoreboard

LL = "eval/log_likelihood"


def row(agent: str, seed: int, final: float, sweep: dict, family: str = "ours") -> dict:
    """A final ok row of environment ``env`` (its config: the sweep and the seed)."""
    return {
        "run_id": f"{agent}-{seed}-{sorted(sweep.items())}",
        "cell": f"{agent}-{sorted(sweep.items())}",
        "experiment": "e",
        "env_label": "env",
        "env_base": "env",
        "agent": agent,
        "role": "maxrl" if agent == "maxrl" else "baseline",
        "family": family,
        "method": agent,
        "lr": 0.01,
        "seed": seed,
        "phase": "final",
        "status": "ok",
        "sweep": sweep,
        "select_metric": LL,
        "columns": [LL],
        "target_fraction": 0.9,
        "config": {"seed": seed, **sweep},
        "metrics": {LL: final},
        "curve": [[0, {LL: -5.0}], [100, {LL: final}]],
    }


def test_scoreboard_counts_a_comparison_of_the_same_runs_once(tmp_path: Path) -> None:
    # maxrl varies sigma; ppo and a2c (SB3) ignore it, so both stand at both sigma points
    # with the same runs: ppo vs a2c is one comparison, maxrl vs ppo two (two maxrl runs).
    rows = [
        *[
            row("maxrl", s, -1.0 + 0.01 * s, {"state_dependent_std": sigma})
            for sigma in (False, True)
            for s in range(3)
        ],
        *[row("ppo", s, -2.0 + 0.01 * s, {}, "sb3") for s in range(3)],
        *[row("a2c", s, -3.0 + 0.01 * s, {}, "sb3") for s in range(3)],
    ]
    for r in rows:
        append_row(tmp_path / "results.jsonl", r)
    assert scoreboard(tmp_path, LL, "ppo").splitlines()[2:] == [
        "| maxrl | 0 | 0 | 2 |",
        "| a2c | 1 | 0 | 0 |",
    ]
    assert scoreboard(tmp_path, LL, "maxrl").splitlines()[2:] == [
        "| ppo | 2 | 0 | 0 |",
        "| a2c | 2 | 0 | 0 |",
    ]


def test_aggregate_prints_the_reports_algorithm_tables(tmp_path: Path) -> None:
    # Two environment points; maxrl at both sigma modes is two algorithms, ppo (which ignores
    # sigma) one: the summary prints the report's own lines, PoI per sigma mode.
    refs = {"random": {LL: -5.0}, "bayes_point": {LL: -1.0}, "bayes_sampler": {LL: -1.0}}
    rows = [
        *[
            row("maxrl", s, -2.0 - s + sigma, {"state_dependent_std": sigma})
            for sigma in (False, True)
            for s in range(3)
        ],
        *[row("ppo", s, -3.0 + 0.5 * s, {}, "sb3") for s in range(3)],
    ]
    for env in ("a", "b"):
        for r in rows:
            r = {**r, "env_label": env, "env_base": env, "references": refs}
            r["run_id"] = f"{env}-{r['run_id']}"
            append_row(tmp_path / "results.jsonl", r)
    text = aggregate(tmp_path)
    agg = aggregate_over_tasks(build_points(load_rows(tmp_path)[0]))
    assert agg is not None
    assert text.splitlines() == [
        line for line in agg.text.splitlines() if line.startswith(("|", "- "))
    ]
    assert "| maxrl state_dependent_std=True | " in text and "| ppo | " in text
    assert "| maxrl | ppo | " in text
    assert "| X | Y | P(X > Y) state_dependent_std=False | P(X > Y) state_dependent_std=True |" in (
        text
    )
