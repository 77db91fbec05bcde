"""SB3's own constructors by id: ``PPO("MlpPolicy", id)``, ``make_vec_env``, SubprocVecEnv, DQN.

Stable-Baselines3 builds envs with ``render_mode="rgb_array"`` (falling back only on a
TypeError), so these pass only because every id supports that render mode.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import maxrl_envs
from maxrl_envs.render import FRAME_SHAPE

IDS = maxrl_envs.all_ids()
TINY_PPO = {"n_steps": 4, "batch_size": 4, "n_epochs": 1, "seed": 0, "device": "cpu"}


def parameters(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


def trained(model, steps: int) -> bool:
    """Whether ``learn(steps)`` ran ``steps`` env steps and changed the policy."""
    before = parameters(model)
    model.learn(steps)
    after = parameters(model)
    return model.num_timesteps == steps and any(
        not torch.equal(a, b) for a, b in zip(before, after, strict=True)
    )


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_trains_by_id_and_with_make_vec_env(env_id):
    model = PPO("MlpPolicy", env_id, **TINY_PPO)
    assert model.env.get_attr("render_mode") == ["rgb_array"]
    assert trained(model, 4)
    frame = model.env.render()  # SB3's VecEnv.render tiles the sub-envs' rgb_array frames
    assert frame.shape == FRAME_SHAPE and frame.dtype == np.uint8

    venv = make_vec_env(env_id, n_envs=2, seed=0)
    assert trained(PPO("MlpPolicy", venv, **{**TINY_PPO, "n_steps": 2}), 4)
    if isinstance(gym.spec(env_id).make().action_space, gym.spaces.Discrete):
        dqn = DQN("MlpPolicy", env_id, learning_starts=0, buffer_size=16, batch_size=4, seed=0)
        assert trained(dqn, 4)


@pytest.mark.parametrize("env_id", ["MaxRLRegression-v0", "MaxRLTokens-v0"])
def test_sb3_trains_in_subprocesses(env_id):
    venv = make_vec_env(
        env_id, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv, vec_env_kwargs={"start_method": "fork"}
    )
    try:
        assert trained(PPO("MlpPolicy", venv, **{**TINY_PPO, "n_steps": 2}), 4)
        images = venv.get_images()
        assert len(images) == 2 and all(image.shape == FRAME_SHAPE for image in images)
    finally:
        venv.close()
