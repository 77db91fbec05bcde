"""Policies m_theta(z | x) that draw N rollouts per context in one batched call.

Every policy maps observations ``[B, D]`` to a distribution over rollouts z and returns, for
``N`` rollouts per context, the rollouts and their log-probabilities ``[B, N]`` (summed over
token steps for the token policy). Sampling goes through an explicit ``torch.Generator`` so
that runs are reproducible, on any device.

- ``GaussianPolicy``: Box actions in [-1, 1] (``MaxRLRegression-v0`` and its presets). An MLP
  gives the mean; the log-std is a learned parameter shared by all contexts (SB3 / CleanRL
  convention), or, with ``state_dependent_std=True``, a second output of the MLP. Sampling
  is ``mean + std * noise`` on ``[B, N]`` after one forward on ``[B, D]``.
- ``CategoricalPolicy``: classes (``MaxRLClassification-v0``), or a grid of prediction
  values (``values``) for binned regression. One forward on ``[B, D]``, then ``N`` draws.
- ``TokenPolicy``: autoregressive digits for ``MaxRLTokens-v0``: one MLP over
  ``cat(x, step_features)``, the observation a Gymnasium/SB3 agent sees at each token step.
  The x part of the first layer is computed once per context and shared by its ``N``
  rollouts; the first token is drawn from one ``[B]`` forward, later tokens from ``[B*N]``
  forwards of the feature part only.

``TaskPolicy`` binds a policy to a task (``maxrl_envs.make_task``): it turns rollouts into
predictions in target units (or class ids), builds supervised labels, and implements the
``agents.evaluation.EvalPolicy`` protocol. ``make_policy`` picks the policy for a task from
the space of one rollout (``Task.rollout_space``), never from the task's kind name.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as nnf

from agents.exact import (
    MAX_SEQUENCES,
    MAX_TOKEN_ROWS,
    categorical_log_likelihood,
    discrete_sequences_log_likelihood,
    exact_log_likelihood,
    gaussian_log_likelihood,
)
from maxrl_envs.core import Contexts
from maxrl_envs.kinds import Task
from maxrl_envs.tokens import TokenCodec

POLICY_KINDS = ("auto", "gaussian", "binned")
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Rollouts:
    """N rollouts for each of B contexts.

    Attributes:
        actions: The rollouts z: ``[B, N]`` float raw actions (Gaussian, before clipping),
            ``[B, N]`` long classes (categorical) or ``[B, N, num_digits]`` long tokens.
            Detached: gradients flow only through ``log_prob``.
        log_prob: log m_theta(z | x), ``[B, N]``, differentiable w.r.t. the parameters.
        entropy: Detached per-context entropy, ``[B]``: exact for the Gaussian and
            categorical policies; for tokens the mean over rollouts of the summed per-step
            entropies along each sampled path (an estimate of the sequence entropy).
    """

    actions: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, out_gain: float = 0.01) -> nn.Sequential:
    """A tanh MLP with orthogonal init (hidden gain sqrt 2, output gain ``out_gain``).

    The small output gain makes an untrained policy nearly uniform (categorical) or centred
    (Gaussian mean), as in CleanRL's PPO.
    """
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [_init(nn.Linear(width, size), math.sqrt(2.0)), nn.Tanh()]
        width = size
    layers.append(_init(nn.Linear(width, out_dim), out_gain))
    return nn.Sequential(*layers)


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class Policy(nn.Module, ABC):
    """A stochastic policy over rollouts z given observations x."""

    @abstractmethod
    def sample(
        self, obs: torch.Tensor, group_size: int, generator: torch.Generator | None = None
    ) -> Rollouts:
        """Draw ``group_size`` rollouts for each observation.

        Args:
            obs: Observations x, float32 ``[B, D]``.
            group_size: Rollouts per context, N >= 1.
            generator: Torch generator on the policy's device (None: the global RNG).

        Returns:
            Rollouts with ``[B, N]`` log-probabilities.
        """

    @abstractmethod
    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-probabilities log m(z | x), ``[B, N]``, of rollouts shaped as in ``Rollouts``."""

    @abstractmethod
    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The point rollout per context: the mean action, the argmax class, greedy tokens."""

    def exact_log_likelihood(
        self,
        core: Any,
        contexts: Contexts,
        *,
        task: Any = None,
        max_sequences: int = MAX_SEQUENCES,
        max_rows: int = MAX_TOKEN_ROWS,
    ) -> torch.Tensor | None:
        """Exact log p(y|x) of this policy's prediction law, float64 ``[B]``; None if none.

        Differentiable in the policy's parameters (``agents.exact.log_likelihood_grad``
        calls it). A subclass with a tractable law overrides it; this default has none.

        Args:
            core: The task core (head, head scale, prediction range, classes).
            contexts: ``B`` contexts.
            task: The task, when known (maps a numeric kind's choices to predictions).
            max_sequences: Largest token tree enumerated.
            max_rows: Contexts x sequences per chunk of a token enumeration.
        """
        return None


class GaussianPolicy(Policy):
    """Gaussian policy over a scalar action: a ~ N(mu(x), sigma^2).

    Actions live in the env's action units ([-1, 1] is the valid range; the task clips and
    scales by ``prediction_range``). Log-probabilities are those of the unclipped draw, as in
    SB3, so the score function is exact.

    Args:
        obs_dim: Observation length D.
        hidden: Hidden layer widths of the mean MLP.
        init_std: Initial sigma in action units (> 0).
        state_dependent_std: If True the MLP outputs log sigma(x) next to the mean; if False
            (default) log sigma is one learned parameter shared by all contexts.
        log_std_bounds: Clamp of log sigma (keeps a collapsing or exploding std finite).
    """

    def __init__(
        self,
        obs_dim: int,
        hidden: Sequence[int] = (64, 64),
        init_std: float = 0.25,
        state_dependent_std: bool = False,
        log_std_bounds: tuple[float, float] = (-12.0, 2.0),
    ) -> None:
        super().__init__()
        self.state_dependent_std = bool(state_dependent_std)
        self.log_std_bounds = (float(log_std_bounds[0]), float(log_std_bounds[1]))
        self.net = mlp(obs_dim, hidden, 2 if self.state_dependent_std else 1)
        init_log_std = math.log(init_std)
        if self.state_dependent_std:
            with torch.no_grad():
                self.net[-1].bias[1] = init_log_std
            self.register_parameter("log_std", None)
        else:
            self.log_std = nn.Parameter(torch.tensor(init_log_std))

    def distribution_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-std, each ``[B]`` (one network forward on ``[B, D]``)."""
        out = self.net(obs)
        mean = out[:, 0]
        log_std = out[:, 1] if self.state_dependent_std else self.log_std.expand_as(mean)
        return mean, log_std.clamp(*self.log_std_bounds)

    def sample(
        self, obs: torch.Tensor, group_size: int, generator: torch.Generator | None = None
    ) -> Rollouts:
        """Draw ``[B, N]`` actions as mean + std * noise; see ``Policy.sample``."""
        mean, log_std = self.distribution_params(obs)
        noise = torch.randn(
            (obs.shape[0], group_size), generator=generator, device=obs.device, dtype=mean.dtype
        )
        actions = (mean.unsqueeze(1) + log_std.exp().unsqueeze(1) * noise).detach()
        return Rollouts(
            actions=actions,
            log_prob=_normal_log_prob(actions, mean, log_std),
            entropy=(0.5 + _HALF_LOG_2PI + log_std).detach(),
        )

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density of raw actions ``[B, N]``."""
        mean, log_std = self.distribution_params(obs)
        return _normal_log_prob(actions, mean, log_std)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action, ``[B]``."""
        return self.distribution_params(obs)[0]

    def std(self, obs: torch.Tensor | None = None) -> torch.Tensor:
        """The std in action units: the shared parameter, or ``[B]`` for a state-dependent std."""
        if not self.state_dependent_std:
            return self.log_std.detach().clamp(*self.log_std_bounds).exp()
        if obs is None:
            raise ValueError("obs is required for a state-dependent std")
        return self.distribution_params(obs)[1].detach().exp()

    def exact_log_likelihood(
        self,
        core: Any,
        contexts: Contexts,
        *,
        task: Any = None,
        max_sequences: int = MAX_SEQUENCES,
        max_rows: int = MAX_TOKEN_ROWS,
    ) -> torch.Tensor | None:
        """The censored normal of R clip(a, -1, 1) (``agents.exact.gaussian_log_likelihood``)."""
        mean, log_std = self.distribution_params(contexts.obs)
        return gaussian_log_likelihood(mean, log_std, core, contexts.target)


def _normal_log_prob(
    actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    z = (actions - mean.unsqueeze(1)) * torch.exp(-log_std).unsqueeze(1)
    return -0.5 * z.square() - log_std.unsqueeze(1) - _HALF_LOG_2PI


class CategoricalPolicy(Policy):
    """Categorical policy over ``num_classes`` choices.

    Args:
        obs_dim: Observation length D.
        num_classes: Number of choices K.
        hidden: Hidden layer widths.
        values: Optional ``[K]`` prediction value of each choice (binned regression); None for
            plain classes.
    """

    def __init__(
        self,
        obs_dim: int,
        num_classes: int,
        hidden: Sequence[int] = (64, 64),
        values: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.net = mlp(obs_dim, hidden, self.num_classes)
        if values is not None:
            values = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
            if values.shape[0] != self.num_classes:
                raise ValueError(
                    f"values has {values.shape[0]} entries; expected num_classes={num_classes}"
                )
        self.register_buffer("values", values)

    def log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of every choice, ``[B, K]`` (one forward on ``[B, D]``)."""
        return nnf.log_softmax(self.net(obs), dim=-1)

    def sample(
        self, obs: torch.Tensor, group_size: int, generator: torch.Generator | None = None
    ) -> Rollouts:
        """Draw ``[B, N]`` classes with replacement; see ``Policy.sample``."""
        log_probs = self.log_probs(obs)
        probs = log_probs.detach().exp()
        actions = torch.multinomial(probs, group_size, replacement=True, generator=generator)
        return Rollouts(
            actions=actions,
            log_prob=log_probs.gather(1, actions),
            entropy=-(probs * log_probs.detach()).sum(-1),
        )

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-probabilities of classes ``[B, N]``."""
        return self.log_probs(obs).gather(1, actions)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The most probable class, ``[B]``."""
        return self.net(obs).argmax(-1)

    def exact_log_likelihood(
        self,
        core: Any,
        contexts: Contexts,
        *,
        task: Any = None,
        max_sequences: int = MAX_SEQUENCES,
        max_rows: int = MAX_TOKEN_ROWS,
    ) -> torch.Tensor | None:
        """A finite sum over the choices (``agents.exact.categorical_log_likelihood``)."""
        log_probs = self.log_probs(contexts.obs)
        return categorical_log_likelihood(log_probs, self.values, core, contexts, task)


class TokenPolicy(Policy):
    """Autoregressive policy over ``num_digits`` tokens in base ``base``.

    At token step t the network reads ``cat(x, codec.step_features(written, t))`` (exactly the
    observation of the Gymnasium env) and outputs ``base`` logits. The first layer is split
    into its x columns and its feature columns so the x part runs once per context.

    Args:
        obs_dim: Length of x (the core's ``obs_dim``, without step features).
        codec: The task's token codec.
        hidden: Hidden layer widths (at least one layer).
    """

    def __init__(self, obs_dim: int, codec: TokenCodec, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        if len(hidden) == 0:
            raise ValueError("hidden=() is not supported by TokenPolicy; give at least one layer")
        self.obs_dim = int(obs_dim)
        self.codec = codec
        self.num_digits = codec.num_digits
        self.base = codec.base
        self.net = mlp(self.obs_dim + codec.extra_obs_dim, hidden, self.base)

    def _x_part(self, obs: torch.Tensor) -> torch.Tensor:
        first = self.net[0]
        return nnf.linear(obs, first.weight[:, : self.obs_dim], first.bias)

    def _logits(self, x_part: torch.Tensor, written: torch.Tensor, position: int) -> torch.Tensor:
        first = self.net[0]
        features = self.codec.step_features(written, position)
        h = x_part + nnf.linear(features, first.weight[:, self.obs_dim :])
        for layer in self.net[1:]:
            h = layer(h)
        return h

    def step_logits(self, obs: torch.Tensor, written: torch.Tensor, position: int) -> torch.Tensor:
        """Logits ``[M, base]`` of token ``position``, given x ``[M, D]`` and tokens so far."""
        return self._logits(self._x_part(obs), written, position)

    def sample(
        self, obs: torch.Tensor, group_size: int, generator: torch.Generator | None = None
    ) -> Rollouts:
        """Draw ``[B, N, num_digits]`` tokens; log-probabilities summed over steps."""
        b, n, d = obs.shape[0], group_size, self.num_digits
        x_part = self._x_part(obs)
        written = torch.zeros(b, d, dtype=torch.long, device=obs.device)
        # The first token sees the same observation in all N rollouts: one [B] forward.
        log_probs = nnf.log_softmax(self._logits(x_part, written, 0), dim=-1)
        probs = log_probs.detach().exp()
        first = torch.multinomial(probs, n, replacement=True, generator=generator)
        log_prob = log_probs.gather(1, first)
        entropy = _entropy(log_probs.detach()).unsqueeze(1).expand(b, n)
        tokens = torch.zeros(b * n, d, dtype=torch.long, device=obs.device)
        tokens[:, 0] = first.reshape(-1)
        rows = x_part.unsqueeze(1).expand(b, n, -1).reshape(b * n, -1)
        for t in range(1, d):
            log_probs = nnf.log_softmax(self._logits(rows, tokens, t), dim=-1)
            token = torch.multinomial(log_probs.detach().exp(), 1, generator=generator)
            tokens[:, t] = token[:, 0]
            log_prob = log_prob + log_probs.gather(1, token).reshape(b, n)
            entropy = entropy + _entropy(log_probs.detach()).reshape(b, n)
        return Rollouts(
            actions=tokens.reshape(b, n, d),
            log_prob=log_prob,
            entropy=entropy.mean(1),
        )

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Summed token log-probabilities of ``[B, N, num_digits]`` sequences (teacher forcing)."""
        b, n, d = actions.shape
        tokens = actions.reshape(b * n, d)
        rows = self._x_part(obs).unsqueeze(1).expand(b, n, -1).reshape(b * n, -1)
        total = torch.zeros(b * n, device=obs.device)
        for t in range(d):
            log_probs = nnf.log_softmax(self._logits(rows, tokens, t), dim=-1)
            total = total + log_probs.gather(1, tokens[:, t : t + 1])[:, 0]
        return total.reshape(b, n)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy tokens ``[B, num_digits]`` (argmax at every step)."""
        x_part = self._x_part(obs)
        tokens = torch.zeros(obs.shape[0], self.num_digits, dtype=torch.long, device=obs.device)
        for t in range(self.num_digits):
            tokens[:, t] = self._logits(x_part, tokens, t).argmax(-1)
        return tokens

    def exact_log_likelihood(
        self,
        core: Any,
        contexts: Contexts,
        *,
        task: Any = None,
        max_sequences: int = MAX_SEQUENCES,
        max_rows: int = MAX_TOKEN_ROWS,
    ) -> torch.Tensor | None:
        """Every sequence enumerated (``agents.exact.discrete_sequences_log_likelihood``).

        None above ``max_sequences`` sequences.
        """
        if self.base**self.num_digits > max_sequences:
            return None
        return discrete_sequences_log_likelihood(
            self.step_logits, self.codec, core, contexts, max_rows
        )


def _entropy(log_probs: torch.Tensor) -> torch.Tensor:
    return -(log_probs.exp() * log_probs).sum(-1)


def check_policy_choice(space: spaces.Space, kind: str) -> None:
    """Refuse a ``policy`` choice that does not fit a task's rollout space.

    Raises:
        ValueError: ``binned`` or ``gaussian`` for a discrete rollout space, or an unknown
            choice, naming what fits.
    """
    if kind not in POLICY_KINDS:
        raise ValueError(f"policy={kind!r} is not supported; allowed: {', '.join(POLICY_KINDS)}")
    if not isinstance(space, spaces.Box) and kind != "auto":
        raise ValueError(f"policy={kind!r} does not fit the rollout space {space}; allowed: 'auto'")
    if not isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete)):
        raise ValueError(f"no policy fits the rollout space {space}")


def make_policy(
    task: Task,
    hidden: Sequence[int] = (64, 64),
    *,
    kind: str = "auto",
    init_std: float = 0.25,
    state_dependent_std: bool = False,
    bins: int = 51,
) -> Policy:
    """The policy for a task, chosen by the space of one rollout.

    As SB3 picks a distribution from the action space, the rollout space decides.

    Args:
        task: From ``maxrl_envs.make_task``.
        hidden: Hidden layer widths.
        kind: ``auto`` (Gaussian for a Box rollout, categorical for a Discrete one, an
            autoregressive token policy for a MultiDiscrete sequence), ``gaussian``, or
            ``binned`` (a categorical over ``bins`` evenly spaced predictions spanning
            [-prediction_range, prediction_range], Box rollouts only).
        init_std: Initial Gaussian sigma in action units.
        state_dependent_std: Gaussian log-std from the MLP instead of a shared parameter.
        bins: Number of prediction bins for ``kind="binned"`` (>= 2).

    Returns:
        An untrained policy on the CPU (move it with ``.to(device)``).
    """
    space = task.rollout_space()
    check_policy_choice(space, kind)
    if isinstance(space, spaces.Discrete):
        return CategoricalPolicy(task.obs_dim, int(space.n), hidden)
    if isinstance(space, spaces.MultiDiscrete):
        return TokenPolicy(task.obs_dim, task.codec, hidden)
    if kind == "binned":
        limit = task.core.prediction_range  # type: ignore[attr-defined]
        values = torch.linspace(-limit, limit, int(bins))
        return CategoricalPolicy(task.obs_dim, int(bins), hidden, values=values)
    return GaussianPolicy(task.obs_dim, hidden, init_std, state_dependent_std)


class TaskPolicy:
    """A policy bound to a task: predictions from rollouts, labels for supervised training.

    Implements ``agents.evaluation.EvalPolicy``. The task and the policy must share a device.
    The task's kind maps rollouts to predictions and targets to label rollouts; a binned
    policy, whose samples are bins, maps them through its bin values.

    Args:
        policy: The policy.
        task: From ``maxrl_envs.make_task``.
    """

    def __init__(self, policy: Policy, task: Task) -> None:
        self.policy = policy
        self.task = task
        self.core = task.core
        self._values = getattr(policy, "values", None)

    def to_prediction(self, actions: torch.Tensor) -> torch.Tensor:
        """Rollouts -> predictions: target units (regression, tokens) or class ids.

        The policy's own samples are valid by construction, so the kind's input checks
        (a host sync per call on GPUs) are skipped.
        """
        if self._values is not None:
            return self._values[actions]
        return self.task.prediction(actions, validate=False)

    def labels(self, contexts: Contexts) -> torch.Tensor:
        """The rollout that writes each observed target (for supervised training).

        Returns:
            ``[B, 1, ...]``: the kind's target rollout (y / prediction_range for a Gaussian
            policy, the observed label, ``codec.encode(y)``), or the nearest bin.
        """
        target = contexts.target
        if self._values is not None:
            return (target.unsqueeze(1) - self._values).abs().argmin(-1, keepdim=True)
        return self.task.target_rollout(target).unsqueeze(1)

    def rollouts(
        self, contexts: Contexts, group_size: int, generator: torch.Generator | None = None
    ) -> tuple[Rollouts, torch.Tensor]:
        """Rollouts ``[B, N]`` on contexts and their predictions ``[B, N]``."""
        rollouts = self.policy.sample(contexts.obs, group_size, generator)
        return rollouts, self.to_prediction(rollouts.actions)

    @torch.no_grad()
    def sample(
        self, contexts: Contexts, eval_samples: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Predictions of ``eval_samples`` rollouts per context, ``[B, M]`` (EvalPolicy)."""
        return self.rollouts(contexts, eval_samples, generator)[1]

    @torch.no_grad()
    def point(self, contexts: Contexts) -> torch.Tensor:
        """Point prediction per context, ``[B]`` (EvalPolicy)."""
        return self.to_prediction(self.policy.mode(contexts.obs))

    @torch.no_grad()
    def log_likelihood(self, contexts: Contexts) -> torch.Tensor | None:
        """Exact log p(y|x) per context, float64 ``[B]`` (EvalPolicy; ``agents.exact``).

        The choices of a categorical policy on a numeric kind are summed over the
        predictions they map to (``agents.exact.discrete_choices_log_likelihood``).
        """
        return exact_log_likelihood(self, self.core, contexts)
