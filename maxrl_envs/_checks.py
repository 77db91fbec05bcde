"""Validation helpers: every error names the parameter, the value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(
            f"{name}={value!r} is not supported; allowed: {', '.join(map(repr, allowed))}"
        )
    return value


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ``ValueError``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a finite number > 0") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number > 0")
    return number


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number >= 0, else raise ``ValueError``."""
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
