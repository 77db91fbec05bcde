"""How the report writes values, intervals, labels and markdown cells."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from agents.evaluation import LOWER_IS_BETTER


def direction(metric: str) -> str:
    """``"lower is better"`` for ``LOWER_IS_BETTER`` metrics, else ``"higher is better"``."""
    return "lower is better" if metric in LOWER_IS_BETTER else "higher is better"


def point_label(env_label: str, sweep: Mapping[str, Any]) -> str:
    """An environment label plus the swept settings it does not name (``N=64``)."""
    settings = [
        f"{short_name(k)}={fmt_value(v)}" for k, v in sweep.items() if not in_label(k, v, env_label)
    ]
    return " · ".join([env_label, *settings]) if settings else env_label


def short_name(key: str) -> str:
    """A setting's name in labels: ``N`` for the group size, ``B`` for the groups."""
    return {"group_size": "N", "num_groups": "B", "rollouts": "N", "contexts": "B"}.get(key, key)


def fmt_value(value: Any) -> str:
    """A setting's value in labels (floats in ``g`` format)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def in_label(key: str, value: Any, label: str) -> bool:
    """Whether a label already names ``key=value``."""
    return f"{key}={fmt_value(value)}" in label.split()


def fmt_mean(mean: float, half: float) -> str:
    """``mean ± half`` (4 and 2 significant digits; ``–`` without a finite mean)."""
    if not math.isfinite(mean):
        return "–"
    if not math.isfinite(half):
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {half:.2g}"


def format_ratio(ratio: float | None, interval: tuple[float, float] | None) -> str:
    """``1.25× [0.9, 2.1]``: the ratio and its bootstrap interval (``∞`` when unbounded)."""
    if ratio is None:
        return "–"
    if interval is None:
        return f"{ratio:.2f}×"
    ends = [f"{v:.2f}" if math.isfinite(v) else "∞" for v in interval]
    return f"{ratio:.2f}× [{ends[0]}, {ends[1]}]"


def fmt_exact(value: float) -> str:
    """An exact level: 4 significant digits, ``-inf``/``inf`` spelled out, ``–`` for NaN."""
    if math.isnan(value):
        return "–"
    return f"{value:.4g}" if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def fmt_rollouts(value: float | None) -> str:
    """Rollouts to a target: a count, ``0 (at start)`` or ``not reached``."""
    if value is None:
        return "not reached"
    return "0 (at start)" if value == 0 else f"{value:,.0f}"


def md_cell(text: str) -> str:
    """Text for a markdown table cell (``|`` escaped)."""
    return text.replace("|", "\\|")


def metric_name(metric: str) -> str:
    """A metric without its ``eval/`` prefix."""
    return metric.removeprefix("eval/")


def fmt_interval(interval: Any) -> str:
    """``point [low, high]`` of an interval, 3 significant digits."""
    return f"{interval.point:.3g} [{interval.low:.3g}, {interval.high:.3g}]"
