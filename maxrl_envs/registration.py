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
