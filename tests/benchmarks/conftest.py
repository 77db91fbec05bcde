"""Fixtures of the benchmark tests: a tiny suite (our agent + one SB3 baseline), run once."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from benchmarks.run import main

# Two cells: MaxRL with a two-value learning-rate grid (2 validation runs + 2 reported
# runs) and SB3 A2C (2 reported runs) on a small regression task. About 10 s on 2 cores.
TINY_SUITE = """
name = "tiny"
description = "Tiny suite of the tests."

[settings]
seeds = [0, 1]
budget = 2048
eval_every = 1024
eval_samples = 8
pass_k = 4
group_size = 8
num_groups = 16
lr_grid = [1e-2, 3e-2]      # our agent: an explicit grid, chosen on validation runs
lr_points = 1               # SB3: its usual rate only, so no validation runs
tune_seeds = 1
tune_eval_contexts = 128

[agents.a2c-small]
sb3 = "A2C"
num_envs = 8
hyperparams = { n_steps = 8 }   # 64 rollouts per update: 2048 is a whole number of them

[[experiments]]
name = "main"
envs = [{ id = "MaxRLRegression-v0", kwargs = { snr = 1.0, num_contexts = 512 } }]
agents = ["maxrl", "a2c-small"]
"""
TINY_RUNS = 6


_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    """``main()`` pins the driver to one thread; keep that from leaking into other tests."""
    threads = torch.get_num_threads()
    env = {var: os.environ.get(var) for var in _THREAD_VARS}
    yield
    torch.set_num_threads(threads)
    for var, value in env.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


def write_suite(folder: Path, text: str = TINY_SUITE, name: str = "tiny") -> Path:
    """Write a suite file and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tiny_suite_text() -> str:
    """Text of the tiny suite."""
    return TINY_SUITE


@pytest.fixture
def suite_writer():
    """``write_suite(folder, text, name)``: write a suite file, return its path."""
    return write_suite


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the tiny suite once with the local pool; return its results directory."""
    root = tmp_path_factory.mktemp("tiny")
    suite = write_suite(root)
    code = main([str(suite), "--out", str(root / "out"), "--no-progress", "--workers", "2"])
    assert code == 0
    return root / "out" / "tiny"


@pytest.fixture
def tiny_copy(tiny_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the tiny run: (suite file, results directory)."""
    out = tmp_path / "out"
    shutil.copytree(tiny_run, out / "tiny")
    return write_suite(tmp_path), out / "tiny"
