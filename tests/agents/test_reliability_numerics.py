"""Reliability, second round: seeds, estimator numerics, SB3 hyperparameters, run limits.

Each test is an attack that once gave a silent wrong number or a raw traceback
(docs/reliability.md, "Second round: numerics, seeds and agents").
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import maxrl_envs  # noqa: F401 - registers the ids
from agents.estimators import group_weights, maxrl_binary_weights, rloo
from agents.sb3_baselines import SB3Config, validate_sb3_config
from agents.train import main as train_main
from agents.trainer import MAX_BUDGET, MAX_STEPS, TrainConfig, train, validate_config
from maxrl_envs.validation import SEED_MAX

TINY = {
    "num_groups": 4,
    "group_size": 4,
    "budget": 32,
    "eval_every": 0,
    "eval_samples": 4,
    "pass_k": 2,
    "eval_contexts": 8,
    "hidden": (8,),
    "device": "cpu",
    "threads": 1,
    "env_kwargs": {"num_contexts": 64, "num_test_contexts": 16, "num_validation_contexts": 16},
}

# ---------------------------------------------------------------------------------------------
# Seeds: torch's CPU generator keeps the low 32 bits, so s and s + 2**32 were the same run.
# ---------------------------------------------------------------------------------------------


def test_torch_cpu_generator_keeps_only_32_bits_of_a_seed() -> None:
    """Why the range is [0, 2**32 - 1]: a larger seed would repeat a smaller one."""
    draw = [torch.Generator().manual_seed(s).initial_seed() for s in (1, 2**32 + 1)]
    first = [torch.rand(3, generator=torch.Generator().manual_seed(s)) for s in (1, 2**32 + 1)]
    assert draw[0] != draw[1] and torch.equal(first[0], first[1])


@pytest.mark.parametrize("seed", [2**32, 2**32 + 1, 2**63 - 1, -1])
def test_every_seed_entry_refuses_seeds_past_32_bits(seed: int) -> None:
    shown = f"{seed!r}"
    with pytest.raises(ValueError, match=rf"seed={shown} .*\[0, {SEED_MAX}\]"):
        validate_config(TrainConfig(**{**TINY, "log_dir": None, "seed": seed}))
    with pytest.raises(ValueError, match=rf"seed={shown} .*\[0, {SEED_MAX}\]"):
        validate_sb3_config(SB3Config(seed=seed, budget=2048))
    with pytest.raises(ValueError, match=rf"eval_seed={shown} .*\[0, {SEED_MAX}\]"):
        validate_sb3_config(SB3Config(eval_seed=seed, budget=2048))
    env = gymnasium.make("MaxRLRegression-v0", num_contexts=64)
    with pytest.raises(ValueError, match=rf"seed={shown} .*\[0, {SEED_MAX}\]"):
        env.reset(seed=seed)
    with pytest.raises(ValueError, match=rf"data_seed={shown} .*\[0, {SEED_MAX}\]"):
        gymnasium.make("MaxRLRegression-v0", data_seed=seed)
    venv = gymnasium.make_vec("MaxRLRegression-v0", num_envs=2, num_contexts=64)
    for value in (seed, [seed, 0]):
        with pytest.raises(ValueError, match=rf"seed=.*{shown}.*\[0, {SEED_MAX}\]"):
            venv.reset(seed=value)
    from maxrl_envs.sb3 import make_sb3_vec_env

    with pytest.raises(ValueError, match=rf"seed={shown} .*\[0, {SEED_MAX}\]"):
        make_sb3_vec_env("MaxRLRegression-v0", 2, seed, num_contexts=64)


def test_largest_seed_is_accepted_and_gives_its_own_stream() -> None:
    from agents.trainer import Trainer

    gymnasium.make("MaxRLRegression-v0", num_contexts=64, data_seed=SEED_MAX).reset(seed=SEED_MAX)
    config = TrainConfig(**{**TINY, "log_dir": None, "seed": SEED_MAX})

    low = Trainer(TrainConfig(**{**TINY, "log_dir": None, "seed": 0}))
    high = Trainer(config)
    flat = torch.nn.utils.parameters_to_vector
    assert not torch.equal(flat(low.policy.parameters()), flat(high.policy.parameters()))
    ids = [t.core.sample_ids(16, t.generator) for t in (low, high)]
    assert not torch.equal(*ids)


def test_suite_refuses_every_seed_past_32_bits_not_only_the_first(tmp_path: Path) -> None:
    from benchmarks.run import main as bench_main
    from benchmarks.suite import SuiteError, load_suite

    text = """
name = "t"
[settings]
seeds = [0, 4294967296, 1, 4294967297]
budget = 1024
group_size = 4
num_groups = 8
lr_grid = [1e-2]
[[experiments]]
name = "e"
envs = [{ id = "MaxRLRegression-v0" }]
agents = ["maxrl", "a2c"]
"""
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SuiteError, match=r"seeds=\[0, 4294967296, 1, 4294967297\].*4294967296"):
        load_suite(str(path))
    assert bench_main([str(path), "--dry-run", "--out", str(tmp_path / "o")]) == 2
    assert bench_main([str(path), "--dry-run", "--seeds", "0,4294967296"]) == 2
    path.write_text(
        text.replace("[0, 4294967296, 1, 4294967297]", "[0]").replace(
            "lr_grid = [1e-2]", "lr_grid = [1e-2, 2e-2]\ntune_seeds = 4294957297"
        ),
        encoding="utf-8",
    )
    with pytest.raises(SuiteError, match=r"tune_seeds=4294957297 .*<= 4294957296"):
        load_suite(str(path))


def test_cli_refuses_a_seed_past_32_bits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        train_main(["--seed", str(2**32)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "seed=4294967296" in err and f"[0, {SEED_MAX}]" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "tiny"),
    [(torch.float32, 1e-40), (torch.float64, 1e-310), (torch.float32, 1.4e-45)],
)
def test_maxrl_binary_weights_with_a_subnormal_group_sum(dtype: torch.dtype, tiny: float) -> None:
    rewards = torch.tensor([[tiny, 0.0, 0.0, 0.0], [tiny, tiny, 0.0, 0.0]], dtype=dtype)
    assert 0 < float(rewards[0, 0]) < torch.finfo(dtype).tiny  # really subnormal
    want = torch.tensor([[3.0, -1.0, -1.0, -1.0], [1.0, 1.0, -1.0, -1.0]], dtype=dtype)
    assert torch.equal(maxrl_binary_weights(rewards), want)
    # the same as a normal-sized group with the same proportions: A is scale-free
    assert torch.equal(maxrl_binary_weights(rewards / tiny), want)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_rloo_near_the_dtype_maximum_is_finite_and_exact(dtype: torch.dtype) -> None:
    top = torch.finfo(dtype).max
    rewards = torch.tensor([[top, top / 2, -top / 4, 0.0]], dtype=torch.float64).to(dtype)
    got = rloo(rewards)
    # A_j = r_j - mean of the others, in exact rational arithmetic on the stored values
    r = [Fraction(x) for x in rewards[0].tolist()]
    want = [float(r[j] - (sum(r) - r[j]) / 3) for j in range(4)]
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got[0].double().numpy(), want, rtol=2 * torch.finfo(dtype).eps)
    assert torch.equal(
        rloo(torch.tensor([[top, top]], dtype=dtype)), torch.zeros(1, 2, dtype=dtype)
    )


def test_rloo_refuses_weights_past_the_dtype_maximum_and_keeps_ordinary_ones_bitwise() -> None:
    top = torch.finfo(torch.float32).max
    with pytest.raises(ValueError, match=r"rloo weights beyond the largest torch.float32"):
        rloo(torch.tensor([[top, -top]]))
    rewards = torch.rand(64, 16, generator=torch.Generator().manual_seed(0)) * 1e3
    plain = rewards - (rewards.sum(-1, keepdim=True) - rewards) / 15  # the formula unscaled
    assert torch.equal(rloo(rewards), plain)


def test_group_weights_names_an_unknown_parameter_plainly() -> None:
    with pytest.raises(ValueError) as info:
        group_weights("rloo", torch.ones(2, 2), foo=1)
    message = str(info.value)
    assert "no registered estimator" not in message
    assert "foo=1 is not a parameter of any registered estimator" in message
    assert "name='rloo' takes: none" in message


# ---------------------------------------------------------------------------------------------
# SB3 hyperparameters: checked before anything runs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algo", "hyperparams", "message"),
    [
        ("A2C", {"n_steps": 0}, r"hyperparams\['n_steps'\]=0 must be an integer >= 1"),
        ("PPO", {"gamma": "x"}, r"hyperparams\['gamma'\]='x' must be a finite number >= 0"),
        ("PPO", {"gamma": 1.5}, r"hyperparams\['gamma'\]=1.5 .*<= 1"),
        ("PPO", {"policy_kwargs": {"net_arch": "x"}}, r"\['net_arch'\]='x' is invalid"),
        ("SAC", {"policy_kwargs": {"net_arch": {"vf": [8]}}}, r"keys \['vf'\].*pi, qf"),
        ("PPO", {"policy_kwargs": {"activation_fn": "relu"}}, r"activation_fn'\]='relu'"),
        ("PPO", {"batch_size": 1}, r"batch_size'\]=1 is invalid for PPO"),
        ("SAC", {"ent_coef": "autox"}, r"ent_coef'\]='autox' is invalid"),
        ("SAC", {"train_freq": [1, "hour"]}, r"train_freq'\]=\[1, 'hour'\] is invalid"),
        ("SAC", {"train_freq": [1, "episode"]}, r"counts episodes.*num_envs=16"),
        ("TD3", {"tau": 0.0}, r"tau'\]=0.0 must be a finite number > 0"),
        ("A2C", {"learning_rate": float("nan")}, r"learning_rate'\]=nan must be a finite"),
    ],
)
def test_sb3_hyperparams_are_checked_before_the_run(algo: str, hyperparams: dict, message: str):
    config = SB3Config(algo=algo, hyperparams=hyperparams, budget=4096, log_dir="/nonexistent")
    with pytest.raises(ValueError, match=message):
        validate_sb3_config(config)


def test_sb3_good_hyperparams_still_pass() -> None:
    for algo, hyperparams in [
        ("PPO", {"policy_kwargs": {"net_arch": {"pi": [8], "vf": [8]}}, "clip_range_vf": None}),
        ("SAC", {"ent_coef": "auto_0.1", "train_freq": [2, "step"], "gradient_steps": -1}),
        ("A2C", {"n_steps": 1, "ent_coef": -0.01, "policy_kwargs": {"net_arch": [4, 4]}}),
    ]:
        validate_sb3_config(SB3Config(algo=algo, hyperparams=hyperparams, budget=4096))


def test_suite_refuses_bad_sb3_hyperparams_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks.run import main as bench_main

    path = tmp_path / "t.toml"
    path.write_text(
        """
name = "t"
[settings]
seeds = [0]
budget = 1024
[agents.a2c-zero]
sb3 = "A2C"
hyperparams = { n_steps = 0 }
[[experiments]]
name = "e"
envs = [{ id = "MaxRLRegression-v0" }]
agents = ["a2c-zero"]
""",
        encoding="utf-8",
    )
    assert bench_main([str(path), "--dry-run", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "hyperparams['n_steps']=0 must be an integer >= 1" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# Run limits: log directory, memory, budget
# ---------------------------------------------------------------------------------------------


def test_cli_log_dir_that_is_a_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep", encoding="utf-8")
    code = train_main(
        [
            "--log-dir",
            str(afile),
            "--budget",
            "32",
            "--num-groups",
            "4",
            "--group-size",
            "4",
            "--eval-every",
            "0",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"log_dir={str(afile)!r} is invalid: {afile} is not a directory" in err
    assert afile.read_text(encoding="utf-8") == "keep"


def test_train_creates_missing_parents_of_its_log_dir(tmp_path: Path) -> None:
    log_dir = tmp_path / "a" / "b" / "c"
    metrics = train(TrainConfig(**{**TINY, "log_dir": str(log_dir), "run_name": "r"}))
    assert metrics["rollouts"] == 32 and (log_dir / "r" / "final.json").exists()
    with pytest.raises(ValueError, match=r"is not a directory"):
        train(TrainConfig(**{**TINY, "log_dir": str(log_dir / "r" / "final.json" / "x")}))


@pytest.mark.parametrize("kind", ["MaxRLRegression-v0", "MaxRLClassification-v0"])
def test_pools_too_large_for_memory_are_refused_before_allocating(kind: str) -> None:
    kwargs = {"dim": 4096, "num_contexts": 2**24}
    if kind == "MaxRLClassification-v0":
        kwargs["task"] = "teacher-mlp"
    with pytest.raises(ValueError, match=r"num_contexts=16777216.*dim=4096.*770.1 GiB.*allowed"):
        gymnasium.make(kind, **kwargs)
    with pytest.raises(ValueError, match=r"770.1 GiB"):
        validate_config(TrainConfig(env_id=kind, env_kwargs=kwargs, log_dir=None))


def test_budgets_that_cannot_finish_are_refused() -> None:
    with pytest.raises(
        ValueError, match=rf"budget={10**30} must be an integer in \[1, {MAX_BUDGET}\]"
    ):
        validate_config(TrainConfig(**{**TINY, "budget": 10**30}))
    per_step = 16
    with pytest.raises(ValueError, match=rf"takes {MAX_STEPS + 1} steps.*at most {MAX_STEPS}"):
        validate_config(TrainConfig(**{**TINY, "budget": (MAX_STEPS + 1) * per_step}))
    validate_config(TrainConfig(**{**TINY, "budget": MAX_STEPS * per_step}))
    with pytest.raises(
        ValueError, match=r"budget=10000000000 must be an integer in \[1, 1000000000\]"
    ):
        validate_sb3_config(SB3Config(budget=10**10))


# ---------------------------------------------------------------------------------------------
# SB3 resume: bitwise the uninterrupted run
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algo", "env_id", "hyperparams", "budget"),
    [
        # 8 steps per collection of 3-step token episodes: checkpoints fall mid-episode
        ("A2C", "MaxRLTokens-v0", {"n_steps": 8}, 384),
        # minibatches shuffled with numpy's global generator
        ("PPO", "MaxRLRegression-v0", {"n_steps": 8, "batch_size": 32, "n_epochs": 2}, 512),
        # random warm-up actions (the action space's generator), replay samples (numpy's)
        ("SAC", "MaxRLRegression-v0", {"learning_starts": 48, "batch_size": 16}, 128),
    ],
)
def test_sb3_run_killed_and_resumed_equals_the_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algo: str, env_id: str, hyperparams, budget
) -> None:
    import json

    from agents import sb3_baselines
    from agents.sb3_baselines import read_final, train_sb3

    torch.set_num_threads(1)

    def config(folder: str) -> SB3Config:
        return SB3Config(
            algo=algo,
            env_id=env_id,
            env_kwargs={"num_contexts": 64, "num_test_contexts": 16},
            budget=budget,
            eval_every=budget // 4,
            hyperparams=hyperparams,
            num_envs=8,
            eval_samples=4,
            pass_k=2,
            log_dir=str(tmp_path / folder),
            run_name="r",
        )

    whole = train_sb3(config("whole"))
    real = sb3_baselines._Run.evaluate

    def killed(self, model):
        if self.rollouts(model) >= budget // 2:
            raise KeyboardInterrupt  # the process dies here; the checkpoint is on disk
        return real(self, model)

    monkeypatch.setattr(sb3_baselines._Run, "evaluate", killed)
    with pytest.raises(KeyboardInterrupt):
        train_sb3(config("killed"))
    state = json.loads((tmp_path / "killed" / "r" / "checkpoint" / "state.json").read_text())
    assert 0 < state["num_timesteps"] < budget * 3
    torch.manual_seed(123)  # whatever the process did since: the checkpoint decides
    np.random.seed(123)
    monkeypatch.setattr(sb3_baselines._Run, "evaluate", real)
    resumed = train_sb3(config("killed"))
    evals = sorted(k for k in whole if k.startswith("eval/"))
    assert [repr(whole[k]) for k in evals] == [repr(resumed[k]) for k in evals]
    curves = [read_final(tmp_path / d / "r")["curve"] for d in ("whole", "killed")]
    assert json.dumps(curves[0]) == json.dumps(curves[1])


# ---------------------------------------------------------------------------------------------
# Further attacks (docs/reliability.md lists them with their counts)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dr-grpo", "reinforce-mean"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mean_baselines_near_the_dtype_maximum(name: str, dtype: torch.dtype) -> None:
    top = torch.finfo(dtype).max
    rewards = torch.tensor([[top, top / 2, -top / 4, 0.0]], dtype=dtype)
    r = [Fraction(x) for x in rewards[0].tolist()]
    want = [float(x - sum(r) / 4) for x in r]  # one group: both subtract the same mean
    got = group_weights(name, rewards)
    np.testing.assert_allclose(got[0].double().numpy(), want, rtol=4 * torch.finfo(dtype).eps)
    ordinary = torch.rand(8, 16, generator=torch.Generator().manual_seed(3), dtype=dtype)
    mean = ordinary.mean(-1, keepdim=True) if name == "dr-grpo" else ordinary.mean()
    assert torch.equal(group_weights(name, ordinary), ordinary - mean)  # unscaled, bitwise


def test_weights_past_the_dtype_maximum_and_meta_tensors_are_refused() -> None:
    # reinforce with baseline 1e308 on -1e308: the true weight -2e308 has no float64
    from agents.estimators import reinforce

    with pytest.raises(ValueError, match=r"reinforce weights beyond the largest torch.float64"):
        reinforce(torch.tensor([[-1e308, 0.0]], dtype=torch.float64), baseline=1e308)
    for name in ("maxrl-binary", "rloo", "grpo"):
        with pytest.raises(ValueError, match=r"on the meta device"):
            group_weights(name, torch.rand(2, 4, device="meta"))


def test_sizes_past_this_machines_memory_are_named_before_allocating() -> None:
    with pytest.raises(ValueError, match=r"eval_samples=2147483648 would need at least 64.0 GiB"):
        validate_sb3_config(SB3Config(eval_samples=2**31, pass_k=1, budget=4096))
    with pytest.raises(ValueError, match=r"num_envs=536870912 .* at least 64.0 GiB"):
        validate_sb3_config(SB3Config(algo="SAC", num_envs=2**29, budget=10**9))
    with pytest.raises(ValueError, match=r"num_envs=1099511627776 .* at least 131072.0 GiB"):
        gymnasium.make_vec("MaxRLRegression-v0", num_envs=2**40, num_contexts=64)
    small = {**TINY, "log_dir": None}
    for fields, what in [
        ({"num_groups": 2**16, "group_size": 2**16, "budget": 2**32}, "one step's rollouts"),
        ({"num_groups": 1, "group_size": 2**31, "budget": 2**31}, "one step's rollouts"),
        ({"hidden": (2**20, 2**20)}, "the policy's parameters"),
        ({"policy": "binned", "bins": 2**31}, "the policy's parameters"),
        ({"eval_samples": 2**31, "pass_k": 1}, "eval_samples"),
    ]:
        with pytest.raises(ValueError, match=rf"would need at least .* GiB, mostly for .*{what}"):
            validate_config(TrainConfig(**{**small, **fields}))


def test_learning_rates_and_thread_counts_that_cannot_run_are_refused() -> None:
    small = {**TINY, "log_dir": None}
    with pytest.raises(ValueError, match=r"lr=1e\+300 must be a finite number > 0 and <= 1e\+06"):
        validate_config(TrainConfig(**{**small, "lr": 1e300}))
    with pytest.raises(ValueError, match=r"threads=1000000 must be an integer in \[1, 1024\]"):
        validate_config(TrainConfig(**{**small, "threads": 10**6}))
    with pytest.raises(ValueError, match=r"learning_rate'\]=1e\+300"):
        validate_sb3_config(SB3Config(hyperparams={"learning_rate": 1e300}, budget=4096))
