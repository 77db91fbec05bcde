"""Inputs of the wrong type never reach torch or numpy unnamed: each is a ValueError that names
the parameter, the value and what is allowed."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import maxrl_envs

POOLS = {"num_contexts": 32, "num_test_contexts": 8, "num_validation_contexts": 8}


def single(env_id: str = "MaxRLRegression-v0") -> gym.Env:
    kwargs = POOLS if env_id != "MaxRLClassification-v0" else {}
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    return env


def vector(env_id: str = "MaxRLRegression-v0") -> gym.vector.VectorEnv:
    kwargs = POOLS if env_id != "MaxRLClassification-v0" else {}
    envs = gym.make_vec(env_id, num_envs=4, group_size=2, **kwargs)
    envs.reset(seed=0)
    return envs


@pytest.mark.parametrize(
    ("env_id", "action"),
    [
        ("MaxRLRegression-v0", "0.5"),
        ("MaxRLRegression-v0", ["0.5"]),
        ("MaxRLRegression-v0", b"0.5"),
        ("MaxRLRegression-v0", None),
        ("MaxRLRegression-v0", {"a": 1}),
        ("MaxRLClassification-v0", "3"),
        ("MaxRLTokens-v0", "1"),
    ],
)
def test_single_env_refuses_a_non_numeric_action(env_id: str, action: object) -> None:
    env = single(env_id)
    with pytest.raises(ValueError, match=re.escape(f"action {action!r} is invalid")):
        env.step(action)


@pytest.mark.parametrize("action", ["0.5", np.array(["0.5"] * 4), [None] * 4])
def test_vector_env_refuses_a_non_numeric_action(action: object) -> None:
    envs = vector()
    with pytest.raises(ValueError, match="is invalid; expected numbers"):
        envs.step(action)


CONTEXT_IDS = [True, "3", None, 1.5, np.float32(2.0), [], [1, 2, 3], "x"]


@pytest.mark.parametrize("context_id", CONTEXT_IDS, ids=repr)
@pytest.mark.parametrize("make", [single, vector], ids=["single", "vector"])
def test_reset_refuses_a_context_id_that_is_not_an_integer(make, context_id: object) -> None:
    env = make()
    pattern = re.escape(f"options['context_id']={context_id!r}")
    with pytest.raises(ValueError, match=pattern + ".*(allowed|ids; allowed)"):
        env.reset(options={"context_id": context_id})


@pytest.mark.parametrize("context_id", [-1, 32, 10**30])
def test_reset_refuses_a_context_id_out_of_range(context_id: int) -> None:
    with pytest.raises(ValueError, match=r"context_id.*(out of range|allowed)"):
        single().reset(options={"context_id": context_id})


@pytest.mark.parametrize("seed", [1.5, [], [1.5], True, -1, "3", [None], (2.0,)], ids=repr)
def test_vector_reset_refuses_a_seed_that_is_not_an_integer(seed: object) -> None:
    envs = vector()
    with pytest.raises(ValueError, match=re.escape(f"seed={seed!r} is invalid; allowed: None")):
        envs.reset(seed=seed)


@pytest.mark.parametrize("seed", [3, [3], (3, 4), np.int64(3)], ids=repr)
def test_vector_reset_accepts_integer_seeds(seed: object) -> None:
    obs, _ = vector().reset(seed=seed)
    assert np.isfinite(obs).all()


FACTORIES = {
    "make": lambda **kw: gym.make("MaxRLRegression-v0", **kw),
    "make_vec": lambda **kw: gym.make_vec("MaxRLRegression-v0", num_envs=2, **kw),
    "make_task": lambda **kw: maxrl_envs.make_task("MaxRLRegression-v0", **kw),
    "describe_env": lambda **kw: maxrl_envs.describe_env("MaxRLRegression-v0", **kw),
}


WRONG_TYPES = [
    ({"device": "meta"}, "device='meta' is not supported; allowed: 'cpu', 'cuda'"),
    ({"device": 0}, "device=0 is not a device; allowed"),
    ({"num_contexts": 10**30}, "num_contexts=10" + "0" * 29 + " must be an integer in [1, "),
    ({"num_contexts": 1e3}, "num_contexts=1000.0 must be an integer"),
    ({"num_contexts": "64"}, "num_contexts='64' must be an integer"),
    ({"dim": 2.0}, "dim=2.0 must be an integer"),
    ({"data_seed": None}, "data_seed=None must be an integer"),
    ({"snr": None}, "snr=None must be a finite number"),
    ({"snr": [1.0]}, "snr=[1.0] must be a finite number"),
    ({"snr": 10**400}, "snr=1" + "0" * 400 + " must be a finite number"),
    ({"label_noise": 0.1}, "unknown keyword argument(s) label_noise=0.1"),
]


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (factory, kwargs, message)
        for kwargs, message in WRONG_TYPES
        for factory in FACTORIES
        if not (factory == "describe_env" and "device" in kwargs)  # it takes no device
    ],
)
def test_wrong_types_are_named(factory: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FACTORIES[factory](**kwargs)
