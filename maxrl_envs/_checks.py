"""Validation helpers: every error names the parameter, the value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(
            f"{name}={value!r} is not supported; allowed: {', '.join(map(repr, allowed))}"
        )
    return value


def _is_number(value: Any) -> bool:
    return not isinstance(value, (bool, str, bytes)) and hasattr(value, "__float__")


def check_options(options: dict[str, Any] | None, allowed: Iterable[str]) -> dict[str, Any]:
    """Return ``options`` (or ``{}``) after rejecting keys outside ``allowed``."""
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ValueError(f"options={options!r} must be a dict or None")
    allowed = tuple(allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"options keys {unknown!r} are not supported; allowed: {', '.join(map(repr, allowed))}"
        )
    return options


def check_device(value: Any) -> torch.device:
    """Return ``value`` as a torch device that exists on this machine, else raise ``ValueError``."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={value!r} is not a torch device; allowed: 'cpu', 'cuda', 'cuda:N'"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={value!r} needs CUDA, which is not available here; use 'cpu'")
    return device


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ``ValueError``."""
    if not _is_number(value):
        raise ValueError(f"{name}={value!r} must be a finite number > 0")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a finite number > 0") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0")
    return number


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number >= 0, else raise ``ValueError``."""
    if not _is_number(value):
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a finite number >= 0") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    return number


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an integer in ``[minimum, maximum]``, else raise ``ValueError``."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name}={value!r} must be an integer {bound}")
    return number


def check_fraction(name: str, value: Any, upper_exclusive: bool = True) -> float:
    """Return ``value`` if it lies in ``[0, 1)`` (or ``[0, 1]``), else raise ``ValueError``."""
    number = check_nonnegative(name, value)
    if number > 1 or (upper_exclusive and number == 1):
        bound = "[0, 1)" if upper_exclusive else "[0, 1]"
        raise ValueError(f"{name}={value!r} must lie in {bound}")
    return number


def check_known_kwargs(owner: str, kwargs: dict[str, Any], allowed: Iterable[str]) -> None:
    """Raise ``ValueError`` naming every keyword of ``kwargs`` that ``owner`` does not accept."""
    allowed = tuple(allowed)
    unknown = [f"{key}={value!r}" for key, value in kwargs.items() if key not in allowed]
    if unknown:
        raise ValueError(
            f"unknown keyword argument(s) {', '.join(unknown)} for {owner}; "
            f"allowed: {', '.join(allowed)}"
        )
