"""Render modes of every id: ``"ansi"`` lines and ``"rgb_array"`` frames, single and vector."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import maxrl_envs
from maxrl_envs.render import BLUE, FRAME_SHAPE, GREEN, RED, RENDER_MODES, snapshot

IDS = maxrl_envs.all_ids()


def run_episode(env: gym.Env, seed: int = 0) -> tuple[dict, dict]:
    _, reset_info = env.reset(seed=seed)
    env.action_space.seed(seed)
    done = False
    while not done:
        _, reward, done, _, info = env.step(env.action_space.sample())
    return reset_info, {**info, "reward": reward}


def column(env: gym.Env, value: float) -> int:
    low, high = snapshot(env.unwrapped.episodes).axis
    return int(np.clip((value - low) / (high - low) * FRAME_SHAPE[1], 0, FRAME_SHAPE[1] - 1))


def columns_of(frame: np.ndarray, colour: tuple[int, int, int]) -> set[int]:
    return set(np.nonzero((frame == colour).all(-1).any(0))[0].tolist())


@pytest.mark.parametrize("env_id", IDS)
def test_both_render_modes_are_declared_and_draw_the_episode(env_id):
    env = gym.make(env_id, render_mode="ansi")
    assert tuple(env.metadata["render_modes"]) == RENDER_MODES
    assert env.unwrapped.render() is None  # nothing to draw before reset()
    reset_info, info = run_episode(env)
    line = env.render()
    assert "\n" not in line and line.startswith(f"context {reset_info['context_id']} |")
    numeric = env.unwrapped.kind.numeric
    target = f"{info['target']:+.3f}" if numeric else f"class {info['target']}"
    prediction = f"{info['prediction']:+.3f}" if numeric else f"class {info['prediction']}"
    assert f"| target {target} | prediction {prediction} |" in line
    assert f"| log-likelihood {info['log_likelihood']:.3f} | reward {info['reward']:.3f}" in line

    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    assert before.shape == FRAME_SHAPE and before.dtype == np.uint8
    assert not columns_of(before, RED) and not columns_of(before, BLUE)  # no prediction yet
    _, info = run_episode(env)
    frame = env.render()
    assert frame.shape == FRAME_SHAPE and frame.dtype == np.uint8
    assert column(env, info["target"]) in columns_of(frame, GREEN)
    assert column(env, info["prediction"]) in columns_of(frame, RED)
    assert column(env, info["prediction"]) in columns_of(frame, BLUE)


@pytest.mark.parametrize("env_id", ["MaxRLRegression-v0", "MaxRLTokens-v0"])
def test_vector_render_has_one_entry_per_sub_env_from_the_finished_episodes(env_id):
    envs = gym.make_vec(env_id, num_envs=6, group_size=3, render_mode="ansi")
    envs.reset(seed=1)
    assert len(envs.render()) == 6 and "no action yet" in envs.render()[0]
    done = np.zeros(6, bool)
    while not done.all():
        _, _, done, _, info = envs.step(envs.action_space.sample())
    lines = envs.render()
    final = info["final_info"]
    for i, line in enumerate(lines):
        assert line.startswith(f"context {final['context_id'][i]} |")  # not the new contexts
        assert f"prediction {final['prediction'][i]:+.3f}" in line

    frames = gym.make_vec(env_id, num_envs=6, group_size=3, render_mode="rgb_array")
    frames.reset(seed=1)
    done = np.zeros(6, bool)
    while not done.all():
        _, _, done, _, info = frames.step(frames.action_space.sample())
    final = info["final_info"]
    pictures = frames.render()
    assert len(pictures) == 6
    # Sub-envs of one group share the histogram of the group's predictions (blue) and the
    # target (green); each marks its own prediction in red.
    np.testing.assert_array_equal(pictures[0][8:-3] == BLUE, pictures[2][8:-3] == BLUE)
    for i, picture in enumerate(pictures):
        assert column(frames, final["prediction"][i]) in columns_of(picture, RED)


@pytest.mark.filterwarnings("ignore:.*render_mode='video' that is not in the possible")
def test_unknown_render_mode_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"render_mode='video'.*'ansi', 'rgb_array'"):
        gym.make("MaxRLRegression-v0", render_mode="video")
    with pytest.raises(ValueError, match=r"render_mode='rgb'.*'ansi', 'rgb_array'"):
        gym.make_vec("MaxRLRegression-v0", num_envs=2, render_mode="rgb")
