"""Native vector environments: every sub-env stepped in one batched call of the core."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from maxrl_envs._threads import serial_on_cpu
from maxrl_envs.envs import make_episodes
from maxrl_envs.episodes import INFO_KEYS, action_tensor, context_ids, generator_seed
from maxrl_envs.kinds import TaskKind, get_kind
from maxrl_envs.render import RENDER_FPS, RENDER_MODES, check_render_mode, snapshot
from maxrl_envs.render import render as render_view
from maxrl_envs.validation import SEED_MAX, check_int, check_options, physical_memory


class MaxRLVectorEnv(VectorEnv):
    """Batched twin of the single envs, with groups of sub-envs that share a context.

    ``num_envs = B * group_size``; sub-envs ``[g * N, (g + 1) * N)`` form group g and see the
    same context and target, so a step yields N rollouts for each of B contexts. Episodes of
    all sub-envs end together, and the env resets itself in the same step (SAME_STEP
    autoreset): the returned observations already belong to the next contexts, while
    ``info["final_obs"]`` and ``info["final_info"]`` hold the finished episodes' last
    observations and infos (masks ``_final_obs``/``_final_info``). The score keys
    (``INFO_KEYS``) are also copied to the top level of ``info``, where they describe the
    finished episodes; ``info["context_id"]`` always names the current (new) contexts and
    ``info["final_info"]["context_id"]`` the finished ones.

    With ``autoreset_mode="next_step"`` the env follows Gymnasium's NEXT_STEP convention
    instead, which Gymnasium's vector ``NormalizeObservation`` requires: the step that ends
    the episodes returns their last observations and infos directly (no ``final_obs``), and
    the next ``step()`` call ignores its actions, starts the new episodes and returns their
    first observations with reward 0 and ``terminated=truncated=False``. Every other step
    is the same in both modes, and a seed draws the same contexts in both.

    A reset or step with the same seed and actions always gives the same result: all
    sub-envs draw their contexts from one torch generator seeded from the env's ``np_random``
    (``maxrl_envs.episodes.generator_seed``), one id per group per episode, so ``num_envs=1``
    replays the single env exactly.

    On a CPU device observations, rewards and flags are numpy arrays; on another device
    (``device="cuda"``) they are torch tensors on that device, so agents keep the step there.

    Args:
        kind: Task kind name (registered ids pass it; see ``maxrl_envs.kinds``).
        num_envs: Number of sub-envs, a multiple of ``group_size``.
        group_size: Rollouts per context N (default 1: every sub-env has its own context).
        split: ``train``, ``validation`` or ``test``.
        device: Torch device of the core.
        max_episode_steps: Accepted for ``gymnasium.make_vec``; must be None or the episode
            length (1, or ``num_digits`` for tokens).
        autoreset_mode: ``"same_step"`` (default) or ``"next_step"`` (or the
            ``gymnasium.vector.AutoresetMode`` members), as described above.
        render_mode: None, ``"ansi"`` or ``"rgb_array"``: ``render()`` returns a tuple with
            one line or frame per sub-env, drawn from the last finished episodes (before the
            first step, the current contexts); a frame shows the whole group's predictions
            as a histogram (the predictive distribution over its N rollouts).
        **kwargs: The single env's keyword arguments.

    >>> import gymnasium, maxrl_envs
    >>> envs = gymnasium.make_vec("MaxRLRegression-v0", num_envs=8, group_size=4)
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape, obs.dtype
    ((8, 8), dtype('float32'))
    >>> ids = info["context_id"].reshape(2, 4)  # one row per group of 4 sub-envs
    >>> bool((ids == ids[:, :1]).all()), bool((obs[:4] == obs[0]).all())
    (True, True)
    >>> obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    >>> reward.shape, bool(terminated.all()), bool(truncated.any())
    ((8,), True, False)
    >>> info["final_obs"].shape, sorted(info["final_info"])[:3]
    ((8, 8), ['_context_id', '_is_success', '_log_likelihood'])
    """

    def __init__(
        self,
        kind: str | TaskKind = "regression",
        num_envs: int = 1,
        group_size: int = 1,
        split: str = "train",
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP,
        **kwargs: Any,
    ) -> None:
        autoreset_mode = check_autoreset_mode(autoreset_mode)
        num_envs = check_int("num_envs", num_envs, 1)
        group_size = check_int("group_size", group_size, 1)
        if num_envs % group_size:
            raise ValueError(
                f"group_size={group_size!r} does not divide num_envs={num_envs!r}; "
                "num_envs must be a multiple of group_size (num_envs = num_groups * group_size)"
            )
        render_mode = check_render_mode(render_mode)
        self.kind = get_kind(kind)
        self.episodes = make_episodes(
            self.kind, num_envs // group_size, group_size, split, device, kwargs
        )
        if max_episode_steps not in (None, self.episodes.episode_length):
            raise ValueError(
                f"max_episode_steps={max_episode_steps!r} is not supported; episodes always "
                f"last {self.episodes.episode_length} step(s), so pass None"
            )
        _check_batch_memory(num_envs, self.episodes.obs_dim)
        self.task = self.episodes.task
        self.core = self.episodes.core
        self.num_envs = num_envs
        self.group_size = group_size
        self.num_groups = num_envs // group_size
        self.metadata = {
            "render_modes": list(RENDER_MODES),
            "render_fps": RENDER_FPS,
            "autoreset_mode": autoreset_mode,
        }
        self._next_step = autoreset_mode == AutoresetMode.NEXT_STEP
        self._autoreset_pending = False
        self.render_mode = render_mode
        # What render() draws: (contexts, scores or None), kept only with a render mode.
        self._drawn: tuple[Any, Any] | None = None
        self.single_observation_space = self.episodes.observation_space()
        self.single_action_space = self.episodes.action_space()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._on_cpu = self.core.device.type == "cpu"
        self._generator: torch.Generator | None = None
        # One read-only all-True mask serves every "_key" entry of the infos: all sub-envs
        # always finish together, and building fresh masks per step costs more than the step.
        self._mask = np.ones(num_envs, dtype=bool)
        self._mask.setflags(write=False)
        self._final_masks = {f"_{key}": self._mask for key in ("context_id", *INFO_KEYS)}

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start episodes on fresh contexts, or on ``options["context_id"]`` (one per group).

        Args:
            seed: Seed of the whole vector env (a list uses its first entry): every sub-env's
                contexts come from one stream derived from it, so ``num_envs`` and
                ``group_size`` together with the seed fix every context drawn.
            options: ``{"context_id": i}`` replays context i in every group, or one id per
                group ``[num_groups]``; the ids must lie in the split's pool.

        Returns:
            Observations ``[num_envs, obs_dim]`` and ``{"context_id": [num_envs]}``.
        """
        with serial_on_cpu(self.core.device):
            return self._reset(seed, options)

    def _reset(
        self, seed: int | list[int] | None, options: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        seed = _check_seed(seed)
        self._autoreset_pending = False
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        if seed is not None or self._generator is None:
            self._generator = self.core.make_generator(generator_seed(self.np_random))
        options = check_options(options, ("context_id",))
        if "context_id" in options:
            ids = context_ids(options["context_id"], (1, self.num_groups), self.core.device)
            obs = self.episodes.begin(ids.expand(self.num_groups))
        else:
            obs = self.episodes.begin(self._sample(), validate=False)
        if self.render_mode is not None:
            self._drawn = (self.episodes.contexts, None)
        return self._out(obs), {"context_id": self._out(self._context_ids())}

    def _sample(self) -> torch.Tensor:
        assert self._generator is not None
        return self.core.sample_ids(self.num_groups, self._generator, self.episodes.split)

    def _context_ids(self) -> torch.Tensor:
        assert self.episodes.contexts is not None
        return self.episodes.per_rollout(self.episodes.contexts.ids)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step every sub-env; finished episodes restart on new contexts in the same call.

        Args:
            actions: ``[num_envs, 1]`` (or ``[num_envs]``) floats for Box actions, values
                outside [-1, 1] clipped; ``[num_envs]`` integers for Discrete actions.

        Returns:
            ``(obs, reward, terminated, truncated, info)``. When the episodes end, the scores
            keys of ``info`` (``INFO_KEYS``) and ``info["final_info"]`` describe the finished
            episodes, ``info["final_obs"]`` holds their last observations, while ``obs`` and
            ``info["context_id"]`` already belong to the new episodes.
        """
        with serial_on_cpu(self.core.device):
            return self._step(actions)

    def _step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        episodes = self.episodes
        if episodes.contexts is None:
            raise RuntimeError("call reset() before step()")
        tensor = action_tensor(self.single_action_space, actions, self.num_envs, self.core.device)
        if self._autoreset_pending:  # NEXT_STEP: this step only starts the new episodes
            return self._autoreset()
        reward, done, scores = episodes.advance(tensor)
        info: dict[str, Any]
        if done and self._next_step:
            info = {key: self._out(value) for key, value in episodes.info_tensors(scores).items()}
            info.update(self._final_masks)
            if self.render_mode is not None:
                self._drawn = (episodes.contexts, scores)
            self._autoreset_pending = True
            obs = episodes.observation()
        elif not done:
            info = {"context_id": self._out(self._context_ids())}
            obs = episodes.observation()
        else:
            final_info = {
                key: self._out(value) for key, value in episodes.info_tensors(scores).items()
            }
            final_info.update(self._final_masks)
            final_obs = episodes.observation()
            if self.render_mode is not None:
                self._drawn = (episodes.contexts, scores)
            obs = episodes.begin(self._sample(), validate=False)
            info = dict(final_info)
            info["final_obs"] = self._out(final_obs)
            info["_final_obs"] = self._mask
            info["final_info"] = final_info
            info["_final_info"] = self._mask
            info["context_id"] = self._out(self._context_ids())
        return (
            self._out(obs),
            self._out(reward),
            self._flags(done),
            self._flags(False),
            info,
        )

    def render(self) -> tuple[Any, ...] | None:
        """One line (``"ansi"``) or uint8 frame (``"rgb_array"``) per sub-env, or None.

        They describe the last finished episodes (SAME_STEP autoreset has already begun the
        next ones), or the current contexts before the first step; None without a render
        mode or before ``reset()``.
        """
        if self.render_mode is None or self._drawn is None:
            return None
        contexts, scores = self._drawn
        view = snapshot(self.episodes, scores, contexts)
        return tuple(render_view(view, self.render_mode, i) for i in range(view.num_rollouts))

    def _autoreset(self) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """NEXT_STEP's reset step: new episodes on fresh contexts, reward 0, no flags."""
        self._autoreset_pending = False
        obs = self.episodes.begin(self._sample(), validate=False)
        reward = torch.zeros(self.num_envs, device=self.core.device)
        info = {"context_id": self._out(self._context_ids())}
        return self._out(obs), self._out(reward), self._flags(False), self._flags(False), info

    def _flags(self, value: bool) -> Any:
        if self._on_cpu:
            return np.full(self.num_envs, value)
        return torch.full((self.num_envs,), value, device=self.core.device)

    def _out(self, value: torch.Tensor) -> Any:
        return value.numpy() if self._on_cpu else value


#: ``autoreset_mode`` values the native vector env accepts, by their names in lower case.
AUTORESET_MODES = {"same_step": AutoresetMode.SAME_STEP, "next_step": AutoresetMode.NEXT_STEP}


def check_autoreset_mode(value: Any) -> AutoresetMode:
    """``AutoresetMode.SAME_STEP`` or ``NEXT_STEP`` from the member or its name.

    Accepts the enum members and the strings ``"same_step"``/``"next_step"`` (any case, or
    Gymnasium's values ``"SameStep"``/``"NextStep"``); anything else is a ``ValueError``.
    """
    if isinstance(value, AutoresetMode) and value in AUTORESET_MODES.values():
        return value
    if isinstance(value, str):
        for name, mode in AUTORESET_MODES.items():
            if value.lower() in (name, mode.value.lower()):
                return mode
    raise ValueError(
        f"autoreset_mode={value!r} is not supported; allowed: 'same_step' (default), "
        "'next_step' or their gymnasium.vector.AutoresetMode members"
    )


def _check_batch_memory(num_envs: int, obs_dim: int) -> None:
    """Refuse a ``num_envs`` whose batched spaces and observations cannot fit in memory.

    At least 16 bytes per observation value: the batched observation space's float32 bounds
    (two arrays) and the observations and final observations of a step. ``num_envs = 2**40``
    once failed in numpy with a bare ``MemoryError`` (32 TiB).
    """
    memory = physical_memory()
    need = 16 * num_envs * obs_dim
    if memory is not None and need > memory:
        raise ValueError(
            f"num_envs={num_envs} with observations of {obs_dim} values would need at least "
            f"{need / 2**30:.1f} GiB; allowed: at most this machine's memory, "
            f"{memory / 2**30:.1f} GiB (num_envs <= {memory // (16 * obs_dim):_})"
        )


def _check_seed(seed: Any) -> int | None:
    """A vector env's seed: None, a seed, or a non-empty list whose first entry is one.

    A seed is an integer in [0, 2**32 - 1] (``validation.SEED_MAX``).
    """
    value = seed[0] if isinstance(seed, (list, tuple)) and len(seed) else seed
    if value is None and not isinstance(seed, (list, tuple)):
        return None
    if (
        isinstance(value, bool)
        or not hasattr(value, "__index__")
        or not 0 <= int(value) <= SEED_MAX
    ):
        raise ValueError(
            f"seed={seed!r} is invalid; allowed: None, an integer in [0, {SEED_MAX}] (torch's "
            "CPU generator keeps 32 bits), or a non-empty list whose first entry is one (it "
            "seeds every sub-env)"
        )
    return int(value)


__all__ = ["AUTORESET_MODES", "INFO_KEYS", "MaxRLVectorEnv", "check_autoreset_mode"]
