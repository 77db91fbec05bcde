"""Single Gymnasium environments: thin shells over ``GroupEpisodes`` with one rollout."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from maxrl_envs._checks import check_known_kwargs, check_options
from maxrl_envs._threads import serial_on_cpu
from maxrl_envs.engine import (
    CODEC_KWARGS,
    GroupEpisodes,
    build_core,
    core_kwarg_names,
    generator_seed,
)
from maxrl_envs.tokens import TokenCodec


def split_shell_kwargs(kind: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate token-codec keywords from core keywords."""
    core_kwargs = dict(kwargs)
    codec_kwargs = {}
    for key in CODEC_KWARGS:
        if key in core_kwargs:
            if kind != "tokens":
                raise ValueError(f"{key}={core_kwargs[key]!r} is only accepted by MaxRLTokens-v0")
            codec_kwargs[key] = core_kwargs.pop(key)
    return core_kwargs, codec_kwargs


def make_episodes(
    kind: str,
    num_groups: int,
    group_size: int,
    split: str,
    device: str | torch.device,
    kwargs: dict[str, Any],
) -> GroupEpisodes:
    """Build the core (and codec) from env keywords and wrap them in ``GroupEpisodes``."""
    core_kwargs, codec_kwargs = split_shell_kwargs(kind, kwargs)
    allowed = core_kwarg_names(kind) + (CODEC_KWARGS if kind == "tokens" else ())
    check_known_kwargs(f"a {kind} environment", kwargs, allowed)
    core = build_core(kind, device=device, **core_kwargs)
    codec = None
    if kind == "tokens":
        codec = TokenCodec(prediction_range=core.prediction_range, **codec_kwargs)  # type: ignore[attr-defined]
    return GroupEpisodes(core, kind, num_groups, group_size, split=split, codec=codec)


class MaxRLEnv(gym.Env):
    """Base class of the single environments; see the registered subclasses for docs."""

    metadata: dict[str, Any] = {"render_modes": []}
    kind = "regression"

    def __init__(
        self,
        split: str = "train",
        device: str | torch.device = "cpu",
        group_size: int = 1,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        if group_size != 1:
            raise ValueError(
                f"group_size={group_size!r} needs the native vector env: use gymnasium.make_vec("
                "id, num_envs=G*N, group_size=N) with the default vectorization_mode"
            )
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is not supported; allowed: None")
        self.episodes = make_episodes(self.kind, 1, 1, split, device, kwargs)
        self.core = self.episodes.core
        self.observation_space = self.episodes.observation_space()
        self.action_space = self.episodes.action_space()
        self._generator: torch.Generator | None = None
        self._ended = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on a random context, or on ``options["context_id"]``."""
        super().reset(seed=seed)
        if seed is not None or self._generator is None:
            self._generator = self.core.make_generator(generator_seed(self.np_random))
        with serial_on_cpu(self.core.device):
            return self._reset(options)

    def _reset(self, options: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
        options = check_options(options, ("context_id",))
        if "context_id" in options:
            ids = torch.as_tensor(options["context_id"], device=self.core.device).reshape(-1)
            if ids.numel() != 1:
                raise ValueError(
                    f"options['context_id']={options['context_id']!r} must be one integer id"
                )
            obs = self.episodes.begin(ids)
        else:
            ids = self.core.sample_ids(1, self._generator, self.episodes.split)
            obs = self.episodes.begin(ids)
        self._ended = False
        return self._obs(obs), {"context_id": int(ids[0])}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply one action; the head scores the prediction when the episode ends."""
        with serial_on_cpu(self.core.device):
            return self._step(action)

    def _step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._ended:
            raise RuntimeError("call reset() before step(): no episode is running")
        if self.kind == "regression":
            array = np.asarray(action, dtype=np.float32)
            if array.size != 1:
                raise ValueError(f"action {action!r} is invalid; expected shape (1,) in [-1, 1]")
            tensor = torch.as_tensor(array.reshape(1, 1), device=self.core.device)
        else:
            array = np.asarray(action)
            if array.size != 1:
                raise ValueError(f"action {action!r} is invalid; expected one integer")
            tensor = torch.as_tensor(array.reshape(1), device=self.core.device)
        reward, done, scores = self.episodes.advance(tensor)
        self._ended = done
        info = {key: _scalar(value[0]) for key, value in self.episodes.info_tensors(scores).items()}
        obs = self._obs(self.episodes.observation())
        return obs, float(reward[0]), bool(done), False, info

    @staticmethod
    def _obs(obs: torch.Tensor) -> np.ndarray:
        return obs[0].detach().cpu().numpy().astype(np.float32, copy=True)


def _scalar(value: torch.Tensor) -> Any:
    item = value.item()
    return bool(item) if value.dtype == torch.bool else item


class RegressionEnv(MaxRLEnv):
    """Noisy regression as a one-step bandit per context, scored by a likelihood head.

    ## Description
    Each episode draws a context x from a fixed pool; the agent predicts the target with one
    action; the reward is the likelihood of the noisy target y under the prediction, from a
    Gaussian (default), Laplace or verifier head, rescaled so that its ceiling is 1. The
    target y = f(x) + noise is drawn once per context when the data set is built, so every
    rollout on a context is scored against the same y. Signals are standardized (Var f = 1),
    so ``snr`` = 1 / Var(noise).

    ## Action Space
    ``Box(-1, 1, (1,), float32)``, mapped linearly to a prediction in
    [-prediction_range, prediction_range]. Actions outside [-1, 1] are clipped to the space
    before scoring; NaN or infinite actions and wrong shapes raise ``ValueError``.

    ## Observation Space
    ``Box(-inf, inf, (dim,), float32)``: the context x (standard normal for synthetic tasks,
    standardized features for ``diabetes``).

    ## Rewards
    l(y, yhat) in [0, 1]: exp(-(y - yhat)^2 / (2 s^2)) (gaussian), exp(-|y - yhat| / s)
    (laplace), or 1[|y - yhat| <= s] (verifier), with s = ``head_scale``. ``info`` holds
    ``log_likelihood`` (normalized), ``target`` (y), ``signal`` (f(x)), ``squared_error``,
    ``is_success`` (|y - yhat| <= s), ``prediction`` and ``context_id``.

    ## Starting State
    A context drawn uniformly from the split's pool with the env's seeded generator, or the
    one named by ``reset(options={"context_id": i})``.

    ## Episode End
    After one step (terminated=True, truncated=False).

    ## Arguments
    ``task`` (linear, teacher-mlp, sine, diabetes), ``dim``, ``snr``, ``noise`` (gaussian,
    laplace, student-t), ``student_df``, ``heteroscedastic`` (decades of per-context noise
    scale spread), ``head`` (gaussian, laplace, verifier), ``head_scale`` (default: the base
    noise std), ``prediction_range``, ``num_contexts``, ``num_test_contexts``,
    ``num_validation_contexts``, ``data_seed``, ``split`` (train, validation, test),
    ``device``.

    >>> import gymnasium, maxrl_envs
    >>> env = gymnasium.make("MaxRLRegression-v0", snr=1.0, noise="laplace")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (8,)
    >>> _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> 0.0 <= reward <= 1.0, terminated, truncated
    (True, True, False)

    ## Vector environment
    ``gymnasium.make_vec("MaxRLRegression-v0", num_envs=G * N, group_size=N)`` runs the
    native batched env (SAME_STEP autoreset): each run of N consecutive sub-envs shares one
    context, so one step yields N rollouts for each of G contexts; ``device="cuda"`` runs it
    on a GPU.

    ## Version History
    * v0: Initial version.
    """

    kind = "regression"


class ClassificationEnv(MaxRLEnv):
    """Classification as RL: pick a class, reward 1 if it is the observed label.

    ## Description
    Each episode draws an example (by default scikit-learn's 8x8 digits); the action is a
    class; the reward is 1 for the observed label, else 0, like the ImageNet-as-RL
    experiment of the MaxRL paper. ``label_noise`` corrupts each example's label once.
    ``task="teacher-mlp"`` gives a synthetic task with ``num_classes`` classes (default 100)
    and so a low initial pass rate.

    ## Action Space
    ``Discrete(num_classes)`` (10 for digits). Values outside raise ``ValueError``.

    ## Observation Space
    ``Box(-inf, inf, (64,), float32)`` for digits (pixels / 16), ``(dim,)`` for teacher-mlp.

    ## Rewards
    1.0 if the action is the observed label, else 0.0. ``info`` carries ``log_likelihood``
    (0 or -100 for log 0), ``target`` (observed label), ``signal`` (clean label),
    ``squared_error`` (0-1 error), ``is_success``, ``prediction``, ``context_id``.

    ## Starting State
    An example drawn uniformly from the split, or ``reset(options={"context_id": i})``.

    ## Episode End
    After one step (terminated=True, truncated=False).

    ## Arguments
    ``task`` (digits, teacher-mlp), ``dim``, ``num_classes``, ``label_noise``,
    ``num_contexts``, ``num_test_contexts``, ``num_validation_contexts``, ``data_seed``,
    ``split`` (train, validation, test), ``device``.

    >>> import gymnasium, maxrl_envs
    >>> env = gymnasium.make("MaxRLClassification-v0", label_noise=0.1)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, env.action_space
    ((64,), Discrete(10))

    ## Vector environment
    ``gymnasium.make_vec("MaxRLClassification-v0", num_envs=G * N, group_size=N)``.

    ## Version History
    * v0: Initial version.
    """

    kind = "classification"


class TokensEnv(MaxRLEnv):
    """Latent generation: write the prediction as digit tokens, scored only at the end.

    ## Description
    The regression task of ``MaxRLRegression-v0``, but the agent writes its prediction as
    ``num_digits`` tokens in base ``base`` (default 3 digits, base 10), one categorical
    action per step, coarsest digit first. The tokens spell an integer n, decoded to the
    prediction -R + 2 R n / (base^num_digits - 1) with R = ``prediction_range``; only then
    does the likelihood head score it, as in LLM reasoning rollouts.

    ## Action Space
    ``Discrete(base)``: the next digit.

    ## Observation Space
    ``Box(-inf, inf, (dim + num_digits + num_digits * base,), float32)``: the context x, a
    one-hot of the position about to be written, and one-hots of the digits written so far.

    ## Rewards
    0 on intermediate steps; at the last step the head's likelihood of y under the decoded
    prediction, in [0, 1], with the same ``info`` keys as ``MaxRLRegression-v0``.

    ## Starting State
    A context drawn uniformly from the split, or ``reset(options={"context_id": i})``.

    ## Episode End
    Terminated after ``num_digits`` steps; never truncated.

    ## Arguments
    Those of ``MaxRLRegression-v0`` plus ``num_digits`` and ``base``.

    >>> import gymnasium, maxrl_envs
    >>> env = gymnasium.make("MaxRLTokens-v0", num_digits=2)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (30,)

    ## Vector environment
    ``gymnasium.make_vec("MaxRLTokens-v0", num_envs=G * N, group_size=N)``: all sub-envs
    finish together, so groups stay aligned.

    ## Version History
    * v0: Initial version.
    """

    kind = "tokens"
