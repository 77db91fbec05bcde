"""Data sets: contexts x and clean signals f(x), synthetic or from scikit-learn.

The env keyword ``task`` names one of them. Every data set produces a fixed pool of contexts
per split (train, test, validation), generated from ``data_seed`` so the same data set is
used whatever the episode seed. Each random piece has its own seed stream: the function f
(weights, teacher network, direction), each split's inputs, and the reference sample that
standardizes f. So changing one pool's size changes
neither f nor the other pools, and a larger pool extends a smaller one.

Regression signals are standardized to mean 0 and variance 1 under the input distribution
(estimated on a fixed reference sample of 2^16 inputs for synthetic tasks, on all rows for
data sets), so the signal-to-noise ratio is 1 / Var(noise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import ndtr

from maxrl_envs.validation import (
    check_choice,
    check_int,
    check_seed,
    physical_memory,
    register_unique,
)

#: The built-in regression data sets (``regression_datasets()`` adds registered signals).
REGRESSION_DATASETS = ("linear", "teacher-mlp", "sine", "diabetes")
CLASSIFICATION_DATASETS = ("digits", "teacher-mlp")
SYNTHETIC_DEFAULT_DIM = 8
DATASET_DIMS = {"diabetes": 10, "digits": 64}
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
REFERENCE_SIZE = 2**16
#: Largest pool of a synthetic data set (a pool of dim 4096 at this size is 512 GiB: the
#: bound only keeps absurd sizes from reaching numpy unnamed).
MAX_POOL_SIZE = 2**24
#: Largest memory a synthetic data set's pools may need (bytes), checked before anything is
#: allocated: 8 bytes per input value (float64 data) and 4 more (the core's float32 copy) for
#: every context of every split, plus the float64 reference sample that standardizes f. A
#: guard against sizes no machine here holds (dim 4096 with 2**24 contexts is 770 GiB); the
#: machine's physical memory, when smaller, is the limit instead.
MAX_DATASET_BYTES = 32 * 2**30
#: Seed-stream tags: one independent stream per random piece of a data set.
_FUNCTION, _REFERENCE, _DIFFICULTY, _PERMUTATION = 1, 2, 3, 4
_SPLIT_TAGS = {"train": 10, "test": 11, "validation": 12}


@dataclass(frozen=True)
class Dataset:
    """A data set's context pools.

    Attributes:
        x: Split name -> contexts, float64 array ``[n, dim]``.
        signal: Split name -> clean signal, ``[n]``: standardized f(x) (regression) or the
            clean class index (classification).
        difficulty: Split name -> a smooth function of x, uniform on [0, 1] under the input
            distribution (exactly for synthetic tasks), that places each context on the
            easy-to-hard axis of heteroscedastic noise.
        num_classes: Number of classes (classification) or 0 (regression).
    """

    x: dict[str, np.ndarray]
    signal: dict[str, np.ndarray]
    difficulty: dict[str, np.ndarray]
    num_classes: int = 0

    @property
    def dim(self) -> int:
        """Input dimension."""
        return int(self.x["train"].shape[1])


def stream(data_seed: int, *tags: int) -> np.random.Generator:
    """An independent random stream of a data set, named by ``tags``."""
    if isinstance(data_seed, bool) or not isinstance(data_seed, (int, np.integer)) or data_seed < 0:
        raise ValueError(f"data_seed={data_seed!r} must be an integer >= 0")
    return np.random.default_rng(np.random.SeedSequence([int(data_seed), *tags]))


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


def _pool_sizes(
    task: str,
    num_contexts: int | None,
    num_test_contexts: int | None,
    num_validation_contexts: int | None,
) -> dict[str, int]:
    """Validated pool sizes of a synthetic task (defaults 4096 / 1024 / 512)."""
    given = {
        "num_contexts": num_contexts,
        "num_test_contexts": num_test_contexts,
        "num_validation_contexts": num_validation_contexts,
    }
    if task in DATASET_DIMS:
        for name, value in given.items():
            if value is not None:
                raise ValueError(
                    f"{name}={value!r} is not accepted with task={task!r}: a data set's pools "
                    "are its own rows (70% train, 10% validation, 20% test); pass None"
                )
        return {}
    defaults = {"num_contexts": 4096, "num_test_contexts": 1024, "num_validation_contexts": 512}
    sizes = {
        name: check_int(name, defaults[name] if value is None else value, 1, MAX_POOL_SIZE)
        for name, value in given.items()
    }
    return {
        "train": sizes["num_contexts"],
        "test": sizes["num_test_contexts"],
        "validation": sizes["num_validation_contexts"],
    }


def _check_memory(dim: int, sizes: dict[str, int]) -> None:
    """Refuse pools whose inputs would need more than ``MAX_DATASET_BYTES``."""
    if not sizes:
        return
    contexts = sum(sizes.values())
    need = 12 * contexts * dim + 8 * REFERENCE_SIZE * dim
    limit, what = MAX_DATASET_BYTES, "MAX_DATASET_BYTES"
    memory = physical_memory()
    if memory is not None and memory < limit:
        limit, what = memory, "this machine's memory"
    if need > limit:
        raise ValueError(
            f"num_contexts={sizes['train']}, num_test_contexts={sizes['test']}, "
            f"num_validation_contexts={sizes['validation']} with dim={dim} would need about "
            f"{need / 2**30:.1f} GiB for the context pools (12 bytes per input value); "
            f"allowed: at most {limit / 2**30:.1f} GiB ({what}), i.e. (contexts of all "
            f"splits) x dim <= {max(0, limit - 8 * REFERENCE_SIZE * dim) // 12:_}"
        )


def _synthetic_inputs(data_seed: int, sizes: dict[str, int], dim: int) -> dict[str, np.ndarray]:
    return {
        split: stream(data_seed, _SPLIT_TAGS[split]).standard_normal((size, dim))
        for split, size in sizes.items()
    }


def _split_rows(n: int, data_seed: int, *arrays: np.ndarray) -> tuple[dict[str, np.ndarray], ...]:
    """Split rows of a data set: 20% test, 10% validation, the rest train (fixed by seed)."""
    order = stream(data_seed, _PERMUTATION).permutation(n)
    n_test = int(round(TEST_FRACTION * n))
    n_val = int(round(VALIDATION_FRACTION * n))
    parts = {
        "train": order[n_test + n_val :],
        "test": order[:n_test],
        "validation": order[n_test : n_test + n_val],
    }
    return tuple({name: array[rows] for name, rows in parts.items()} for array in arrays)


def _teacher(rng: np.random.Generator, dim: int, hidden: int) -> Callable[[np.ndarray], np.ndarray]:
    w1 = rng.standard_normal((dim, hidden)) / np.sqrt(dim)
    b1 = 0.5 * rng.standard_normal(hidden)
    w2 = rng.standard_normal(hidden) / np.sqrt(hidden)
    return lambda x: np.tanh(x @ w1 + b1) @ w2


def _linear(rng: np.random.Generator, dim: int) -> Callable[[np.ndarray], np.ndarray]:
    weights = rng.standard_normal(dim)
    return lambda x: x @ weights


def _sine(rng: np.random.Generator, dim: int) -> Callable[[np.ndarray], np.ndarray]:
    # An oscillating ridge function along a random direction plus a weak linear trend.
    direction = rng.standard_normal(dim)
    direction /= np.linalg.norm(direction)
    trend = rng.standard_normal(dim)
    return lambda x: np.sin(2.0 * (x @ direction)) + 0.3 * (x @ trend) / np.sqrt(dim)


#: A synthetic regression signal: ``make(rng, dim)`` draws a function f of ``[n, dim]``
#: standard-normal inputs (the data set standardizes it, so its scale does not matter).
SignalMaker = Callable[[np.random.Generator, int], Callable[[np.ndarray], np.ndarray]]
#: Synthetic regression signals by name (the env keyword ``task``).
SIGNALS: dict[str, SignalMaker] = {
    "linear": _linear,
    "teacher-mlp": lambda rng, dim: _teacher(rng, dim, hidden=32),
    "sine": _sine,
}


def register_signal(name: str, make: SignalMaker) -> None:
    """Add a synthetic regression data set: ``task=name`` then draws f from ``make(rng, dim)``.

    Raises:
        ValueError: The name is taken (by a signal or a scikit-learn data set).
    """
    if name in DATASET_DIMS:
        raise ValueError(f"a regression data set named {name!r} is already registered")
    register_unique(SIGNALS, name, make, "regression data set")


def regression_datasets() -> tuple[str, ...]:
    """Names of the regression data sets: the synthetic signals, then scikit-learn's."""
    return (*SIGNALS, "diabetes")


def _signal_function(task: str, dim: int, data_seed: int) -> Callable[[np.ndarray], np.ndarray]:
    return SIGNALS[task](stream(data_seed, _FUNCTION), dim)


def _difficulty(
    x: dict[str, np.ndarray], data_seed: int, reference: np.ndarray | None
) -> dict[str, np.ndarray]:
    """u(x) = Phi(v . x / scale) for a fixed random direction v (uniform under the inputs).

    For standard-normal inputs v . x / |v| is exactly standard normal; for a data set the
    projection is standardized over all of its rows (``reference``).
    """
    dim = next(iter(x.values())).shape[1]
    direction = stream(data_seed, _DIFFICULTY).standard_normal(dim)
    if reference is None:
        center, scale = 0.0, float(np.linalg.norm(direction))
    else:
        projection = reference @ direction
        center, scale = float(projection.mean()), max(float(projection.std()), 1e-12)
    return {split: ndtr((rows @ direction - center) / scale) for split, rows in x.items()}


@dataclass(frozen=True)
class DatasetShape:
    """A data set's validated arguments: enough to know its spaces without building it.

    Attributes:
        name: The data set (the env keyword ``task``).
        dim: Input dimension.
        sizes: Split -> pool size for synthetic data sets; empty for scikit-learn ones,
            whose pools are their own rows.
        num_classes: Class count (classification) or 0 (regression).
        data_seed: Seed of the data set.
    """

    name: str
    dim: int
    sizes: dict[str, int]
    num_classes: int
    data_seed: int


def regression_shape(
    task: str,
    dim: int | None,
    num_contexts: int | None,
    num_test_contexts: int | None,
    num_validation_contexts: int | None,
    data_seed: int,
) -> DatasetShape:
    """Check a regression data set's arguments (no data is generated).

    Args:
        task: One of ``REGRESSION_DATASETS``.
        dim: Input dimension for synthetic tasks (default 8); must be None or the feature
            count for data sets.
        num_contexts: Train pool size for synthetic tasks (None: 4096). Data sets use
            their own rows and reject sizes.
        num_test_contexts: Test pool size for synthetic tasks (None: 1024).
        num_validation_contexts: Validation pool size for synthetic tasks (None: 512).
        data_seed: Seed of the data set itself (inputs, function, split), >= 0.

    Returns:
        The validated shape.
    """
    check_choice("task", task, regression_datasets())
    dim = _resolve_dim(task, dim)
    sizes = _pool_sizes(task, num_contexts, num_test_contexts, num_validation_contexts)
    _check_memory(dim, sizes)
    return DatasetShape(
        name=task,
        dim=dim,
        sizes=sizes,
        num_classes=0,
        data_seed=check_seed("data_seed", data_seed),
    )


def classification_shape(
    task: str,
    dim: int | None,
    num_classes: int | None,
    num_contexts: int | None,
    num_test_contexts: int | None,
    num_validation_contexts: int | None,
    data_seed: int,
) -> DatasetShape:
    """Check a classification data set's arguments (no data is generated).

    Args:
        task: ``"digits"`` (scikit-learn's 8x8 digits, 10 classes, pixels scaled to [0, 1])
            or ``"teacher-mlp"`` (which of ``num_classes`` equal-frequency bins a fixed
            random network's output falls in: balanced classes, so many classes give a low
            initial pass rate).
        dim: Input dimension (``teacher-mlp`` only; digits has 64).
        num_classes: Class count for ``teacher-mlp`` (default 100), at most the train
            pool size; digits has 10.
        num_contexts: Train pool size for ``teacher-mlp`` (None: 4096).
        num_test_contexts: Test pool size for ``teacher-mlp`` (None: 1024).
        num_validation_contexts: Validation pool size for ``teacher-mlp`` (None: 512).
        data_seed: Seed of the data set, >= 0.

    Returns:
        The validated shape.
    """
    check_choice("task", task, CLASSIFICATION_DATASETS)
    dim = _resolve_dim(task, dim)
    sizes = _pool_sizes(task, num_contexts, num_test_contexts, num_validation_contexts)
    _check_memory(dim, sizes)
    if task == "digits":
        if num_classes not in (None, 10):
            raise ValueError(
                f"num_classes={num_classes!r} does not match task='digits' (10 classes); "
                "pass None or 10"
            )
        classes = 10
    else:
        classes = check_int(
            "num_classes", 100 if num_classes is None else num_classes, 2, sizes["train"]
        )
    seed = check_seed("data_seed", data_seed)
    return DatasetShape(name=task, dim=dim, sizes=sizes, num_classes=classes, data_seed=seed)


def regression_dataset(shape: DatasetShape) -> Dataset:
    """Build a regression data set's train, test and validation pools.

    Args:
        shape: From ``regression_shape``.

    Returns:
        The pools, with signals standardized under the input distribution.
    """
    task, dim, data_seed = shape.name, shape.dim, shape.data_seed
    if task == "diabetes":
        features, target = _load_dataset("diabetes")
        features = _standardize_columns(features)
        f = target.astype(np.float64)
        f = (f - f.mean()) / f.std()
        x, signal = _split_rows(len(f), data_seed, features, f)
        return Dataset(x, signal, _difficulty(x, data_seed, features))
    function = _signal_function(task, dim, data_seed)
    reference = function(stream(data_seed, _REFERENCE).standard_normal((REFERENCE_SIZE, dim)))
    mean, std = float(reference.mean()), float(reference.std())
    x = _synthetic_inputs(data_seed, shape.sizes, dim)
    signal = {split: (function(rows) - mean) / std for split, rows in x.items()}
    return Dataset(x, signal, _difficulty(x, data_seed, None))


def classification_dataset(shape: DatasetShape) -> Dataset:
    """Build a classification data set's train, test and validation pools.

    Args:
        shape: From ``classification_shape``.

    Returns:
        The pools; ``signal`` holds the clean labels.
    """
    task, dim, data_seed, num_classes = shape.name, shape.dim, shape.data_seed, shape.num_classes
    if task == "digits":
        features, labels = _load_dataset("digits")
        x, signal = _split_rows(len(labels), data_seed, features / 16.0, labels.astype(np.int64))
        return Dataset(x, signal, _difficulty(x, data_seed, features / 16.0), num_classes=10)
    # Equal-frequency bins (edges from the reference sample) of a fixed random network's
    # output: balanced classes, so a uniform policy passes 1 / num_classes of the time, and a
    # learnable structure (neighbouring classes are neighbouring output ranges).
    score = _teacher(stream(data_seed, _FUNCTION), dim, hidden=64)
    reference = score(stream(data_seed, _REFERENCE).standard_normal((REFERENCE_SIZE, dim)))
    edges = np.quantile(reference, np.linspace(0.0, 1.0, num_classes + 1)[1:-1])
    x = _synthetic_inputs(data_seed, shape.sizes, dim)
    signal = {
        split: np.searchsorted(edges, score(rows), side="right").astype(np.int64)
        for split, rows in x.items()
    }
    return Dataset(x, signal, _difficulty(x, data_seed, None), num_classes=num_classes)


def _standardize_columns(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
