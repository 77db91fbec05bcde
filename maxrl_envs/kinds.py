"""Task kinds: the one table that says how a kind of task acts, predicts and is supervised.

A task kind owns everything that differs between regression, classification and token
generation: which core it runs on, its codec, the action space of one env step, the space of
one whole rollout (what a policy samples), how a rollout becomes a prediction the core
scores, and the rollout that writes an observed target (the supervised reference's label).
The Gymnasium shells, the episode runner, the agents' policies, the evaluation and the
benchmark suites all ask the kind; nobody compares kind names.

Adding a kind is one ``TaskKind`` subclass, ``register_kind(MyKind())``, and
``maxrl_envs.register_env(env_id, kind="my-kind")``; see ``docs/contributing.md``.

Rollout shapes (``[B, N, ...]`` for N rollouts of B contexts):

======================= ================================ =====================================
kind                    one rollout (``rollout_space``)  prediction
======================= ================================ =====================================
``regression``          a float action (unclipped)       clip(a, -1, 1) * prediction_range
``classification``      a class id                       the class id
``tokens``              ``num_digits`` digit tokens      the decoded grid value
======================= ================================ =====================================
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from maxrl_envs.core import ClassificationCore, Contexts, RegressionCore, Scores, TaskCore
from maxrl_envs.tokens import TokenCodec
from maxrl_envs.validation import check_choice, check_known_kwargs, register_unique


class TaskKind(ABC):
    """How one kind of task acts, predicts and is supervised.

    Attributes:
        name: The kind's name (the ``kind`` keyword of its registered ids).
        core_class: The core it runs on; its ``Spec`` lists the core's keyword arguments.
        codec_kwargs: Keyword arguments of the kind's codec (none by default).
        numeric: Whether predictions are numbers in target units (so regression errors
            such as ``eval/excess_mse`` apply) rather than class ids.
    """

    name: str
    core_class: type[TaskCore]
    codec_kwargs: tuple[str, ...] = ()
    numeric: bool = True

    def __repr__(self) -> str:
        return f"<TaskKind {self.name!r}>"

    # -- building ---------------------------------------------------------------------

    def kwarg_names(self) -> tuple[str, ...]:
        """Every keyword argument an env of this kind accepts besides the shell's own."""
        spec = self.core_class.Spec
        return tuple(f.name for f in fields(spec) if f.init) + self.codec_kwargs

    def default_kwargs(self) -> dict[str, Any]:
        """Every keyword argument with a default, and that default (what the spec shows).

        Registered ids store these in their Gymnasium spec, so ``gymnasium.spec(id).kwargs``
        lists every setting; passing them equals passing nothing (None stays None: "the
        data set's own default").
        """
        defaults = {
            f.name: f.default
            for f in fields(self.core_class.Spec)
            if f.init and f.default is not MISSING
        }
        return {**defaults, **self.codec_defaults()}

    def codec_defaults(self) -> dict[str, Any]:
        """Defaults of ``codec_kwargs`` (none without a codec)."""
        return {}

    def split_kwargs(
        self, kwargs: dict[str, Any], shell: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check keyword names, then split them into core and codec keywords.

        Args:
            kwargs: Keyword arguments of the kind (core and codec).
            shell: Keywords the caller takes itself (``split``, ``device``), listed as
                allowed in the error message.
        """
        check_known_kwargs(f"a {self.name} environment", kwargs, (*self.kwarg_names(), *shell))
        core = {k: v for k, v in kwargs.items() if k not in self.codec_kwargs}
        codec = {k: v for k, v in kwargs.items() if k in self.codec_kwargs}
        return core, codec

    def check_kwargs(self, kwargs: dict[str, Any], shell: tuple[str, ...] = ()) -> tuple[Any, Any]:
        """Validate keyword names and values without building data.

        Returns:
            The core spec and the codec (or None).
        """
        core_kwargs, codec_kwargs = self.split_kwargs(kwargs, shell)
        spec = self.core_class.Spec(**core_kwargs)
        return spec, self.make_codec(spec, codec_kwargs)

    def make_codec(self, spec: Any, kwargs: dict[str, Any]) -> Any:
        """The kind's codec from the core spec and codec keywords (None: no codec)."""
        return None

    def build(
        self, device: str | torch.device, kwargs: dict[str, Any], shell: tuple[str, ...] = ()
    ) -> Task:
        """Build the core (pools on ``device``) and codec from env keyword arguments."""
        core_kwargs, codec_kwargs = self.split_kwargs(kwargs, shell)
        core = self.core_class(device=device, **core_kwargs)
        return Task(self, core, self.make_codec(core.spec, codec_kwargs))

    # -- what an env step and a rollout are -----------------------------------------------

    def episode_length(self, codec: Any) -> int:
        """Env steps per rollout."""
        return 1

    def extra_obs_dim(self, codec: Any) -> int:
        """Observation features added to x at each step."""
        return 0

    def step_features(self, codec: Any, written: torch.Tensor, position: int) -> torch.Tensor:
        """Features of the rollout written so far (``[M, extra_obs_dim]``)."""
        return written.new_zeros((written.shape[0], 0), dtype=torch.float32)

    @abstractmethod
    def step_action_space(self, spec: Any, codec: Any) -> spaces.Space:
        """Action space of one env step of one sub-env."""

    def rollout_space(self, spec: Any, codec: Any) -> spaces.Space:
        """Space of one whole rollout (the step space for one-step kinds)."""
        return self.step_action_space(spec, codec)

    @abstractmethod
    def prediction(self, task: Task, rollouts: torch.Tensor) -> torch.Tensor:
        """Predictions ``[...]`` the core scores, from rollouts ``[..., *rollout shape]``."""

    def trusted_prediction(self, task: Task, rollouts: torch.Tensor) -> torch.Tensor:
        """``prediction`` of rollouts known to be valid (a policy's samples), unchecked.

        A kind whose ``prediction`` checks its input (a host sync on GPUs) overrides this to
        skip the check; the default is ``prediction``.
        """
        return self.prediction(task, rollouts)

    @abstractmethod
    def target_rollout(self, task: Task, target: torch.Tensor) -> torch.Tensor:
        """The rollout ``[B, ...]`` that writes each observed target ``[B]`` (supervised)."""


@dataclass(frozen=True)
class Task:
    """A built task, the agents' handle on an env id: its kind, core and codec.

    ``maxrl_envs.make_task(env_id)`` returns one. It runs no episodes: agents sample
    contexts from ``core``, turn their rollouts into predictions with ``prediction`` and
    score them with ``core.score``; only the Gymnasium shells step episodes.

    Attributes:
        kind: The task kind.
        core: The core (pools on its device, scoring).
        codec: The kind's codec (``TokenCodec`` for tokens) or None.
    """

    kind: TaskKind
    core: TaskCore
    codec: Any = None

    @property
    def obs_dim(self) -> int:
        """Length of the context x (without per-step features)."""
        return self.core.obs_dim

    @property
    def episode_length(self) -> int:
        """Env steps per rollout."""
        return self.kind.episode_length(self.codec)

    def step_action_space(self) -> spaces.Space:
        """Action space of one env step of one sub-env."""
        return self.kind.step_action_space(self.core.spec, self.codec)

    def rollout_space(self) -> spaces.Space:
        """Space of one whole rollout."""
        return self.kind.rollout_space(self.core.spec, self.codec)

    def step_features(self, written: torch.Tensor, position: int) -> torch.Tensor:
        """Per-step observation features of partly written rollouts ``[M, L]``."""
        return self.kind.step_features(self.codec, written, position)

    def prediction(self, rollouts: torch.Tensor, validate: bool = True) -> torch.Tensor:
        """Predictions from rollouts (see ``TaskKind.prediction``).

        Args:
            rollouts: Rollouts ``[..., *rollout shape]``.
            validate: Check the rollouts (e.g. token ranges, a host sync on GPUs); False
                only for rollouts known to be valid (``TaskKind.trusted_prediction``).
        """
        if validate:
            return self.kind.prediction(self, rollouts)
        return self.kind.trusted_prediction(self, rollouts)

    def target_rollout(self, target: torch.Tensor) -> torch.Tensor:
        """The rollouts that write the targets (see ``TaskKind.target_rollout``)."""
        return self.kind.target_rollout(self, target)

    def score_rollouts(
        self, contexts: Contexts, rollouts: torch.Tensor, validate: bool = True
    ) -> Scores:
        """Score rollouts ``[B, N, ...]`` on their contexts (``validate``: check them first)."""
        prediction = self.prediction(rollouts, validate=validate)
        return self.core.score(contexts, prediction, validate=validate)


class RegressionKind(TaskKind):
    """Noisy regression as a one-step bandit per context, scored by a likelihood head.

    ## Description
    Each episode draws a context x from a fixed pool; the agent predicts the target with one
    action; the reward is the likelihood of the noisy target y under the prediction, from a
    Gaussian (default), Laplace or verifier head, rescaled so that its ceiling is 1. The
    target y = f(x) + noise is drawn once per context when the data set is built, so every
    rollout on a context is scored against the same y. Signals are standardized (Var f = 1),
    so ``snr`` = 1 / Var(noise). Ids: ``MaxRLRegression-v0``, ``MaxRLVerifier-v0`` (head
    ``verifier``) and their presets.

    ## Action Space
    ``Box(-1, 1, (1,), float32)``, mapped linearly to a prediction in
    [-prediction_range, prediction_range]. Actions outside [-1, 1] are clipped to the space
    before scoring; NaN or infinite actions, strings and wrong shapes raise ``ValueError``.

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
    ``task`` (linear, teacher-mlp, sine, diabetes), ``dim``, ``snr`` (1e-6 to 1e6),
    ``noise`` (gaussian, laplace, student-t), ``student_df`` (2 to 1e6), ``heteroscedastic``
    (0 to 12 decades of per-context noise scale spread), ``head`` (gaussian, laplace,
    verifier), ``head_scale`` (1e-6 to 1e6; default: the base noise std),
    ``prediction_range`` (1e-6 to 1e6), ``num_contexts``, ``num_test_contexts``,
    ``num_validation_contexts``, ``data_seed``, plus the shell's ``split`` (train,
    validation, test) and ``device``.

    >>> import gymnasium, maxrl_envs
    >>> env = gymnasium.make("MaxRLRegression-v0", snr=1.0, noise="laplace")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (8,)
    >>> _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> 0.0 <= reward <= 1.0, terminated, truncated
    (True, True, False)

    ## Vector environment
    ``gymnasium.make_vec("MaxRLRegression-v0", num_envs=B * N, group_size=N)`` runs the
    native batched env (SAME_STEP autoreset): each run of N consecutive sub-envs shares one
    context, so one step yields N rollouts for each of B contexts; ``device="cuda"`` runs it
    on a GPU.

    ## Version History
    * v0: Initial version.
    """

    name = "regression"
    core_class = RegressionCore

    def step_action_space(self, spec: Any, codec: Any) -> spaces.Space:
        """``Box(-1, 1, (1,))``."""
        return spaces.Box(-1.0, 1.0, (1,), np.float32)

    def prediction(self, task: Task, rollouts: torch.Tensor) -> torch.Tensor:
        """Clip the raw actions to [-1, 1] and scale by ``prediction_range``."""
        return task.core.action_to_prediction(rollouts)  # type: ignore[attr-defined]

    def target_rollout(self, task: Task, target: torch.Tensor) -> torch.Tensor:
        """Y / prediction_range (unclipped, so a Gaussian NLL sees the real target)."""
        return target / task.core.prediction_range  # type: ignore[attr-defined]


class ClassificationKind(TaskKind):
    """Classification as RL: pick a class, reward 1 if it is the observed label.

    ## Description
    Each episode draws an example (by default scikit-learn's 8x8 digits); the action is a
    class; the reward is 1 for the observed label, else 0, like the ImageNet-as-RL
    experiment of the MaxRL paper. ``label_noise`` corrupts each example's label once.
    ``task="teacher-mlp"`` gives a synthetic task with ``num_classes`` classes (default 100)
    and so a low initial pass rate. Ids: ``MaxRLClassification-v0`` and its presets.

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
    plus the shell's ``split`` (train, validation, test) and ``device``.

    >>> import gymnasium, maxrl_envs
    >>> env = gymnasium.make("MaxRLClassification-v0", label_noise=0.1)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, env.action_space
    ((64,), Discrete(10))

    ## Vector environment
    ``gymnasium.make_vec("MaxRLClassification-v0", num_envs=B * N, group_size=N)``.

    ## Version History
    * v0: Initial version.
    """

    name = "classification"
    core_class = ClassificationCore
    numeric = False

    def step_action_space(self, spec: Any, codec: Any) -> spaces.Space:
        """``Discrete(num_classes)``."""
        return spaces.Discrete(spec.shape.num_classes)

    def prediction(self, task: Task, rollouts: torch.Tensor) -> torch.Tensor:
        """The class ids themselves."""
        return rollouts

    def target_rollout(self, task: Task, target: torch.Tensor) -> torch.Tensor:
        """The observed label."""
        return target.long()


class TokensKind(TaskKind):
    """Latent generation: write the prediction as digit tokens, scored only at the end.

    ## Description
    The regression task of ``MaxRLRegression-v0``, but the agent writes its prediction as
    ``num_digits`` tokens in base ``base`` (default 3 digits, base 10), one categorical
    action per step, coarsest digit first. The tokens spell an integer n, decoded to the
    prediction -R + 2 R n / (base^num_digits - 1) with R = ``prediction_range``; only then
    does the likelihood head score it, as in LLM reasoning rollouts. Ids:
    ``MaxRLTokens-v0`` and its presets.

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
    ``gymnasium.make_vec("MaxRLTokens-v0", num_envs=B * N, group_size=N)``: all sub-envs
    finish together, so groups stay aligned.

    ## Version History
    * v0: Initial version.
    """

    name = "tokens"
    core_class = RegressionCore
    codec_kwargs = ("num_digits", "base")

    def codec_defaults(self) -> dict[str, Any]:
        """``num_digits`` and ``base`` as ``TokenCodec`` defaults them."""
        parameters = inspect.signature(TokenCodec).parameters
        return {name: parameters[name].default for name in self.codec_kwargs}

    def make_codec(self, spec: Any, kwargs: dict[str, Any]) -> TokenCodec:
        """A ``TokenCodec`` over the core's prediction range."""
        return TokenCodec(prediction_range=spec.prediction_range, **kwargs)

    def episode_length(self, codec: Any) -> int:
        """``num_digits``."""
        return int(codec.num_digits)

    def extra_obs_dim(self, codec: Any) -> int:
        """Position and written-digit one-hots."""
        return int(codec.extra_obs_dim)

    def step_features(self, codec: Any, written: torch.Tensor, position: int) -> torch.Tensor:
        """``codec.step_features``."""
        return codec.step_features(written, position)

    def step_action_space(self, spec: Any, codec: Any) -> spaces.Space:
        """``Discrete(base)``."""
        return spaces.Discrete(codec.base)

    def rollout_space(self, spec: Any, codec: Any) -> spaces.Space:
        """``MultiDiscrete([base] * num_digits)``: an autoregressive digit sequence."""
        return spaces.MultiDiscrete([codec.base] * codec.num_digits)

    def prediction(self, task: Task, rollouts: torch.Tensor) -> torch.Tensor:
        """Decode the digits to grid values (token ranges checked)."""
        return task.codec.decode(rollouts)

    def trusted_prediction(self, task: Task, rollouts: torch.Tensor) -> torch.Tensor:
        """Decode the digits without the range check (no host sync)."""
        return task.codec.decode(rollouts, validate=False)

    def target_rollout(self, task: Task, target: torch.Tensor) -> torch.Tensor:
        """The digits of the grid value nearest y."""
        return task.codec.encode(target)


#: Kind name -> kind. ``register_kind`` adds to it.
TASK_KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    """Add a kind to the table (a new name only; re-registering the same object is a no-op).

    Raises:
        ValueError: Another kind already has the name.
    """
    if not isinstance(kind, TaskKind):
        raise ValueError(f"kind={kind!r} is not a TaskKind instance")
    return register_unique(TASK_KINDS, kind.name, kind, "task kind")


def get_kind(name: Any) -> TaskKind:
    """The kind called ``name``; ``ValueError`` listing the registered kinds otherwise."""
    if isinstance(name, TaskKind):
        return name
    check_choice("kind", name, TASK_KINDS)
    return TASK_KINDS[name]


for _kind in (RegressionKind(), ClassificationKind(), TokensKind()):
    register_kind(_kind)

__all__ = [
    "TASK_KINDS",
    "ClassificationKind",
    "RegressionKind",
    "Task",
    "TaskKind",
    "TokensKind",
    "get_kind",
    "register_kind",
]
