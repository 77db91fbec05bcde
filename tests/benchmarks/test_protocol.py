"""The evaluation protocol: the same tuning for every agent, both framings, paired view."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmarks.suite import load_suite, validate_suite

SUITE = """
name = "protocol"
[settings]
seeds = [0, 1, 2, 3, 4]
budget = 4096
group_size = 4
num_groups = 16
eval_every = 2048
{extra}

[[experiments]]
name = "main"
envs = [{{ id = "MaxRLRegression-v0", kwargs = {{ num_contexts = 64 }} }}]
agents = ["maxrl", "grpo", "supervised", "supervised-steps", "ppo", "a2c"]
"""


def load(tmp_path: Path, extra: str = ""):
    path = tmp_path / "protocol.toml"
    path.write_text(SUITE.format(extra=extra), encoding="utf-8")
    suite = load_suite(str(path))
    validate_suite(suite)
    return suite


def test_every_agent_gets_the_same_number_of_validation_runs(tmp_path: Path) -> None:
    suite = load(tmp_path)
    tune = Counter(job.agent for job in suite.initial_jobs() if job.phase == "tune")
    assert set(tune) == {"maxrl", "grpo", "supervised", "supervised-steps", "ppo", "a2c"}
    assert set(tune.values()) == {3 * 2}  # 3 learning rates x 2 tuning seeds, for everyone
    cells = {cell.agent.name: cell for cell in suite.cells}
    assert cells["ppo"].lr_grid == pytest.approx([1e-4, 3e-4, 9e-4])
    assert cells["a2c"].lr_grid == pytest.approx([7e-4 / 3, 7e-4, 2.1e-3], rel=1e-5)  # 6 digits
    assert cells["maxrl"].lr_grid == pytest.approx([1e-3, 3e-3, 9e-3])
    ppo_tune = [j for j in suite.initial_jobs() if j.agent == "ppo" and j.phase == "tune"]
    rates = sorted({j.config["hyperparams"]["learning_rate"] for j in ppo_tune})
    assert rates == pytest.approx([1e-4, 3e-4, 9e-4])
    assert {j.config["eval_split"] for j in ppo_tune} == {"validation"}
    assert all(j.config["early_stopping"] for j in suite.initial_jobs())


def test_steps_framing_gives_every_agent_the_same_optimizer_steps(tmp_path: Path) -> None:
    suite = load(tmp_path, 'framing = "steps"\nsteps = 32')
    final = {cell.agent.name: cell.config(0, 1e-3, "final") for cell in suite.cells}
    assert final["maxrl"]["budget"] == 32 * 16 * 4  # 32 steps of B x N rollouts
    assert final["supervised"]["budget"] == 32 * 16  # 32 steps of B labels
    assert final["ppo"]["budget"] == 32 * 16 * 4  # the policy-gradient agents' rollouts


def test_supervised_steps_matches_the_policy_gradient_steps_at_equal_rollouts(tmp_path):
    suite = load(tmp_path)
    final = {cell.agent.name: cell.config(0, 1e-3, "final") for cell in suite.cells}
    assert final["supervised"]["budget"] == 4096  # equal labels: 256 steps of 16
    assert final["supervised-steps"]["budget"] == (4096 // 64) * 16  # 64 steps of 16 labels
    assert final["maxrl"]["budget"] == 4096


def test_paired_view_runs_our_estimators_at_one_shared_rate(tmp_path: Path) -> None:
    suite = load(tmp_path, "lr_grid = [0.002]")
    ours = [cell for cell in suite.cells if cell.agent.family == "ours"]
    assert {tuple(cell.lr_grid) for cell in ours} == {(0.002,)}
    assert not any(cell.needs_tuning for cell in ours)
    assert all(cell.needs_tuning for cell in suite.cells if cell.agent.family == "sb3")


def steps_of(config: dict) -> int:
    """Optimizer steps of one of our runs: budget // rollouts per step (N = 1 supervised)."""
    per_step = config["num_groups"] * (
        1 if config["estimator"] == "supervised" else config["group_size"]
    )
    return config["budget"] // per_step


def test_with_fixed_b_supervised_takes_n_times_the_steps_of_supervised_steps(tmp_path):
    suite = load(tmp_path)  # N = 4, B = 16, 4096 rollouts
    final = {cell.agent.name: cell.config(0, 1e-3, "final") for cell in suite.cells}
    assert steps_of(final["maxrl"]) == steps_of(final["supervised-steps"]) == 64
    assert steps_of(final["supervised"]) == 4 * 64


def test_with_rollouts_per_step_supervised_steps_repeats_supervised(tmp_path):
    """What docs/benchmarks.md and the classification suite say: no N-fold step gap here."""
    suite = load(tmp_path, "rollouts_per_step = 64")
    final = {cell.agent.name: cell.config(0, 1e-3, "final") for cell in suite.cells}
    assert final["supervised"]["num_groups"] == final["supervised-steps"]["num_groups"] == 64
    assert steps_of(final["supervised"]) == steps_of(final["supervised-steps"]) == 64
    assert steps_of(final["maxrl"]) == 64
    classification = load_suite("classification")
    steps = {
        (cell.agent.name, cell.settings["group_size"]): steps_of(cell.config(0, 1e-3, "final"))
        for cell in classification.cells
        if cell.experiment == "equal-rollouts" and cell.env.base == "digits"
    }
    assert set(steps.values()) == {292}  # the description's "292 steps", every agent and N
    assert {name for name, _ in steps} == {
        "maxrl",
        "grpo",
        "reinforce",
        "supervised",
        "supervised-steps",
    }


@pytest.mark.parametrize(
    "name", ["quick", "low-snr", "low-snr-heads", "low-snr-offpolicy", "tokens"]
)
def test_sb3_and_our_validation_runs_score_the_same_contexts(name: str) -> None:
    """Ours score tune_eval_contexts validation contexts; SB3 (no eval_contexts) all of them.

    They agree only where the split holds at most tune_eval_contexts, which every shipped
    suite with SB3 agents must keep (docs/benchmarks.md says so).
    """
    import maxrl_envs

    suite = load_suite(name)
    sizes: dict[str, int] = {}
    for cell in suite.cells:
        contexts = int(cell.settings["tune_eval_contexts"])
        config = cell.config(10_000, cell.lr_grid[0], "tune")
        assert config["eval_split"] == "validation" and config["select_contexts"] == contexts
        if cell.agent.family == "ours":
            assert config["eval_contexts"] == contexts
            continue
        assert "eval_contexts" not in config  # SB3Config has no such field
        key = repr((cell.env.id, sorted(cell.env.kwargs.items())))
        if key not in sizes:
            task = maxrl_envs.make_task(cell.env.id, device="cpu", **cell.env.kwargs)
            sizes[key] = task.core.num_contexts("validation")
        assert sizes[key] <= contexts, (cell.env.label, sizes[key], contexts)
    assert sizes  # every one of these suites has SB3 agents
