"""Native vector environments: every sub-env stepped in one batched call of the core."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from maxrl_envs._checks import check_int
from maxrl_envs.engine import INFO_KEYS
from maxrl_envs.envs import make_episodes


class MaxRLVectorEnv(VectorEnv):
    """Batched twin of the single envs, with groups of sub-envs that share a context.

    ``num_envs = G * group_size``; sub-envs ``[g * N, (g + 1) * N)`` form group g and see the
    same context and target, so a step yields N rollouts for each of G contexts. Episodes of
    all sub-envs end together, and the env resets itself in the same step (SAME_STEP
    autoreset): the returned observations already belong to the next contexts, while
    ``info["final_obs"]`` and ``info["final_info"]`` hold the finished episodes' last
    observations and infos (masks ``_final_obs``/``_final_info``).

    On a CPU device observations, rewards and flags are numpy arrays; on another device
    (``device="cuda"``) they are torch tensors on that device, so agents keep the step there.

    Args:
        num_envs: Number of sub-envs, a multiple of ``group_size``.
        group_size: Rollouts per context N (default 1: every sub-env has its own context).
        split: ``train`` or ``test``.
        device: Torch device of the core.
        max_episode_steps: Accepted for ``gymnasium.make_vec``; must be None or the episode
            length (1, or ``num_digits`` for tokens).
        render_mode: Only None.
        **kwargs: The single env's keyword arguments.
    """

    kind = "regression"

    def __init__(
        self,
        num_envs: int = 1,
        group_size: int = 1,
        split: str = "train",
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        num_envs = check_int("num_envs", num_envs, 1)
        group_size = check_int("group_size", group_size, 1)
        if num_envs % group_size:
            raise ValueError(
                f"group_size={group_size!r} does not divide num_envs={num_envs!r}; "
                "num_envs must be a multiple of group_size (num_envs = contexts * group_size)"
            )
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None")
        self.episodes = make_episodes(
            self.kind, num_envs // group_size, group_size, split, device, kwargs
        )
        if max_episode_steps not in (None, self.episodes.episode_length):
            raise ValueError(
                f"max_episode_steps={max_episode_steps!r} is not supported; episodes always "
                f"last {self.episodes.episode_length} step(s), so pass None"
            )
        self.core = self.episodes.core
        self.num_envs = num_envs
        self.group_size = group_size
        self.num_groups = num_envs // group_size
        self.metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = None
        self.single_observation_space = self.episodes.observation_space()
        self.single_action_space = self.episodes.action_space()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._on_cpu = self.core.device.type == "cpu"
        self._generator: torch.Generator | None = None
        self._mask = np.ones(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start episodes on fresh contexts, or on ``options["context_id"]`` (one per group)."""
        if seed is not None:
            if isinstance(seed, (list, tuple)):
                seed = int(seed[0])
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        if seed is not None or self._generator is None:
            self._generator = self.core.make_generator(int(self.np_random.integers(0, 2**62)))
        options = options or {}
        if "context_id" in options:
            ids = torch.as_tensor(options["context_id"], device=self.core.device).reshape(-1)
            if ids.numel() == 1:
                ids = ids.expand(self.num_groups)
            if ids.numel() != self.num_groups:
                raise ValueError(
                    f"options['context_id'] has {ids.numel()} ids; expected 1 or one per "
                    f"group ({self.num_groups})"
                )
            obs = self.episodes.begin(ids)
        else:
            obs = self.episodes.begin(self._sample())
        info = {"context_id": self._out(self.episodes.info_tensors(None)["context_id"])}
        return self._out(obs), info

    def _sample(self) -> torch.Tensor:
        assert self._generator is not None
        return self.core.sample_ids(self.num_groups, self._generator, self.episodes.split)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step every sub-env; finished episodes restart on new contexts in the same call."""
        if self.episodes.contexts is None:
            raise RuntimeError("call reset() before step()")
        if self.episodes.kind == "regression":
            tensor = torch.as_tensor(actions, dtype=torch.float32, device=self.core.device)
            if tensor.dim() == 1 and tensor.shape[0] == self.num_envs:
                tensor = tensor.unsqueeze(1)
        else:
            tensor = torch.as_tensor(actions, device=self.core.device)
        reward, done, scores = self.episodes.advance(tensor)
        info_t = self.episodes.info_tensors(scores)
        if done:
            final_obs = self.episodes.observation()
            final_info = {key: self._out(value) for key, value in info_t.items()}
            final_info.update({f"_{key}": self._mask for key in info_t})
            obs = self.episodes.begin(self._sample())
            info: dict[str, Any] = dict(final_info)
            info["final_obs"] = self._out(final_obs)
            info["_final_obs"] = self._mask
            info["final_info"] = final_info
            info["_final_info"] = self._mask
            info["context_id"] = self._out(self.episodes.info_tensors(None)["context_id"])
        else:
            obs = self.episodes.observation()
            info = {"context_id": self._out(info_t["context_id"])}
        terminated = torch.full((self.num_envs,), done, device=self.core.device)
        truncated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.core.device)
        return self._out(obs), self._out(reward), self._out(terminated), self._out(truncated), info

    def _out(self, value: torch.Tensor) -> Any:
        return value.numpy() if self._on_cpu else value


class RegressionVectorEnv(MaxRLVectorEnv):
    """Native vector env of ``MaxRLRegression-v0`` and ``MaxRLVerifier-v0``."""

    kind = "regression"


class ClassificationVectorEnv(MaxRLVectorEnv):
    """Native vector env of ``MaxRLClassification-v0``."""

    kind = "classification"


class TokensVectorEnv(MaxRLVectorEnv):
    """Native vector env of ``MaxRLTokens-v0``."""

    kind = "tokens"


__all__ = [
    "INFO_KEYS",
    "ClassificationVectorEnv",
    "MaxRLVectorEnv",
    "RegressionVectorEnv",
    "TokensVectorEnv",
]
