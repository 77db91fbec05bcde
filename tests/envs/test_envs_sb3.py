"""The Stable-Baselines3 adapter: VecEnv contract, equality with the native env, training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import VecMonitor

import maxrl_envs
from maxrl_envs.sb3 import FINAL_INFO_KEYS, SB3VecEnv, make_sb3_vec_env


class RecordingWriter(KVWriter):
    """Logger output that keeps every key SB3 dumps."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, key_values, key_excluded, step=0) -> None:
        self.records.append(dict(key_values))

    def close(self) -> None:
        pass


def adapter_and_native(env_id: str, num_envs: int, **kwargs):
    adapter = SB3VecEnv(gym.make_vec(env_id, num_envs=num_envs, **kwargs))
    native = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    return adapter, native


@pytest.mark.parametrize(
    "env_id", ["MaxRLRegression-v0", "MaxRLClassification-v0", "MaxRLTokens-v0"]
)
def test_adapter_matches_the_native_env(env_id):
    num_envs, seed = 6, 11
    adapter, native = adapter_and_native(env_id, num_envs, group_size=2)
    assert adapter.seed(seed) == [seed + i for i in range(num_envs)]
    obs = adapter.reset()
    native_obs, native_info = native.reset(seed=seed)
    np.testing.assert_array_equal(obs, native_obs)
    reset_ids = [info["context_id"] for info in adapter.reset_infos]
    assert reset_ids == native_info["context_id"].tolist()
    native.action_space.seed(0)
    episodes = 0
    for _ in range(12):
        actions = native.action_space.sample()
        obs, rewards, dones, infos = adapter.step(actions)
        n_obs, n_reward, n_terminated, n_truncated, n_info = native.step(actions)
        np.testing.assert_array_equal(obs, n_obs)
        assert rewards.dtype == np.float32 and obs.dtype == np.float32
        np.testing.assert_array_equal(rewards, n_reward)
        np.testing.assert_array_equal(dones, n_terminated | n_truncated)
        assert isinstance(infos, list) and len(infos) == num_envs
        assert all(info["TimeLimit.truncated"] is False for info in infos)
        if dones.any():
            episodes += 1
            final = n_info["final_info"]
            for i, info in enumerate(infos):
                np.testing.assert_array_equal(info["terminal_observation"], n_info["final_obs"][i])
                for key in FINAL_INFO_KEYS:
                    assert info[key] == final[key][i].item(), key
            # The adapter remembers the new episodes' contexts as SB3 reset infos.
            new_ids = [info["context_id"] for info in adapter.reset_infos]
            assert new_ids == n_info["context_id"].tolist()
        else:
            assert [info["context_id"] for info in infos] == n_info["context_id"].tolist()
            assert all("terminal_observation" not in info for info in infos)
    assert episodes == 12 // maxrl_envs.make_task(env_id).episode_length
    adapter.close()


def test_adapter_seed_and_options():
    adapter, native = adapter_and_native("MaxRLRegression-v0", 4, group_size=2)
    adapter.seed(3)
    first = adapter.reset()
    adapter.seed(3)
    np.testing.assert_array_equal(adapter.reset(), first)
    assert adapter.reset().tolist() != first.tolist()  # the seed is used once
    adapter.set_options({"context_id": [5, 8]})
    obs = adapter.reset()
    assert [info["context_id"] for info in adapter.reset_infos] == [5, 5, 8, 8]
    np.testing.assert_array_equal(obs, native.reset(options={"context_id": [5, 8]})[0])
    adapter.set_options([{"context_id": 1}, {"context_id": 2}, {}, {}])
    with pytest.raises(ValueError, match="options"):
        adapter.reset()


def test_adapter_attributes_and_methods():
    adapter = SB3VecEnv(gym.make_vec("MaxRLClassification-v0", num_envs=4))
    assert adapter.num_envs == 4
    assert adapter.observation_space == gym.spaces.Box(-np.inf, np.inf, (64,), np.float32)
    assert adapter.action_space == gym.spaces.Discrete(10)
    assert adapter.get_attr("action_space") == [gym.spaces.Discrete(10)] * 4
    assert adapter.get_attr("group_size", indices=[1, 3]) == [1, 1]
    assert adapter.get_attr("render_mode") == [None] * 4
    assert adapter.has_attr("core") and not adapter.has_attr("no_such_attribute")
    adapter.set_attr("note", "shared")
    assert adapter.get_attr("note", indices=2) == ["shared"]
    with pytest.raises(ValueError, match="indices"):
        adapter.set_attr("note", "one", indices=[0])
    with pytest.raises(ValueError, match="indices"):
        adapter.get_attr("note", indices=[4])
    # The method runs once on the shared native env; its result is returned per index.
    results = adapter.env_method("reset", seed=0, indices=[0, 1])
    assert len(results) == 2 and results[0] is results[1] and results[0][0].shape == (4, 64)
    assert adapter.env_is_wrapped(gym.Wrapper) == [False] * 4
    with pytest.raises(ValueError, match="venv="):
        SB3VecEnv(gym.make_vec("MaxRLRegression-v0", num_envs=2, vectorization_mode="sync"))


def test_make_sb3_vec_env():
    venv = make_sb3_vec_env("MaxRLRegressionLowSNR-v0", num_envs=8, seed=0, group_size=4)
    assert isinstance(venv, VecMonitor) and isinstance(venv.venv, SB3VecEnv)
    assert venv.venv.venv.core.snr == 0.1 and venv.venv.venv.group_size == 4
    venv.reset()
    _, rewards, dones, infos = venv.step(np.zeros((8, 1), np.float32))
    assert dones.all()
    for reward, info in zip(rewards, infos, strict=True):
        assert info["episode"]["l"] == 1 and info["episode"]["r"] == pytest.approx(reward)
    bare = make_sb3_vec_env("MaxRLRegression-v0", num_envs=2, monitor=False)
    assert isinstance(bare, SB3VecEnv)
    with pytest.raises(ValueError, match="env_id='CartPole-v1'"):
        make_sb3_vec_env("CartPole-v1", num_envs=2)


ALGORITHMS = [
    (PPO, "MaxRLRegression-v0", {"n_steps": 16, "batch_size": 64, "n_epochs": 2}),
    (A2C, "MaxRLRegression-v0", {"n_steps": 4}),
    (SAC, "MaxRLRegression-v0", {"learning_starts": 64, "batch_size": 32, "buffer_size": 1000}),
    (TD3, "MaxRLRegression-v0", {"learning_starts": 64, "batch_size": 32, "buffer_size": 1000}),
    (DQN, "MaxRLClassification-v0", {"learning_starts": 64, "batch_size": 32, "buffer_size": 1000}),
    (PPO, "MaxRLClassification-v0", {"n_steps": 16, "batch_size": 64, "n_epochs": 2}),
    (PPO, "MaxRLTokens-v0", {"n_steps": 15, "batch_size": 60, "n_epochs": 2}),
]


@pytest.mark.parametrize(
    "algorithm, env_id, kwargs", ALGORITHMS, ids=[f"{a.__name__}-{e}" for a, e, _ in ALGORITHMS]
)
def test_sb3_algorithms_learn_on_the_adapter(algorithm, env_id, kwargs, single_thread):
    venv = make_sb3_vec_env(env_id, num_envs=8, seed=0)
    writer = RecordingWriter()
    model = algorithm("MlpPolicy", venv, seed=0, device="cpu", **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(total_timesteps=320, log_interval=1)
    assert model.num_timesteps >= 320
    assert len(model.ep_info_buffer) > 0 and len(model.ep_success_buffer) > 0
    length = maxrl_envs.make_task(env_id).episode_length
    assert all(e["l"] == length and 0.0 <= e["r"] <= 1.0 for e in model.ep_info_buffer)
    logged = set().union(*(record.keys() for record in writer.records))
    assert {"rollout/ep_rew_mean", "rollout/ep_len_mean", "rollout/success_rate"} <= logged


def test_ppo_learns_regression_through_the_adapter(single_thread):
    """PPO with many parallel envs must beat the untrained policy clearly on held-out contexts.

    The Bayes-optimal mean reward here is E exp(-e^2 / (2 s^2)) = 1 / sqrt(2) = 0.707 (the
    head scale equals the noise std); predicting 0 earns about 0.29, random actions about 0.10.
    """
    kwargs = {"snr": 10.0, "head": "gaussian"}
    core = maxrl_envs.make_task("MaxRLRegression-v0", **kwargs).core
    test = core.all_contexts("test")

    def mean_test_reward(model) -> float:
        actions, _ = model.predict(test.obs.numpy(), deterministic=True)
        prediction = core.action_to_prediction(torch.as_tensor(actions))
        return core.score(test, prediction).reward.mean().item()

    venv = make_sb3_vec_env("MaxRLRegression-v0", num_envs=256, seed=0, **kwargs)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=8,
        batch_size=256,
        n_epochs=4,
        learning_rate=3e-3,
        gamma=0.0,  # one-step episodes: the advantage is the reward minus the value
        gae_lambda=0.0,
        policy_kwargs={"log_std_init": -1.0},
        seed=0,
        device="cpu",
    )
    before = mean_test_reward(model)
    model.learn(total_timesteps=24_576)
    after = mean_test_reward(model)
    bayes = core.score(test, test.signal[:, None]).reward.mean().item()
    assert before < 0.35
    assert after > 0.6, (before, after, bayes)
    assert after <= bayes + 0.03


def test_adapter_converts_tensor_outputs_of_device_envs():
    # On a GPU the native env returns torch tensors; force that path on the CPU.
    adapter, native = adapter_and_native("MaxRLTokens-v0", 4)
    adapter.venv._on_cpu = False
    adapter.seed(0)
    obs = adapter.reset()
    assert isinstance(obs, np.ndarray)
    np.testing.assert_array_equal(obs, native.reset(seed=0)[0])
    for action in ([1, 2, 3, 4], [0, 0, 0, 0], [9, 9, 9, 9]):
        obs, rewards, dones, infos = adapter.step(np.array(action))
        n_obs, n_reward, n_terminated, _, n_info = native.step(np.array(action))
        assert isinstance(obs, np.ndarray) and isinstance(dones, np.ndarray)
        np.testing.assert_array_equal(obs, n_obs)
        np.testing.assert_array_equal(rewards, n_reward)
        np.testing.assert_array_equal(dones, n_terminated)
    assert dones.all() and isinstance(infos[0]["terminal_observation"], np.ndarray)
    assert infos[2]["prediction"] == n_info["final_info"]["prediction"][2].item()
