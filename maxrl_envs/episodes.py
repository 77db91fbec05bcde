"""Episode logic shared by the single env and the vector env.

``GroupEpisodes`` runs ``num_groups * group_size`` sub-episodes of a ``Task``. Each run of
``group_size`` consecutive sub-episodes shares one context, so one step of a one-step kind
yields ``group_size`` rollouts (N) for each of ``num_groups`` contexts (B). Every shell
(single env, vector env, Stable-Baselines3 adapter) is this class plus space and type
conversions; what differs between kinds is asked of the task's kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from maxrl_envs.core import SPLITS, Contexts, Scores
from maxrl_envs.kinds import Task
from maxrl_envs.validation import check_choice, check_int

#: Keys of the per-rollout ``info`` every env returns when an episode ends.
INFO_KEYS = ("log_likelihood", "target", "signal", "squared_error", "is_success", "prediction")


def generator_seed(np_random: np.random.Generator) -> int:
    """Seed of the torch generator that draws context ids, taken from an env's ``np_random``.

    Every shell derives its context stream this way from the Gymnasium seed, so
    ``core.make_generator(generator_seed(gymnasium.utils.seeding.np_random(seed)[0]))``
    reproduces the contexts that ``env.reset(seed=seed)`` draws.
    """
    return int(np_random.integers(0, 2**62))


def action_tensor(space: spaces.Space, actions: Any, count: int, device: torch.device) -> Any:
    """Turn user actions for ``count`` sub-envs into the tensor ``GroupEpisodes`` checks.

    Box actions become float32 ``[count, 1]`` (a flat ``[count]`` is accepted); discrete ones
    keep their integer dtype. Strings, objects and other non-numeric arrays are refused here,
    before numpy could parse a string such as ``'0.5'`` into a number.
    """
    if isinstance(actions, torch.Tensor):
        tensor = actions.to(device)
    else:
        array = np.asarray(actions)
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"action {actions!r} is invalid; expected numbers for {space} "
                f"(got an array of dtype {array.dtype})"
            )
        tensor = torch.as_tensor(array, device=device)
    if isinstance(space, spaces.Box):
        if tensor.dtype == torch.bool:
            raise ValueError(f"action {actions!r} is invalid; expected floats for {space}")
        tensor = tensor.to(torch.float32)
        if tensor.numel() == count and tensor.dim() <= 1:
            tensor = tensor.reshape(count, 1)
    return tensor


def context_ids(value: Any, counts: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Check ``reset(options={"context_id": ...})``: one integer id, or a sequence of them.

    Args:
        value: The option's value.
        counts: How many ids are accepted (e.g. ``(1,)`` or ``(1, num_groups)``).
        device: Device of the returned tensor.

    Returns:
        Long tensor of the ids, ``[count]`` (range checks are left to the core).
    """
    where = f"options['context_id']={value!r}"
    allowed = " or ".join(str(c) for c in counts)
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
    else:
        array = np.asarray(value) if value is not None else np.asarray(None, dtype=object)
    if array.dtype.kind not in "iu":
        raise ValueError(
            f"{where} is invalid; allowed: {allowed} integer context id(s) (not bools, "
            "floats, strings or None)"
        )
    ids = torch.as_tensor(array.reshape(-1), dtype=torch.long, device=device)
    if ids.numel() not in counts:
        raise ValueError(f"{where} has {ids.numel()} ids; allowed: {allowed}")
    return ids


class GroupEpisodes:
    """Synchronous grouped episodes of a task.

    Args:
        task: The task (kind, core, codec).
        num_groups: Contexts per step, B >= 1.
        group_size: Rollouts per context, N >= 1.
        split: Context split to draw from, ``train``, ``validation`` or ``test``.
    """

    def __init__(self, task: Task, num_groups: int, group_size: int, split: str = "train") -> None:
        self.task = task
        self.core = task.core
        self.split = check_choice("split", split, SPLITS)
        self.num_groups = check_int("num_groups", num_groups, 1)
        self.group_size = check_int("group_size", group_size, 1)
        self.num_rollouts = self.num_groups * self.group_size
        self.episode_length = task.episode_length
        self.step_space = task.step_action_space()
        self.contexts: Contexts | None = None
        self.position = 0
        self._written: torch.Tensor | None = None
        self._obs_x: torch.Tensor | None = None

    @property
    def obs_dim(self) -> int:
        """Observation length."""
        return self.core.obs_dim + self.task.kind.extra_obs_dim(self.task.codec)

    def observation_space(self) -> spaces.Box:
        """The observation space of one sub-env."""
        return spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)

    def action_space(self) -> spaces.Space:
        """The action space of one sub-env (one step)."""
        return self.step_space

    def begin(self, ids: torch.Tensor, validate: bool = True) -> torch.Tensor:
        """Start new episodes on contexts ``ids`` ([num_groups]); return the first observations.

        Args:
            ids: One context id per group, ``[num_groups]``.
            validate: Check the ids' range; skip only for ids drawn by ``core.sample_ids``.

        Returns:
            Observations, float32 ``[num_rollouts, obs_dim]``.
        """
        contexts = self.core.contexts(ids, self.split, validate=validate)
        if contexts.ids.shape[0] != self.num_groups:
            raise ValueError(
                f"begin() got {contexts.ids.shape[0]} context ids; expected one per group "
                f"(num_groups={self.num_groups})"
            )
        self.contexts = contexts
        self.position = 0
        self._obs_x = self.per_rollout(contexts.obs)
        if self.episode_length > 1:
            dtype = torch.float32 if isinstance(self.step_space, spaces.Box) else torch.long
            self._written = torch.zeros(
                self.num_rollouts, self.episode_length, dtype=dtype, device=self.core.device
            )
        return self.observation()

    def per_rollout(self, value: torch.Tensor) -> torch.Tensor:
        """Repeat a per-group tensor ``[B, ...]`` per rollout: ``[B * N, ...]`` (as is if N = 1)."""
        if self.group_size == 1:
            return value
        shape = (value.shape[0], self.group_size, *value.shape[1:])
        return value.unsqueeze(1).expand(shape).reshape(-1, *value.shape[1:])

    def observation(self) -> torch.Tensor:
        """Current observations, float32 ``[num_rollouts, obs_dim]``."""
        assert self._obs_x is not None
        if self._written is None:
            # A copy: callers may keep or change it, and the next step reports it as final_obs.
            return self._obs_x.clone()
        features = self.task.step_features(self._written, self.position)
        return torch.cat([self._obs_x, features], 1)

    def advance(self, action: torch.Tensor) -> tuple[torch.Tensor, bool, Scores | None]:
        """Apply one action per sub-env.

        Args:
            action: ``[num_rollouts, 1]`` floats (Box; clipped to [-1, 1] when scored) or
                ``[num_rollouts]`` integers (Discrete).

        Returns:
            Rewards ``[num_rollouts]``, whether the episodes ended, and the scores (``[B, N]``)
            when they did, else None.

        Raises:
            ValueError: For a wrong shape, NaN or infinite values, or ids out of range.
        """
        if self.contexts is None:
            raise RuntimeError("call reset() before step()")
        step = _check_step(self.step_space, action, self.num_rollouts)
        b, n = self.num_groups, self.group_size
        if self._written is None:
            rollouts = step.reshape(b, n)
        else:
            if self.position >= self.episode_length:
                raise RuntimeError("the episodes have ended; call begin() before advance()")
            self._written[:, self.position] = step
            self.position += 1
            if self.position < self.episode_length:
                return torch.zeros(self.num_rollouts, device=self.core.device), False, None
            rollouts = self._written.reshape(b, n, self.episode_length)
        scores = self.task.score_rollouts(self.contexts, rollouts, validate=False)
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


def _check_step(space: spaces.Space, action: torch.Tensor, count: int) -> torch.Tensor:
    """Validate one step's actions for ``count`` sub-envs; return them flat, ``[count]``."""
    if isinstance(space, spaces.Box):
        if tuple(action.shape) != (count, 1):
            raise ValueError(
                f"action shape {tuple(action.shape)} is invalid; expected "
                f"({count}, 1) floats in [-1, 1] (values outside are clipped)"
            )
        if not bool(torch.isfinite(action).all()):
            raise ValueError("action contains NaN or infinite values; actions must be finite")
        return action.reshape(count)
    if not isinstance(space, spaces.Discrete):
        raise ValueError(f"action space {space} is not supported by GroupEpisodes")
    n = int(space.n)
    if tuple(action.shape) not in ((count,), (count, 1)):
        raise ValueError(
            f"action shape {tuple(action.shape)} is invalid; expected ({count},) integer actions"
        )
    if action.dtype == torch.bool:
        raise ValueError("action must hold integer ids, got booleans")
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
