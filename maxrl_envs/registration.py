"""Registered environment ids and presets."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register, registry

_ENVS = "maxrl_envs.envs"
_VECTOR = "maxrl_envs.vector"

#: Base environments: id -> (single class, vector class, default kwargs).
BASE_IDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "MaxRLRegression-v0": ("RegressionEnv", "RegressionVectorEnv", {}),
    "MaxRLVerifier-v0": ("RegressionEnv", "RegressionVectorEnv", {"head": "verifier"}),
    "MaxRLClassification-v0": ("ClassificationEnv", "ClassificationVectorEnv", {}),
    "MaxRLTokens-v0": ("TokensEnv", "TokensVectorEnv", {}),
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
    "MaxRLTokensLowSNR-v0": (
        "MaxRLTokens-v0",
        {"task": "teacher-mlp", "snr": 0.1},
        "Token-written predictions on the low-SNR regression task.",
    ),
}


def all_ids() -> list[str]:
    """Every id this package registers."""
    return [*BASE_IDS, *PRESETS]


def register_envs() -> None:
    """Register every id (idempotent)."""
    for env_id, (single, vector, kwargs) in BASE_IDS.items():
        _register(env_id, single, vector, kwargs)
    for env_id, (base, kwargs, _) in PRESETS.items():
        single, vector, base_kwargs = BASE_IDS[base]
        _register(env_id, single, vector, {**base_kwargs, **kwargs})


def _register(env_id: str, single: str, vector: str, kwargs: dict[str, Any]) -> None:
    if env_id in registry:
        return
    register(
        id=env_id,
        entry_point=f"{_ENVS}:{single}",
        vector_entry_point=f"{_VECTOR}:{vector}",
        kwargs=dict(kwargs),
    )


def env_kind(env_id: str) -> str:
    """Kind of a registered id: ``regression``, ``classification`` or ``tokens``."""
    import gymnasium

    env_id = env_id.split(":", 1)[-1]
    if env_id not in registry:
        raise ValueError(
            f"env_id={env_id!r} is not registered; allowed: {', '.join(all_ids())} "
            "(or another id registered with gymnasium)"
        )
    entry = registry[env_id].entry_point
    cls = gymnasium.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    kind = getattr(cls, "kind", None)
    if kind is None:
        raise ValueError(f"env_id={env_id!r} is not a maxrl_envs environment")
    return str(kind)


def make_task(
    env_id: str,
    num_groups: int = 1,
    group_size: int = 1,
    split: str = "train",
    device: str = "cpu",
    **kwargs: Any,
) -> Any:
    """Build the batched episodes of a registered id directly, without a Gymnasium shell.

    This is the agents' fast path: the returned ``GroupEpisodes`` exposes ``core`` (contexts
    and scoring), ``codec`` (tokens only) and ``kind``, and is the same code the envs run.

    Args:
        env_id: A registered id, e.g. ``"MaxRLRegression-v0"``.
        num_groups: Contexts per step.
        group_size: Rollouts per context.
        split: ``train``, ``validation`` or ``test``.
        device: Torch device.
        **kwargs: Env keyword arguments, overriding the id's registered defaults.

    Returns:
        A ``maxrl_envs.engine.GroupEpisodes``.
    """
    from maxrl_envs.envs import make_episodes

    kind = env_kind(env_id)
    merged = {**registry[env_id.split(":", 1)[-1]].kwargs, **kwargs}
    return make_episodes(kind, num_groups, group_size, split, device, merged)
