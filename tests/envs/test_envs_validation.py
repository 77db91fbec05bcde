"""Bad configuration and bad actions fail loudly, naming the parameter and the value."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import maxrl_envs


def make_single(env_id, **kwargs):
    return gym.make(env_id, **kwargs)


def make_vector(env_id, **kwargs):
    return gym.make_vec(env_id, num_envs=4, **kwargs)


def make_task(env_id, **kwargs):
    return maxrl_envs.make_task(env_id, **kwargs)


FACTORIES = [make_single, make_vector, make_task]

BAD_CONFIGS = [
    ("MaxRLRegression-v0", {"task": "cubic"}, r"task='cubic'"),
    ("MaxRLRegression-v0", {"head": "cauchy"}, r"head='cauchy'"),
    ("MaxRLRegression-v0", {"noise": "uniform"}, r"noise='uniform'"),
    ("MaxRLRegression-v0", {"snr": 0.0}, r"snr=0\.0"),
    ("MaxRLRegression-v0", {"snr": -1}, r"snr=-1"),
    ("MaxRLRegression-v0", {"snr": float("nan")}, r"snr=nan"),
    ("MaxRLRegression-v0", {"head_scale": 0.0}, r"head_scale=0\.0"),
    ("MaxRLVerifier-v0", {"head_scale": -0.5}, r"head_scale=-0\.5"),
    ("MaxRLRegression-v0", {"task": "diabetes", "dim": 5}, r"dim=5"),
    ("MaxRLRegression-v0", {"colour": "red"}, r"colour='red'"),
    ("MaxRLClassification-v0", {"snr": 1.0}, r"snr=1\.0"),
    ("MaxRLRegression-v0", {"num_digits": 3}, r"num_digits=3"),
    ("MaxRLRegression-v0", {"noise": "student-t", "student_df": 2.0}, r"student_df=2\.0"),
    ("MaxRLRegression-v0", {"noise": "student-t", "student_df": 1}, r"student_df=1"),
    ("MaxRLClassification-v0", {"label_noise": 1.0}, r"label_noise=1\.0"),
    ("MaxRLClassification-v0", {"label_noise": -0.1}, r"label_noise=-0\.1"),
    ("MaxRLClassification-v0", {"label_noise": 1.5}, r"label_noise=1\.5"),
    ("MaxRLClassification-v0", {"num_classes": 7}, r"num_classes=7"),
    ("MaxRLRegression-v0", {"split": "valid"}, r"split='valid'"),
    ("MaxRLRegression-v0", {"heteroscedastic": -1.0}, r"heteroscedastic=-1\.0"),
    ("MaxRLRegression-v0", {"prediction_range": 0}, r"prediction_range=0"),
    ("MaxRLTokens-v0", {"num_digits": 0}, r"num_digits=0"),
    ("MaxRLTokens-v0", {"base": 1}, r"base=1"),
    ("MaxRLRegression-v0", {"dim": 0}, r"dim=0"),
]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("env_id, kwargs, message", BAD_CONFIGS)
def test_bad_configuration_raises_value_error(factory, env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(env_id, **kwargs)


def test_group_size_must_divide_num_envs():
    with pytest.raises(ValueError, match=r"group_size=4 does not divide num_envs=10"):
        gym.make_vec("MaxRLRegression-v0", num_envs=10, group_size=4)
    with pytest.raises(ValueError, match=r"group_size=2"):
        gym.make("MaxRLRegression-v0", group_size=2)  # the single env has one rollout
    with pytest.raises(ValueError, match=r"num_envs=0"):
        gym.make_vec("MaxRLRegression-v0", num_envs=0)


def test_unknown_env_id():
    with pytest.raises(ValueError, match=r"env_id='MaxRLNope-v0'"):
        maxrl_envs.make_task("MaxRLNope-v0")


def test_student_t_df_is_only_checked_for_student_t_noise():
    core = maxrl_envs.make_task("MaxRLRegression-v0", student_df=1.5).core
    assert core.noise == "gaussian"


SINGLE_BAD_ACTIONS = {
    "MaxRLRegression-v0": [
        (np.array([np.nan], np.float32), "NaN"),
        (np.array([np.inf], np.float32), "NaN or infinite"),
        (np.zeros(2, np.float32), "shape"),
    ],
    "MaxRLClassification-v0": [
        (10, r"\[0, 9\]"),
        (-1, r"\[0, 9\]"),
        (2.5, "integer"),
        ([1, 2], "one integer"),
    ],
    "MaxRLTokens-v0": [
        (10, r"\[0, 9\]"),
        (np.nan, "integer"),
        (np.zeros(3, np.int64), "one integer"),
    ],
}


@pytest.mark.parametrize(
    "env_id, action, message",
    [(env_id, a, m) for env_id, cases in SINGLE_BAD_ACTIONS.items() for a, m in cases],
)
def test_single_env_rejects_bad_actions(env_id, action, message):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)
    # The env is still usable: the episode goes on, and a valid action goes through.
    _, reward, _, _, _ = env.step(env.action_space.sample())
    assert 0.0 <= reward <= 1.0


VECTOR_BAD_ACTIONS = {
    "MaxRLRegression-v0": [
        (np.array([[0.1], [np.nan], [0.0], [0.2]], np.float32), "NaN"),
        (np.array([[0.1], [-np.inf], [0.0], [0.2]], np.float32), "NaN or infinite"),
        (np.zeros((4, 2), np.float32), r"shape \(4, 2\)"),
        (np.zeros((3, 1), np.float32), r"shape \(3, 1\)"),
    ],
    "MaxRLClassification-v0": [
        (np.array([0, 1, 2, 10]), r"\[0, 9\]"),
        (np.array([0.0, 1.5, 2.0, 3.0]), "integer"),
        (np.zeros((2, 2), np.int64), r"shape \(2, 2\)"),
        (np.zeros(5, np.int64), r"shape \(5,\)"),
    ],
    "MaxRLTokens-v0": [
        (np.array([0, 1, -1, 2]), r"\[0, 9\]"),
        (np.array([0.0, np.nan, 1.0, 2.0]), "integer"),
    ],
}


@pytest.mark.parametrize(
    "env_id, action, message",
    [(env_id, a, m) for env_id, cases in VECTOR_BAD_ACTIONS.items() for a, m in cases],
)
def test_vector_env_rejects_bad_actions(env_id, action, message):
    envs = gym.make_vec(env_id, num_envs=4)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        envs.step(action)
    _, reward, _, _, _ = envs.step(envs.action_space.sample())
    assert ((reward >= 0) & (reward <= 1)).all()


@pytest.mark.parametrize("outside, edge", [(5.0, 1.0), (-7.5, -1.0), (1.0001, 1.0)])
def test_out_of_range_box_actions_are_clipped(outside, edge):
    env = gym.make("MaxRLRegression-v0", prediction_range=4.0).unwrapped
    results = []
    for action in (outside, edge):
        env.reset(seed=0, options={"context_id": 3})
        _, reward, _, _, info = env.step(np.array([action], np.float32))
        results.append((reward, info["prediction"], info["log_likelihood"]))
    assert results[0] == results[1]
    assert results[0][1] == 4.0 * edge
    envs = gym.make_vec("MaxRLRegression-v0", num_envs=2)
    envs.reset(seed=0, options={"context_id": 3})
    _, reward, _, _, info = envs.step(np.array([[outside], [edge]], np.float32))
    assert reward[0] == reward[1] == results[0][0]


def test_step_order_is_enforced():
    env = gym.make("MaxRLRegression-v0").unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"snr": True}, "snr=True"),
        ({"snr": "10"}, "snr='10'"),
        ({"head_scale": True}, "head_scale=True"),
        ({"heteroscedastic": 13.0}, "heteroscedastic=13.0"),
        ({"device": "foo"}, "device='foo'"),
        ({"data_seed": -1}, "data_seed=-1"),
        ({"task": "diabetes", "num_contexts": 10}, "num_contexts=10"),
    ],
)
def test_more_bad_core_kwargs_name_the_parameter(kwargs, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        gym.make("MaxRLRegression-v0", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error exists only without CUDA")
def test_cuda_device_without_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="device='cuda'"):
        gym.make("MaxRLRegression-v0", device="cuda")


def test_too_many_classes_for_the_pool():
    with pytest.raises(ValueError, match="num_classes=200"):
        gym.make("MaxRLClassification-v0", task="teacher-mlp", num_classes=200, num_contexts=100)


def test_unknown_reset_options_are_rejected():
    with pytest.raises(ValueError, match="contxt_id"):
        gym.make("MaxRLRegression-v0").reset(seed=0, options={"contxt_id": 3})
    with pytest.raises(ValueError, match="contxt_id"):
        gym.make_vec("MaxRLRegression-v0", num_envs=2).reset(seed=0, options={"contxt_id": 3})


def test_boolean_class_actions_are_rejected():
    envs = gym.make_vec("MaxRLClassification-v0", num_envs=2)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="boolean"):
        envs.step(np.array([True, False]))


def test_returned_obs_do_not_alias_final_obs():
    envs = gym.make_vec("MaxRLRegression-v0", num_envs=3)
    obs, _ = envs.reset(seed=0)
    before = obs.copy()
    obs[:] = 123.0
    _, _, _, _, info = envs.step(np.zeros((3, 1), dtype=np.float32))
    np.testing.assert_array_equal(info["final_obs"], before)
