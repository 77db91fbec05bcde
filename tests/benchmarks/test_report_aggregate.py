"""Report: normalized scores, the aggregate over tasks, comparing two results directories and
the layout of the plots, on hand-computable synthetic rows (no training)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.report import (
    aggregate_over_tasks,
    best_reference,
    build_points,
    compare_results,
    main,
    normalized_score,
    write_report,
)
from benchmarks.report import figures as report_figures
from benchmarks.results import append_row
from benchmarks.stats import iqm

LL = "eval/log_likelihood"
MSE = "eval/excess_mse"
# Normalized log-likelihood of these levels: (x + 5) / 4 (the sampler's -1 beats -inf).
REFS = {
    "random": {LL: -5.0, MSE: 2.0, "eval/pass@1": 0.1, "eval/pass@4": 0.2},
    "bayes_point": {LL: "-inf", MSE: 0.0, "eval/pass@1": 0.5, "eval/pass@4": 0.5},
    "bayes_sampler": {LL: -1.0, MSE: 0.0, "eval/pass@1": 0.3, "eval/pass@4": 0.9},
}


def row(
    agent: str,
    seed: int,
    final: float | str,
    env: str = "a",
    *,
    role: str = "baseline",
    budget: int = 1000,
    references: dict | None = REFS,
    **extra,
) -> dict:
    """A final ok row whose curve goes linearly from the random level -5 to ``final``."""
    curve = [[0, {LL: -5.0, MSE: 2.0}], [budget, {LL: final, MSE: 1.0}]]
    base = {
        "run_id": f"{env}-{agent}-{seed}",
        "cell": f"{env}-{agent}",
        "experiment": "e",
        "env_label": env,
        "env_base": env,
        "agent": agent,
        "role": role,
        "family": "ours",
        "lr": 0.01,
        "seed": seed,
        "phase": "final",
        "status": "ok",
        "sweep": {},
        "select_metric": LL,
        "columns": [LL, MSE],
        "target_fraction": 0.9,
        "config": {"budget": budget},
        "metrics": {LL: final, MSE: 1.0},
        "curve": curve,
    }
    if references is not None:
        base["references"] = references
    base.update(extra)
    return base


# ----------------------------------------------------------------------------- normalized


def test_normalized_score_by_hand() -> None:
    # log-likelihood: random -5, Bayes = the better of -inf and -1 -> -1.
    assert best_reference(LL, REFS) == -1.0
    assert normalized_score(LL, -2.0, REFS) == (-2.0 + 5.0) / 4.0 == 0.75
    assert normalized_score(LL, "-5", REFS) == 0.0 and normalized_score(LL, -1.0, REFS) == 1.0
    # excess MSE, lower is better: random 2, Bayes 0 -> (0.5 - 2) / (0 - 2) = 0.75.
    assert best_reference(MSE, REFS) == 0.0
    assert normalized_score(MSE, 0.5, REFS) == 0.75
    assert normalized_score(MSE, 3.0, REFS) == -0.5  # worse than random
    # pass@1: Bayes point 0.5 beats the sampler's 0.3; pass@4: the sampler's 0.9 wins.
    assert normalized_score("eval/pass@1", 0.3, REFS) == pytest.approx((0.3 - 0.1) / 0.4)
    assert normalized_score("eval/pass@4", 0.55, REFS) == pytest.approx(0.35 / 0.7)
    # Bayes excess MSE is 0 by definition when the Bayes references do not give it.
    assert normalized_score(MSE, 1.0, {"random": {MSE: 4.0}}) == 0.75


def test_normalized_score_is_nan_without_a_usable_denominator() -> None:
    flat = {"random": {LL: -1.0}, "bayes_point": {LL: -1.0}, "bayes_sampler": {LL: -3.0}}
    assert math.isnan(normalized_score(LL, -2.0, flat))  # random = Bayes
    both_inf = {"random": {LL: -5.0}, "bayes_point": {LL: "-inf"}, "bayes_sampler": {LL: "-inf"}}
    assert math.isnan(normalized_score(LL, -2.0, both_inf))
    assert math.isnan(normalized_score(LL, -2.0, {**REFS, "random": {LL: "-inf"}}))
    assert math.isnan(normalized_score(LL, -2.0, {}))
    assert math.isnan(normalized_score("eval/pass@8", 0.5, REFS))  # metric not referenced
    assert math.isnan(normalized_score(LL, "nan", REFS))
    assert normalized_score(LL, "-inf", REFS) == -math.inf


# ----------------------------------------------------------------------------- aggregate


def aggregate_rows() -> list[dict]:
    """Two tasks a, b; normalized scores (x + 5) / 4 of the finals below.

    maxrl: a = 1.0, 0.5, diverged; b (written out of seed order) = 0.75, 1.0, 0.5.
    grpo: a = 0.25, 0.5, 0.0; b = 0.5, 0.25, 0.75. ppo runs on a only.
    """
    return [
        *[row("maxrl", s, v, "a", role="maxrl") for s, v in enumerate([-1.0, -3.0, "nan"])],
        *[row("maxrl", s, v, "b", role="maxrl") for s, v in ((2, -3.0), (0, -2.0), (1, -1.0))],
        *[row("grpo", s, v, "a") for s, v in enumerate([-4.0, -3.0, -5.0])],
        *[row("grpo", s, v, "b") for s, v in enumerate([-3.0, -4.0, -2.0])],
        *[row("ppo", s, -4.0, "a") for s in range(3)],
    ]


def test_aggregate_by_hand(tmp_path: Path) -> None:
    agg = aggregate_over_tasks(build_points(aggregate_rows()), tmp_path)
    assert agg is not None
    assert agg.tasks == ["e: a", "e: b"]
    # Every run counts: maxrl's diverged seed on a is not dropped but scored at a's floor,
    # min(0, worst finite score on a) = min(0, grpo's 0.0) = 0.
    assert agg.runs == {"maxrl": 3, "grpo": 3}
    assert agg.floors == {"e: a": 0.0, "e: b": 0.0}
    assert agg.floored == {"maxrl": 1, "grpo": 0}
    assert agg.left_out_agents == {"ppo": ["e: b"]}
    np.testing.assert_array_equal(agg.scores["maxrl"], [[1.0, 0.75], [0.5, 1.0], [0.0, 0.5]])
    np.testing.assert_array_equal(agg.scores["grpo"], [[0.25, 0.5], [0.5, 0.25], [0.0, 0.75]])
    # IQM of 6 scores drops 1 from each end: maxrl (0.5 + 0.5 + 0.75 + 1) / 4, grpo
    # (0.25 + 0.25 + 0.5 + 0.5) / 4.
    assert agg.intervals["IQM"]["maxrl"].point == 0.6875 == iqm(agg.scores["maxrl"])
    assert agg.intervals["IQM"]["grpo"].point == 0.375
    # P(maxrl > grpo): task a 6/9 (the floored run ties grpo's 0), task b 7/9 -> 13/18.
    assert set(agg.improvement) == {("maxrl", "grpo")}
    poi = agg.improvement["maxrl", "grpo"]
    assert poi.point == pytest.approx(13 / 18) and poi.low <= poi.point <= poi.high <= 1.0
    text = agg.text
    assert "- Tasks (2): e: a; e: b" in text
    assert "- Runs: 3 per agent and task" in text
    assert "- Diverged runs (non-finite final metric) scored at the task's floor" in text
    assert ": maxrl 1; 0 for every other agent" in text
    assert "- Left out: ppo (no run on e: b)" in text
    assert "stratified-bootstrap percentile intervals** (2000 replicates, seed 0" in text
    assert "Agarwal et al. (2021)" in text
    assert "| maxrl | 0.688 [" in text and "| maxrl | grpo | 0.722 [" in text
    assert {p.name for p in agg.plots} == {
        "aggregate_intervals.png",
        "aggregate_improvement.png",
        "aggregate_profile.png",
        "aggregate_sample_efficiency.png",
    }
    # Deterministic: the same rows give the same intervals.
    again = aggregate_over_tasks(build_points(aggregate_rows()))
    assert again is not None and again.text == text and again.plots == []


def test_sample_efficiency_curve_interpolates_on_a_common_grid() -> None:
    agg = aggregate_over_tasks(build_points(aggregate_rows()))
    assert agg is not None
    assert agg.curve_tasks == ["e: a", "e: b"] and agg.curve_note == ""
    np.testing.assert_allclose(agg.grid, np.linspace(0, 1000, 21))
    # Every curve is linear from 0 (random) to its final score, so the IQM is too.
    # maxrl's diverged seed (final NaN) stays at the floor 0 from its start.
    np.testing.assert_allclose(agg.curve["maxrl"].point, 0.6875 * agg.grid / 1000)
    np.testing.assert_allclose(agg.curve["grpo"].point, 0.375 * agg.grid / 1000)


def test_sample_efficiency_curve_leaves_out_tasks_of_mixed_budgets() -> None:
    rows = aggregate_rows() + [
        *[row("maxrl", s, -2.0, "c", role="maxrl") for s in (0, 1)],
        *[
            row("grpo", s, -3.0, "c", budget=2000, config={"budget": 2000, "framing": "steps"})
            for s in (0, 1)
        ],
    ]
    agg = aggregate_over_tasks(build_points(rows))
    assert agg is not None
    assert agg.tasks == ["e: a", "e: b", "e: c"]
    assert agg.curve_tasks == ["e: a", "e: b"]
    assert "agents with different budgets (framings rollouts, steps): e: c" in agg.curve_note
    assert agg.curve["maxrl"].point.shape == (21,)


def test_no_aggregate_with_fewer_than_two_tasks() -> None:
    one = [r for r in aggregate_rows() if r["env_label"] == "a"]
    assert aggregate_over_tasks(build_points(one)) is None
    old = [{**r, "references": None} for r in aggregate_rows()]
    assert aggregate_over_tasks(build_points(old)) is None
    flat = {"random": {LL: -1.0}, "bayes_point": {LL: -1.0}, "bayes_sampler": {LL: -1.0}}
    odd = [{**r, "references": flat} if r["env_label"] == "b" else r for r in aggregate_rows()]
    assert aggregate_over_tasks(build_points(odd)) is None  # b does not normalize


def test_report_has_the_aggregate_section(tmp_path: Path) -> None:
    for r in aggregate_rows():
        append_row(tmp_path / "results.jsonl", r)
    report = write_report(tmp_path)
    text = report.path.read_text()
    assert "## Aggregate over tasks" in text
    assert "![aggregate_profile](plots/aggregate_profile.png)" in text
    assert "| a | *Bayes sampler p(y\\|x)* | – | – | -1 | 0 | 1 | – | – |" in text
    assert text.index("## Aggregate over tasks") < text.index("## Learning-rate selection")
    assert all(p.exists() and p.stat().st_size > 5_000 for p in report.plots)


# ----------------------------------------------------------------------------- compare


def _write(folder: Path, rows: list[dict]) -> Path:
    for r in rows:
        append_row(folder / "results.jsonl", r)
    return folder


def test_compare_two_results_directories(tmp_path: Path, capsys) -> None:
    a = _write(
        tmp_path / "A",
        [
            *[row("maxrl", s, v, role="maxrl") for s, v in enumerate([-2.0, -2.1, -1.9])],
            *[row("grpo", s, v) for s, v in enumerate([-3.0, -3.2, -2.8])],
            row("ppo", 0, -4.0),
        ],
    )
    b = _write(
        tmp_path / "B",
        [
            *[row("maxrl", s, v, role="maxrl") for s, v in enumerate([-1.0, -1.1, -0.9])],
            *[row("grpo", s, v) for s, v in enumerate([-3.1, -2.9, "nan"])],
            row("rloo", 0, -4.0),
        ],
    )
    text = compare_results(a, b)
    # maxrl: B - A = +1; Welch: se = sqrt(0.01/3 + 0.01/3), df = 4, half = t_{.975,4} se.
    half = 2.7764451051977987 * math.sqrt(0.02 / 3)
    line = next(x for x in text.splitlines() if x.startswith("| e | a | maxrl | log_likelihood"))
    assert f"| +1 [{1 - half:+.3g}, {1 + half:+.3g}] | **changed** |" in line
    assert "| -2 (n=3) | -1 (n=3) |" in line
    grpo = next(x for x in text.splitlines() if x.startswith("| e | a | grpo | log_likelihood"))
    assert "| -3 (n=3) | -3 (n=2, 1 diverged) | +0 [" in grpo and grpo.endswith("|  |")
    assert "Only in A (1):\n\n- e | a | ppo" in text
    assert "Only in B (1):\n\n- e | a | rloo" in text
    assert "2 cells in both, 1 (cell, metric) changed." in text

    out = tmp_path / "compare.md"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text() == text and printed.startswith(text)
    assert main([str(a), str(b)]) == 0 and not (tmp_path / "A" / "report.md").exists()
    assert main([str(a)]) == 0 and (tmp_path / "A" / "report.md").exists()
    assert main([str(a), "--out", str(out)]) == 2
    assert main([str(a), str(b), str(a)]) == 2
    assert main([str(a), str(tmp_path / "nowhere")]) == 2


# ----------------------------------------------------------------------------- plots


def test_plots_are_readable(tmp_path: Path, monkeypatch) -> None:
    figures = []

    def capture(fig, path: Path) -> Path:
        legend = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        axes = [ax for ax in fig.axes if ax.axison]
        figures.append(
            {
                "name": path.name,
                "width": fig.get_figwidth(),
                "columns": axes[0].get_subplotspec().get_gridspec().ncols,
                "titles": [ax.get_title() for ax in axes],
                "ylabels": [ax.get_ylabel() for ax in axes],
                "legend": legend,
            }
        )
        return real_save(fig, path)

    real_save = report_figures._save_figure
    monkeypatch.setattr(report_figures, "_save_figure", capture)
    rows = [
        r
        for n in (4, 16)
        for env in ("a", "b")
        for r in (
            row("maxrl", 0, -2.0, env, role="maxrl", sweep={"rollouts": n}),
            row("grpo", 0, -3.0, env, sweep={"rollouts": n}),
        )
    ]
    for r in rows:
        r["run_id"] += f"-{r['sweep']['rollouts']}"
        r["curve"].insert(1, [500, {LL: -4.0, MSE: 1.5}])
        append_row(tmp_path / "results.jsonl", r)
    report = write_report(tmp_path)
    by_name = {f["name"]: f for f in figures}
    assert set(by_name) == {
        "curves_e.png",
        "sweep_e_rollouts.png",
        "aggregate_intervals.png",
        "aggregate_improvement.png",
        "aggregate_profile.png",
        "aggregate_sample_efficiency.png",
    }
    intervals = ("aggregate_intervals.png", "aggregate_improvement.png")
    assert by_name["aggregate_intervals.png"]["titles"] == [
        "IQM (higher is better)",
        "Mean (higher is better)",
        "Median (higher is better)",
        "Optimality gap (lower is better)",
    ]
    for figure in figures:
        assert figure["width"] <= 16 and figure["columns"] <= 4
        assert figure["name"] in intervals or all(
            label.endswith(("(higher is better)", "(lower is better)"))
            for label in figure["ylabels"]
        )
    curves = by_name["curves_e.png"]
    assert curves["columns"] == 4 and len(curves["titles"]) == 8  # 4 points x 2 metrics
    assert "log_likelihood — a · N=4" in curves["titles"]
    assert "excess_mse — b · N=16" in curves["titles"]
    assert "excess_mse (lower is better)" in curves["ylabels"]
    assert "log_likelihood (higher is better)" in curves["ylabels"]
    assert "target" in curves["legend"] and "maxrl" in curves["legend"]
    assert by_name["sweep_e_rollouts.png"]["titles"] == [
        "final log_likelihood — a",
        "final log_likelihood — b",
    ]
    from PIL import Image

    for plot in report.plots:
        with Image.open(plot) as image:
            assert image.info["dpi"] == pytest.approx((110, 110), abs=0.5)
            assert image.width <= 16 * 110 and image.height <= 15 * 110


def test_a_task_whose_bayes_gap_is_within_seed_noise_is_left_out() -> None:
    # Task c: Bayes (-4.99) beats random (-5) by 0.01 nats, while the agents' seeds spread over
    # whole nats: normalized scores there would be noise, so the task is left out (named).
    tiny = {
        "random": {LL: -5.0, MSE: 2.0},
        "bayes_point": {LL: -4.99, MSE: 0.0},
        "bayes_sampler": {LL: -5.2, MSE: 0.0},
    }
    noisy = [
        row(
            agent,
            seed,
            value,
            "c",
            references=tiny,
            role="maxrl" if agent == "maxrl" else "baseline",
        )
        for agent in ("maxrl", "grpo")
        for seed, value in enumerate((-4.0, -6.0, -5.0))
    ]
    agg = aggregate_over_tasks(build_points(aggregate_rows() + noisy))
    assert agg is not None
    assert agg.tasks == ["e: a", "e: b"]
    assert "within the agents' seed noise" in agg.left_out_tasks["e: c"]
    assert "e: c" in agg.text


def test_a_diverged_run_scores_the_worst_finite_score_when_that_is_below_random() -> None:
    # Task a: grpo finishes one seed at -7 (score -0.5, worse than random): maxrl's diverged
    # seed must not score above it, so a's floor is -0.5; b has no run below random: 0.
    rows = [
        *[row("maxrl", s, v, "a", role="maxrl") for s, v in enumerate([-1.0, "-inf"])],
        *[row("maxrl", s, v, "b", role="maxrl") for s, v in enumerate([-1.0, "nan"])],
        *[row("grpo", s, v, "a") for s, v in enumerate([-7.0, -6.0])],
        *[row("grpo", s, v, "b") for s, v in enumerate([-3.0, -3.0])],
    ]
    agg = aggregate_over_tasks(build_points(rows))
    assert agg is not None
    assert agg.floors == {"e: a": -0.5, "e: b": 0.0}
    np.testing.assert_array_equal(agg.scores["maxrl"], [[1.0, 1.0], [-0.5, 0.0]])
    assert agg.floored == {"maxrl": 2, "grpo": 0}
    assert ": maxrl 2; 0 for every other agent" in agg.text
    clean = aggregate_over_tasks(build_points(aggregate_rows()[3:]))  # maxrl's NaN seed gone
    assert clean is not None and "- Diverged runs: none (a diverged run would be" in clean.text


SDS = "state_dependent_std"
# Finals per (agent, sigma, env), seeds 0 and 1; normalized (x + 5) / 4 in the comments.
SIGMA_FINALS = {
    ("maxrl", False, "a"): (-3.0, -1.0),  # 0.5, 1.0
    ("maxrl", False, "b"): (-2.0, -3.0),  # 0.75, 0.5
    ("maxrl", True, "a"): (-1.0, -1.0),  # 1.0, 1.0
    ("maxrl", True, "b"): (-1.0, -2.0),  # 1.0, 0.75
    ("grpo", False, "a"): (-4.0, -3.0),  # 0.25, 0.5
    ("grpo", False, "b"): (-5.0, -4.0),  # 0.0, 0.25
    ("grpo", True, "a"): (-1.0, -2.0),  # 1.0, 0.75
    ("grpo", True, "b"): (-2.0, -1.0),  # 0.75, 1.0
}


def sigma_rows() -> list[dict]:
    """maxrl and grpo at both sigma modes (an agent-side setting); ppo (SB3) ignores it."""
    ours = [
        row(
            agent,
            seed,
            final,
            env,
            role="maxrl" if agent == "maxrl" else "baseline",
            run_id=f"{env}-{agent}-{seed}-{sigma}",
            sweep={SDS: sigma},
            config={"budget": 1000, SDS: sigma},
        )
        for (agent, sigma, env), finals in SIGMA_FINALS.items()
        for seed, final in enumerate(finals)
    ]
    ppo = [row("ppo", s, v, env) for env in ("a", "b") for s, v in enumerate([-4.0, -1.0])]
    return ours + ppo


def test_an_algorithm_is_an_agent_at_its_setting_values_and_poi_never_mixes_them() -> None:
    rows = sigma_rows()
    points = build_points(rows)["e"]
    assert len(points) == 4 and all(len(p.agents["ppo"].rows) == 2 for p in points)
    agg = aggregate_over_tasks(build_points(rows))
    assert agg is not None
    # A task is an environment point; sigma splits maxrl and grpo into two algorithms each,
    # ppo (which ignores sigma) is one algorithm with each of its runs once per task.
    assert agg.tasks == ["e: a", "e: b"] and agg.merged == [SDS]
    mf, mt = f"maxrl {SDS}=False", f"maxrl {SDS}=True"
    gf, gt = f"grpo {SDS}=False", f"grpo {SDS}=True"
    assert list(agg.scores) == [mf, mt, gf, gt, "ppo"]
    assert agg.algorithms[mt] == ("maxrl", {SDS: True}) and agg.algorithms["ppo"] == ("ppo", {})
    assert agg.runs == dict.fromkeys(agg.scores, 2)
    np.testing.assert_array_equal(agg.scores[mf], [[0.5, 0.75], [1.0, 0.5]])
    np.testing.assert_array_equal(agg.scores["ppo"], [[0.25, 0.25], [1.0, 1.0]])
    # IQM of 4 scores drops the lowest and the highest: maxrl False (0.5 + 0.75) / 2, maxrl
    # True (1 + 1) / 2, grpo False (0.25 + 0.25) / 2, grpo True (0.75 + 1) / 2.
    iqms = {name: interval.point for name, interval in agg.intervals["IQM"].items()}
    assert iqms == {mf: 0.625, mt: 1.0, gf: 0.25, gt: 0.875, "ppo": 0.625}
    assert iqms[mf] == iqm(agg.scores[mf])
    # PoI pairs share the sigma mode (ppo, which ignores it, meets both); never maxrl at one
    # mode vs grpo at the other, nor maxrl vs maxrl.
    assert set(agg.improvement) == {(mf, gf), (mf, "ppo"), (mt, gt), (mt, "ppo")}
    for x, y in agg.improvement:
        both = agg.algorithms[x][1].keys() & agg.algorithms[y][1].keys()
        assert all(agg.algorithms[x][1][k] == agg.algorithms[y][1][k] for k in both)
    # P(maxrl > grpo) at False: a 3.5/4 (0.5 ties 0.5), b 4/4 -> 0.9375; at True: a 3/4,
    # b 2/4 -> 0.625. P(maxrl False > ppo): a 2.5/4, b 2/4 -> 0.5625.
    assert agg.improvement[mf, gf].point == 0.9375
    assert agg.improvement[mt, gt].point == 0.625
    assert agg.improvement[mf, "ppo"].point == 0.5625
    text = agg.text
    assert f"- Algorithms: an agent at each value of the agent-side settings it uses ({SDS})" in (
        text
    )
    assert "an agent that ignores them (ppo) is one algorithm" in text
    assert "- Runs: 2 per algorithm and task" in text
    assert f"| X | Y | P(X > Y) {SDS}=False | P(X > Y) {SDS}=True |" in text
    assert "| maxrl | grpo | 0.938 [" in text and "| maxrl | ppo | 0.562 [" in text
    assert f"| {mt} | 1 [" in text


def test_the_supervised_reference_is_one_algorithm_across_group_sizes() -> None:
    # maxrl and grpo at N = 4 and 16; supervised ignores N: its runs at N = 4 and 16 are one
    # run (same config less group_size), one algorithm compared with maxrl at each N.
    def at(agent: str, seed: int, final: float, env: str, n: int) -> dict:
        return row(
            agent,
            seed,
            final,
            env,
            role={"maxrl": "maxrl", "supervised": "reference"}.get(agent, "baseline"),
            method=agent,
            run_id=f"{env}-{agent}-{seed}-{n}",
            sweep={"group_size": n},
            config={"budget": 1000, "group_size": n},
        )

    rows = [
        at(agent, seed, -5.0 + 4.0 * (seed + n / 16) / 3, env, n)
        for agent in ("maxrl", "grpo", "supervised")
        for env in ("a", "b")
        for n in (4, 16)
        for seed in (0, 1)
    ]
    agg = aggregate_over_tasks(build_points(rows))
    assert agg is not None and agg.tasks == ["e: a", "e: b"]
    assert list(agg.scores) == ["maxrl N=4", "maxrl N=16", "grpo N=4", "grpo N=16", "supervised"]
    assert agg.runs["supervised"] == 2  # not 4: the N = 16 rows are the N = 4 runs again
    assert set(agg.improvement) == {
        ("maxrl N=4", "grpo N=4"),
        ("maxrl N=4", "supervised"),
        ("maxrl N=16", "grpo N=16"),
        ("maxrl N=16", "supervised"),
    }
    assert "| X | Y | P(X > Y) N=4 | P(X > Y) N=16 |" in agg.text
    assert "an agent that ignores them (supervised) is one algorithm" in agg.text
