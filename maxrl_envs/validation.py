"""Input validation shared by every package.

Each error names the parameter, the value and what is allowed.

Two forms of the same rules:

- ``check_*(name, value, ...)`` functions validate one value and return it normalized
  (e.g. an int for an integer, a float for a number), raising ``ValueError`` otherwise;
- ``Rule`` objects (``integer(1)``, ``number(minimum=0)``, ``choice(...)``,
  ``optional(...)``, ...) wrap them so configuration dataclasses can declare a field's rule
  next to its default and help text, and one ``check_fields`` call validates every field.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any

import torch

#: Devices a run or an env can use.
DEVICE_HELP = "'cpu', 'cuda', 'cuda:<index>'"


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy), not a bool."""
    return not isinstance(value, bool) and hasattr(value, "__index__")


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError``."""
    allowed = tuple(allowed)
    try:
        known = value in allowed
    except TypeError:  # unhashable or incomparable values are not among the choices
        known = False
    if not known:
        raise ValueError(
            f"{name}={value!r} is not supported; allowed: {', '.join(map(repr, allowed))}"
            + did_you_mean(value, allowed)
        )
    return value


def did_you_mean(value: Any, allowed: Iterable[Any]) -> str:
    """``" (did you mean 'x'?)"`` naming the allowed string closest to a string ``value``.

    Returns an empty string when ``value`` is not a string or nothing is close.
    """
    if not isinstance(value, str):
        return ""
    names = {str(a).lower(): str(a) for a in allowed if isinstance(a, str)}
    close = difflib.get_close_matches(value.lower(), list(names), n=1, cutoff=0.75)
    if not close:
        return ""
    return f" (did you mean {names[close[0]]!r}?)"


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in ``[minimum, maximum]``.

    Floats are refused even when whole (``2e5``): a count written as a float is a typo in a
    config far more often than a wish.
    """
    bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
    if not is_int(value):
        hint = ""
        if isinstance(value, float) and value.is_integer():
            hint = f" (write {int(value)} or {int(value):_}, without a decimal point or exponent)"
        raise ValueError(f"{name}={value!r} must be an integer {bound}{hint}")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise ValueError(f"{name}={value!r} must be an integer {bound}")
    return number


#: Largest seed accepted anywhere (envs, vector envs, runs, suites, CLIs). torch's CPU
#: generator keeps only the low 32 bits of a seed and numpy's global seeding refuses more, so a
#: larger seed would silently repeat a smaller one (s and s + 2**32 gave the same run).
SEED_MAX = 2**32 - 1


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` as an int if it is a seed: an integer in ``[0, SEED_MAX]``."""
    if not is_int(value) or not 0 <= int(value) <= SEED_MAX:
        raise ValueError(
            f"{name}={value!r} must be an integer in [0, {SEED_MAX}] (2**32 - 1: torch's CPU "
            "generator keeps only the low 32 bits of a seed, so a larger one would repeat a "
            "smaller one)"
        )
    return int(value)


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say).

    Size checks compare what an argument would allocate with it, so a size no allocation
    could satisfy is a ``ValueError`` naming the argument instead of a bare ``MemoryError``.
    """
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    strict_maximum: bool = False,
) -> float:
    """Return ``value`` as a float if it is a finite number within the bounds.

    Args:
        name: Parameter name for the error.
        value: The value.
        minimum: Lower bound (None: none).
        maximum: Upper bound (None: none).
        strict_minimum: Exclude ``minimum`` itself.
        strict_maximum: Exclude ``maximum`` itself.
    """
    low = "" if minimum is None else f"{'>' if strict_minimum else '>='} {minimum:g}"
    high = "" if maximum is None else f"{'<' if strict_maximum else '<='} {maximum:g}"
    allowed = " and ".join(part for part in (low, high) if part)
    message = f"{name}={value!r} must be a finite number" + (f" {allowed}" if allowed else "")
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise ValueError(message)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(message) from None
    if not math.isfinite(number):
        raise ValueError(message)
    if minimum is not None and (number < minimum or (strict_minimum and number == minimum)):
        raise ValueError(message)
    if maximum is not None and (number > maximum or (strict_maximum and number == maximum)):
        raise ValueError(message)
    return number


def check_positive(name: str, value: Any, maximum: float | None = None) -> float:
    """Return ``value`` as a float if it is a finite number > 0 (and <= ``maximum``)."""
    return check_number(name, value, minimum=0.0, strict_minimum=True, maximum=maximum)


def check_nonnegative(name: str, value: Any, maximum: float | None = None) -> float:
    """Return ``value`` as a float if it is a finite number >= 0 (and <= ``maximum``)."""
    return check_number(name, value, minimum=0.0, maximum=maximum)


def check_fraction(name: str, value: Any, upper_exclusive: bool = True) -> float:
    """Return ``value`` if it lies in ``[0, 1)`` (or ``[0, 1]``), else raise ``ValueError``."""
    return check_number(name, value, minimum=0.0, maximum=1.0, strict_maximum=upper_exclusive)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (numpy bools too), else raise ``ValueError``."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ValueError(f"{name}={value!r} must be True or False")
    return bool(value)


def check_str(name: str, value: Any) -> str:
    """Return ``value`` if it is a non-empty string, else raise ``ValueError``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}={value!r} must be a non-empty string")
    return value


def check_file_name(name: str, value: Any) -> str:
    """Return ``value`` if it can name one entry of a directory (no separators, not ``..``)."""
    if (
        not isinstance(value, str)
        or value.strip() in ("", ".", "..")
        or "/" in value
        or os.sep in value
        or (os.altsep is not None and os.altsep in value)
        or "\x00" in value
    ):
        raise ValueError(
            f"{name}={value!r} is invalid; allowed: a plain file name (no '/', not '', '.' or '..')"
        )
    return value


def check_path(name: str, value: Any) -> str:
    """Return ``value`` as a string if it is a path (str or ``os.PathLike``)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ValueError(f"{name}={value!r} must be a path (a non-empty string)")
    return value


def check_device(value: Any, *, allow_auto: bool = False, name: str = "device") -> torch.device:
    """Resolve a device this machine has: ``cpu``, ``cuda[:i]`` (and ``auto`` if allowed).

    ``auto`` means CUDA when available, else the CPU.

    Raises:
        ValueError: Not a device string or ``torch.device``, a device type other than CPU
            and CUDA (``meta``, ...), CUDA where there is none, or an index past the last GPU.
    """
    allowed = ("'auto', " if allow_auto else "") + DEVICE_HELP
    if allow_auto and value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(value, (str, torch.device)):
        raise ValueError(f"{name}={value!r} is not a device; allowed: {allowed}")
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a torch device; allowed: {allowed}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"{name}={value!r} is not supported; allowed: {allowed}")
    if not torch.cuda.is_available():
        raise ValueError(
            f"{name}={value!r} needs CUDA, which is not available here; allowed: 'cpu'"
            + (" or 'auto'" if allow_auto else "")
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"{name}={value!r} is not available; allowed: cuda:0..cuda:"
            f"{torch.cuda.device_count() - 1}"
        )
    return device


def check_options(options: dict[str, Any] | None, allowed: Iterable[str]) -> dict[str, Any]:
    """Return ``options`` (or ``{}``) after rejecting keys outside ``allowed``."""
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ValueError(f"options={options!r} must be a dict or None")
    allowed = tuple(allowed)
    unknown = sorted(map(str, set(options) - set(allowed)))
    if unknown:
        raise ValueError(
            f"options keys {unknown!r} are not supported; allowed: {', '.join(map(repr, allowed))}"
        )
    return options


def check_known_kwargs(owner: str, kwargs: dict[str, Any], allowed: Iterable[str]) -> None:
    """Raise ``ValueError`` naming every keyword of ``kwargs`` that ``owner`` does not accept."""
    allowed = tuple(allowed)
    unknown = [key for key in kwargs if key not in allowed]
    if unknown:
        named = ", ".join(f"{key}={kwargs[key]!r}{did_you_mean(key, allowed)}" for key in unknown)
        raise ValueError(
            f"unknown keyword argument(s) {named} for {owner}; allowed: {', '.join(allowed)}"
        )


def register_unique(table: dict[str, Any], name: str, entry: Any, what: str) -> Any:
    """Add ``entry`` to a registry under ``name``; re-adding the same entry is a no-op.

    Raises:
        ValueError: ``name`` is not a non-empty string, or already names another entry.
    """
    check_str(f"{what} name", name)
    existing = table.get(name)
    if existing is not None and existing is not entry and existing != entry:
        raise ValueError(f"a {what} named {name!r} is already registered")
    table[name] = entry
    return entry


def check_int_list(
    name: str, value: Any, minimum: int, allow_empty: bool = True
) -> tuple[int, ...]:
    """Return a list/tuple of integers >= ``minimum`` as a tuple, else raise ``ValueError``."""
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise ValueError(f"{name}={value!r} must be a list of integers >= {minimum}")
    if not all(is_int(v) and int(v) >= minimum for v in value):
        raise ValueError(f"{name}={value!r} must be a list of integers >= {minimum}")
    return tuple(int(v) for v in value)


# --------------------------------------------------------------------------------------------
# Rules: the same checks, declared on dataclass fields
# --------------------------------------------------------------------------------------------

#: A rule: ``rule(name, value)`` returns the normalized value or raises ``ValueError``.
Rule = Callable[[str, Any], Any]


def integer(minimum: int, maximum: int | None = None) -> Rule:
    """Rule: an integer in ``[minimum, maximum]``."""
    return lambda name, value: check_int(name, value, minimum, maximum)


def seed() -> Rule:
    """Rule: a seed, an integer in ``[0, SEED_MAX]``."""
    return check_seed


def number(**bounds: Any) -> Rule:
    """Rule: a finite number within ``bounds`` (the keywords of ``check_number``)."""
    return lambda name, value: check_number(name, value, **bounds)


def positive() -> Rule:
    """Rule: a finite number > 0."""
    return check_positive


def choice(allowed: Sequence[Any] | Callable[[], Sequence[Any]]) -> Rule:
    """Rule: one of ``allowed`` (a sequence, or a function returning the current choices)."""
    return lambda name, value: check_choice(
        name, value, allowed() if callable(allowed) else allowed
    )


def boolean() -> Rule:
    """Rule: True or False."""
    return check_bool


def int_list(minimum: int, allow_empty: bool = True) -> Rule:
    """Rule: a list or tuple of integers >= ``minimum`` (normalized to a tuple)."""
    return lambda name, value: check_int_list(name, value, minimum, allow_empty)


def file_name() -> Rule:
    """Rule: a plain file name."""
    return check_file_name


def path() -> Rule:
    """Rule: a path."""
    return check_path


def device(allow_auto: bool = True) -> Rule:
    """Rule: a device this machine has (the original string is kept)."""

    def rule(name: str, value: Any) -> Any:
        check_device(value, allow_auto=allow_auto, name=name)
        return value

    return rule


def mapping() -> Rule:
    """Rule: a dict with string keys."""

    def rule(name: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{name}={value!r} must be a mapping of names to values")
        return value

    return rule


def optional(inner: Rule) -> Rule:
    """Rule: None, or a value that passes ``inner``."""
    return lambda name, value: None if value is None else inner(name, value)


def check_fields(obj: Any) -> None:
    """Validate every dataclass field of ``obj`` that declares a ``check`` rule in its metadata.

    Normalized values (e.g. a list of widths turned into a tuple) are written back.

    Raises:
        ValueError: The first invalid field, by the rule's message.
    """
    for f in fields(obj):
        rule = f.metadata.get("check")
        if rule is None:
            continue
        value = getattr(obj, f.name)
        normalized = rule(f.name, value)
        if normalized is not value and not (
            isinstance(normalized, (int, float)) and normalized == value
        ):
            object.__setattr__(obj, f.name, normalized)


def field_rule(cls: Any, name: str) -> Rule | None:
    """The ``check`` rule a dataclass declares for one of its fields (None if none)."""
    for f in fields(cls):
        if f.name == name:
            return f.metadata.get("check")
    raise KeyError(name)
