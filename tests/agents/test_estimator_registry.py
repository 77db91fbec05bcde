"""The estimator registry, and the batch-mean REINFORCE baseline's exact expectation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from agents import estimators
from agents.estimators import Estimator, get_estimator, group_weights, register_estimator


def test_reinforce_mean_expectation_by_enumeration() -> None:
    # B = 2 contexts, N = 2 rollouts, Bernoulli policies with their own logits theta_b and
    # graded rewards: E[(1/N) sum_j A_bj S_bj] = (1 - 1/(BN)) dp_b/dtheta_b exactly.
    theta = [0.3, -1.1]
    reward = [(0.2, 0.7), (0.9, 0.1)]  # r_b(a) for a = 0, 1
    b, n = 2, 2
    sig = [1.0 / (1.0 + math.exp(-t)) for t in theta]
    expected_grad = [0.0, 0.0]
    for outcome in itertools.product((0, 1), repeat=b * n):
        actions = [outcome[i * n : (i + 1) * n] for i in range(b)]
        prob = 1.0
        for i in range(b):
            for a in actions[i]:
                prob *= sig[i] if a else 1.0 - sig[i]
        rewards = torch.tensor(
            [[reward[i][a] for a in actions[i]] for i in range(b)], dtype=torch.float64
        )
        weights = estimators.reinforce_mean(rewards)
        for i in range(b):
            scores = [a - sig[i] for a in actions[i]]  # d/dtheta log m(a)
            g = sum(float(weights[i, j]) * scores[j] for j in range(n)) / n
            expected_grad[i] += prob * g
    for i in range(b):
        dp = (reward[i][1] - reward[i][0]) * sig[i] * (1.0 - sig[i])
        assert expected_grad[i] == pytest.approx((1.0 - 1.0 / (b * n)) * dp, abs=1e-15)


def test_reinforce_mean_is_rewards_minus_the_batch_mean() -> None:
    rewards = torch.tensor([[0.0, 1.0, 0.5], [0.25, 0.25, 1.0]])
    torch.testing.assert_close(group_weights("reinforce-mean", rewards), rewards - 0.5)


def test_registry_entries_describe_their_estimators() -> None:
    assert get_estimator("maxrl").input == "likelihood"
    assert get_estimator("maxrl").params == ("order",)
    assert get_estimator("maxrl-binary").role == "maxrl"
    assert get_estimator("grpo").min_group_size == 2
    assert get_estimator("reinforce").min_group_size == 1
    assert set(estimators.ESTIMATOR_NAMES) <= set(estimators.estimator_names())
    with pytest.raises(ValueError, match="order applies only to name='maxrl'"):
        group_weights("grpo", torch.rand(2, 3), order=2)


def test_register_refuses_a_taken_name_and_bad_entries() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_estimator(Estimator("grpo", estimators.rloo))
    with pytest.raises(ValueError, match="input='logits'"):
        register_estimator(Estimator("x", estimators.rloo, input="logits"))
    with pytest.raises(ValueError, match="role='hero'"):
        register_estimator(Estimator("x", estimators.rloo, role="hero"))
    with pytest.raises(ValueError, match="min_group_size=0"):
        register_estimator(Estimator("x", estimators.rloo, min_group_size=0))
    assert "x" not in estimators.ESTIMATORS
