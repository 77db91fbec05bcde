"""``torch.compile`` for ``TrainConfig.compile``: whether it can run here, and compiled kernels.

Inductor needs a C++ compiler for CPU kernels and Triton for CUDA ones; ``unavailable_reason``
says which is missing before a run starts, so ``compile=True`` fails with a clear message
instead of inside the first step. ``compiled`` compiles a pure tensor function once per
process (dynamic shapes, one graph), so a kernel is not recompiled for every batch size.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from collections.abc import Callable

import torch


def unavailable_reason(device: torch.device | str) -> str | None:
    """Why ``torch.compile`` cannot build kernels for ``device`` here, or None if it can.

    Args:
        device: The device the compiled kernels would run on.
    """
    device = torch.device(device)
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed (inductor needs it for CUDA kernels)"
        return None
    if device.type != "cpu":
        return f"compiled kernels are built for cpu and cuda only, not {device.type}"
    compilers = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    if not any(name and shutil.which(name) for name in compilers):
        return "no C++ compiler (c++, g++ or clang++ on PATH, or $CXX) for inductor's CPU kernels"
    return None


@functools.cache
def compiled(fn: Callable) -> Callable:
    """``torch.compile(fn)`` with dynamic shapes and one graph, built once per function."""
    return torch.compile(fn, dynamic=True, fullgraph=True)
