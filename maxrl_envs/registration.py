"""Registered environment ids and presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gymnasium import spaces
from gymnasium.envs.registration import register, registry

from maxrl_envs import hard as _hard  # noqa: F401  (registers the hard-contexts kind)
from maxrl_envs.kinds import Task, TaskKind, get_kind
from maxrl_envs.validation import check_device, did_you_mean

ENTRY_POINT = "maxrl_envs.envs:MaxRLEnv"
VECTOR_ENTRY_POINT = "maxrl_envs.vector:MaxRLVectorEnv"

#: Base environments: id -> (kind name, default kwargs).
BASE_IDS: dict[str, tuple[str, dict[str, Any]]] = {
    "MaxRLRegression-v0": ("regression", {}),
    "MaxRLVerifier-v0": ("regression", {"head": "verifier"}),
    "MaxRLClassification-v0": ("classification", {}),
    "MaxRLTokens-v0": ("tokens", {}),
    "MaxRLHardContexts-v0": ("hard-contexts", {}),
}

#: Presets used by the benchmark suites: id -> (base id, kwargs, what it is for).
PRESETS: dict[str, tuple[str, dict[str, Any], str]] = {
    "MaxRLRegressionLowSNR-v0": (
        "MaxRLRegression-v0",
        {"task": "teacher-mlp", "snr": 0.1},
        "Nonlinear signal under noise ten times stronger than the signal.",
    ),
    "MaxRLRegressionVeryLowSNR-v0": (
        "MaxRLRegression-v0",
        {"task": "teacher-mlp", "snr": 0.01},
        "Noise std ten times the signal std: almost no information per target.",
    ),
    "MaxRLRegressionHetero-v0": (
        "MaxRLRegression-v0",
        {"task": "teacher-mlp", "snr": 1.0, "heteroscedastic": 2.0},
        "Per-context noise scales spread over two decades: easy and nearly hopeless contexts.",
    ),
    "MaxRLRegressionHeavyTail-v0": (
        "MaxRLRegression-v0",
        {"task": "teacher-mlp", "snr": 1.0, "noise": "student-t", "head": "laplace"},
        "Student-t (3 d.o.f.) noise scored by a Laplace head.",
    ),
    "MaxRLVerifierHetero-v0": (
        "MaxRLVerifier-v0",
        {"task": "teacher-mlp", "snr": 1.0, "heteroscedastic": 2.0},
        "Binary verifier on heteroscedastic targets: per-context pass rates differ widely.",
    ),
    "MaxRLClassificationManyClass-v0": (
        "MaxRLClassification-v0",
        {"task": "teacher-mlp", "num_classes": 100},
        "100-class synthetic task: initial pass rate about 0.01.",
    ),
    "MaxRLClassificationThousandClass-v0": (
        "MaxRLClassification-v0",
        {"task": "teacher-mlp", "num_classes": 1000, "num_contexts": 16384},
        "1000-class synthetic task: initial pass rate 0.001, so a step of a few hundred "
        "rollouts expects well under one success at the start (the paper's regime).",
    ),
    "MaxRLTokensLowSNR-v0": (
        "MaxRLTokens-v0",
        {"task": "teacher-mlp", "snr": 0.1},
        "Token-written predictions on the low-SNR regression task.",
    ),
}


def all_ids() -> list[str]:
    """Every id this package registers."""
    return [*BASE_IDS, *PRESETS]


def register_env(env_id: str, kind: str | TaskKind, **kwargs: Any) -> None:
    """Register a Gymnasium id for a task kind with default keyword arguments (idempotent).

    ``gymnasium.make(env_id)`` then builds the single env, ``gymnasium.make_vec(env_id, ...)``
    the native vector env, and ``make_task(env_id)`` the agents' task, all of ``kind``. The
    spec's kwargs hold every setting of the kind (its defaults, overridden by ``kwargs``), so
    ``gymnasium.spec(env_id).kwargs`` shows them.

    Args:
        env_id: A new Gymnasium id such as ``"MyTask-v0"``.
        kind: A registered task kind (``maxrl_envs.kinds.register_kind``) or its name.
        **kwargs: Default keyword arguments of the kind (``task``, ``snr``, ``head``, ...).

    Raises:
        ValueError: ``env_id`` is registered already with another kind or other defaults.
    """
    kind = get_kind(kind)
    defaults = {"kind": kind.name, **kind.default_kwargs(), **kwargs}
    if env_id in registry:
        spec = registry[env_id]
        if spec.entry_point == ENTRY_POINT and spec.kwargs == defaults:
            return
        raise ValueError(f"env_id={env_id!r} is already registered with other settings")
    register(
        id=env_id,
        entry_point=ENTRY_POINT,
        vector_entry_point=VECTOR_ENTRY_POINT,
        kwargs=defaults,
    )


def register_envs() -> None:
    """Register every id of ``BASE_IDS`` and ``PRESETS`` (idempotent)."""
    for env_id, (kind, kwargs) in BASE_IDS.items():
        register_env(env_id, kind, **kwargs)
    for env_id, (base, kwargs, _) in PRESETS.items():
        kind, base_kwargs = BASE_IDS[base]
        register_env(env_id, kind, **{**base_kwargs, **kwargs})


def _spec_kwargs(env_id: Any) -> tuple[str, TaskKind, dict[str, Any]]:
    """(bare id, kind, registered default kwargs without ``kind``) of a maxrl_envs id."""
    if not isinstance(env_id, str):
        raise ValueError(f"env_id={env_id!r} must be a registered id string")
    bare = env_id.split(":", 1)[-1]
    if ":" in env_id:  # "module:Id" imports the module that registers the id, as gymnasium does
        import importlib

        try:
            importlib.import_module(env_id.split(":", 1)[0])
        except ImportError as err:
            raise ValueError(f"env_id={env_id!r}: cannot import its module ({err})") from None
    if bare not in registry:
        ours = [name for name, spec in registry.items() if spec.entry_point == ENTRY_POINT]
        raise ValueError(
            f"env_id={env_id!r} is not registered{did_you_mean(bare, ours)}; allowed: "
            f"{', '.join(all_ids())} (or another id registered with maxrl_envs.register_env)"
        )
    spec = registry[bare]
    kwargs = dict(spec.kwargs)
    if spec.entry_point != ENTRY_POINT or "kind" not in kwargs:
        raise ValueError(f"env_id={env_id!r} is not a maxrl_envs environment")
    kind = get_kind(kwargs.pop("kind"))
    return bare, kind, kwargs


def env_kind(env_id: str) -> str:
    """Kind name of a registered id: ``regression``, ``classification``, ``tokens``, ..."""
    return _spec_kwargs(env_id)[1].name


@dataclass(frozen=True)
class EnvInfo:
    """What an env id with keyword arguments is, known without building its data.

    Attributes:
        env_id: The id.
        kind: Its task kind.
        kwargs: Its keyword arguments (registered defaults merged with the given ones).
        spec: The validated core spec (``head``, ``prediction_range``, ...).
        codec: The kind's codec (None for kinds without one).
        step_action_space: Action space of one env step.
        rollout_space: Space of one whole rollout (what a policy samples).
        episode_length: Env steps per rollout.
    """

    env_id: str
    kind: TaskKind
    kwargs: dict[str, Any]
    spec: Any
    codec: Any
    step_action_space: spaces.Space
    rollout_space: spaces.Space
    episode_length: int

    @property
    def head(self) -> str | None:
        """The likelihood head of a numeric task (None for classification)."""
        return getattr(self.spec, "head", None) if self.kind.numeric else None


def describe_env(env_id: str, **kwargs: Any) -> EnvInfo:
    """Check an id's keyword arguments (names and values) without building any data.

    Args:
        env_id: A registered id.
        **kwargs: Keyword arguments overriding the id's defaults (not ``split``/``device``).

    Returns:
        What the env is.

    Raises:
        ValueError: Unknown id, unknown keyword, or an invalid value, naming it.
    """
    bare, kind, defaults = _spec_kwargs(env_id)
    merged = {**defaults, **kwargs}
    spec, codec = kind.check_kwargs(merged)
    return EnvInfo(
        env_id=bare,
        kind=kind,
        kwargs=merged,
        spec=spec,
        codec=codec,
        step_action_space=kind.step_action_space(spec, codec),
        rollout_space=kind.rollout_space(spec, codec),
        episode_length=kind.episode_length(codec),
    )


def make_task(env_id: str, *, device: str = "cpu", **kwargs: Any) -> Task:
    """Build a registered id's task (core and codec) directly, without a Gymnasium shell.

    This is the agents' fast path: the ``Task`` holds the kind, the core (contexts of every
    split, scoring) and the codec, the same code the envs run, with no episode state.

    Args:
        env_id: A registered id, e.g. ``"MaxRLRegression-v0"``.
        device: Torch device of the core.
        **kwargs: Env keyword arguments, overriding the id's registered defaults.

    Returns:
        A ``maxrl_envs.kinds.Task``.
    """
    _, kind, defaults = _spec_kwargs(env_id)
    return kind.build(check_device(device), {**defaults, **kwargs})
