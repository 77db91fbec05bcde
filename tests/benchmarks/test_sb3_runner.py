"""The SB3 baseline runner: validation, budgets in rollouts, shared tags, checkpoints, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents import sb3_baselines
from agents.sb3_baselines import (
    SB3Config,
    budget_steps,
    read_final,
    train_sb3,
    validate_sb3_config,
)
from benchmarks.jobs import read_curve

SMALL = {"eval_samples": 8, "pass_k": 4, "num_envs": 8}
REGRESSION = {"env_id": "MaxRLRegression-v0", "env_kwargs": {"num_contexts": 256}}


@pytest.fixture(autouse=True)
def _one_thread(single_thread) -> None:
    """SB3 on one torch thread, as in the benchmark workers."""


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"algo": "DQN", **REGRESSION}, "algo='DQN' does not support the box action space"),
        ({"algo": "SAC", "env_id": "MaxRLClassification-v0"}, "does not support the discrete"),
        ({"algo": "TD3", "env_id": "MaxRLTokens-v0"}, "does not support the discrete"),
        ({"algo": "TRPO", **REGRESSION}, "algo='TRPO'"),
        ({"algo": "PPO", **REGRESSION, "budget": 100}, "smaller than one PPO update of 1024"),
        ({"algo": "A2C", **REGRESSION, "budget": 0}, "budget=0"),
        ({"algo": "PPO", **REGRESSION, "hyperparams": {"n_stepz": 4}}, "n_stepz"),
        ({"algo": "PPO", **REGRESSION, "hyperparams": {"seed": 4}}, "'seed'"),
        ({"algo": "A2C", "env_id": "MaxRLRegression-v0", "env_kwargs": {"snrr": 1}}, "snrr"),
        ({"algo": "A2C", "env_id": "Nope-v0"}, "Nope-v0"),
        ({"algo": "A2C", **REGRESSION, "pass_k": 99}, "pass_k=99"),
        ({"algo": "A2C", **REGRESSION, "eval_split": "val"}, "eval_split='val'"),
    ],
)
def test_validation_errors(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_sb3_config(SB3Config(**config))


def test_budget_rounds_down_to_whole_collections() -> None:
    # A2C with 8 sub-envs and n_steps 5 collects 40 rollouts between budget checks.
    config = SB3Config(
        algo="A2C", budget=1000, num_envs=8, hyperparams={"n_steps": 5}, **REGRESSION
    )
    assert budget_steps(config) == 1000
    assert budget_steps(SB3Config(**{**config.__dict__, "budget": 1030})) == 1000
    tokens = SB3Config(env_id="MaxRLTokens-v0", algo="PPO", budget=1000, num_envs=8)
    assert budget_steps(tokens) == (3000 // (8 * 64)) * 8 * 64  # 3 env steps per rollout


def test_tokens_x_axis_counts_rollouts_not_env_steps(tmp_path: Path) -> None:
    config = SB3Config(
        env_id="MaxRLTokens-v0",
        env_kwargs={"num_contexts": 256, "num_test_contexts": 64},
        algo="DQN",
        budget=512,
        eval_every=256,
        log_dir=str(tmp_path),
        **SMALL,
    )
    metrics = train_sb3(config)
    assert metrics["rollouts"] == 512
    steps = [step for step, _ in read_curve(tmp_path / config.name)]
    assert steps == [0, 256, 512]
    assert {"eval/log_likelihood", "eval/excess_mse", "eval/pass@4"} <= set(metrics)


def test_crash_resumes_from_the_checkpoint_and_finished_runs_are_not_retrained(
    tmp_path: Path, monkeypatch
) -> None:
    config = SB3Config(
        algo="A2C",
        budget=2048,
        eval_every=512,
        hyperparams={"n_steps": 8},
        log_dir=str(tmp_path),
        **REGRESSION,
        **SMALL,
    )
    evaluated: list[int] = []
    crashed: list[bool] = []
    real_evaluate = sb3_baselines._Run.evaluate

    def crash_at_1024(self, model):
        step = self.rollouts(model)
        if step == 1024 and not crashed:
            crashed.append(True)
            raise RuntimeError("simulated crash")
        evaluated.append(step)
        return real_evaluate(self, model)

    monkeypatch.setattr(sb3_baselines._Run, "evaluate", crash_at_1024)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sb3(config)
    run_dir = tmp_path / config.name
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["num_timesteps"] == 512 and read_final(run_dir) is None

    evaluated.clear()
    metrics = train_sb3(config)
    # Resumed at 512: the points at 0 and 512 come from the checkpoint, not re-evaluated.
    assert evaluated == [1024, 1536, 2048]
    assert metrics["rollouts"] == 2048
    assert [step for step, _ in read_final(run_dir)["curve"]] == [0, 512, 1024, 1536, 2048]
    assert not (run_dir / "checkpoint").exists()

    evaluated.clear()
    assert train_sb3(config) == metrics
    assert evaluated == []


def test_interrupted_checkpoint_swap_is_recovered(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    old = run_dir / "checkpoint.old123"
    old.mkdir(parents=True)
    (old / "state.json").write_text("{}")
    (run_dir / "checkpoint.tmp456").mkdir()
    store = sb3_baselines._Checkpoint(run_dir)
    assert (run_dir / "checkpoint" / "state.json").exists()
    assert not old.exists() and not (run_dir / "checkpoint.tmp456").exists()
    assert store.path == run_dir / "checkpoint"


#: 3**11 = 177147 token sequences, above the exact enumeration's cap of 2**16.
BIG_TREE = {
    "env_id": "MaxRLTokens-v0",
    "env_kwargs": {"num_digits": 11, "base": 3, "num_contexts": 64, "num_test_contexts": 8},
}


def test_big_token_tree_is_not_enumerated_and_selects_on_the_monte_carlo_tag(
    tmp_path: Path,
) -> None:
    import torch

    import maxrl_envs
    from agents.evaluation import SB3Policy

    ppo = {"hyperparams": {"n_steps": 11, "batch_size": 22, "n_epochs": 1}, "num_envs": 2}
    base = {**BIG_TREE, **ppo, "algo": "PPO", "budget": 8, "eval_samples": 4, "pass_k": 2}
    with pytest.raises(ValueError, match=r"select_metric='eval/log_likelihood'.*_mc"):
        validate_sb3_config(SB3Config(**base, select_metric="eval/log_likelihood"))
    validate_sb3_config(SB3Config(**base, select_metric="eval/log_likelihood_mc"))
    assert not sb3_baselines.has_exact_form("PPO", BIG_TREE["env_id"], BIG_TREE["env_kwargs"])
    # DQN scores its deterministic point prediction: exact on any tree.
    assert sb3_baselines.has_exact_form("DQN", BIG_TREE["env_id"], BIG_TREE["env_kwargs"])
    small = {**BIG_TREE["env_kwargs"], "num_digits": 2}
    assert sb3_baselines.has_exact_form("PPO", "MaxRLTokens-v0", small)

    config = SB3Config(**base, eval_every=4, early_stopping=True, log_dir=str(tmp_path))
    metrics = train_sb3(config)
    assert "eval/log_likelihood" not in metrics and metrics["eval/log_likelihood_mc"] < 0
    assert metrics["rollouts"] == 8 and metrics["selected_rollouts"] in (0.0, 4.0, 8.0)
    assert read_final(tmp_path / config.name)["select_metric"] == "eval/log_likelihood_mc"

    from stable_baselines3 import PPO

    from maxrl_envs.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("MaxRLTokens-v0", 2, 0, **BIG_TREE["env_kwargs"])
    task = maxrl_envs.make_task("MaxRLTokens-v0", **BIG_TREE["env_kwargs"])
    policy = SB3Policy(PPO("MlpPolicy", venv, n_steps=11, batch_size=22, device="cpu"), task)
    calls: list[int] = []
    policy.model.policy.action_net.register_forward_hook(lambda *_: calls.append(1))
    assert policy.log_likelihood(task.core.all_contexts("test")) is None and calls == []
    small_task = maxrl_envs.make_task("MaxRLTokens-v0", **small)
    small_venv = make_sb3_vec_env("MaxRLTokens-v0", 2, 0, **small)
    small_policy = SB3Policy(PPO("MlpPolicy", small_venv, device="cpu"), small_task)
    exact = small_policy.log_likelihood(small_task.core.all_contexts("test"))
    assert exact is not None and exact.dtype == torch.float64 and bool(exact.isfinite().all())


def test_checkpoints_wait_for_a_collection_boundary_so_a_resumed_run_keeps_its_budget(
    tmp_path: Path, monkeypatch
) -> None:
    # A2C collects 8 sub-envs x 8 steps = 64 rollouts per update; evaluations every 96
    # rollouts fall in the middle of every other collection.
    config = SB3Config(
        algo="A2C",
        budget=1024,
        eval_every=96,
        hyperparams={"n_steps": 8},
        log_dir=str(tmp_path),
        **REGRESSION,
        **SMALL,
    )
    crashed: list[bool] = []
    real_evaluate = sb3_baselines._Run.evaluate

    def crash_at_384(self, model):
        if self.rollouts(model) == 384 and not crashed:
            crashed.append(True)
            raise RuntimeError("simulated crash")
        return real_evaluate(self, model)

    monkeypatch.setattr(sb3_baselines._Run, "evaluate", crash_at_384)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sb3(config)
    run_dir = tmp_path / config.name
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    # The evaluation at 288 was mid-collection; its checkpoint waited for 320 = 5 x 64.
    assert state["num_timesteps"] == 320
    assert [step for step, _ in state["curve"]] == [0, 96, 192, 288]
    metrics = train_sb3(config)
    assert metrics["rollouts"] == 1024 == budget_steps(config)  # was 1056 past a 288 resume
    steps = [step for step, _ in read_final(run_dir)["curve"]]
    assert steps == [*range(0, 1024, 96), 1024]


def test_non_finite_metrics_are_strict_json_strings_and_come_back_as_floats(
    tmp_path: Path, monkeypatch
) -> None:
    real_score = sb3_baselines._Run.score

    def with_non_finite(self, model, split, max_contexts):
        return {**real_score(self, model, split, max_contexts), "eval/x": float("-inf")}

    def strict(text: str):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}"))

    states: list[dict] = []
    real_checkpoint = sb3_baselines._Run.checkpoint

    def read_back(self, model):
        real_checkpoint(self, model)
        states.append(strict((self.store.path / "state.json").read_text()))

    monkeypatch.setattr(sb3_baselines._Run, "score", with_non_finite)
    monkeypatch.setattr(sb3_baselines._Run, "checkpoint", read_back)
    config = SB3Config(
        algo="A2C",
        budget=256,
        eval_every=64,
        hyperparams={"n_steps": 8},
        log_dir=str(tmp_path),
        **REGRESSION,
        **SMALL,
    )
    metrics = train_sb3(config)
    assert metrics["eval/x"] == float("-inf")
    assert states and states[0]["curve"][0][1]["eval/x"] == "-inf"

    run_dir = tmp_path / config.name
    final = strict((run_dir / "final.json").read_text())
    assert final["metrics"]["eval/x"] == "-inf"  # json_safe, as our trainer's final.json
    again = train_sb3(config)  # returned from final.json: floats, as our trainer returns
    assert again == metrics and all(isinstance(val, float) for val in again.values())


def test_early_stopping_checkpoint_without_best_is_corrupt(tmp_path: Path, monkeypatch) -> None:
    from agents.runs import CorruptFileError

    config = SB3Config(
        algo="A2C",
        budget=512,
        eval_every=128,
        hyperparams={"n_steps": 8},
        early_stopping=True,
        select_contexts=16,
        log_dir=str(tmp_path),
        **REGRESSION,
        **SMALL,
    )
    real_evaluate = sb3_baselines._Run.evaluate

    def crash_at_256(self, model):
        if self.rollouts(model) == 256:
            raise RuntimeError("simulated crash")
        return real_evaluate(self, model)

    monkeypatch.setattr(sb3_baselines._Run, "evaluate", crash_at_256)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_sb3(config)
    path = tmp_path / config.name / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    assert state["best"] is not None and (path.parent / "best.pt").exists()
    path.write_text(json.dumps({k: v for k, v in state.items() if k != "best"}))
    monkeypatch.setattr(sb3_baselines._Run, "evaluate", real_evaluate)
    with pytest.raises(CorruptFileError, match=f"{path} is corrupt.*'best'"):
        train_sb3(config)
