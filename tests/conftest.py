"""Fixtures shared by the test suite (kept small: tests mirror the package layout)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run a test with one torch thread (stable timings on a shared 2-core box), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _assert_same(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {set(a) ^ set(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{path}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, (np.ndarray, torch.Tensor)):
        x, y = np.asarray(a), np.asarray(b)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{path}: {x.dtype}{x.shape} vs {y}"
        assert np.array_equal(x, y, equal_nan=True), f"{path}: {x} != {y}"
    else:
        assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"


@pytest.fixture
def assert_same() -> Callable[[Any, Any], None]:
    """Assert two nested structures (dicts, lists, arrays, scalars) are identical, bit for bit."""
    return _assert_same
