"""Supervised tasks: contexts x and clean signals f(x), synthetic or from scikit-learn.

Every task produces a fixed pool of contexts per split, generated from ``data_seed`` so the
same data set is used whatever the environment seed. Regression signals are standardized to
mean 0 and variance 1 over the whole pool, so the signal-to-noise ratio is 1 / Var(noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from maxrl_envs._checks import check_choice, check_int

REGRESSION_TASKS = ("linear", "teacher-mlp", "sine", "diabetes")
CLASSIFICATION_TASKS = ("digits", "teacher-mlp")
SYNTHETIC_DEFAULT_DIM = 8
DATASET_DIMS = {"diabetes": 10, "digits": 64}
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class TaskData:
    """A task's context pools.

    Attributes:
        x: Split name -> contexts, float64 array ``[n, dim]``.
        signal: Split name -> clean signal, ``[n]``: standardized f(x) (regression) or the
            clean class index (classification).
        num_classes: Number of classes (classification) or 0 (regression).
    """

    x: dict[str, np.ndarray]
    signal: dict[str, np.ndarray]
    num_classes: int = 0

    @property
    def dim(self) -> int:
        """Input dimension."""
        return int(self.x["train"].shape[1])


def _split(x: np.ndarray, s: np.ndarray, rng: np.random.Generator) -> TaskData:
    order = rng.permutation(len(x))
    n_test = int(round(TEST_FRACTION * len(x)))
    test, train = order[:n_test], order[n_test:]
    return TaskData(
        x={"train": x[train], "test": x[test]}, signal={"train": s[train], "test": s[test]}
    )


@cache
def _load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and targets of a scikit-learn data set, loaded once per process (read-only)."""
    from sklearn import datasets

    data = {"diabetes": datasets.load_diabetes, "digits": datasets.load_digits}[name]()
    x = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _resolve_dim(task: str, dim: int | None) -> int:
    if task in DATASET_DIMS:
        if dim is not None and dim != DATASET_DIMS[task]:
            raise ValueError(
                f"dim={dim!r} does not match task={task!r}, whose inputs have "
                f"{DATASET_DIMS[task]} features; pass dim=None or dim={DATASET_DIMS[task]}"
            )
        return DATASET_DIMS[task]
    if dim is None:
        return SYNTHETIC_DEFAULT_DIM
    return check_int("dim", dim, 1, 4096)


def _teacher(x: np.ndarray, rng: np.random.Generator, outputs: int, hidden: int = 32) -> np.ndarray:
    w1 = rng.standard_normal((x.shape[1], hidden)) / np.sqrt(x.shape[1])
    b1 = 0.5 * rng.standard_normal(hidden)
    w2 = rng.standard_normal((hidden, outputs)) / np.sqrt(hidden)
    return np.tanh(x @ w1 + b1) @ w2


def regression_task(
    task: str, dim: int | None, num_contexts: int, num_test_contexts: int, data_seed: int
) -> TaskData:
    """Build a regression task's train and test pools.

    Args:
        task: One of ``REGRESSION_TASKS``.
        dim: Input dimension for synthetic tasks (default 8); must be None or the feature
            count for data sets.
        num_contexts: Train pool size for synthetic tasks (data sets use their own rows).
        num_test_contexts: Test pool size for synthetic tasks.
        data_seed: Seed of the data set itself (inputs, teacher weights, split).

    Returns:
        The pools, with signals standardized over train and test together.
    """
    check_choice("task", task, REGRESSION_TASKS)
    dim = _resolve_dim(task, dim)
    rng = np.random.default_rng(np.random.SeedSequence([data_seed, 0x5EED]))
    if task == "diabetes":
        features, target = _load_dataset("diabetes")
        x = _standardize_columns(features)
        f = target.astype(np.float64)
        f = (f - f.mean()) / f.std()
        return _split(x, f, rng)
    num_contexts = check_int("num_contexts", num_contexts, 1)
    num_test_contexts = check_int("num_test_contexts", num_test_contexts, 1)
    n = num_contexts + num_test_contexts
    x = rng.standard_normal((n, dim))
    if task == "linear":
        f = x @ rng.standard_normal(dim)
    elif task == "teacher-mlp":
        f = _teacher(x, rng, 1)[:, 0]
    else:  # sine: an oscillating ridge function along a random direction
        direction = rng.standard_normal(dim)
        direction /= np.linalg.norm(direction)
        f = np.sin(2.0 * (x @ direction)) + 0.3 * (x @ rng.standard_normal(dim)) / np.sqrt(dim)
    f = (f - f.mean()) / f.std()
    return TaskData(
        x={"train": x[:num_contexts], "test": x[num_contexts:]},
        signal={"train": f[:num_contexts], "test": f[num_contexts:]},
    )


def classification_task(
    task: str,
    dim: int | None,
    num_classes: int | None,
    num_contexts: int,
    num_test_contexts: int,
    data_seed: int,
) -> TaskData:
    """Build a classification task's pools.

    Args:
        task: ``"digits"`` (scikit-learn's 8x8 digits, 10 classes, pixels scaled to [0, 1])
            or ``"teacher-mlp"`` (which of ``num_classes`` equal-frequency bins a fixed
            random network's output falls in: balanced classes, so many classes give a low
            initial pass rate).
        dim: Input dimension (``teacher-mlp`` only; digits has 64).
        num_classes: Class count for ``teacher-mlp`` (default 100); digits has 10.
        num_contexts: Train pool size for ``teacher-mlp``.
        num_test_contexts: Test pool size for ``teacher-mlp``.
        data_seed: Seed of the data set.

    Returns:
        The pools; ``signal`` holds the clean labels.
    """
    check_choice("task", task, CLASSIFICATION_TASKS)
    dim = _resolve_dim(task, dim)
    rng = np.random.default_rng(np.random.SeedSequence([data_seed, 0xC1A55]))
    if task == "digits":
        if num_classes not in (None, 10):
            raise ValueError(
                f"num_classes={num_classes!r} does not match task='digits' (10 classes)"
            )
        features, labels = _load_dataset("digits")
        data_split = _split(features / 16.0, labels.astype(np.int64), rng)
        return TaskData(data_split.x, data_split.signal, num_classes=10)
    num_classes = check_int("num_classes", 100 if num_classes is None else num_classes, 2, 65536)
    num_contexts = check_int("num_contexts", num_contexts, 1)
    num_test_contexts = check_int("num_test_contexts", num_test_contexts, 1)
    n = num_contexts + num_test_contexts
    x = rng.standard_normal((n, dim))
    # Equal-frequency bins of a fixed random network's output: balanced classes (so the
    # initial pass rate of a uniform policy is 1 / num_classes) with a learnable structure.
    score = _teacher(x, rng, 1, hidden=64)[:, 0]
    edges = np.quantile(score, np.linspace(0.0, 1.0, num_classes + 1)[1:-1])
    labels = np.searchsorted(edges, score, side="right").astype(np.int64)
    return TaskData(
        x={"train": x[:num_contexts], "test": x[num_contexts:]},
        signal={"train": labels[:num_contexts], "test": labels[num_contexts:]},
        num_classes=num_classes,
    )


def _standardize_columns(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
