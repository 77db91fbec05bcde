"""Observation noise: families with unit variance and per-context (heteroscedastic) scales."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

NOISE_FAMILIES = ("gaussian", "laplace", "student-t")


def unit_noise(family: str, size: int, rng: np.random.Generator, student_df: float) -> np.ndarray:
    """Draw noise with mean 0 and variance 1 from a family.

    Args:
        family: ``gaussian``, ``laplace`` (scale 1/sqrt(2)) or ``student-t`` (scaled by
            sqrt((df - 2) / df), so it needs ``student_df > 2``).
        size: Number of draws.
        rng: Source of randomness.
        student_df: Degrees of freedom of the Student-t family.

    Returns:
        Array ``[size]`` of float64 draws.
    """
    if family == "gaussian":
        return rng.standard_normal(size)
    if family == "laplace":
        return rng.laplace(0.0, 1.0 / np.sqrt(2.0), size)
    return rng.standard_t(student_df, size) * np.sqrt((student_df - 2.0) / student_df)


def heteroscedastic_scales(x: np.ndarray, decades: float, rng: np.random.Generator) -> np.ndarray:
    """Per-context noise multipliers spread over ``decades`` orders of magnitude.

    The multiplier is a smooth function of the context, h(x) = 10^(decades * (u(x) - 1/2))
    with u(x) = Phi(v . x / std) for a fixed random direction v, so a model can in principle
    learn which contexts are hard. Multipliers are normalized to a mean square of 1 over the
    pool, so the average noise variance, and hence the SNR, is unchanged.

    Args:
        x: Contexts of every split stacked, ``[n, dim]``.
        decades: log10 of the ratio between the largest and smallest multiplier; 0 gives 1s.
        rng: Source of the direction v.

    Returns:
        Array ``[n]`` of positive multipliers.
    """
    if decades == 0:
        return np.ones(len(x))
    projection = x @ rng.standard_normal(x.shape[1])
    projection = (projection - projection.mean()) / max(projection.std(), 1e-12)
    h = 10.0 ** (decades * (ndtr(projection) - 0.5))
    return h / np.sqrt(np.mean(h**2))
