"""Likelihood heads: how a prediction scores a noisy target, one table entry per head.

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

Each head is one ``Head`` in ``HEADS`` (``register_head`` adds one from a plugin): its
per-rollout score, its exact log-likelihood log l(y, ŷ) in float64, and the closed forms of
its expected likelihood E l(y, ŷ) under the prediction laws of the benchmark (censored
normal, uniform, Laplace noise, tanh-squashed normal); the finite sums of categorical,
binned and token policies and of token grids need only log l. ``maxrl_envs.likelihoods``
and ``agents.exact`` look the forms up here; a form a head lacks is refused with an error
naming the head and the form.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from maxrl_envs.logspace import (
    INF,
    LOG_SQRT_2PI,
    log_gauss_exp_integral,
    log_laplace_cdf_diff,
    log_ndtr_diff,
    log_ndtr_diff_grad,
    masked,
)

#: Reported log-likelihood of a zero-probability outcome (verifier miss, wrong class).
LOG_LIKELIHOOD_FLOOR = -100.0

Tensor = torch.Tensor
#: ``(error, s, is_success) -> (log_reward, log_likelihood)`` per rollout, prediction dtype.
ScoreFn = Callable[[Tensor, float, Tensor], "tuple[Tensor, Tensor]"]
#: ``(s, y, prediction) -> log l`` in float64, -inf where l = 0.
LogDensityFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class HeadOutput:
    """Per-rollout scores; every tensor has the prediction's shape."""

    reward: torch.Tensor
    log_reward: torch.Tensor
    log_likelihood: torch.Tensor
    is_success: torch.Tensor


@dataclass(frozen=True)
class Head:
    """One likelihood head: its score, its exact log l, and its expected likelihoods.

    Every exact form works elementwise on broadcast float64 tensors (``s`` the head scale)
    and returns log values (-inf for 0). Only ``name``, ``score`` and ``log_density`` are
    required; without a form, the exact metric of the policies that need it is refused.

    Attributes:
        name: The ``head=`` value of a regression env.
        score: ``(error = prediction - y, s, is_success) -> (log_reward, log_likelihood)``:
            the Monte-Carlo score of each rollout in the prediction's dtype, log_reward <= 0
            (the log of the reward, ceiling 1), log_likelihood the normalized log-density
            (``LOG_LIKELIHOOD_FLOOR`` for an outcome of probability 0).
        log_density: ``(s, y, prediction) -> log l(y, prediction)``, exact, -inf where
            l = 0. Enough for every finite law (categorical, binned, tokens, token grids).
        binary: l is the indicator of success (rewards 0 or 1): its expected likelihood is
            a probability (clipped to <= 1), agents use their binary-reward method, and
            pass rates lead the default report metrics.
        support: l(y, ŷ) = 0 for |y - ŷ| > support * s (inf: l > 0 everywhere); targets
            farther than prediction_range + support * s are unreachable.
        normal_interior: ``(s, y, mean, std, low, high) -> log ∫_low^high N(t; mean,
            std²) l(y, t) dt`` (std > 0): with ``log_density`` at the atoms, the censored
            normal law of a Gaussian policy clipped to the prediction range.
        normal_grad: ``(s: float, y, mean, std, low: float, high: float) -> log p`` of the
            whole censored normal, written so that autograd never meets 0 * inf (the
            ``supervised-ml`` objective of a Gaussian policy); its value is replaced by the
            ``normal_interior`` form, only its gradient is used.
        uniform_mass: ``(s, y, low, high) -> log ∫_low^high l(y, t) dt`` (random Box policy).
        laplace_noise: ``(s, y, f, beta) -> log ∫ Lap(t; f, beta) l(y, t) dt`` (the Bayes
            sampler of Laplace-noise envs; Gaussian and Student-t noise use
            ``normal_interior``).
        squashed_window: Half-width, in head scales, of the window around y where
            l(y, ·) lives (the quadrature of SAC's tanh-squashed normal); None without one.
        squashed_exact: ``(s, y, mean, std, scale) -> log E l(y, scale tanh(u))``,
            u ~ N(mean, std²), std > 0: a closed form used instead of the quadrature.
    """

    name: str
    score: ScoreFn
    log_density: LogDensityFn
    binary: bool = False
    support: float = math.inf
    normal_interior: Callable[..., Tensor] | None = None
    normal_grad: Callable[..., Tensor] | None = None
    uniform_mass: Callable[..., Tensor] | None = None
    laplace_noise: Callable[..., Tensor] | None = None
    squashed_window: float | None = None
    squashed_exact: Callable[..., Tensor] | None = None

    def form(self, name: str) -> Callable[..., Tensor]:
        """The exact form ``name`` (a field of this class), or a ValueError naming it."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(
                f"head={self.name!r} has no {name} form: give one to register_head to get "
                "this exact likelihood"
            )
        return value


#: The registered heads by name (``register_head`` adds to it).
HEADS: dict[str, Head] = {}

_FORMS = (
    "normal_interior",
    "normal_grad",
    "uniform_mass",
    "laplace_noise",
    "squashed_exact",
)


def register_head(head: Head) -> Head:
    """Add a likelihood head to ``HEADS``; envs then accept ``head=head.name``.

    Args:
        head: The head. Its name must be new (re-registering the same object is a no-op).

    Returns:
        The head (so that it can be kept as a module attribute).

    Raises:
        ValueError: A field is invalid (naming it), or the name is taken by another head.
    """
    if not isinstance(head, Head):
        raise ValueError(f"head={head!r} must be a maxrl_envs.heads.Head")
    if not isinstance(head.name, str) or not head.name or head.name != head.name.strip():
        raise ValueError(f"head name={head.name!r} must be a non-empty string without spaces")
    for name in ("score", "log_density", *_FORMS):
        value = getattr(head, name)
        if (name in ("score", "log_density") or value is not None) and not callable(value):
            raise ValueError(f"head {head.name!r}: {name}={value!r} must be callable")
    if not isinstance(head.binary, bool):
        raise ValueError(f"head {head.name!r}: binary={head.binary!r} must be a bool")
    if not (isinstance(head.support, (int, float)) and head.support > 0):
        raise ValueError(f"head {head.name!r}: support={head.support!r} must be > 0 (or inf)")
    window = head.squashed_window
    if window is not None and not (isinstance(window, (int, float)) and 0 < window < math.inf):
        raise ValueError(
            f"head {head.name!r}: squashed_window={window!r} must be None or a finite number > 0"
        )
    known = HEADS.get(head.name)
    if known is not None and known is not head:
        raise ValueError(f"head={head.name!r} is already registered")
    HEADS[head.name] = head
    return head


def head_names() -> tuple[str, ...]:
    """The registered head names, in registration order."""
    return tuple(HEADS)


def get_head(name: str) -> Head:
    """The registered head ``name``; a ValueError naming the allowed heads otherwise."""
    head = HEADS.get(name) if isinstance(name, str) else None
    if head is None:
        allowed = ", ".join(map(repr, HEADS))
        raise ValueError(f"head={name!r} is not supported; allowed: {allowed}")
    return head


def score_head(
    head: str, scale: float, target: torch.Tensor, prediction: torch.Tensor
) -> HeadOutput:
    """Score predictions against targets with a likelihood head.

    Args:
        head: A registered head name (``HEADS``).
        scale: Head scale ``s`` (> 0): Gaussian std, Laplace scale, or verifier tolerance.
        target: Noisy targets y, broadcastable against ``prediction``.
        prediction: Predictions, ``[..., R]``.

    Returns:
        Rewards in [0, 1], their logs (<= 0, ``-inf`` for a verifier miss), normalized
        log-likelihoods and success flags.
    """
    entry = get_head(head)
    error = prediction - target
    # The tolerance rule is decided in float64, where the difference of two float32 numbers of
    # comparable magnitude is exact: |y - yhat| <= s then holds exactly as written, boundary
    # included, for the float32 values reported in ``info`` and the Python float ``head_scale``
    # (a float32 difference would round and could flip cases within an ulp of the boundary).
    wide = torch.float32 if prediction.device.type == "mps" else torch.float64
    is_success = (prediction.to(wide) - target.to(wide)).abs() <= scale
    log_reward, log_likelihood = entry.score(error, scale, is_success)
    return HeadOutput(
        reward=log_reward.exp(),
        log_reward=log_reward,
        log_likelihood=log_likelihood,
        is_success=is_success,
    )


# --------------------------------------------------------------------------------------------
# gaussian: l = N(y; ŷ, s²)
# --------------------------------------------------------------------------------------------


def _gaussian_score(error: Tensor, scale: float, is_success: Tensor) -> tuple[Tensor, Tensor]:
    log_reward = -0.5 * (error / scale).square()
    return log_reward, log_reward - math.log(scale * math.sqrt(2.0 * math.pi))


def _gaussian_log_density(s: Tensor, y: Tensor, yhat: Tensor) -> Tensor:
    return -0.5 * ((y - yhat) / s).square() - torch.log(s) - LOG_SQRT_2PI


def _gaussian_normal_interior(
    s: Tensor, y: Tensor, mean: Tensor, std: Tensor, low: Tensor, high: Tensor
) -> Tensor:
    # N(t; m, σ²) N(y; t, s²) = N(y; m, σ² + s²) N(t; c, τ²).
    h = torch.hypot(std, s)
    c = mean + (y - mean) * (std / h).square()
    tau = std * (s / h)
    log_norm = -0.5 * ((y - mean) / h).square() - torch.log(h) - LOG_SQRT_2PI
    return log_norm + log_ndtr_diff((low - c) / tau, (high - c) / tau)


def _gaussian_normal_grad(
    s: float, y: Tensor, mean: Tensor, std: Tensor, low: float, high: float
) -> Tensor:
    h = torch.sqrt(std.square() + s**2)
    c = mean + (y - mean) * (std / h).square()
    tau = std * (s / h)
    interior = (
        -0.5 * ((y - mean) / h).square()
        - torch.log(h)
        - LOG_SQRT_2PI
        + log_ndtr_diff_grad((low - c) / tau, (high - c) / tau)
    )
    log_head_low = -0.5 * ((y - low) / s) ** 2 - math.log(s) - LOG_SQRT_2PI
    log_head_high = -0.5 * ((y - high) / s) ** 2 - math.log(s) - LOG_SQRT_2PI
    atom_low = torch.special.log_ndtr((low - mean) / std) + log_head_low
    atom_high = torch.special.log_ndtr((mean - high) / std) + log_head_high
    return torch.logsumexp(torch.stack([atom_low, atom_high, interior]), dim=0)


def _gaussian_uniform_mass(s: Tensor, y: Tensor, low: Tensor, high: Tensor) -> Tensor:
    return log_ndtr_diff((low - y) / s, (high - y) / s)


def _gaussian_laplace_noise(s: Tensor, y: Tensor, f: Tensor, beta: Tensor) -> Tensor:
    # ∫ N(t; y, s²) Lap(t; f, β) dt: the laplace head (scale β, target f) under N(y, s²),
    # uncensored (its atoms at ±inf weigh nothing).
    low, high = torch.full_like(y, -INF), torch.full_like(y, INF)
    interior = _laplace_normal_interior(beta, f, y, s, low, high)
    none = torch.full_like(interior, -INF)
    return torch.logsumexp(torch.stack([none, none, interior]), dim=0)


# --------------------------------------------------------------------------------------------
# laplace: l = exp(-|y - ŷ| / s) / (2 s)
# --------------------------------------------------------------------------------------------


def _laplace_score(error: Tensor, scale: float, is_success: Tensor) -> tuple[Tensor, Tensor]:
    log_reward = -error.abs() / scale
    return log_reward, log_reward - math.log(2.0 * scale)


def _laplace_log_density(s: Tensor, y: Tensor, yhat: Tensor) -> Tensor:
    return -(y - yhat).abs() / s - torch.log(2.0 * s)


def _laplace_normal_interior(
    s: Tensor, y: Tensor, mean: Tensor, std: Tensor, low: Tensor, high: Tensor
) -> Tensor:
    # Split at t = y; each side is a Gaussian times an exponential.
    k = std / s
    zy = (y - mean) / std
    zl = (low - mean) / std
    zh = (high - mean) / std
    left = log_gauss_exp_integral(k, zy, zl, zh)
    right = log_gauss_exp_integral(k, -zy, -zh, -zl)
    return torch.logaddexp(left, right) - torch.log(2.0 * s)


def _laplace_normal_grad(
    s: float, y: Tensor, mean: Tensor, std: Tensor, low: float, high: float
) -> Tensor:
    # Each side of y is e^{±(mean - y)/s + std²/2s²} times a Φ difference at mean ∓ std²/s.
    shift = std.square() / s
    scale = 0.5 * (std / s).square()
    top = torch.clamp(y, max=high)
    left_empty = top <= low
    left_hi = torch.where(left_empty, torch.ones_like(y), (top - mean - shift) / std)
    left_lo = torch.where(left_empty, torch.zeros_like(y), (low - mean - shift) / std)
    left = (mean - y) / s + scale + log_ndtr_diff_grad(left_lo, left_hi)
    bottom = torch.clamp(y, min=low)
    right_empty = bottom >= high
    right_hi = torch.where(right_empty, torch.ones_like(y), (high - mean + shift) / std)
    right_lo = torch.where(right_empty, torch.zeros_like(y), (bottom - mean + shift) / std)
    right = (y - mean) / s + scale + log_ndtr_diff_grad(right_lo, right_hi)
    interior = torch.logaddexp(masked(left, left_empty), masked(right, right_empty))
    interior = interior - math.log(2.0 * s)
    log_head_low = -(y - low).abs() / s - math.log(2.0 * s)
    log_head_high = -(y - high).abs() / s - math.log(2.0 * s)
    atom_low = torch.special.log_ndtr((low - mean) / std) + log_head_low
    atom_high = torch.special.log_ndtr((mean - high) / std) + log_head_high
    return torch.logsumexp(torch.stack([atom_low, atom_high, interior]), dim=0)


def _laplace_uniform_mass(s: Tensor, y: Tensor, low: Tensor, high: Tensor) -> Tensor:
    return log_laplace_cdf_diff((low - y) / s, (high - y) / s)


def _laplace_laplace_noise(s: Tensor, y: Tensor, f: Tensor, beta: Tensor) -> Tensor:
    """Log ∫ Lap(t; f, β) Lap(y - t; s) dt: the density of a sum of two Laplace variables.

    With x = |y - f|, b = max(β, s), a = min(β, s), δ = 1/a - 1/b:
    e^{-x/b} / (2 (a + b)) · [1 + (x / b) g(x δ)], g(u) = (1 - e^{-u}) / u. This is the
    textbook (β e^{-x/β} - s e^{-x/s}) / (2 (β² - s²)) rewritten without its cancellation
    at β = s (where it becomes (1 + x/s) e^{-x/s} / (4 s)).
    """
    x = (y - f).abs()
    big = torch.maximum(beta, s)
    small = torch.minimum(beta, s)
    u = x * (1.0 / small - 1.0 / big)
    g = torch.where(u > 1e-8, -torch.expm1(-u) / u.clamp(min=1e-8), 1.0 - 0.5 * u)
    return -x / big - torch.log(2.0 * (big + small)) + torch.log1p(x * g / big)


# --------------------------------------------------------------------------------------------
# verifier: l = 1[|y - ŷ| <= s]
# --------------------------------------------------------------------------------------------


def _verifier_score(error: Tensor, scale: float, is_success: Tensor) -> tuple[Tensor, Tensor]:
    log_reward = torch.where(is_success, 0.0, -math.inf).to(error.dtype)
    log_likelihood = torch.where(is_success, 0.0, LOG_LIKELIHOOD_FLOOR).to(error.dtype)
    return log_reward, log_likelihood


def _verifier_log_density(s: Tensor, y: Tensor, yhat: Tensor) -> Tensor:
    d = y - yhat
    return torch.where(d.abs() <= s, 0.0, -INF).to(d.dtype)


def _verifier_normal_interior(
    s: Tensor, y: Tensor, mean: Tensor, std: Tensor, low: Tensor, high: Tensor
) -> Tensor:
    lo = torch.maximum(low, y - s)
    hi = torch.minimum(high, y + s)
    return log_ndtr_diff((lo - mean) / std, (hi - mean) / std)


def _verifier_normal_grad(
    s: float, y: Tensor, mean: Tensor, std: Tensor, low: float, high: float
) -> Tensor:
    # p = Φ(u) - Φ(v), u = (y + s - mean) / std (+inf when the upper atom passes,
    # y + s >= high), v = (y - s - mean) / std (-inf when y - s <= low).
    empty = (y - s > high) | (y + s < low)
    upper = y + s >= high
    lower = y - s <= low
    u = torch.where(upper | empty, torch.full_like(y, math.inf), (y + s - mean) / std)
    v = torch.where(lower | empty, torch.full_like(y, -math.inf), (y - s - mean) / std)
    return masked(log_ndtr_diff_grad(v, u), empty)


def _verifier_uniform_mass(s: Tensor, y: Tensor, low: Tensor, high: Tensor) -> Tensor:
    overlap = torch.minimum(high, y + s) - torch.maximum(low, y - s)
    return torch.log(overlap.clamp(min=0.0))


def _verifier_laplace_noise(s: Tensor, y: Tensor, f: Tensor, beta: Tensor) -> Tensor:
    return log_laplace_cdf_diff((y - s - f) / beta, (y + s - f) / beta)


#: Largest |tanh(u)| the verifier's squashed form inverts (atanh stays finite).
_ATANH_EDGE = 1.0 - 1e-15


def _verifier_squashed(s: Tensor, y: Tensor, mean: Tensor, std: Tensor, scale: float) -> Tensor:
    # P(u ∈ [atanh((y - s)/scale), atanh((y + s)/scale)]), bounds beyond ±scale open.
    def atanh_of(value: Tensor) -> Tensor:
        return torch.atanh((value / scale).clamp(-_ATANH_EDGE, _ATANH_EDGE))

    lo = torch.where(y - s <= -scale, torch.full_like(y, -INF), atanh_of(y - s))
    hi = torch.where(y + s >= scale, torch.full_like(y, INF), atanh_of(y + s))
    return log_ndtr_diff((lo - mean) / std, (hi - mean) / std)


GAUSSIAN = register_head(
    Head(
        name="gaussian",
        score=_gaussian_score,
        log_density=_gaussian_log_density,
        normal_interior=_gaussian_normal_interior,
        normal_grad=_gaussian_normal_grad,
        uniform_mass=_gaussian_uniform_mass,
        laplace_noise=_gaussian_laplace_noise,
        squashed_window=12.0,
    )
)
LAPLACE = register_head(
    Head(
        name="laplace",
        score=_laplace_score,
        log_density=_laplace_log_density,
        normal_interior=_laplace_normal_interior,
        normal_grad=_laplace_normal_grad,
        uniform_mass=_laplace_uniform_mass,
        laplace_noise=_laplace_laplace_noise,
        # e^-|d|/s decays slowly: a wider window than the Gaussian's
        squashed_window=45.0,
    )
)
VERIFIER = register_head(
    Head(
        name="verifier",
        score=_verifier_score,
        log_density=_verifier_log_density,
        binary=True,
        support=1.0,
        normal_interior=_verifier_normal_interior,
        normal_grad=_verifier_normal_grad,
        uniform_mass=_verifier_uniform_mass,
        laplace_noise=_verifier_laplace_noise,
        squashed_exact=_verifier_squashed,
    )
)
