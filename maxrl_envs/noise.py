"""Observation noise: families with unit variance and per-context (heteroscedastic) scales."""

from __future__ import annotations

import numpy as np

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


MAX_HETEROSCEDASTIC_DECADES = 12.0


def heteroscedastic_scales(difficulty: np.ndarray, decades: float) -> np.ndarray:
    """Per-context noise multipliers spread over ``decades`` orders of magnitude.

    h(u) = 10^(decades * (u - 1/2)) / c, where u in [0, 1] is the context's difficulty
    coordinate (a smooth function of x, uniform under the input distribution; see
    ``tasks.TaskData``), so a model can in principle learn which contexts are hard. The
    constant c = sqrt(E_u[10^(2 decades (u - 1/2))]) = sqrt((10^d - 10^-d) / (2 d ln 10))
    makes the mean square multiplier 1 under the input distribution, so the average noise
    variance, and hence the SNR, is unchanged; it does not depend on the pool.

    Args:
        difficulty: Difficulty coordinates u, ``[n]``.
        decades: log10 of the ratio between the largest and smallest multiplier, in
            [0, MAX_HETEROSCEDASTIC_DECADES]; 0 gives 1s.

    Returns:
        Array ``[n]`` of positive multipliers.
    """
    if decades == 0:
        return np.ones(len(difficulty))
    # (10^d - 10^-d) / (2 d ln 10) = sinh(x) / x with x = d ln 10: the sinh form does not
    # cancel for tiny d (the difference form rounds to 0 below d ~ 1e-16).
    x = decades * np.log(10.0)
    mean_square = 1.0 + x * x / 6.0 if x < 1e-4 else np.sinh(x) / x
    return 10.0 ** (decades * (difficulty - 0.5)) / np.sqrt(mean_square)
