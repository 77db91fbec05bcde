"""Episode logic shared by the single env and the vector env.

``GroupEpisodes`` runs ``num_groups * group_size`` sub-episodes on a core. Each run of
``group_size`` consecutive sub-episodes shares one context, so one step yields
``group_size`` rollouts for each of ``num_groups`` contexts. Every shell (single env,
vector env, Stable-Baselines3 adapter) is this class plus space and type conversions.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from gymnasium import spaces

from maxrl_envs._checks import check_choice, check_int, check_known_kwargs
from maxrl_envs.core import SPLITS, ClassificationCore, Contexts, RegressionCore, Scores, TaskCore
from maxrl_envs.tokens import TokenCodec

#: Keys of the per-rollout ``info`` every env returns when an episode ends.
INFO_KEYS = ("log_likelihood", "target", "signal", "squared_error", "is_success", "prediction")
#: Keyword arguments of the token codec, accepted by the ``tokens`` kind only.
CODEC_KWARGS = ("num_digits", "base")


def generator_seed(np_random: np.random.Generator) -> int:
    """Seed of the torch generator that draws context ids, taken from an env's ``np_random``.

    Every shell derives its context stream this way from the Gymnasium seed, so
    ``core.make_generator(generator_seed(gymnasium.utils.seeding.np_random(seed)[0]))``
    reproduces the contexts that ``env.reset(seed=seed)`` draws.
    """
    return int(np_random.integers(0, 2**62))


def core_kwarg_names(kind: str) -> tuple[str, ...]:
    """Keyword arguments a core of ``kind`` accepts (without ``device``)."""
    cls = ClassificationCore if kind == "classification" else RegressionCore
    names = tuple(inspect.signature(cls.__init__).parameters)[1:]
    return tuple(name for name in names if name != "device")


def build_core(kind: str, device: str | torch.device = "cpu", **kwargs: object) -> TaskCore:
    """Build a core from env keyword arguments.

    Args:
        kind: ``regression`` (Box action), ``classification`` (class action) or ``tokens``
            (regression written as digit tokens; its codec is built by ``GroupEpisodes``).
        device: Torch device.
        **kwargs: The core's keyword arguments; unknown ones raise ``ValueError``.

    Returns:
        The core.
    """
    check_choice("kind", kind, ("regression", "classification", "tokens"))
    check_known_kwargs(f"a {kind} environment", kwargs, core_kwarg_names(kind))
    cls = ClassificationCore if kind == "classification" else RegressionCore
    return cls(device=device, **kwargs)  # type: ignore[arg-type]


class GroupEpisodes:
    """Synchronous grouped episodes over a core.

    Args:
        core: The task core.
        kind: ``regression``, ``classification`` or ``tokens``.
        num_groups: Contexts per step, G >= 1.
        group_size: Rollouts per context, N >= 1.
        split: Context split to draw from, ``train``, ``validation`` or ``test``.
        codec: Token codec (``tokens`` kind only).
    """

    def __init__(
        self,
        core: TaskCore,
        kind: str,
        num_groups: int,
        group_size: int,
        split: str = "train",
        codec: TokenCodec | None = None,
    ) -> None:
        self.core = core
        self.kind = kind
        self.split = check_choice("split", split, SPLITS)
        self.num_groups = check_int("num_groups", num_groups, 1)
        self.group_size = check_int("group_size", group_size, 1)
        self.num_rollouts = self.num_groups * self.group_size
        self.codec = codec
        self.episode_length = codec.num_digits if codec is not None else 1
        self.contexts: Contexts | None = None
        self.position = 0
        self._written: torch.Tensor | None = None
        self._obs_x: torch.Tensor | None = None
        space = self.action_space()
        self._num_actions = int(space.n) if isinstance(space, spaces.Discrete) else 0

    @property
    def obs_dim(self) -> int:
        """Observation length."""
        extra = self.codec.extra_obs_dim if self.codec is not None else 0
        return self.core.obs_dim + extra

    def observation_space(self) -> spaces.Box:
        """The observation space of one sub-env."""
        return spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)

    def action_space(self) -> spaces.Space:
        """The action space of one sub-env."""
        if self.kind == "regression":
            return spaces.Box(-1.0, 1.0, (1,), np.float32)
        if self.kind == "classification":
            assert isinstance(self.core, ClassificationCore)
            return spaces.Discrete(self.core.num_classes)
        assert self.codec is not None
        return spaces.Discrete(self.codec.base)

    def begin(self, ids: torch.Tensor, validate: bool = True) -> torch.Tensor:
        """Start new episodes on contexts ``ids`` ([num_groups]); return the first observations.

        Args:
            ids: One context id per group, ``[num_groups]``.
            validate: Check the ids' range; skip only for ids drawn by ``core.sample_ids``.

        Returns:
            Observations, float32 ``[num_rollouts, obs_dim]``.
        """
        self.contexts = self.core.contexts(ids, self.split, validate=validate)
        if self.contexts.ids.shape[0] != self.num_groups:
            raise ValueError(
                f"begin() got {self.contexts.ids.shape[0]} context ids; expected one per group "
                f"(num_groups={self.num_groups})"
            )
        self.position = 0
        self._obs_x = self.per_rollout(self.contexts.obs)
        if self.codec is not None:
            self._written = torch.zeros(
                self.num_rollouts, self.codec.num_digits, dtype=torch.long, device=self.core.device
            )
        return self.observation()

    def per_rollout(self, value: torch.Tensor) -> torch.Tensor:
        """Repeat a per-group tensor ``[G, ...]`` per rollout: ``[G * N, ...]`` (as is if N = 1)."""
        if self.group_size == 1:
            return value
        shape = (value.shape[0], self.group_size, *value.shape[1:])
        return value.unsqueeze(1).expand(shape).reshape(-1, *value.shape[1:])

    def observation(self) -> torch.Tensor:
        """Current observations, float32 ``[num_rollouts, obs_dim]``."""
        assert self._obs_x is not None
        if self.codec is None:
            # A copy: callers may keep or change it, and the next step reports it as final_obs.
            return self._obs_x.clone()
        assert self._written is not None
        return torch.cat([self._obs_x, self.codec.step_features(self._written, self.position)], 1)

    def advance(self, action: torch.Tensor) -> tuple[torch.Tensor, bool, Scores | None]:
        """Apply one action per sub-env.

        Args:
            action: ``[num_rollouts, 1]`` floats (regression; clipped to [-1, 1]) or
                ``[num_rollouts]`` integers (classification, tokens).

        Returns:
            Rewards ``[num_rollouts]``, whether the episodes ended, and the scores (``[G, N]``)
            when they did, else None.

        Raises:
            ValueError: For a wrong shape, NaN or infinite values, or class ids out of range.
        """
        if self.contexts is None:
            raise RuntimeError("call reset() before step()")
        g, n = self.num_groups, self.group_size
        if self.kind == "regression":
            assert isinstance(self.core, RegressionCore)
            if tuple(action.shape) != (self.num_rollouts, 1):
                raise ValueError(
                    f"action shape {tuple(action.shape)} is invalid; expected "
                    f"({self.num_rollouts}, 1) floats in [-1, 1] (values outside are clipped)"
                )
            if not bool(torch.isfinite(action).all()):
                raise ValueError("action contains NaN or infinite values; actions must be finite")
            prediction = self.core.action_to_prediction(action.reshape(g, n))
            scores = self.core.score(self.contexts, prediction, validate=False)
            return scores.reward.reshape(-1), True, scores
        action = _as_discrete(action, self.num_rollouts, self._num_actions)
        if self.kind == "classification":
            scores = self.core.score(self.contexts, action.reshape(g, n), validate=False)
            return scores.reward.reshape(-1), True, scores
        assert self.codec is not None and self._written is not None
        if self.position >= self.episode_length:
            raise RuntimeError("the token episodes have ended; call begin() before advance()")
        self._written[:, self.position] = action
        self.position += 1
        if self.position < self.episode_length:
            zeros = torch.zeros(self.num_rollouts, device=self.core.device)
            return zeros, False, None
        assert isinstance(self.core, RegressionCore)
        prediction = self.codec.decode(self._written).reshape(g, n)
        scores = self.core.score(self.contexts, prediction, validate=False)
        return scores.reward.reshape(-1), True, scores

    def info_tensors(self, scores: Scores | None) -> dict[str, torch.Tensor]:
        """Per-rollout info ``[num_rollouts]`` for the current step (ids only mid-episode)."""
        assert self.contexts is not None
        info = {"context_id": self.per_rollout(self.contexts.ids)}
        if scores is None:
            return info
        info["target"] = self.per_rollout(self.contexts.target)
        info["signal"] = self.per_rollout(self.contexts.signal)
        for key in ("log_likelihood", "squared_error", "is_success", "prediction"):
            info[key] = getattr(scores, key).reshape(-1)
        return info


def _as_discrete(action: torch.Tensor, count: int, n: int) -> torch.Tensor:
    if tuple(action.shape) not in ((count,), (count, 1)):
        raise ValueError(
            f"action shape {tuple(action.shape)} is invalid; expected ({count},) integer actions"
        )
    if action.dtype == torch.bool:
        raise ValueError("action must hold integer class ids, got booleans")
    if action.is_floating_point() and not bool(
        (torch.isfinite(action) & (action == action.round())).all()
    ):
        raise ValueError("action must hold integers; got non-integer or non-finite values")
    action = action.reshape(-1).to(torch.long)
    if count and (int(action.min()) < 0 or int(action.max()) >= n):
        raise ValueError(
            f"action values must lie in [0, {n - 1}]; got min {int(action.min())}, "
            f"max {int(action.max())}"
        )
    return action
