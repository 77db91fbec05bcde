"""Every registered id: API checkers, determinism, pickling, vectorization modes, and the
agreement of the single env, the native vector env and the core on the same seed."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import maxrl_envs
from maxrl_envs.episodes import generator_seed
from maxrl_envs.vector import MaxRLVectorEnv

IDS = maxrl_envs.all_ids()

# The observation spaces are Box(-inf, inf): synthetic inputs are standard normal, so no finite
# bound holds for the model (CartPole declares its velocities the same way). Bounds taken from
# one pool would change with data_seed and pool size and suggest a false normalization scale,
# so the checkers' two "infinity is probably too high/low" warnings are expected. Every other
# warning is turned into an error.
INFINITE_BOUND_WARNING = r".*A Box observation space (maximum|minimum) value is -?infinity"


def run_checker(checker, env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=INFINITE_BOUND_WARNING)
        checker(env)


def rollout(env: gym.Env, seed: int, steps: int) -> list:
    """Record a seeded run of ``steps`` random actions, resetting whenever an episode ends."""
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed + 1)
    record: list = [[obs, info]]
    for _ in range(steps):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        record.append([action, obs, reward, terminated, truncated, info])
        if terminated or truncated:
            record.append(list(env.reset()))
    return record


def test_all_ids_are_registered_and_documented():
    assert len(IDS) == len(set(IDS)) == 5 + len(maxrl_envs.PRESETS)
    for env_id in IDS:
        assert env_id in gym.registry
        spec = gym.spec(env_id)
        assert spec.vector_entry_point is not None
        # One-step episodes must not get a TimeLimit (it would flag truncated with terminated).
        assert spec.max_episode_steps is None
    for base, kwargs, purpose in maxrl_envs.PRESETS.values():
        assert base in IDS and kwargs and purpose


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id)
    run_checker(gym_check_env, env.unwrapped)
    assert env.observation_space.dtype == np.float32


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env(env_id):
    run_checker(sb3_check_env, gym.make(env_id).unwrapped)


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_is_deterministic_and_seeds_differ(env_id, assert_same):
    first = rollout(gym.make(env_id), seed=7, steps=40)
    second = rollout(gym.make(env_id), seed=7, steps=40)
    assert_same(first, second)
    other = rollout(gym.make(env_id), seed=8, steps=40)
    first_ids = [part[-1]["context_id"] for part in first if isinstance(part[-1], dict)]
    other_ids = [part[-1]["context_id"] for part in other if isinstance(part[-1], dict)]
    assert first_ids != other_ids
    assert not np.array_equal(first[0][0], other[0][0])


@pytest.mark.parametrize("env_id", IDS)
def test_python_types_and_float32_observations(env_id):
    env = gym.make(env_id)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and isinstance(info["context_id"], int)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs.dtype == np.float32 and obs in env.observation_space
        assert type(reward) is float and 0.0 <= reward <= 1.0
        assert type(terminated) is bool and type(truncated) is bool and truncated is False
        done = terminated
    assert set(info) == {"context_id", *maxrl_envs.episodes.INFO_KEYS}
    assert type(info["is_success"]) is bool
    if env.unwrapped.kind.name == "classification":
        assert (reward == 1.0) == info["is_success"]


@pytest.mark.parametrize("env_id", IDS)
def test_pickled_env_behaves_the_same(env_id, assert_same):
    env = gym.make(env_id)
    env.reset(seed=3)
    if env.step(env.action_space.sample())[2]:
        env.reset()
    copy = pickle.loads(pickle.dumps(env))
    for action in [env.action_space.sample() for _ in range(12)]:
        results = []
        for e in (env, copy):
            out = list(e.step(action))
            if out[2]:
                out.append(list(e.reset()))
            results.append(out)
        assert_same(results[0], results[1])

    venv = gym.make_vec(env_id, num_envs=4)
    venv.reset(seed=3)
    vcopy = pickle.loads(pickle.dumps(venv))
    action = venv.action_space.sample()
    assert_same(list(venv.step(action)), list(vcopy.step(action)))


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("mode", ["vector_entry_point", "sync"])
def test_make_vec_modes(env_id, mode):
    num_envs = 3
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    try:
        assert isinstance(envs, MaxRLVectorEnv) == (mode == "vector_entry_point")
        obs, info = envs.reset(seed=0)
        assert obs.shape == (num_envs, *envs.single_observation_space.shape)
        assert obs.dtype == np.float32 and info["context_id"].shape == (num_envs,)
        length = maxrl_envs.make_task(env_id).episode_length
        envs.action_space.seed(0)
        for t in range(1, length + 1):
            obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
            assert reward.shape == terminated.shape == truncated.shape == (num_envs,)
            assert obs.dtype == np.float32 and obs.shape[0] == num_envs
            assert not truncated.any()
            assert terminated.all() == (t == length) and terminated.any() == (t == length)
            assert ((reward >= 0) & (reward <= 1)).all()
        # The last step ended every episode; both modes report the scores of the finished ones.
        assert info["_is_success"].all() and info["target"].shape == (num_envs,)
        if mode == "vector_entry_point":
            # SAME_STEP: the next contexts are already in place.
            assert info["final_obs"].shape == obs.shape and info["_final_obs"].all()
        else:
            # NEXT_STEP: the following step only resets.
            _, reward, terminated, _, _ = envs.step(envs.action_space.sample())
            assert not terminated.any() and not reward.any()
    finally:
        envs.close()


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_async(env_id):
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="async")
    try:
        obs, info = envs.reset(seed=0)
        assert obs.shape[0] == 2 and obs.dtype == np.float32
        length = maxrl_envs.make_task(env_id).episode_length
        for _ in range(length):
            _, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert terminated.all() and not truncated.any() and info["_target"].all()
        assert ((reward >= 0) & (reward <= 1)).all()
    finally:
        envs.close()
    assert envs.closed


def core_prediction(task, actions: list) -> torch.Tensor:
    """What the core predicts from one episode's actions, ``[1, 1]``."""
    if task.kind.name == "regression":
        return task.core.action_to_prediction(torch.as_tensor(actions[0]).reshape(1, 1))
    if not task.kind.numeric:  # classification, hard-contexts: the class itself
        return torch.as_tensor(actions[0]).reshape(1, 1)
    tokens = torch.as_tensor(np.stack(actions)).reshape(1, -1)
    return task.codec.decode(tokens).reshape(1, 1)


@pytest.mark.parametrize("env_id", IDS)
def test_single_vector_and_core_agree(env_id):
    seed, episodes = 2024, 15
    env = gym.make(env_id)
    venv = gym.make_vec(env_id, num_envs=1)
    task = maxrl_envs.make_task(env_id)
    core = task.core
    # The envs' derivation, written out: np_random from the Gymnasium seed, then one draw.
    torch_seed = int(np.random.default_rng(seed).integers(0, 2**62))
    assert torch_seed == generator_seed(gym.utils.seeding.np_random(seed)[0])
    generator = core.make_generator(torch_seed)
    # Actions outside [-1, 1] too, so clipping is exercised on every path.
    env.action_space.seed(0)
    rng = np.random.default_rng(1)
    v_obs, v_info = venv.reset(seed=seed)
    for episode in range(episodes):
        ids = core.sample_ids(1, generator, "train")
        context = core.contexts(ids)
        obs, info = env.reset(seed=seed if episode == 0 else None)
        assert info["context_id"] == int(ids[0]) == int(v_info["context_id"][0])
        np.testing.assert_array_equal(obs[: core.obs_dim], context.obs[0].numpy())
        np.testing.assert_array_equal(obs, v_obs[0])
        actions = []
        for _ in range(task.episode_length):
            if task.kind.name == "regression":
                action = rng.uniform(-2.0, 2.0, size=(1,)).astype(np.float32)
            else:
                action = env.action_space.sample()
            actions.append(action)
            obs, reward, terminated, _, info = env.step(action)
            v_obs, v_reward, v_terminated, _, v_info = venv.step(np.asarray(action)[None])
            assert reward == float(v_reward[0]) and terminated == bool(v_terminated[0])
        final = v_info["final_info"]
        scores = core.score(context, core_prediction(task, actions))
        assert reward == float(scores.reward[0, 0])
        for key in maxrl_envs.episodes.INFO_KEYS:
            expected = getattr(scores, key, None)
            expected = expected if expected is not None else getattr(context, key)
            assert info[key] == expected.reshape(-1)[0].item() == final[key][0].item(), key
        assert final["context_id"][0] == info["context_id"] == int(ids[0])


def bare_kwargs(env_id: str) -> tuple[str, dict]:
    """(kind, kwargs) as the spec held them before it listed every default."""
    if env_id in maxrl_envs.registration.BASE_IDS:
        return maxrl_envs.registration.BASE_IDS[env_id]
    base, kwargs, _ = maxrl_envs.PRESETS[env_id]
    kind, base_kwargs = maxrl_envs.registration.BASE_IDS[base]
    return kind, {**base_kwargs, **kwargs}


@pytest.mark.parametrize("env_id", IDS)
def test_spec_kwargs_show_every_setting_and_build_the_same_env(env_id):
    kwargs = dict(gym.spec(env_id).kwargs)
    kind_name, bare = bare_kwargs(env_id)
    assert kwargs.pop("kind") == kind_name
    kind = maxrl_envs.get_kind(kind_name)
    assert set(kwargs) == set(kind.kwarg_names())  # every setting is discoverable
    assert {name: kwargs[name] for name in bare} == bare  # the id's own settings win
    if kind.numeric:  # the numeric kinds have a noisy target and a likelihood head
        assert {"snr", "head", "noise", "task", "data_seed"} <= set(kwargs)
    full, minimal = kind.build("cpu", kwargs), kind.build("cpu", bare)
    assert full.core.spec == minimal.core.spec
    assert (full.codec is None) == (minimal.codec is None)
    if full.codec is not None:
        assert vars(full.codec).keys() == vars(minimal.codec).keys()
        assert all(
            np.array_equal(np.asarray(a), np.asarray(b))
            for a, b in zip(vars(full.codec).values(), vars(minimal.codec).values(), strict=True)
        )
    for split in ("train", "validation", "test"):
        a, b = full.core.all_contexts(split), minimal.core.all_contexts(split)
        for field in ("ids", "obs", "target", "signal"):
            assert torch.equal(getattr(a, field), getattr(b, field)), (split, field)


def test_register_env_stays_idempotent_with_the_defaults_listed():
    maxrl_envs.register_env("MaxRLRegression-v0", "regression")  # same settings: a no-op
    maxrl_envs.register_env("MaxRLRegression-v0", "regression", snr=10.0)  # the default
    with pytest.raises(ValueError, match="already registered with other settings"):
        maxrl_envs.register_env("MaxRLRegression-v0", "regression", snr=1.0)
