"""Trainer: validation, learning, determinism, TensorBoard tags, checkpoint/resume, CLI, CUDA."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from agents import trainer as trainer_module
from agents.train import config_from_args, main, parse_env_kwargs
from agents.trainer import TrainConfig, Trainer, load_policy, train, validate_config

# A CI-sized run: 64 contexts x 16 rollouts per step, small evaluations.
FAST = {
    "num_groups": 64,
    "group_size": 16,
    "eval_contexts": 256,
    "eval_samples": 32,
    "pass_k": 8,
    "device": "cpu",
    "log_dir": None,
    "eval_every": 0,
    "threads": 1,  # robust to other processes on a small machine (see test isolation below)
}


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def fast_config(**overrides) -> TrainConfig:
    return TrainConfig(**{**FAST, **overrides})


def params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}


def assert_same_params(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"estimator": "ppo"}, "estimator='ppo'"),
        ({"estimator": "maxrl-binary", "group_size": 1}, "group_size=1"),
        ({"estimator": "grpo", "group_size": 1}, "group_size=1"),
        ({"estimator": "rloo", "group_size": 1}, "group_size=1"),
        ({"group_size": 8, "order": 9}, "order=9"),
        ({"group_size": 8, "order": 0}, "order=0"),
        ({"estimator": "grpo", "order": 4}, "order=4"),
        ({"num_groups": 64, "group_size": 16, "budget": 1000}, "budget=1000"),
        ({"env_id": "NoSuchEnv-v0"}, "env_id='NoSuchEnv-v0'"),
        ({"env_kwargs": {"snrr": 1.0}}, "snrr"),
        ({"env_kwargs": {"snr": -1.0}}, "snr=-1.0"),
        ({"env_kwargs": {"device": "cpu"}}, "device"),
        ({"device": "tpu"}, "device='tpu'"),
        ({"lr": 0.0}, "lr=0.0"),
        ({"hidden": (64, 0)}, "hidden=(64, 0)"),
        ({"eval_samples": 8, "pass_k": 16}, "pass_k=16"),
        ({"eval_split": "valid"}, "eval_split='valid'"),
        ({"num_groups": 0}, "num_groups=0"),
        ({"run_name": "a/b"}, "run_name='a/b'"),
        ({"policy": "binned", "env_id": "MaxRLClassification-v0"}, "policy='binned'"),
        ({"seed": -1}, "seed=-1"),
        ({"threads": 0}, "threads=0"),
    ],
)
def test_validate_config_names_field_value_and_allowed(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match="allowed|must|invalid") as info:
        validate_config(TrainConfig(**overrides))
    assert message in str(info.value)


def test_validate_config_accepts_edge_cases() -> None:
    validate_config(TrainConfig(estimator="reinforce", group_size=1, budget=64))
    validate_config(TrainConfig(estimator="supervised", group_size=1, num_groups=8, budget=8))
    validate_config(TrainConfig(group_size=4, order=4, budget=256))
    validate_config(TrainConfig(env_id="MaxRLTokens-v0", env_kwargs={"num_digits": 2}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_device_without_cuda_is_rejected() -> None:
    with pytest.raises(ValueError, match="device='cuda'.*allowed"):
        validate_config(TrainConfig(device="cuda"))


def test_train_validates_before_running(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="estimator='nope'"):
        train(TrainConfig(estimator="nope", log_dir=str(tmp_path)))
    assert not any(tmp_path.iterdir())  # nothing was written


def test_budget_is_counted_in_rollouts() -> None:
    rl = fast_config(budget=5000)  # 1024 rollouts per step -> 4 steps
    assert train(rl)["rollouts"] == 4096
    sup = fast_config(estimator="supervised", budget=5000)  # one label per context per step
    assert train(sup)["rollouts"] == 64 * (5000 // 64)


# --- learning ------------------------------------------------------------------------------


def test_maxrl_improves_log_likelihood_on_regression() -> None:
    config = fast_config(env_kwargs={"snr": 10.0}, budget=49_152)
    start = Trainer(config).evaluate()
    final = train(config)
    # Observed: start ~ -1.6, final ~ -0.93 (seeds 0-2); excess MSE 0.93 -> 0.04.
    assert start["eval/log_likelihood"] < -1.3 and start["eval/excess_mse"] > 0.5
    assert final["eval/log_likelihood"] > -1.15
    assert final["eval/log_likelihood"] > start["eval/log_likelihood"] + 0.4
    assert final["eval/excess_mse"] < 0.15


def test_maxrl_beats_chance_on_digits() -> None:
    config = fast_config(env_id="MaxRLClassification-v0", budget=49_152)
    start = Trainer(config).evaluate()
    final = train(config)
    # Observed: pass@1 0.10 -> 0.67, point accuracy 0.12 -> 0.90. Chance is 0.1.
    assert start["eval/pass@1"] < 0.15 and start["eval/success_rate"] < 0.25
    assert final["eval/pass@1"] > 0.5
    assert final["eval/success_rate"] > 0.75


def test_maxrl_learns_to_write_tokens() -> None:
    config = fast_config(env_id="MaxRLTokens-v0", env_kwargs={"num_digits": 2}, budget=49_152)
    start = Trainer(config).evaluate()
    final = train(config)
    # Observed: excess MSE 6.5-8.7 -> 0.13, pass@1 0.08 -> 0.43.
    assert start["eval/excess_mse"] > 3.0 and start["eval/pass@1"] < 0.15
    assert final["eval/excess_mse"] < 1.0
    assert final["eval/pass@1"] > 0.25


@pytest.mark.parametrize("estimator", ["maxrl-binary", "reinforce", "rloo", "grpo", "dr-grpo"])
def test_every_group_estimator_learns_digits(estimator: str) -> None:
    final = train(fast_config(env_id="MaxRLClassification-v0", estimator=estimator, budget=32_768))
    assert final["eval/pass@1"] > 0.3


@pytest.mark.parametrize(
    ("env_id", "metric", "threshold"),
    [
        ("MaxRLRegression-v0", "eval/excess_mse", 0.2),
        ("MaxRLClassification-v0", "eval/success_rate", 0.75),
        ("MaxRLTokens-v0", "eval/excess_mse", 1.0),
    ],
)
def test_supervised_reference_learns(env_id: str, metric: str, threshold: float) -> None:
    kwargs = {"num_digits": 2} if env_id == "MaxRLTokens-v0" else {}
    config = fast_config(env_id=env_id, env_kwargs=kwargs, estimator="supervised", budget=3_200)
    final = train(config)
    assert final[metric] < threshold if "mse" in metric else final[metric] > threshold


@pytest.mark.parametrize(
    ("overrides", "start_above", "end_below"),
    [
        ({"policy": "binned"}, 3.0, 1.0),  # observed 6.2 -> 0.37
        ({"policy": "binned", "estimator": "supervised", "budget": 3_200}, 3.0, 1.0),  # -> 0.21
        ({"state_dependent_std": True}, 0.5, 0.15),  # observed 0.95 -> 0.05
    ],
)
def test_policy_variants_learn_regression(overrides: dict, start_above: float, end_below: float):
    config = fast_config(**{"env_kwargs": {"snr": 10.0}, "budget": 32_768, **overrides})
    start = Trainer(config).evaluate()
    final = train(config)
    assert start["eval/excess_mse"] > start_above
    assert final["eval/excess_mse"] < end_below


# --- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("MaxRLRegression-v0", {}), ("MaxRLTokens-v0", {"num_digits": 2})],
)
def test_same_seed_same_run_bitwise(env_id: str, kwargs: dict) -> None:
    config = fast_config(env_id=env_id, env_kwargs=kwargs, budget=8192, eval_contexts=64)
    a, b = Trainer(config), Trainer(config)
    ma, mb = a.run(), b.run()
    del ma["wall_time"], mb["wall_time"]
    assert ma == mb
    assert_same_params(params(a), params(b))
    c = Trainer(dataclasses.replace(config, seed=1))
    mc = c.run()
    del mc["wall_time"]
    assert mc != ma
    assert not torch.equal(params(a)["net.0.weight"], params(c)["net.0.weight"])


# --- TensorBoard, hparams, checkpoints -----------------------------------------------------

SCALAR_TAGS = {
    "rollout/ep_rew_mean",
    "time/fps",
    "train/loss",
    "train/learning_rate",
    "train/entropy",
    "train/std",
    "estimator/weight_mean",
    "estimator/weight_std",
    "estimator/no_signal_frac",
    "eval/log_likelihood",
    "eval/excess_mse",
    "eval/pass@1",
    "eval/pass@8",
    "eval/success_rate",
    "eval/reward",
}


def read_events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_tensorboard_run_has_documented_tags_and_hparams(tmp_path: Path) -> None:
    config = fast_config(log_dir=str(tmp_path), budget=8192, eval_every=4096, log_every=2)
    final = train(config)
    run_dir = tmp_path / "MaxRLRegression-v0__maxrl__0"
    events = read_events(run_dir)
    assert set(events.Tags()["scalars"]) >= SCALAR_TAGS
    # x-axis = rollouts consumed: evaluations at 0, 4096, 8192; train logs every 2 steps.
    assert [e.step for e in events.Scalars("eval/log_likelihood")] == [0, 4096, 8192]
    assert [e.step for e in events.Scalars("train/loss")] == [2048, 4096, 6144, 8192]
    assert events.Scalars("eval/log_likelihood")[-1].value == pytest.approx(
        final["eval/log_likelihood"], rel=1e-6
    )
    assert events.Scalars("train/learning_rate")[0].value == pytest.approx(config.lr)
    for event in events.Scalars("estimator/no_signal_frac"):
        assert 0.0 <= event.value <= 1.0
    assert all(e.value > 0 for e in events.Scalars("time/fps"))
    # Hyperparameters: the hparams plugin data and config.json both hold the config.
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["estimator"].string_value == "maxrl"
    assert hparams["group_size"].number_value == 16
    assert json.loads(hparams["env_kwargs"].string_value) == {}
    assert "config/text_summary" in events.Tags()["tensors"]
    stored = json.loads((run_dir / "config.json").read_text())
    assert TrainConfig.from_dict(stored) == config
    final_json = json.loads((run_dir / "final.json").read_text())
    assert final_json["metrics"] == pytest.approx(final)
    assert (run_dir / "checkpoint.pt").exists()
    assert not list(run_dir.glob(".*tmp*"))  # no temporary files left behind


def test_supervised_and_classification_runs_log_their_tags(tmp_path: Path) -> None:
    train(fast_config(env_id="MaxRLClassification-v0", log_dir=str(tmp_path), budget=4096))
    events = read_events(tmp_path / "MaxRLClassification-v0__maxrl__0")
    tags = set(events.Tags()["scalars"])
    assert "train/entropy" in tags and "train/std" not in tags and "eval/excess_mse" not in tags
    train(fast_config(estimator="supervised", log_dir=str(tmp_path), budget=640))
    events = read_events(tmp_path / "MaxRLRegression-v0__supervised__0")
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/std", "eval/log_likelihood"} <= tags
    assert "rollout/ep_rew_mean" not in tags  # supervised training takes no rollouts


class CrashError(RuntimeError):
    pass


def test_interrupted_run_resumes_bitwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = fast_config(budget=8192, eval_every=2048, eval_contexts=64)
    whole = Trainer(dataclasses.replace(base, log_dir=str(tmp_path / "a")))
    expected = whole.run()

    config = dataclasses.replace(base, log_dir=str(tmp_path / "b"))
    original = Trainer._eval_and_log
    calls = []

    def crash_on_third_eval(self, writer):
        calls.append(self.rollouts_done)
        if len(calls) == 3:  # evaluations at 0, 2048, then die at 4096
            raise CrashError
        return original(self, writer)

    monkeypatch.setattr(Trainer, "_eval_and_log", crash_on_third_eval)
    with pytest.raises(CrashError):
        Trainer(config).run()
    run_dir = tmp_path / "b" / "MaxRLRegression-v0__maxrl__0"
    assert not (run_dir / "final.json").exists()
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["rollouts"] == 2048
    monkeypatch.setattr(Trainer, "_eval_and_log", original)

    resumed = Trainer(config)
    got = resumed.run()
    assert resumed.step == whole.step == 8
    assert_same_params(params(resumed), params(whole))
    for key in expected:
        if key != "wall_time":
            assert got[key] == expected[key], key
    # The resumed run's curve has each evaluation once, at the same x as the uninterrupted one.
    steps = [e.step for e in read_events(run_dir).Scalars("eval/reward")]
    assert steps == [0, 2048, 4096, 6144, 8192]


def test_finished_run_returns_final_metrics_without_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = fast_config(log_dir=str(tmp_path), budget=2048)
    first = train(config)

    def no_training(self):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(Trainer, "train_step", no_training)
    monkeypatch.setattr(Trainer, "evaluate", no_training)
    assert train(config) == first
    # resume=False starts over (and so trains again).
    with pytest.raises(AssertionError, match="must not train"):
        train(dataclasses.replace(config, resume=False))


def test_run_dir_with_other_settings_is_refused(tmp_path: Path) -> None:
    config = fast_config(log_dir=str(tmp_path), budget=2048, run_name="shared")
    train(config)
    with pytest.raises(ValueError, match="lr"):
        train(dataclasses.replace(config, lr=1e-3))
    # Runtime-only fields do not count as different settings.
    assert train(dataclasses.replace(config, progress=True))["rollouts"] == 2048


def test_load_policy_restores_the_trained_policy(tmp_path: Path) -> None:
    config = fast_config(env_id="MaxRLClassification-v0", log_dir=str(tmp_path), budget=4096)
    trainer = Trainer(config)
    metrics = trainer.run()
    agent, loaded = load_policy(tmp_path / config.name)
    assert loaded == config
    assert_same_params(params(trainer), {k: v for k, v in agent.policy.state_dict().items()})
    again = trainer_module.evaluate(
        agent.task,
        agent,
        eval_samples=config.eval_samples,
        pass_k=config.pass_k,
        seed=trainer.eval_seed,
        max_contexts=config.eval_contexts,
    )
    assert again["eval/pass@1"] == metrics["eval/pass@1"]


def test_train_step_keeps_statistics_on_device() -> None:
    trainer = Trainer(fast_config(budget=4096))
    stats = trainer.train_step()
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in stats.values())
    assert trainer.step == 1 and trainer.rollouts_done == 1024


# --- CLI -----------------------------------------------------------------------------------


def test_parse_env_kwargs_json_and_pairs() -> None:
    assert parse_env_kwargs(['{"snr": 10, "task": "sine"}']) == {"snr": 10, "task": "sine"}
    assert parse_env_kwargs(["snr=0.1", "task=teacher-mlp", "dim=4"]) == {
        "snr": 0.1,
        "task": "teacher-mlp",
        "dim": 4,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_env_kwargs(["snr"])


def test_cli_builds_config_from_flags() -> None:
    config = config_from_args(
        [
            "--env",
            "MaxRLClassification-v0",
            "--estimator",
            "grpo",
            "--rollouts",
            "8",
            "--env-kwargs",
            "label_noise=0.1",
            "--hidden",
            "32",
            "16",
            "--log-dir",
            "none",
            "--no-checkpoint",
            "--eval-contexts",
            "100",
        ]
    )
    assert config == TrainConfig(
        env_id="MaxRLClassification-v0",
        estimator="grpo",
        group_size=8,
        env_kwargs={"label_noise": 0.1},
        hidden=(32, 16),
        log_dir=None,
        checkpoint=False,
        eval_contexts=100,
        progress=True,
    )


def test_cli_rejects_bad_values_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--estimator", "nope"])
    assert info.value.code == 2
    assert "estimator='nope'" in capsys.readouterr().err


def test_cli_trains_and_prints_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--env",
            "MaxRLRegression-v0",
            "--budget",
            "4096",
            "--device",
            "cpu",
            "--log-dir",
            str(tmp_path),
            "--eval-contexts",
            "32",
            "--eval-samples",
            "8",
            "--pass-k",
            "4",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr()
    assert code == 0
    metrics = json.loads(out.out)
    assert metrics["rollouts"] == 4096 and "eval/pass@4" in metrics
    assert "rollout" in out.err  # the tqdm progress bar
    assert (tmp_path / "MaxRLRegression-v0__maxrl__0" / "final.json").exists()


# --- CUDA ----------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    "env_id", ["MaxRLRegression-v0", "MaxRLClassification-v0", "MaxRLTokens-v0"]
)
def test_tiny_cuda_run(env_id: str, tmp_path: Path) -> None:
    config = fast_config(
        env_id=env_id, device="cuda", budget=8192, log_dir=str(tmp_path), eval_every=4096
    )
    trainer = Trainer(config)
    assert trainer.generator.device.type == "cuda"
    assert next(trainer.policy.parameters()).device.type == "cuda"
    metrics = trainer.run()
    assert metrics["rollouts"] == 8192
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    # Resuming a finished CUDA run returns its metrics; its checkpoint loads on the CPU.
    assert train(config) == metrics
    agent, _ = load_policy(tmp_path / config.name, device="cpu")
    assert next(agent.policy.parameters()).device.type == "cpu"


def test_checkpoint_from_another_device_type_reseeds_instead_of_failing() -> None:
    source = Trainer(fast_config(log_dir=None, device="cpu"))
    source.train_step()
    state = source.state_dict()
    # A CUDA generator's state is 16 bytes; a CPU one cannot load it.
    state["generator"] = torch.zeros(16, dtype=torch.uint8)
    state["generator_device"] = "cuda"
    target = Trainer(fast_config(log_dir=None, device="cpu"))
    with pytest.warns(UserWarning, match="re-seeded"):
        target.load_state_dict(state)
    assert_same_params(params(source), params(target))
    assert target.step == source.step
    again = Trainer(fast_config(log_dir=None, device="cpu"))
    with pytest.warns(UserWarning):
        again.load_state_dict(state)
    assert torch.equal(target.generator.get_state(), again.generator.get_state())
