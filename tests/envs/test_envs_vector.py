"""The native vector env: groups that share a context, context replay, splits, autoreset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import maxrl_envs

GROUPED_IDS = ["MaxRLRegression-v0", "MaxRLClassification-v0", "MaxRLTokens-v0"]
SYNTHETIC_IDS = [
    env_id
    for env_id in maxrl_envs.all_ids()
    if maxrl_envs.make_task(env_id).core.task in ("linear", "teacher-mlp", "sine")
]


def run_episode(envs, actions_per_step):
    """Step through one episode; return the last step's outputs."""
    for actions in actions_per_step:
        out = envs.step(actions)
    return out


def random_actions(envs, steps: int, seed: int) -> list[np.ndarray]:
    envs.action_space.seed(seed)
    return [envs.action_space.sample() for _ in range(steps)]


@pytest.mark.parametrize("env_id", GROUPED_IDS)
def test_groups_share_context_and_target(env_id):
    groups, size = 5, 4
    envs = gym.make_vec(env_id, num_envs=groups * size, group_size=size)
    task = maxrl_envs.make_task(env_id)
    obs, info = envs.reset(seed=1)
    ids = info["context_id"].reshape(groups, size)
    assert (ids == ids[:, :1]).all()
    assert len(set(ids[:, 0].tolist())) > 1  # groups draw their own contexts
    rows = obs.reshape(groups, size, -1)
    assert (rows == rows[:, :1]).all()
    actions = random_actions(envs, task.episode_length, seed=2)
    _, reward, terminated, _, info = run_episode(envs, actions)
    assert terminated.all()
    final = info["final_info"]
    for key in ("target", "signal", "context_id"):
        per_group = final[key].reshape(groups, size)
        assert (per_group == per_group[:, :1]).all(), key
    np.testing.assert_array_equal(final["context_id"].reshape(groups, size), ids)
    # The core scores the same [G, N] predictions against the same contexts.
    context = task.core.contexts(torch.as_tensor(ids[:, 0]))
    if task.kind.name == "regression":
        prediction = task.core.action_to_prediction(torch.as_tensor(actions[0]))
    elif task.kind.name == "classification":
        prediction = torch.as_tensor(actions[0])
    else:
        prediction = task.codec.decode(torch.as_tensor(np.stack(actions, axis=1)))
    scores = task.core.score(context, prediction.reshape(groups, size))
    np.testing.assert_array_equal(reward, scores.reward.reshape(-1).numpy())
    np.testing.assert_array_equal(final["target"], context.target.repeat_interleave(size).numpy())


def test_rollouts_within_a_group_differ_by_action_only():
    envs = gym.make_vec("MaxRLRegression-v0", num_envs=8, group_size=8)
    envs.reset(seed=0)
    actions = np.linspace(-1, 1, 8, dtype=np.float32)[:, None]
    _, reward, _, _, info = envs.step(actions)
    assert len(set(reward.tolist())) == 8
    # The best rollout is the one whose prediction is closest to the shared target.
    errors = np.abs(info["prediction"] - info["target"])
    assert reward.argmax() == errors.argmin()


@pytest.mark.parametrize("env_id", GROUPED_IDS)
def test_reset_context_id_replays_a_context(env_id):
    envs = gym.make_vec(env_id, num_envs=6, group_size=2)
    task = maxrl_envs.make_task(env_id)
    actions = random_actions(envs, task.episode_length, seed=5)
    results = []
    for seed in (0, 1):  # the seed must not matter when the context is named
        obs, info = envs.reset(seed=seed, options={"context_id": 7})
        assert (info["context_id"] == 7).all()
        np.testing.assert_array_equal(
            obs[0, : task.core.obs_dim], task.core.contexts([7]).obs[0].numpy()
        )
        _, reward, _, _, info = run_episode(envs, actions)
        results.append((reward, info["final_info"]["target"]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    # One id per group.
    obs, info = envs.reset(options={"context_id": [3, 5, 9]})
    np.testing.assert_array_equal(info["context_id"], [3, 3, 5, 5, 9, 9])
    # The single env replays the same context too.
    env = gym.make(env_id)
    obs, info = env.reset(seed=4, options={"context_id": 7})
    assert info["context_id"] == 7
    np.testing.assert_array_equal(obs, envs.reset(options={"context_id": 7})[0][0])


@pytest.mark.parametrize("bad", [-1, 10**6, [1, 2]])
def test_reset_context_id_out_of_range_or_wrong_count(bad):
    envs = gym.make_vec("MaxRLRegression-v0", num_envs=6, group_size=2)
    with pytest.raises(ValueError, match="context_id"):
        envs.reset(seed=0, options={"context_id": bad})
    with pytest.raises(ValueError, match="context_id"):
        gym.make("MaxRLRegression-v0").reset(seed=0, options={"context_id": bad})


def _rows(core, split):
    return {row.tobytes() for row in core.all_contexts(split).obs.numpy()}


@pytest.mark.parametrize("env_id", SYNTHETIC_IDS)
@pytest.mark.parametrize("split", ["test", "validation"])
def test_held_out_splits_are_disjoint(env_id, split):
    core = maxrl_envs.make_task(env_id).core
    pools = {name: _rows(core, name) for name in ("train", "test", "validation")}
    held_out = pools[split]
    others = set().union(*(rows for name, rows in pools.items() if name != split))
    assert len(held_out) == core.num_contexts(split) and not held_out & others
    envs = gym.make_vec(env_id, num_envs=64, split=split)
    obs, info = envs.reset(seed=0)
    seen = {row.tobytes() for row in obs[:, : core.obs_dim]}
    assert seen <= held_out and not seen & others
    assert info["context_id"].max() < core.num_contexts(split)


def test_splits_of_datasets_partition_the_rows():
    for env_id, kwargs, size in [
        ("MaxRLClassification-v0", {}, 1797),
        ("MaxRLRegression-v0", {"task": "diabetes"}, 442),
    ]:
        core = maxrl_envs.make_task(env_id, **kwargs).core
        counts = {name: core.num_contexts(name) for name in ("train", "test", "validation")}
        assert sum(counts.values()) == size
        assert counts["test"] == round(0.2 * size)
        assert counts["validation"] == round(0.1 * size)
        pools = [_rows(core, name) for name in counts]
        assert sum(map(len, pools)) == len(set().union(*pools))


def test_tokens_groups_finish_together_and_autoreset():
    envs = gym.make_vec("MaxRLTokens-v0", num_envs=6, group_size=3, num_digits=4)
    obs, info = envs.reset(seed=0)
    first_ids = info["context_id"].copy()
    for step in range(1, 5):
        obs, reward, terminated, truncated, info = envs.step(np.full(6, step % 10))
        assert bool(terminated.all()) == bool(terminated.any()) == (step == 4)
        if step < 4:
            assert not reward.any() and "final_obs" not in info
            np.testing.assert_array_equal(info["context_id"], first_ids)
    # SAME_STEP autoreset: final_obs shows the complete number, obs the fresh position 0.
    np.testing.assert_array_equal(info["final_info"]["context_id"], first_ids)
    dim = maxrl_envs.make_task("MaxRLTokens-v0").core.obs_dim
    assert info["final_obs"][:, dim : dim + 4].sum() == 0  # no position left to write
    assert (obs[:, dim] == 1).all() and obs[:, dim + 4 :].sum() == 0
    np.testing.assert_allclose(info["prediction"], np.full(6, -4.0 + 8.0 * 1234 / 9999), rtol=1e-6)


def test_vector_env_is_fresh_after_reset_and_masks_are_read_only():
    envs = gym.make_vec("MaxRLRegression-v0", num_envs=4)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(np.zeros((4, 1), np.float32))
    envs.reset(seed=0)
    _, _, _, _, info = envs.step(np.zeros((4, 1), np.float32))
    with pytest.raises(ValueError):
        info["_final_obs"][0] = False
    # Box actions may also come flat, [num_envs].
    envs.reset(seed=1)
    _, reward_flat, _, _, _ = envs.step(np.full(4, 0.25, np.float32))
    envs.reset(seed=1)
    _, reward_column, _, _, _ = envs.step(np.full((4, 1), 0.25, np.float32))
    np.testing.assert_array_equal(reward_flat, reward_column)


def test_cpu_steps_run_on_one_thread_and_restore_the_callers(monkeypatch):
    import maxrl_envs.core

    seen = []
    original = maxrl_envs.core.score_head

    def probe(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(maxrl_envs.core, "score_head", probe)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        envs = gym.make_vec("MaxRLRegression-v0", num_envs=4)
        envs.reset(seed=0)
        envs.step(np.zeros((4, 1), np.float32))
        with pytest.raises(ValueError):
            envs.step(np.full((4, 1), np.nan, np.float32))
        assert torch.get_num_threads() == 2
        env = gym.make("MaxRLRegression-v0")
        env.reset(seed=0)
        env.step(np.zeros(1, np.float32))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1]


@pytest.mark.parametrize("env_id", ["MaxRLRegression-v0", "MaxRLTokens-v0"])
def test_next_step_autoreset_replays_same_step_one_step_later(env_id):
    same = gym.make_vec(env_id, num_envs=4, group_size=2)
    nxt = gym.make_vec(env_id, num_envs=4, group_size=2, autoreset_mode="next_step")
    assert nxt.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs_s, _ = same.reset(seed=5)
    obs_n, _ = nxt.reset(seed=5)
    np.testing.assert_array_equal(obs_s, obs_n)
    same.action_space.seed(1)
    episodes = 0
    for _ in range(3 * same.unwrapped.episodes.episode_length):
        actions = same.action_space.sample()
        obs_s, reward_s, term_s, trunc_s, info_s = same.step(actions)
        obs_n, reward_n, term_n, trunc_n, info_n = nxt.step(actions)
        np.testing.assert_array_equal(reward_s, reward_n)
        np.testing.assert_array_equal(term_s, term_n)
        if not term_n.all():
            np.testing.assert_array_equal(obs_s, obs_n)
            continue
        episodes += 1
        np.testing.assert_array_equal(obs_n, info_s["final_obs"])  # the last observation
        assert "final_obs" not in info_n
        for key in ("context_id", "log_likelihood", "prediction"):
            np.testing.assert_array_equal(info_n[key], info_s["final_info"][key])
        # The next call ignores its actions and starts the new episodes: reward 0, no flags.
        obs_n, reward_n, term_n, trunc_n, info_n = nxt.step(actions)
        np.testing.assert_array_equal(obs_n, obs_s)
        np.testing.assert_array_equal(info_n["context_id"], info_s["context_id"])
        assert not reward_n.any() and not term_n.any() and not trunc_n.any()
    assert episodes == 3


def test_vector_normalize_observation_needs_next_step():
    from gymnasium.wrappers.vector import NormalizeObservation

    with pytest.raises((ValueError, AssertionError)):  # Gymnasium 1.1 asserts, 1.4 raises
        NormalizeObservation(gym.make_vec("MaxRLRegression-v0", num_envs=4))
    envs = NormalizeObservation(
        gym.make_vec("MaxRLRegression-v0", num_envs=4, autoreset_mode="next_step")
    )
    envs.reset(seed=0)
    for _ in range(4):
        envs.step(envs.action_space.sample())
    assert envs.obs_rms.count > 4  # statistics of every observation returned
    with pytest.raises(ValueError, match="autoreset_mode='previous'.*'next_step'"):
        gym.make_vec("MaxRLRegression-v0", num_envs=4, autoreset_mode="previous")
    with pytest.raises(ValueError, match="autoreset_mode='NextStep' is not supported by SB3"):
        from maxrl_envs.sb3 import SB3VecEnv

        SB3VecEnv(gym.make_vec("MaxRLRegression-v0", num_envs=2, autoreset_mode="next_step"))
