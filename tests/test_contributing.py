"""The worked examples of docs/contributing.md run: a plugin registered from outside the
package (estimator, task kind, data set, likelihood head, preset, SB3 baseline, report section)
works everywhere by name.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.registration import registry
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from testrows import final_row

from agents import estimators
from agents.sb3_baselines import SB3_BASELINES, SB3Config, train_sb3
from agents.trainer import TrainConfig, train
from benchmarks.families import AGENT_FAMILIES, ignored_settings
from benchmarks.report import SECTIONS, build_report
from benchmarks.results import append_row
from benchmarks.run import main as bench_main
from benchmarks.suite import load_suite, validate_suite
from maxrl_envs import TASK_KINDS, make_task
from maxrl_envs.datasets import SIGNALS
from maxrl_envs.heads import HEADS

DOC = Path(__file__).resolve().parents[1] / "docs" / "contributing.md"


def code_blocks(name: str) -> str:
    """The code blocks of contributing.md whose info string names ``name``, joined."""
    pattern = re.compile(r"^```\w+ " + re.escape(name) + r"\n(.*?)^```", re.M | re.S)
    blocks = pattern.findall(DOC.read_text(encoding="utf-8"))
    assert blocks, f"no code block for {name} in {DOC}"
    return "\n\n".join(blocks)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Write the doc's plugin to a folder on sys.path, import it; unregister afterwards."""
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "my_plugin.py").write_text(code_blocks("my_plugin.py"), encoding="utf-8")
    (folder / "my-suite.toml").write_text(code_blocks("my-suite.toml"), encoding="utf-8")
    (folder / "untrained-suite.toml").write_text(
        code_blocks("untrained-suite.toml"), encoding="utf-8"
    )
    sys.path.insert(0, str(folder))
    try:
        importlib.import_module("my_plugin")
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("my_plugin", None)
        estimators.ESTIMATORS.pop("half-baseline", None)
        TASK_KINDS.pop("toy-sign", None)
        SIGNALS.pop("cubic", None)
        HEADS.pop("box", None)
        SB3_BASELINES.pop("DDPG", None)
        AGENT_FAMILIES.pop("untrained", None)
        SECTIONS.pop("Runs per agent", None)
        for env_id in ("ToySign-v0", "CubicLowSNR-v0"):
            registry.pop(env_id, None)


def test_plugin_estimator_trains_by_name(plugin: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        env_id="MaxRLVerifier-v0",
        estimator="half-baseline",
        group_size=4,
        num_groups=16,
        budget=256,
        eval_every=0,
        eval_samples=4,
        pass_k=2,
        log_dir=str(tmp_path),
        device="cpu",
    )
    metrics = train(config)
    assert metrics["rollouts"] == 256 and np.isfinite(metrics["eval/pass@1"])
    weights = estimators.group_weights("half-baseline", torch.ones(2, 3))
    assert torch.equal(weights, torch.full((2, 3), 0.5))


def test_plugin_kind_passes_check_env_and_trains_one_step(plugin: Path, tmp_path: Path) -> None:
    env = gym.make("ToySign-v0")
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    assert env.action_space == gym.spaces.Discrete(2)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(1)
    assert terminated and info["prediction"] in (-1.0, 1.0) and 0.0 <= reward <= 1.0
    vector = gym.make_vec("ToySign-v0", num_envs=8, group_size=4)
    vector.reset(seed=0)
    _, rewards, *_ = vector.step(np.array([0, 1] * 4))
    assert rewards.shape == (8,)
    task = make_task("ToySign-v0")
    label = task.target_rollout(task.core.all_contexts("test").target)
    assert set(label.unique().tolist()) <= {0, 1}
    for estimator in ("maxrl", "supervised"):
        config = TrainConfig(
            env_id="ToySign-v0",
            estimator=estimator,
            group_size=4,
            num_groups=8,
            budget=32,
            eval_every=0,
            eval_samples=4,
            pass_k=2,
            log_dir=str(tmp_path),
            device="cpu",
        )
        assert train(config)["rollouts"] == 32  # maxrl: 1 step of 8 x 4; supervised: 4 of 8
    assert info["prediction"] == 1.0


def test_plugin_kind_exact_likelihood_sums_over_choices_for_ours_and_sb3(
    plugin: Path, tmp_path: Path
) -> None:
    """On a numeric discrete kind, log p(y|x) = log sum_a pi(a|x) l(y, prediction(a)).

    Both our categorical policy and SB3's PPO are checked against that enumeration, written
    out in float64 from the Laplace density, and against a 1e6-sample Monte-Carlo mean.
    """
    from stable_baselines3 import PPO

    from agents.evaluation import SB3Policy, evaluate
    from agents.exact import exact_mean_log_likelihood
    from agents.policies import TaskPolicy, make_policy
    from maxrl_envs.sb3 import make_sb3_vec_env

    pool = {"num_contexts": 64, "num_test_contexts": 32, "num_validation_contexts": 8}
    task = make_task("ToySign-v0", **pool)
    core = task.core
    contexts = core.all_contexts("test")
    y = contexts.target.double()
    s = float(core.head_scale)
    assert core.head == "laplace"

    def enumeration(probs: torch.Tensor) -> torch.Tensor:
        # Choice 0 predicts -1, choice 1 predicts +1 (SignKind.prediction).
        density = [torch.exp(-(y - value).abs() / s) / (2.0 * s) for value in (-1.0, 1.0)]
        return torch.log(probs[:, 0] * density[0] + probs[:, 1] * density[1])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        ours = TaskPolicy(make_policy(task, (8,)), task)
        with torch.no_grad():  # a policy far from uniform, leaning by context
            ours.policy.net[-1].weight.normal_(0.0, 2.0)
    probs = ours.policy.log_probs(contexts.obs).detach().double().exp()
    assert float((probs[:, 1] - 0.5).abs().max()) > 0.2
    expected = enumeration(probs)
    ours_exact = ours.log_likelihood(contexts)
    torch.testing.assert_close(ours_exact, expected, rtol=1e-6, atol=0.0)
    assert exact_mean_log_likelihood(ours, core, contexts) == pytest.approx(
        float(expected.mean()), rel=1e-6
    )
    metrics = evaluate(task, ours, eval_samples=4, pass_k=1)
    assert metrics["eval/log_likelihood"] == pytest.approx(float(expected.mean()), rel=1e-6)

    venv = make_sb3_vec_env("ToySign-v0", num_envs=4, seed=0, **pool)
    model = PPO("MlpPolicy", venv, seed=1, device="cpu")
    with torch.no_grad():
        model.policy.action_net.bias.copy_(torch.tensor([-0.9, 0.6]))
    sb3 = SB3Policy(model, task)
    sb3_probs = model.policy.get_distribution(contexts.obs).distribution.probs.double()
    sb3_exact = sb3.log_likelihood(contexts)
    assert sb3_exact is not None and sb3_exact.dtype == torch.float64
    torch.testing.assert_close(sb3_exact, enumeration(sb3_probs), rtol=1e-6, atol=0.0)
    # Monte-Carlo check of the whole SB3 path (its own sampling through task.prediction).
    draws = sb3.sample(contexts, 20_000, core.make_generator(5))
    assert set(draws.unique().tolist()) == {-1.0, 1.0}
    mc = core.score(contexts, draws).log_likelihood.double().exp().mean(1)
    assert torch.allclose(mc, sb3_exact.exp(), rtol=0.03)
    metrics = evaluate(task, sb3, eval_samples=4, pass_k=1)
    assert metrics["eval/log_likelihood"] == pytest.approx(float(sb3_exact.mean()), rel=1e-9)

    config = SB3Config(
        env_id="ToySign-v0",
        env_kwargs=pool,
        algo="PPO",
        num_envs=4,
        hyperparams={"n_steps": 16, "batch_size": 32, "n_epochs": 1},
        budget=128,
        eval_every=0,
        eval_samples=4,
        pass_k=2,
        log_dir=str(tmp_path),
    )
    trained = train_sb3(config)
    assert trained["rollouts"] == 128 and np.isfinite(trained["eval/log_likelihood"])


def test_plugin_data_set_preset_and_sb3_baseline(plugin: Path, tmp_path: Path) -> None:
    core = make_task("CubicLowSNR-v0").core
    assert core.task == "cubic" and core.snr == pytest.approx(0.1)
    signal = core.all_contexts("train").signal.double()
    assert abs(float(signal.mean())) < 0.2 and float(signal.std()) == pytest.approx(1.0, abs=0.2)
    config = SB3Config(
        env_id="CubicLowSNR-v0",
        env_kwargs={"num_contexts": 256},
        algo="DDPG",
        budget=256,
        eval_every=0,
        eval_samples=4,
        pass_k=2,
        log_dir=str(tmp_path),
    )
    metrics = train_sb3(config)
    assert metrics["rollouts"] == 256 and np.isfinite(metrics["eval/log_likelihood"])


def test_plugin_suite_validates_and_runs_in_worker_processes(plugin: Path, tmp_path: Path) -> None:
    suite_path = plugin / "my-suite.toml"
    suite = load_suite(str(suite_path))
    assert suite.imports == ["my_plugin"]
    assert {c.agent.name for c in suite.cells} == {"half-baseline", "maxrl", "ddpg"}
    assert validate_suite(suite) == 4
    # Spawned workers import the plugin themselves (the suite's ``imports``).
    code = bench_main(
        [str(suite_path), "--out", str(tmp_path), "--workers", "2", "--no-progress", "--no-report"]
    )
    assert code == 0
    rows = (tmp_path / "my-suite" / "results.jsonl").read_text().splitlines()
    assert len(rows) == 4 and all('"status":"ok"' in row for row in rows)


def test_plugin_agent_family_runs_through_a_suite_and_its_report(
    plugin: Path, tmp_path: Path
) -> None:
    """The doc's untrained family: parsed, run in a worker process, listed in the report."""
    suite = load_suite(str(plugin / "untrained-suite.toml"))
    families = {c.agent.name: c.agent.family for c in suite.cells}
    assert families == {"untrained-mlp": "untrained", "maxrl": "ours"}
    untrained = next(c for c in suite.cells if c.agent.family == "untrained")
    assert "group_size" in ignored_settings("untrained", "auto")
    assert "group_size" not in untrained.config(0, 0.0, "final")
    code = bench_main(
        [str(plugin / "untrained-suite.toml"), "--out", str(tmp_path)]
        + ["--workers", "1", "--no-progress"]
    )
    assert code == 0
    out = tmp_path / "untrained-suite"
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_agent = {row["agent"]: row for row in rows}
    assert set(by_agent) == {"untrained-mlp", "maxrl"}
    floor = by_agent["untrained-mlp"]
    assert floor["status"] == "ok" and floor["family"] == "untrained"
    assert floor["metrics"]["rollouts"] == 0.0 and by_agent["maxrl"]["metrics"]["rollouts"] == 512
    assert floor["curve"] and floor["curve"][0][0] == 0  # read back from its TensorBoard events
    assert math.isfinite(floor["metrics"]["eval/log_likelihood"])
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "untrained-mlp" in report and "maxrl" in report


def test_plugin_head_passes_check_env_and_gets_exact_metrics(plugin: Path, tmp_path: Path) -> None:
    """The doc's box head, l = 1[|y - ŷ| <= s] / (2s): an env, exact log p, references, a run."""
    from agents.exact import exact_log_likelihood
    from agents.policies import TaskPolicy, make_policy
    from maxrl_envs.likelihoods import log_expected_likelihood_squashed
    from maxrl_envs.references import reference_levels

    pool = {"num_contexts": 64, "num_test_contexts": 64, "num_validation_contexts": 8}
    env = gym.make("MaxRLRegression-v0", head="box", **pool)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(1, dtype=np.float32))
    assert reward in (0.0, 1.0)

    box = make_task("MaxRLRegression-v0", head="box", **pool)
    verifier = make_task("MaxRLRegression-v0", head="verifier", **pool)
    contexts = box.core.all_contexts("test")
    s = float(box.core.head_scale)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ours = TaskPolicy(make_policy(box, (8,)), box)
    exact_box = ours.log_likelihood(contexts)
    exact_verifier = exact_log_likelihood(ours.policy, verifier.core, contexts)
    finite = torch.isfinite(exact_verifier)
    assert bool(finite.any())
    expected = exact_verifier[finite] - math.log(2.0 * s)
    torch.testing.assert_close(exact_box[finite], expected, rtol=1e-12, atol=1e-12)
    # Monte Carlo over the policy's own draws: mean of l = reward / (2s).
    draws = ours.sample(contexts, 4096, torch.Generator().manual_seed(1))
    mc = box.core.score(contexts, draws).reward.double().mean(1) / (2.0 * s)
    keep = finite & (mc > 0.05 / s)
    torch.testing.assert_close(exact_box[keep].exp(), mc[keep], rtol=0.15, atol=0.0)

    levels = reference_levels(box.core, pass_k=4)
    same = reference_levels(verifier.core, pass_k=4)
    assert levels["random"]["eval/pass@4"] == same["random"]["eval/pass@4"]
    assert math.isfinite(levels["bayes_sampler"]["eval/log_likelihood"])
    with pytest.raises(ValueError, match="head='box' has no squashed_exact form"):
        log_expected_likelihood_squashed("box", s, contexts.target, contexts.signal, 0.1, 2.0)

    config = TrainConfig(
        env_id="MaxRLRegression-v0",
        env_kwargs={"head": "box", **pool},
        estimator="maxrl",
        group_size=4,
        num_groups=8,
        budget=64,
        eval_every=0,
        eval_samples=4,
        pass_k=2,
        log_dir=str(tmp_path),
        device="cpu",
    )
    metrics = train(config)
    assert math.isfinite(metrics["eval/log_likelihood"])  # exact, not the Monte-Carlo tag


def test_plugin_report_section_is_written_after_the_built_in_ones(
    plugin: Path, tmp_path: Path
) -> None:
    """The doc's section counts each agent's runs; it follows the built-in sections."""
    for agent, seeds in (("maxrl", (0, 1)), ("grpo", (0, 1, 2))):
        for seed in seeds:
            append_row(
                tmp_path / "results.jsonl",
                final_row(
                    agent,
                    seed,
                    select_metric="eval/log_likelihood",
                    metrics={"eval/log_likelihood": -1.0 - seed},
                    curve=[
                        [0, {"eval/log_likelihood": -3.0}],
                        [64, {"eval/log_likelihood": -1.0}],
                    ],
                ),
            )
    text = build_report(tmp_path, plots=False).markdown
    assert list(SECTIONS)[-1] == "Runs per agent"
    section = text.split("## Runs per agent\n\n", 1)[1]
    assert section.splitlines()[2:4] == [
        "| e | maxrl | 2 | [0, 1] |",
        "| e | grpo | 3 | [0, 1, 2] |",
    ]
    assert text.index("## Learning-rate selection") < text.index("## Runs per agent")
