"""Numerics at the edges of the accepted ranges: finite everywhere inside, an error outside.

A property test over every registered id and every numeric keyword of its kind (the float
fields of the kind's ``Spec``): values across the accepted range, both ends included, give
finite targets, rewards and log-likelihoods (single env steps with random and extreme
actions, ``core.score`` over a whole split) and a finite exact log-likelihood
(``maxrl_envs.likelihoods``) for a simple Gaussian policy; values just outside are a
``ValueError`` naming the parameter.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, fields

import gymnasium as gym
import numpy as np
import pytest
import torch

import maxrl_envs
from maxrl_envs.core import (
    HEAD_SCALE_RANGE,
    PREDICTION_RANGE_MAX,
    PREDICTION_RANGE_MIN,
    SNR_RANGE,
    STUDENT_DF_MAX,
)
from maxrl_envs.datasets import DATASET_DIMS
from maxrl_envs.likelihoods import log_expected_likelihood_normal
from maxrl_envs.noise import MAX_HETEROSCEDASTIC_DECADES
from maxrl_envs.registration import describe_env


@dataclass(frozen=True)
class Range:
    """An accepted range; an open end is excluded (its nearest float inside is tested)."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    needs: tuple[tuple[str, object], ...] = ()  # other kwargs that make the value matter

    @property
    def ends(self) -> tuple[float, float]:
        low = math.nextafter(self.low, math.inf) if self.low_open else self.low
        high = math.nextafter(self.high, -math.inf) if self.high_open else self.high
        return low, high

    def inside(self) -> dict[str, float]:
        """Both ends and interior points (log-spaced where the range spans decades)."""
        low, high = self.ends
        values = {"low": low, "high": high, "mid": (low + high) / 2}
        if low > 0:
            values["geo"] = math.sqrt(low * high)
        values["tiny"] = min(max(low, 1e-300), high)  # far below any ordinary value
        distinct: dict[float, str] = {}
        for label, value in values.items():
            distinct.setdefault(value, label)
        return {label: value for value, label in distinct.items()}

    def outside(self) -> dict[str, float]:
        """The nearest floats beyond each end, and far beyond."""
        below = self.low if self.low_open else math.nextafter(self.low, -math.inf)
        above = self.high if self.high_open else math.nextafter(self.high, math.inf)
        return {
            "below": below,
            "above": above,
            "far-below": -1e300 if self.low <= 0 else self.low / 1e60,
            "far-above": 1e300,
        }


#: Every numeric keyword of every kind and its accepted range.
RANGES = {
    "snr": Range(*SNR_RANGE),
    "head_scale": Range(*HEAD_SCALE_RANGE),
    "prediction_range": Range(PREDICTION_RANGE_MIN, PREDICTION_RANGE_MAX),
    "student_df": Range(2.0, STUDENT_DF_MAX, low_open=True, needs=(("noise", "student-t"),)),
    "heteroscedastic": Range(0.0, MAX_HETEROSCEDASTIC_DECADES),
    "label_noise": Range(0.0, 1.0, high_open=True),
}
#: Values that once gave inf or NaN (kept as named cases).
HISTORIC = {
    "heteroscedastic": {"1e-16": 1e-16, "1e-17": 1e-17, "5e-324": 5e-324},
}
HISTORIC_OUTSIDE = {
    "snr": {"1e-80": 1e-80, "1e-77": 1e-77},
    "prediction_range": {"1e39": 1e39, "5e-324": 5e-324},
    "head_scale": {"1e-46": 1e-46},
}
#: Small pools: the property holds per context, so a few dozen contexts show it.
SMALL_POOLS = {"num_contexts": 128, "num_test_contexts": 32, "num_validation_contexts": 16}


def numeric_kwargs(env_id: str) -> list[str]:
    """The float fields of the id's kind's ``Spec`` (what a user may set to any number)."""
    kind = maxrl_envs.get_kind(maxrl_envs.env_kind(env_id))
    spec = kind.core_class.Spec
    hints = typing.get_type_hints(spec)
    return [f.name for f in fields(spec) if f.init and "float" in str(hints[f.name])]


def base_kwargs(env_id: str) -> dict[str, object]:
    info = describe_env(env_id)
    if info.spec.task in DATASET_DIMS:
        return {}
    # A class-per-bin task needs at least one train context per class.
    classes = info.spec.shape.num_classes
    return {**SMALL_POOLS, "num_contexts": max(SMALL_POOLS["num_contexts"], classes)}


def cases_inside() -> list[tuple[str, str, str, float]]:
    cases = []
    for env_id in maxrl_envs.all_ids():
        for name in numeric_kwargs(env_id):
            values = {**RANGES[name].inside(), **HISTORIC.get(name, {})}
            cases += [(env_id, name, label, value) for label, value in values.items()]
    return cases


def cases_outside() -> list[tuple[str, str, str, float]]:
    cases = []
    for env_id in maxrl_envs.all_ids():
        for name in numeric_kwargs(env_id):
            values = {**RANGES[name].outside(), **HISTORIC_OUTSIDE.get(name, {})}
            cases += [(env_id, name, label, value) for label, value in values.items()]
    return cases


def test_every_numeric_kwarg_of_every_kind_has_a_range() -> None:
    names = {name for env_id in maxrl_envs.all_ids() for name in numeric_kwargs(env_id)}
    assert names == set(RANGES)  # a new numeric keyword needs its range here


def assert_finite(name: str, value: object) -> None:
    array = np.asarray(value, dtype=np.float64)
    assert np.isfinite(array).all(), f"{name} is not finite: {array}"


def extreme_actions(env: gym.Env, rng: np.random.Generator) -> list[object]:
    space = env.action_space
    if isinstance(space, gym.spaces.Box):
        edges = [-1.0, 0.0, 1.0, -1e30, 1e30, 1e-30]
        return [np.array([a], np.float32) for a in edges] + [space.sample() for _ in range(3)]
    n = int(space.n)
    return [0, n - 1, int(rng.integers(n)), int(rng.integers(n))]


def check_env_steps(env_id: str, kwargs: dict[str, object]) -> None:
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(0)
    rng = np.random.default_rng(0)
    for action in extreme_actions(env, rng):
        obs, info = env.reset(seed=int(rng.integers(1000)))
        assert_finite("obs", obs)
        done = False
        while not done:
            obs, reward, done, _, info = env.step(action)
            assert_finite("obs", obs)
            assert 0.0 <= reward <= 1.0, reward
        for key in ("log_likelihood", "target", "signal", "squared_error", "prediction"):
            assert_finite(key, info[key])


def check_core(env_id: str, kwargs: dict[str, object]) -> None:
    task = maxrl_envs.make_task(env_id, **kwargs)
    core = task.core
    for split in ("train", "validation", "test"):
        contexts = core.all_contexts(split)
        assert_finite(f"{split} targets", contexts.target)
        assert_finite(f"{split} noise scales", contexts.noise_scale)
    contexts = core.all_contexts("test")
    b = contexts.ids.shape[0]
    space = task.rollout_space()
    generator = torch.Generator().manual_seed(0)
    if isinstance(space, gym.spaces.Box):
        edges = torch.tensor([-1.0, 0.0, 1.0, -1e30, 1e30])
        random = torch.rand(4, generator=generator) * 2 - 1
        rollouts = torch.cat([edges, random]).expand(b, -1)
        extremes = (0, 2)  # the columns of actions -1 and 1
    elif isinstance(space, gym.spaces.MultiDiscrete):
        base, digits = int(space.nvec[0]), len(space.nvec)
        fixed = torch.stack([torch.zeros(digits), torch.full((digits,), base - 1)]).long()
        random = torch.randint(base, (4, digits), generator=generator)
        rollouts = torch.cat([fixed, random]).expand(b, -1, -1)
        extremes = (0, 1)  # all digits 0 and all digits base - 1
    else:
        n = int(space.n)
        rollouts = torch.tensor([0, n - 1, *torch.randint(n, (4,), generator=generator)])
        rollouts = rollouts.expand(b, -1)
    scores = task.score_rollouts(contexts, rollouts)
    for key in ("prediction", "reward", "log_likelihood", "squared_error"):
        assert_finite(f"score {key}", getattr(scores, key))
    assert bool(((scores.reward >= 0) & (scores.reward <= 1)).all())
    assert not bool(scores.log_reward.isnan().any()) and bool((scores.log_reward <= 0).all())
    if not task.kind.numeric:
        return
    # The lowest and highest predictions differ (the action still decides the prediction),
    # and the supervised reference's rollouts of the targets are finite.
    low, high = (float(scores.prediction[0, i]) for i in extremes)
    assert high > low, (low, high)
    assert_finite("target rollouts", task.target_rollout(contexts.target))
    # The exact log-likelihood of a Gaussian policy (means at the centre and both edges,
    # wide and narrow) on every context a prediction in the range can score.
    r, head, s = core.prediction_range, core.head, core.head_scale
    reachable = core.reachable(contexts)
    y = contexts.target.double()[reachable]
    for mean in (-1.0, 0.0, 1.0):
        for std in (0.25, 1e-3):
            log_p = log_expected_likelihood_normal(
                head, s, y, torch.full_like(y, mean * r), torch.full_like(y, std * r), -r, r
            )
            assert_finite(f"exact log p (mean {mean}, std {std})", log_p)


@pytest.mark.parametrize(("env_id", "name", "label", "value"), cases_inside())
def test_accepted_values_give_finite_numbers(
    env_id: str, name: str, label: str, value: float
) -> None:
    kwargs = {**base_kwargs(env_id), **dict(RANGES[name].needs), name: value}
    check_core(env_id, kwargs)
    check_env_steps(env_id, kwargs)


@pytest.mark.parametrize(("env_id", "name", "label", "value"), cases_outside())
def test_values_outside_the_range_name_the_parameter(
    env_id: str, name: str, label: str, value: float
) -> None:
    kwargs = {**base_kwargs(env_id), **dict(RANGES[name].needs), name: value}
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}")):
        describe_env(env_id, **kwargs)
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}")):
        gym.make(env_id, **kwargs)


#: Corners of the regression box: every combination of the ends of the numeric keywords,
#: for every head and noise family (where the extremes compound: a tiny head scale against
#: the widest noise, the largest range, the heaviest tail).
CORNER_NAMES = ("snr", "heteroscedastic", "head_scale", "prediction_range")


def corner_cases() -> list[tuple[str, str, tuple[float, ...]]]:
    cases = []
    for head in ("gaussian", "laplace", "verifier"):
        for noise in ("gaussian", "student-t"):
            for bits in range(2 ** len(CORNER_NAMES)):
                corner = tuple(
                    RANGES[name].ends[(bits >> i) & 1] for i, name in enumerate(CORNER_NAMES)
                )
                cases.append((head, noise, corner))
    return cases


def corner_id(case: object) -> str:
    if isinstance(case, tuple):
        return "-".join(f"{name}={value:g}" for name, value in zip(CORNER_NAMES, case, strict=True))
    return str(case)


@pytest.mark.parametrize(("head", "noise", "corner"), corner_cases(), ids=corner_id)
def test_corners_of_the_regression_ranges_are_finite(
    head: str, noise: str, corner: tuple[float, ...]
) -> None:
    kwargs = {
        **SMALL_POOLS,
        **dict(zip(CORNER_NAMES, corner, strict=True)),
        "head": head,
        "noise": noise,
        "student_df": RANGES["student_df"].ends[0],
    }
    check_core("MaxRLRegression-v0", kwargs)
    check_env_steps("MaxRLRegression-v0", kwargs)
