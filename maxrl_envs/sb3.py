"""Stable-Baselines3 adapter: the native vector env presented as an SB3 ``VecEnv``.

Stable-Baselines3 cannot consume a Gymnasium ``VectorEnv``. ``SB3VecEnv`` wraps the native
``MaxRLVectorEnv`` so that PPO, A2C, SAC, TD3 and DQN train on the same batched env (and the
same contexts, targets and rewards) as the MaxRL agents::

    from stable_baselines3 import PPO
    from maxrl_envs.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("MaxRLRegression-v0", num_envs=256, seed=0, snr=10.0)
    PPO("MlpPolicy", venv, n_steps=8).learn(20_000)

SB3 conventions it follows: ``dones = terminated | truncated``; the native env resets itself
in the same step, so the finished episodes' last observations go to
``infos[i]["terminal_observation"]`` and their scores (``INFO_KEYS``, ``context_id``) to
``infos[i]``; ``infos[i]["TimeLimit.truncated"]`` is always False (episodes never time out);
rewards are float32 numpy arrays; ``is_success`` in the final infos feeds SB3's
``rollout/success_rate``. ``make_sb3_vec_env`` wraps the adapter in ``VecMonitor`` so SB3 logs
``rollout/ep_rew_mean`` and ``rollout/ep_len_mean``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from maxrl_envs.episodes import INFO_KEYS
from maxrl_envs.registration import env_kind
from maxrl_envs.validation import check_int, check_seed
from maxrl_envs.vector import MaxRLVectorEnv

#: Keys copied from the native env's final infos into each finished sub-env's SB3 info.
FINAL_INFO_KEYS = ("context_id", *INFO_KEYS)


class SB3VecEnv(VecEnv):
    """A ``MaxRLVectorEnv`` behind Stable-Baselines3's ``VecEnv`` interface.

    All sub-envs live in one native env object, so:

    * ``seed(s)`` seeds the whole native env with ``s`` at the next ``reset()`` (SB3 records
      ``s + i`` for sub-env i; only the first entry is used, and the native env derives every
      sub-env's context stream from it). The same seed and actions give the same
      observations and rewards as ``venv.reset(seed=s)`` and ``venv.step`` directly.
    * ``set_options(options)`` passes one options dict to the native ``reset``, e.g.
      ``{"context_id": ids}`` with one id per group; per-sub-env options that differ are
      rejected.
    * ``get_attr(name)`` reads the native env's attribute once and returns it for every
      requested index; ``observation_space``/``action_space`` give the single sub-env's
      spaces, as they would for ``DummyVecEnv``.
    * ``set_attr`` writes the one native env, so it needs ``indices=None`` (or all indices).
    * ``env_method(name, ...)`` calls the native env's method once and returns the result for
      every requested index.

    :param venv: The native vector env (``gymnasium.make_vec(env_id, num_envs=...)`` with the
        default vectorization mode, or its ``.unwrapped``).

    >>> import gymnasium, numpy as np, maxrl_envs
    >>> from maxrl_envs.sb3 import SB3VecEnv
    >>> venv = SB3VecEnv(gymnasium.make_vec("MaxRLRegression-v0", num_envs=4))
    >>> venv.seed(0)
    [0, 1, 2, 3]
    >>> obs = venv.reset()
    >>> obs.shape, obs.dtype
    ((4, 8), dtype('float32'))
    >>> obs, rewards, dones, infos = venv.step(np.zeros((4, 1), dtype=np.float32))
    >>> rewards.dtype, dones.tolist()
    (dtype('float32'), [True, True, True, True])
    >>> first = infos[0]
    >>> first["terminal_observation"].shape, first["TimeLimit.truncated"]
    ((8,), False)
    """

    def __init__(self, venv: MaxRLVectorEnv) -> None:
        native = getattr(venv, "unwrapped", venv)
        if not isinstance(native, MaxRLVectorEnv):
            raise ValueError(
                f"venv={venv!r} is not a maxrl_envs native vector env; build it with "
                "gymnasium.make_vec(env_id, num_envs=n) (vectorization_mode='vector_entry_point')"
            )
        if native.metadata["autoreset_mode"] != gymnasium.vector.AutoresetMode.SAME_STEP:
            raise ValueError(
                f"autoreset_mode={native.metadata['autoreset_mode'].value!r} is not supported by "
                "SB3VecEnv; allowed: 'same_step' (the default of gymnasium.make_vec), which SB3's "
                "VecEnv convention (terminal_observation) follows"
            )
        self.venv = native
        self._on_cpu = native.core.device.type == "cpu"
        self._actions: Any = None
        super().__init__(
            native.num_envs, native.single_observation_space, native.single_action_space
        )
        self.metadata = {"render_modes": [], "autoreset_mode": native.metadata["autoreset_mode"]}

    # -- stepping -----------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        """Reset every sub-env (with the seed and options set since the last reset, if any)."""
        seed = self._seeds[0]
        options = self._options[0]
        if any(not _same_options(other, options) for other in self._options[1:]):
            raise ValueError(
                "set_options got different options per sub-env; the native vector env takes "
                "one options dict for all sub-envs, e.g. {'context_id': ids_per_group}"
            )
        obs, info = self.venv.reset(seed=seed, options=options or None)
        self.reset_infos = self._context_infos(info["context_id"])
        self._reset_seeds()
        self._reset_options()
        return self._numpy(obs).astype(np.float32, copy=False)

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions: ``[n, 1]`` floats (Box) or ``[n]`` integers (Discrete)."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step the native env with the stored actions; return ``(obs, rewards, dones, infos)``."""
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        actions, self._actions = self._actions, None
        obs, reward, terminated, truncated, info = self.venv.step(actions)
        terminated = self._numpy(terminated)
        truncated = self._numpy(truncated)
        dones = terminated | truncated
        if not dones.any():
            infos = self._context_infos(info["context_id"])
        else:
            infos = self._final_infos(info, dones, terminated, truncated)
            # The native env has already reset itself; SB3 keeps the new episodes' infos here.
            self.reset_infos = self._context_infos(info["context_id"])
        rewards = self._numpy(reward).astype(np.float32, copy=True)
        return self._numpy(obs).astype(np.float32, copy=False), rewards, dones, infos

    def _final_infos(
        self,
        info: dict[str, Any],
        dones: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> list[dict[str, Any]]:
        final = info["final_info"]
        columns = [self._numpy(final[key]).tolist() for key in FINAL_INFO_KEYS]
        infos = [dict(zip(FINAL_INFO_KEYS, row, strict=True)) for row in zip(*columns, strict=True)]
        final_obs = self._numpy(info["final_obs"])
        current_ids = self._numpy(info["context_id"]).tolist()
        time_limit = (truncated & ~terminated).tolist()
        for i, (done, sub_info) in enumerate(zip(dones.tolist(), infos, strict=True)):
            if done:
                sub_info["terminal_observation"] = final_obs[i]
                sub_info["TimeLimit.truncated"] = time_limit[i]
            else:
                infos[i] = {"context_id": current_ids[i], "TimeLimit.truncated": False}
        return infos

    def _context_infos(self, context_ids: Any) -> list[dict[str, Any]]:
        return [
            {"context_id": i, "TimeLimit.truncated": False}
            for i in self._numpy(context_ids).tolist()
        ]

    def _numpy(self, value: Any) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().numpy()
        return np.asarray(value)

    def close(self) -> None:
        """Close the native env."""
        self.venv.close()

    # -- attributes and methods -----------------------------------------------------------

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The native env's attribute, once per requested index (single-env spaces)."""
        count = len(self._indices(indices))
        if attr_name == "observation_space":
            value = self.venv.single_observation_space
        elif attr_name == "action_space":
            value = self.venv.single_action_space
        else:
            value = getattr(self.venv, attr_name)
        return [value] * count

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the native env; every sub-env shares it, so all indices."""
        if sorted(self._indices(indices)) != list(range(self.num_envs)):
            raise ValueError(
                f"set_attr({attr_name!r}) with indices={indices!r}: all sub-envs share one "
                "native env object, so an attribute can only be set for all of them "
                "(indices=None)"
            )
        setattr(self.venv, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a native env method once; return its result once per requested index."""
        count = len(self._indices(indices))
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * count

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Always False: no Gymnasium wrapper sits between SB3 and the native env."""
        return [False] * len(self._indices(indices))

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, (int, np.integer)):
            indices = [int(indices)]
        assert isinstance(indices, Iterable)
        chosen = [int(i) for i in indices]
        bad = [i for i in chosen if not 0 <= i < self.num_envs]
        if bad:
            raise ValueError(f"indices={bad!r} out of range for num_envs={self.num_envs}")
        return chosen


def _same_options(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(np.array_equal(np.asarray(a[key]), np.asarray(b[key])) for key in a)


def make_sb3_vec_env(
    env_id: str = "MaxRLRegression-v0",
    num_envs: int = 16,
    seed: int | None = None,
    monitor: bool = True,
    **kwargs: Any,
) -> VecEnv:
    """Build a registered id's native vector env as a Stable-Baselines3 ``VecEnv``.

    Args:
        env_id: A registered id (see ``maxrl_envs.all_ids()``).
        num_envs: Number of sub-envs (a multiple of ``group_size`` if given).
        seed: Seed applied at the first ``reset()``, in [0, 2**32 - 1] (None: a random one).
        monitor: Wrap the adapter in ``VecMonitor`` so SB3 logs ``rollout/ep_rew_mean``.
        **kwargs: Env keyword arguments (``group_size``, ``split``, ``device``, ``snr``, ...).

    Returns:
        ``VecMonitor(SB3VecEnv(...))``, or the bare ``SB3VecEnv`` when ``monitor`` is False.
    """
    env_kind(env_id)
    num_envs = check_int("num_envs", num_envs, 1)
    native = gymnasium.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
    )
    adapter = SB3VecEnv(native)
    if seed is not None:
        adapter.seed(check_seed("seed", seed))
    return VecMonitor(adapter) if monitor else adapter


__all__ = ["FINAL_INFO_KEYS", "SB3VecEnv", "make_sb3_vec_env"]
