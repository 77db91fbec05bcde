"""Likelihood heads: how a prediction scores a noisy target.

A head turns a target y and a prediction into a per-rollout likelihood l(y, prediction).
The reward is that likelihood rescaled so that its ceiling is 1, so rewards lie in [0, 1]:

======== ============================== ==================================== ============
head     reward l (ceiling 1)           log_likelihood (normalized)          success
======== ============================== ==================================== ============
gaussian exp(-(y - yhat)^2 / (2 s^2))   -(y - yhat)^2 / (2 s^2) - log(s√2π)  |y - yhat|<=s
laplace  exp(-|y - yhat| / s)           -|y - yhat| / s - log(2 s)           |y - yhat|<=s
verifier 1[|y - yhat| <= s]             log of the reward (0, or -100 for 0) |y - yhat|<=s
======== ============================== ==================================== ============

``s`` is ``head_scale``. Rescaling a likelihood by a constant adds a constant to log p, so
the maximum-likelihood objective (MaxRL's T -> infinity limit) and its gradient are
unchanged, and rewards and normalized log-likelihoods carry the same information. The
truncated objectives of finite order T, -sum_k (1 - p)^k / k, are not scale-free: for them
the ceiling of 1 is part of the definition. ``log_reward`` keeps the log of the reward
exactly, with no underflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

HEADS = ("gaussian", "laplace", "verifier")
#: Reported log-likelihood of a zero-probability outcome (verifier miss, wrong class).
LOG_LIKELIHOOD_FLOOR = -100.0


@dataclass(frozen=True)
class HeadOutput:
    """Per-rollout scores; every tensor has the prediction's shape."""

    reward: torch.Tensor
    log_reward: torch.Tensor
    log_likelihood: torch.Tensor
    is_success: torch.Tensor


def score_head(
    head: str, scale: float, target: torch.Tensor, prediction: torch.Tensor
) -> HeadOutput:
    """Score predictions against targets with a likelihood head.

    Args:
        head: One of ``HEADS``.
        scale: Head scale ``s`` (> 0): Gaussian std, Laplace scale, or verifier tolerance.
        target: Noisy targets y, broadcastable against ``prediction``.
        prediction: Predictions, ``[..., R]``.

    Returns:
        Rewards in [0, 1], their logs (<= 0, ``-inf`` for a verifier miss), normalized
        log-likelihoods and success flags.
    """
    error = prediction - target
    # The tolerance rule is decided in float64, where the difference of two float32 numbers of
    # comparable magnitude is exact: |y - yhat| <= s then holds exactly as written, boundary
    # included, for the float32 values reported in ``info`` and the Python float ``head_scale``
    # (a float32 difference would round and could flip cases within an ulp of the boundary).
    wide = torch.float32 if prediction.device.type == "mps" else torch.float64
    is_success = (prediction.to(wide) - target.to(wide)).abs() <= scale
    if head == "gaussian":
        log_reward = -0.5 * (error / scale).square()
        log_likelihood = log_reward - math.log(scale * math.sqrt(2.0 * math.pi))
    elif head == "laplace":
        log_reward = -error.abs() / scale
        log_likelihood = log_reward - math.log(2.0 * scale)
    elif head == "verifier":
        log_reward = torch.where(is_success, 0.0, -math.inf).to(prediction.dtype)
        log_likelihood = torch.where(is_success, 0.0, LOG_LIKELIHOOD_FLOOR).to(prediction.dtype)
    else:
        raise ValueError(f"head={head!r} is not supported; allowed: {', '.join(map(repr, HEADS))}")
    return HeadOutput(
        reward=log_reward.exp(),
        log_reward=log_reward,
        log_likelihood=log_likelihood,
        is_success=is_success,
    )
