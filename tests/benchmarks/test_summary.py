"""Summary tables of a results directory: the scoreboard counts each comparison once, the
aggregate prints the report's per-algorithm lines."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import aggregate_over_tasks, build_points, load_rows
from benchmarks.results import append_row
from benchmarks.summary import aggregate, grid_edges, main, scoreboard, verdicts

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
    assert scoreboard(tmp_path, LL, "ppo", raw=True).splitlines()[2:] == [
        "| maxrl | 0 | 0 | 2 |",
        "| a2c | 1 | 0 | 0 |",
    ]
    assert scoreboard(tmp_path, LL, "maxrl", raw=True).splitlines()[2:] == [
        "| ppo | 2 | 0 | 0 |",
        "| a2c | 2 | 0 | 0 |",
    ]


def test_corrected_scoreboard_splits_families_where_the_opponent_ignores_a_setting(
    tmp_path: Path,
) -> None:
    # maxrl and grpo vary sigma; ppo (SB3) ignores it. Against grpo one Holm family of two
    # points; against ppo one family per maxrl sigma mode, so each ppo run counts once per
    # family. References random -5, Bayes -1: the equivalence margin is 0.05 * 4 = 0.2.
    refs = {"random": {LL: -5.0}, "bayes_point": {LL: -1.0}, "bayes_sampler": {LL: -1.0}}
    rows = [
        *[
            row("maxrl", s, -1.0 + 0.01 * s, {"state_dependent_std": sigma})
            for sigma in (False, True)
            for s in range(3)
        ],
        *[row("grpo", s, -1.001 + 0.01 * s, {"state_dependent_std": False}) for s in range(3)],
        *[row("grpo", s, -3.0 + 0.01 * s, {"state_dependent_std": True}) for s in range(3)],
        *[row("ppo", s, -2.0 + 0.01 * s, {}, "sb3") for s in range(3)],
    ]
    for r in rows:
        append_row(tmp_path / "results.jsonl", {**r, "references": refs})
    assert scoreboard(tmp_path, LL, "maxrl").splitlines()[2:] == [
        "| grpo | all | 2 | 1 | 1 | 0 | 0 | 0 |",
        "| ppo | σ(x)=False | 1 | 1 | 0 | 0 | 0 | 0 |",
        "| ppo | σ(x)=True | 1 | 1 | 0 | 0 | 0 | 0 |",
    ]
    # From ppo's side both maxrl points are one family (ppo has no sigma to split by).
    assert scoreboard(tmp_path, LL, "ppo").splitlines()[2:4] == [
        "| maxrl | all | 2 | 0 | 0 | 0 | 2 | 0 |",
        "| grpo | all | 2 | 1 | 0 | 0 | 1 | 0 |",
    ]
    table = verdicts(tmp_path, LL, "maxrl", "grpo").splitlines()
    # diff 0.001, se = sqrt(2 * 1e-4 / 3) = 0.008165, df 4: t_{0.975, 4} se = 0.02267 (its
    # Holm level is 0.95, second after the win); TOST p = P(T_4 > 0.199 / se) = 8.4e-6, x 2.
    assert table[2].endswith(
        "| all | +0.001 [-0.0217, +0.0237] | 0.9500 | 0.2 | 1.68e-05 | equivalent | – |"
    )
    assert table[3].endswith("| 0.9750 | 0.2 | 1 | win | – |")
    assert main(["scoreboard", str(tmp_path), "--metric", LL, "--agent", "maxrl", "--raw"]) == 0
    # ppo's validation runs tried 0.001, 0.003 and 0.01, and it reports 0.01: a grid edge.
    for lr in (0.001, 0.003, 0.01):
        tuned = {**row("ppo", 10_000, -2.0, {}, "sb3"), "phase": "tune", "lr": lr}
        append_row(tmp_path / "results.jsonl", {**tuned, "run_id": f"ppo-tune-{lr}"})
    assert [
        line.rsplit("|", 2)[1] for line in scoreboard(tmp_path, LL, "maxrl").splitlines()[2:]
    ] == [
        " 0 ",
        " 1 ",
        " 1 ",
    ]
    assert verdicts(tmp_path, LL, "maxrl", "ppo").splitlines()[2].endswith("| win | ppo |")


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


def test_efficiency_table_agrees_with_the_report_column() -> None:
    """Every ratio the efficiency table prints is the committed report's "vs best baseline"
    cell for the same point and agent (``not reached`` where the report says so)."""
    from benchmarks.summary import efficiency

    root = Path(__file__).resolve().parents[2] / "docs" / "results" / "classification"
    table = efficiency(root, ["maxrl", "grpo", "reinforce"], "equal-steps").splitlines()
    assert table[0] == "| point | target | maxrl | grpo | reinforce |"
    report = (root / "report.md").read_text(encoding="utf-8")
    section = report.split("## equal-steps", 1)[1].split("\n## ", 1)[0]
    cells = {}
    for line in section.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if len(parts) == 10 and parts[1] in ("maxrl", "grpo", "reinforce"):
            to_target, ratio = parts[8], parts[9]
            cells[(parts[0], parts[1])] = "not reached" if to_target == "not reached" else ratio
    checked = 0
    for line in table[2:]:
        parts = [p.strip() for p in line.strip("|").split("|")]
        for agent, cell in zip(("maxrl", "grpo", "reinforce"), parts[2:], strict=True):
            if parts[1] == "none":
                assert cell == "–"
                continue
            assert cell == cells[(parts[0], agent)], (parts[0], agent)
            checked += 1
    assert checked >= 30


def test_fill_results_doc_reprints_only_the_marked_tables(monkeypatch) -> None:
    from benchmarks import fill_results_doc, summary

    monkeypatch.setattr(summary, "main", lambda argv: print(f"| {' '.join(argv)} |\n|---|") or 0)
    text = (
        "intro\n| kept | table |\n\n<!-- summary: pivot X --metric m -->\n| stale |\n| rows |\n"
        "\nprose\n<!-- summary: diff Y --a a --b b -->\n\nend\n"
    )
    out = fill_results_doc.fill(text)
    assert out == (
        "intro\n| kept | table |\n\n<!-- summary: pivot X --metric m -->\n"
        "| pivot X --metric m |\n|---|\n\nprose\n<!-- summary: diff Y --a a --b b -->\n"
        "| diff Y --a a --b b |\n|---|\n\nend\n"
    )
    monkeypatch.setattr(summary, "main", lambda argv: 2)
    try:
        fill_results_doc.fill(text)
    except SystemExit as err:
        assert "exited 2" in str(err)
    else:
        raise AssertionError("a failing summary command must stop the fill")


def test_aggregate_leaves_out_a_task_whose_bayes_and_random_levels_nearly_coincide(
    tmp_path: Path,
) -> None:
    # Tasks a and b: random -5, Bayes -1. Task c: Bayes only 0.01 nats above random, more
    # than the agents' seed noise (their values differ by 1e-4) but under the protocol's 0.02.
    wide = {"random": {LL: -5.0}, "bayes_point": {LL: -1.0}, "bayes_sampler": {LL: -1.0}}
    narrow = {"random": {LL: -1.0}, "bayes_point": {LL: -0.99}, "bayes_sampler": {LL: -0.99}}
    for env, refs in (("a", wide), ("b", wide), ("c", narrow)):
        for agent, base in (("maxrl", -1.0), ("grpo", -1.005)):
            for s in range(3):
                r = row(agent, s, base + 1e-4 * s, {})
                r.update(env_label=env, env_base=env, references=refs, run_id=f"{env}-{agent}-{s}")
                append_row(tmp_path / "results.jsonl", r)
    text = aggregate_over_tasks(build_points(load_rows(tmp_path)[0])).text
    assert "- Tasks (2): e: a; e: b" in text
    assert "- Not a task: e: c (the Bayes level of log_likelihood is only 0.01 better" in text
    assert "less than the protocol's 0.02" in text


def test_grid_edges_are_cells_whose_chosen_rate_ends_a_grid_of_three_or_more() -> None:
    def tune(cell: str, lr: float) -> dict:
        return {"cell": cell, "phase": "tune", "lr": lr, "status": "ok"}

    def final(cell: str, lr: float, status: str = "ok") -> dict:
        return {"cell": cell, "phase": "final", "lr": lr, "status": status}

    rows = [
        *[tune(c, lr) for c in "abcd" for lr in (0.001, 0.003, 0.01)],
        *[tune("e", lr) for lr in (0.001, 0.01)],  # two rates: no interior to miss
        final("a", 0.01),  # top edge
        final("b", 0.001),  # bottom edge
        final("c", 0.003),  # interior
        final("d", 0.01, "failed"),  # no reported run at the edge
        final("e", 0.01),
    ]
    assert grid_edges(rows) == {"a", "b"}
