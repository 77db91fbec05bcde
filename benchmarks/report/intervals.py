"""Per-seed summaries: means with t intervals, diverged seeds counted, targets reached."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agents.evaluation import LOWER_IS_BETTER
from benchmarks.report.fmt import fmt_mean
from maxrl_envs.references import as_float


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its t confidence interval (nan for fewer than 2 values).

    Non-finite values are left out; callers that report means say how many
    (:func:`summarize`).

    Args:
        values: Per-seed values.
        confidence: Two-sided confidence level.

    Returns:
        ``(mean, half_width)``: half_width = t_{(1+c)/2, n-1} * s / sqrt(n).
    """
    clean = [v for v in (as_float(v) for v in values) if math.isfinite(v)]
    n = len(clean)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(clean) / n
    if not math.isfinite(mean):  # values near the float maximum: sum them scaled
        mean = math.fsum(v / n for v in clean)
    if n < 2:
        return mean, float("nan")
    from scipy import stats

    try:
        sd = math.sqrt(sum((v - mean) ** 2 for v in clean) / (n - 1))
    except OverflowError:  # e.g. -1e300: square the deviations scaled by the largest
        scale = max(abs(v - mean) for v in clean)
        if not math.isfinite(scale):
            return mean, math.inf
        sd = scale * math.sqrt(math.fsum(((v - mean) / scale) ** 2 for v in clean) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)


@dataclass(frozen=True)
class Summary:
    """Mean and interval of per-seed values, with the diverged (non-finite) ones counted.

    Attributes:
        mean: Mean of the finite values (nan if none).
        half: Half-width of its 95% t interval (nan for fewer than 2 finite values).
        finite: Number of finite values.
        total: Number of values (finite or not).
    """

    mean: float
    half: float
    finite: int
    total: int

    @property
    def diverged(self) -> int:
        """Values that are NaN or infinite."""
        return self.total - self.finite

    def text(self) -> str:
        """``mean ± half``, plus ``(f/n seeds, d diverged)`` when some values diverged."""
        text = fmt_mean(self.mean, self.half)
        if self.diverged:
            text += f" ({self.finite}/{self.total} seeds, {self.diverged} diverged)"
        return text


def summarize(values: Iterable[Any]) -> Summary:
    """:func:`mean_ci` of the finite values, counting the ones left out."""
    raw = [as_float(v) for v in values]
    finite = [v for v in raw if math.isfinite(v)]
    mean, half = mean_ci(finite)
    return Summary(mean, half, len(finite), len(raw))


def reached(metric: str, value: float, target: float) -> bool:
    """Whether a value meets the target (>= target, or <= for lower-is-better metrics)."""
    return value <= target if metric in LOWER_IS_BETTER else value >= target


def rollouts_to_target(curve: Sequence[Sequence[Any]], metric: str, target: float) -> float | None:
    """First evaluated rollout count at which a curve reaches the target, else None."""
    for step, values in curve:
        value = as_float(values.get(metric))
        if math.isfinite(value) and reached(metric, value, target):
            return float(step)
    return None
