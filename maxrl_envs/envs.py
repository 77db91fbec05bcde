"""Single Gymnasium environments: thin shells over ``GroupEpisodes`` with one rollout."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from maxrl_envs._threads import serial_on_cpu
from maxrl_envs.episodes import GroupEpisodes, action_tensor, context_ids, generator_seed
from maxrl_envs.kinds import TaskKind, get_kind
from maxrl_envs.render import RENDER_FPS, RENDER_MODES, check_render_mode, snapshot
from maxrl_envs.render import render as render_view
from maxrl_envs.validation import check_options, check_seed

#: Keyword arguments every shell takes besides its kind's own.
SHELL_KWARGS = ("split", "device")


def make_episodes(
    kind: str | TaskKind,
    num_groups: int,
    group_size: int,
    split: str,
    device: str | torch.device,
    kwargs: dict[str, Any],
) -> GroupEpisodes:
    """Build a task of ``kind`` from env keywords and wrap it in ``GroupEpisodes``."""
    task = get_kind(kind).build(device, kwargs, SHELL_KWARGS)
    return GroupEpisodes(task, num_groups, group_size, split=split)


class MaxRLEnv(gym.Env):
    """A maxrl_envs task as a single Gymnasium env: one rollout per episode.

    What the env is (spaces, rewards, arguments) depends on its ``kind``; each kind's card
    is the docstring of its class in ``maxrl_envs.kinds`` (``RegressionKind``,
    ``ClassificationKind``, ``TokensKind``) and in ``docs/environments.md``. Registered ids
    pass ``kind`` themselves, so ``gymnasium.make(env_id)`` needs no kind argument.

    Args:
        kind: Task kind name (see ``maxrl_envs.kinds.TASK_KINDS``).
        split: ``train``, ``validation`` or ``test``.
        device: Torch device of the core.
        group_size: Only 1; groups need the vector env.
        render_mode: None, ``"ansi"`` (``render()`` returns one line: context, target,
            prediction, log-likelihood, reward) or ``"rgb_array"`` (a small uint8 picture of
            the target and the prediction; see ``maxrl_envs.render``).
        **kwargs: The kind's keyword arguments (``task``, ``snr``, ``head``, ...).

    >>> import gymnasium, maxrl_envs
    >>> env = gymnasium.make("MaxRLVerifier-v0", snr=4.0)
    >>> obs, info = env.reset(seed=0, options={"context_id": 3})
    >>> info["context_id"], env.unwrapped.kind.name
    (3, 'regression')
    >>> _, reward, terminated, _, info = env.step([0.1])
    >>> reward in (0.0, 1.0), terminated, sorted(info)[:3]
    (True, True, ['context_id', 'is_success', 'log_likelihood'])
    """

    metadata: dict[str, Any] = {"render_modes": list(RENDER_MODES), "render_fps": RENDER_FPS}

    def __init__(
        self,
        kind: str | TaskKind = "regression",
        split: str = "train",
        device: str | torch.device = "cpu",
        group_size: int = 1,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if group_size != 1:
            raise ValueError(
                f"group_size={group_size!r} needs the native vector env: use gymnasium.make_vec("
                "id, num_envs=B*N, group_size=N) with the default vectorization_mode"
            )
        self.render_mode = check_render_mode(render_mode)
        self.kind = get_kind(kind)
        self.episodes = make_episodes(self.kind, 1, 1, split, device, kwargs)
        self.task = self.episodes.task
        self.core = self.episodes.core
        self.observation_space = self.episodes.observation_space()
        self.action_space = self.episodes.action_space()
        self._generator: torch.Generator | None = None
        self._ended = True
        self._scored: Any = None  # the last step's scores while its episode is drawn

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a random context, or on ``options["context_id"]``.

        ``seed`` is None or an integer in [0, 2**32 - 1] (``validation.SEED_MAX``).
        """
        if seed is not None:
            check_seed("seed", seed)
        super().reset(seed=seed)
        if seed is not None or self._generator is None:
            self._generator = self.core.make_generator(generator_seed(self.np_random))
        with serial_on_cpu(self.core.device):
            return self._reset(options)

    def _reset(self, options: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
        options = check_options(options, ("context_id",))
        if "context_id" in options:
            ids = context_ids(options["context_id"], (1,), self.core.device)
            obs = self.episodes.begin(ids)
        else:
            ids = self.core.sample_ids(1, self._generator, self.episodes.split)
            obs = self.episodes.begin(ids)
        self._ended = False
        self._scored = None
        return self._obs(obs), {"context_id": int(ids[0])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one action; the head scores the prediction when the episode ends."""
        with serial_on_cpu(self.core.device):
            return self._step(action)

    def _step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._ended:
            raise RuntimeError("call reset() before step(): no episode is running")
        tensor = action_tensor(self.action_space, action, 1, self.core.device)
        box = isinstance(self.action_space, spaces.Box)
        if tensor.numel() != 1:
            expected = "shape (1,) in [-1, 1]" if box else "one integer"
            raise ValueError(f"action {action!r} is invalid; expected {expected}")
        shape = (1, 1) if box else (1,)
        reward, done, scores = self.episodes.advance(tensor.reshape(shape))
        self._ended = done
        self._scored = scores
        info = {key: _scalar(value[0]) for key, value in self.episodes.info_tensors(scores).items()}
        obs = self._obs(self.episodes.observation())
        return obs, float(reward[0]), bool(done), False, info

    def render(self) -> str | np.ndarray | None:
        """The current (or just finished) episode: a line (``"ansi"``) or a uint8 frame.

        Returns None without a render mode or before the first ``reset()``.
        """
        if self.render_mode is None or self.episodes.contexts is None:
            return None
        return render_view(snapshot(self.episodes, self._scored), self.render_mode)

    @staticmethod
    def _obs(obs: torch.Tensor) -> np.ndarray:
        return obs[0].detach().cpu().numpy().astype(np.float32, copy=True)


def _scalar(value: torch.Tensor) -> Any:
    item = value.item()
    return bool(item) if value.dtype == torch.bool else item


__all__ = ["SHELL_KWARGS", "MaxRLEnv", "make_episodes"]
