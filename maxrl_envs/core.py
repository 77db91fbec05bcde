"""Batched, device-aware task cores: the one implementation behind every door.

A core holds a fixed pool of contexts per split (``"train"``, ``"validation"`` and
``"test"``) on a torch device, with for each context its observation x, clean signal f(x),
noisy target y (drawn once per context, never per rollout) and noise scale. It samples
context ids, looks contexts up, and scores ``[B, N]`` predictions (N rollouts for each of B
contexts) with a likelihood head. The single Gymnasium env, the vector env, the
Stable-Baselines3 adapter and the agents' fast path all call these methods, so the same seed
gives the same contexts, targets and rewards everywhere.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from maxrl_envs._threads import serial_on_cpu
from maxrl_envs.datasets import (
    _SPLIT_TAGS,
    CLASSIFICATION_DATASETS,
    Dataset,
    DatasetShape,
    classification_dataset,
    classification_shape,
    regression_dataset,
    regression_datasets,
    regression_shape,
    stream,
)
from maxrl_envs.heads import LOG_LIKELIHOOD_FLOOR, get_head, head_names, score_head
from maxrl_envs.noise import (
    MAX_HETEROSCEDASTIC_DECADES,
    NOISE_FAMILIES,
    heteroscedastic_scales,
    unit_noise,
)
from maxrl_envs.validation import (
    check_choice,
    check_device,
    check_fraction,
    check_known_kwargs,
    check_nonnegative,
    check_number,
    check_positive,
)

#: Seed-stream tags of the targets (see ``tasks.stream``).
_NOISE, _LABEL_NOISE = 20, 21

#: Context pools: train for learning, validation for model selection, test for reporting.
SPLITS = ("train", "test", "validation")


@dataclass(frozen=True)
class Contexts:
    """A batch of contexts, each tensor ``[B]`` or ``[B, obs_dim]`` on the core's device.

    Attributes:
        ids: Context ids within their split (long).
        obs: Observations x (float32).
        signal: Clean signal f(x) (regression, float32) or clean label (classification, long).
        target: Noisy target y (float32) or observed, possibly corrupted, label (long).
        noise_scale: Noise standard deviation of each context (regression) or the label-noise
            rate (classification), float32.
    """

    ids: torch.Tensor
    obs: torch.Tensor
    signal: torch.Tensor
    target: torch.Tensor
    noise_scale: torch.Tensor


@dataclass(frozen=True)
class Scores:
    """Scores of ``[B, N]`` rollouts; every tensor is ``[B, N]``.

    Attributes:
        prediction: The prediction each rollout made (float32, or long class ids).
        reward: Likelihood rescaled to a ceiling of 1, in [0, 1].
        log_reward: log(reward), <= 0, ``-inf`` where the reward is 0; never underflows.
        log_likelihood: Normalized log-likelihood log l(y, prediction) (density for the
            Gaussian and Laplace heads, probability for the verifier and classification;
            log 0 is reported as ``LOG_LIKELIHOOD_FLOOR``).
        squared_error: (prediction - target)^2 for regression; 0-1 error against the
            observed label for classification.
        is_success: Whether the rollout passes the verifier rule |y - yhat| <= head_scale
            (regression) or names the observed label (classification).
    """

    prediction: torch.Tensor
    reward: torch.Tensor
    log_reward: torch.Tensor
    log_likelihood: torch.Tensor
    squared_error: torch.Tensor
    is_success: torch.Tensor


class TaskCore:
    """Shared machinery of the cores: pools, context sampling and lookup.

    A core class names its keyword arguments in a ``Spec`` dataclass, whose construction
    checks them without building data (``maxrl_envs.kinds`` reads it to check env keywords).
    """

    Spec: type
    obs_dim: int

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = check_device(device)
        self._pools: dict[str, dict[str, torch.Tensor]] = {}

    def _store(self, split: str, **arrays: np.ndarray) -> None:
        pool = {}
        for name, array in arrays.items():
            dtype = torch.long if array.dtype.kind in "iu" else torch.float32
            pool[name] = torch.as_tensor(array, dtype=dtype, device=self.device)
        self._pools[split] = pool

    def num_contexts(self, split: str = "train") -> int:
        """Number of contexts in a split."""
        check_choice("split", split, SPLITS)
        return int(self._pools[split]["obs"].shape[0])

    def make_generator(self, seed: int) -> torch.Generator:
        """A torch generator on this core's device, seeded with ``seed``."""
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def sample_ids(self, n: int, generator: torch.Generator, split: str = "train") -> torch.Tensor:
        """Draw ``n`` context ids uniformly with replacement from a split.

        Args:
            n: Number of ids.
            generator: Torch generator on this core's device (see ``make_generator``).
            split: ``"train"``, ``"validation"`` or ``"test"``.

        Returns:
            Long tensor ``[n]`` on the core's device.
        """
        return torch.randint(
            self.num_contexts(split), (n,), generator=generator, device=self.device
        )

    def contexts(
        self,
        ids: torch.Tensor | np.ndarray | list[int],
        split: str = "train",
        validate: bool = True,
    ) -> Contexts:
        """Look up contexts by id.

        Args:
            ids: Context ids, ``[B]``, each in ``[0, num_contexts(split))``.
            split: ``"train"``, ``"validation"`` or ``"test"``.
            validate: Check the ids' range (a host sync on GPUs); skip for ids from
                ``sample_ids``.

        Returns:
            The contexts, on the core's device.
        """
        size = self.num_contexts(split)
        ids = torch.as_tensor(ids, device=self.device)
        if validate and (ids.is_floating_point() or ids.is_complex()):
            raise ValueError(f"context_id values must be integers, got dtype {ids.dtype}")
        ids = ids.to(torch.long).reshape(-1)
        if validate and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
            raise ValueError(
                f"context_id values {ids.tolist()[:8]} out of range for split={split!r}, "
                f"which has {size} contexts (allowed: 0..{size - 1})"
            )
        pool = self._pools[split]
        return Contexts(
            ids=ids,
            obs=pool["obs"].index_select(0, ids),
            signal=pool["signal"].index_select(0, ids),
            target=pool["target"].index_select(0, ids),
            noise_scale=pool["noise_scale"].index_select(0, ids),
        )

    def all_contexts(self, split: str = "test") -> Contexts:
        """Every context of a split, in id order."""
        return self.contexts(torch.arange(self.num_contexts(split), device=self.device), split)


#: Accepted ranges of the numeric keywords whose extremes would overflow or cancel in the
#: float32 pools and scores (targets, rewards and log-likelihoods stay finite inside them;
#: ``tests/envs/test_envs_numerics.py`` checks every registered id at both ends).
SNR_RANGE = (1e-6, 1e6)
HEAD_SCALE_RANGE = (1e-6, 1e6)
#: Below 1e-6 the float32 predictions of different actions collapse (at ~1e-45 every action
#: predicts 0) and the supervised rollouts y / prediction_range overflow.
PREDICTION_RANGE_MIN = 1e-6
PREDICTION_RANGE_MAX = 1e6
STUDENT_DF_MAX = 1e6


def _in_range(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    return check_number(name, value, minimum=low, maximum=high, strict_minimum=low_open)


@dataclass(frozen=True)
class RegressionSpec:
    """The keyword arguments of a regression core, validated without building any data.

    Args:
        task: Data set: ``linear``, ``teacher-mlp``, ``sine`` (synthetic, standardized) or
            ``diabetes`` (scikit-learn).
        dim: Input dimension of synthetic data sets (default 8); None or 10 for diabetes.
        snr: Var(f(x)) / Var(noise), in [1e-6, 1e6] (e.g. 10 easy, 0.01 very noisy).
        noise: ``gaussian``, ``laplace`` or ``student-t`` (unit-variance families).
        student_df: Degrees of freedom of Student-t noise, in (2, 1e6].
        heteroscedastic: Decades spanned by per-context noise scales, 0 (homogeneous) to 12.
        head: Likelihood head ``gaussian``, ``laplace``, ``verifier`` or one added with
            ``maxrl_envs.heads.register_head``.
        head_scale: Head width s in [1e-6, 1e6]; None uses the base noise std 1/sqrt(snr).
        prediction_range: Actions in [-1, 1] map linearly to predictions in
            [-prediction_range, prediction_range]; in [1e-6, 1e6].
        num_contexts: Train pool size (synthetic data sets; None: 4096; data sets reject it).
        num_test_contexts: Held-out test pool size (synthetic data sets; None: 1024).
        num_validation_contexts: Validation pool size, for model selection (synthetic
            data sets; scikit-learn ones hold out 10% of their rows).
        data_seed: Seed of the data set (inputs, signal, targets); not the episode seed.
    """

    task: str = "linear"
    dim: int | None = None
    snr: float = 10.0
    noise: str = "gaussian"
    student_df: float = 3.0
    heteroscedastic: float = 0.0
    head: str = "gaussian"
    head_scale: float | None = None
    prediction_range: float = 4.0
    num_contexts: int | None = None
    num_test_contexts: int | None = None
    num_validation_contexts: int | None = None
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("task", self.task, regression_datasets())
        set_ = functools.partial(object.__setattr__, self)
        set_("snr", _in_range("snr", self.snr, *SNR_RANGE))
        set_("noise", check_choice("noise", self.noise, NOISE_FAMILIES))
        set_("student_df", check_positive("student_df", self.student_df, STUDENT_DF_MAX))
        if self.noise == "student-t" and self.student_df <= 2:
            raise ValueError(
                f"student_df={self.student_df!r} must be > 2 so the noise has a variance"
            )
        set_(
            "heteroscedastic",
            check_nonnegative("heteroscedastic", self.heteroscedastic, MAX_HETEROSCEDASTIC_DECADES),
        )
        set_("head", check_choice("head", self.head, head_names()))
        if self.head_scale is not None:
            set_("head_scale", _in_range("head_scale", self.head_scale, *HEAD_SCALE_RANGE))
        set_(
            "prediction_range",
            _in_range(
                "prediction_range",
                self.prediction_range,
                PREDICTION_RANGE_MIN,
                PREDICTION_RANGE_MAX,
            ),
        )
        shape = regression_shape(
            self.task,
            self.dim,
            self.num_contexts,
            self.num_test_contexts,
            self.num_validation_contexts,
            self.data_seed,
        )
        set_("shape", shape)

    shape: DatasetShape = field(init=False, repr=False, compare=False)

    @property
    def base_noise_std(self) -> float:
        """The noise std 1/sqrt(snr) of a homogeneous task (the mean over contexts)."""
        return 1.0 / math.sqrt(self.snr)


class RegressionCore(TaskCore):
    """Noisy regression: y = f(x) + noise_scale(x) * eps, scored by a likelihood head.

    Args:
        device: Torch device of the pools and of scoring.
        **kwargs: The fields of ``RegressionSpec`` (task, snr, noise, head, ...).
    """

    Spec = RegressionSpec

    def __init__(self, device: str | torch.device = "cpu", **kwargs: Any) -> None:
        super().__init__(device)
        spec = _spec(RegressionSpec, "a regression core", kwargs)
        self.spec = spec
        self.task = spec.task
        self.snr = spec.snr
        self.noise = spec.noise
        self.student_df = spec.student_df
        self.heteroscedastic = spec.heteroscedastic
        self.head = spec.head
        self.base_noise_std = spec.base_noise_std
        self.head_scale = self.base_noise_std if spec.head_scale is None else spec.head_scale
        self.prediction_range = spec.prediction_range
        self.obs_dim = spec.shape.dim
        self._build_targets(regression_dataset(spec.shape), spec.data_seed)

    def _build_targets(self, data: Dataset, data_seed: int) -> None:
        for split in SPLITS:
            rng = stream(data_seed, _NOISE, _SPLIT_TAGS[split])
            signal = data.signal[split]
            scales = self.base_noise_std * heteroscedastic_scales(
                data.difficulty[split], self.heteroscedastic
            )
            eps = unit_noise(self.noise, len(signal), rng, self.student_df)
            self._store(
                split,
                obs=data.x[split],
                signal=signal,
                target=signal + scales * eps,
                noise_scale=scales,
            )

    def reachable(self, contexts: Contexts) -> torch.Tensor:
        """Contexts whose target some prediction in the range can score (``[B]`` bools).

        Only a head of bounded support (the verifier: ``Head.support`` = 1) has unreachable
        targets: |y| > prediction_range + support * head_scale (decided in float64, as the
        verifier itself), where every policy's likelihood is 0.
        """
        support = get_head(self.head).support
        if math.isinf(support):
            return torch.ones_like(contexts.ids, dtype=torch.bool)
        limit = self.prediction_range + support * self.head_scale
        return contexts.target.double().abs() <= limit

    def action_to_prediction(self, action: torch.Tensor) -> torch.Tensor:
        """Map actions to predictions: clip to [-1, 1], then scale by ``prediction_range``."""
        return action.clamp(-1.0, 1.0) * self.prediction_range

    def prediction_to_action(self, prediction: torch.Tensor) -> torch.Tensor:
        """Inverse of ``action_to_prediction`` on the prediction range (clipped outside)."""
        return (prediction / self.prediction_range).clamp(-1.0, 1.0)

    def score(self, contexts: Contexts, prediction: torch.Tensor, validate: bool = True) -> Scores:
        """Score ``[B, N]`` predictions against the contexts' targets.

        Args:
            contexts: ``B`` contexts.
            prediction: Predictions in target units, ``[B, N]`` (or ``[B]`` for N = 1).
            validate: Reject NaN or infinite predictions (a host sync on GPUs); skip only for
                predictions already checked.

        Returns:
            Per-rollout scores, ``[B, N]``.
        """
        prediction = _as_rollouts(prediction, contexts, torch.float32, validate)
        target = contexts.target.unsqueeze(1)
        with serial_on_cpu(self.device):
            out = score_head(self.head, self.head_scale, target, prediction)
        return Scores(
            prediction=prediction,
            reward=out.reward,
            log_reward=out.log_reward,
            log_likelihood=out.log_likelihood,
            squared_error=(prediction - target).square(),
            is_success=out.is_success,
        )


@dataclass(frozen=True)
class ClassificationSpec:
    """The keyword arguments of a classification core, validated without building any data.

    Args:
        task: ``digits`` (scikit-learn, 10 classes) or ``teacher-mlp`` (synthetic, many
            classes, low initial pass rate).
        dim: Input dimension for ``teacher-mlp`` (default 8).
        num_classes: Class count for ``teacher-mlp`` (default 100).
        label_noise: Probability that a context's observed label is replaced, once, by a
            uniformly drawn different class; in [0, 1).
        num_contexts: Train pool size (``teacher-mlp``; None: 4096).
        num_test_contexts: Held-out test pool size (``teacher-mlp``; None: 1024).
        num_validation_contexts: Validation pool size (``teacher-mlp``; digits holds out
            10% of its rows).
        data_seed: Seed of the data set.
    """

    task: str = "digits"
    dim: int | None = None
    num_classes: int | None = None
    label_noise: float = 0.0
    num_contexts: int | None = None
    num_test_contexts: int | None = None
    num_validation_contexts: int | None = None
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("task", self.task, CLASSIFICATION_DATASETS)
        object.__setattr__(self, "label_noise", check_fraction("label_noise", self.label_noise))
        shape = classification_shape(
            self.task,
            self.dim,
            self.num_classes,
            self.num_contexts,
            self.num_test_contexts,
            self.num_validation_contexts,
            self.data_seed,
        )
        object.__setattr__(self, "shape", shape)

    shape: DatasetShape = field(init=False, repr=False, compare=False)


class ClassificationCore(TaskCore):
    """Classification as RL: the action is a class, the reward 1 for the observed label.

    Args:
        device: Torch device.
        **kwargs: The fields of ``ClassificationSpec`` (task, num_classes, label_noise, ...).
    """

    Spec = ClassificationSpec

    def __init__(self, device: str | torch.device = "cpu", **kwargs: Any) -> None:
        super().__init__(device)
        spec = _spec(ClassificationSpec, "a classification core", kwargs)
        self.spec = spec
        self.task = spec.task
        self.label_noise = spec.label_noise
        self.obs_dim = spec.shape.dim
        self.num_classes = spec.shape.num_classes
        data = classification_dataset(spec.shape)
        for split in SPLITS:
            rng = stream(spec.data_seed, _LABEL_NOISE, _SPLIT_TAGS[split])
            clean = data.signal[split]
            flip = rng.random(len(clean)) < self.label_noise
            shift = rng.integers(1, self.num_classes, len(clean))
            observed = np.where(flip, (clean + shift) % self.num_classes, clean)
            self._store(
                split,
                obs=data.x[split],
                signal=clean,
                target=observed,
                noise_scale=np.full(len(clean), self.label_noise),
            )

    def reachable(self, contexts: Contexts) -> torch.Tensor:
        """Every label can be predicted: all True, ``[B]``."""
        return torch.ones_like(contexts.ids, dtype=torch.bool)

    def score(self, contexts: Contexts, prediction: torch.Tensor, validate: bool = True) -> Scores:
        """Score ``[B, N]`` predicted classes against the observed labels.

        Args:
            contexts: ``B`` contexts.
            prediction: Class ids, ``[B, N]`` (or ``[B]`` for N = 1), integers.
            validate: Reject class ids outside ``[0, num_classes)`` (a host sync on GPUs);
                skip only for ids already checked.

        Returns:
            Per-rollout scores, ``[B, N]``; the reward is 1 where the class is the observed
            label, else 0.
        """
        prediction = class_rollouts(prediction, contexts, self.num_classes, validate)
        hit = prediction == contexts.target.unsqueeze(1)
        reward = hit.float()
        return Scores(
            prediction=prediction,
            reward=reward,
            log_reward=torch.where(hit, 0.0, -math.inf),
            log_likelihood=torch.where(hit, 0.0, LOG_LIKELIHOOD_FLOOR),
            squared_error=1.0 - reward,
            is_success=hit,
        )


def _spec(cls: type, owner: str, kwargs: dict[str, Any]) -> Any:
    """Build a spec dataclass from keyword arguments, naming unknown ones."""
    allowed = [f.name for f in fields(cls) if f.init]
    check_known_kwargs(owner, kwargs, allowed)
    return cls(**kwargs)


def _as_rollouts(
    prediction: Any, contexts: Contexts, dtype: torch.dtype, validate: bool = True
) -> torch.Tensor:
    prediction = torch.as_tensor(prediction, device=contexts.ids.device)
    if prediction.dim() == 1:
        prediction = prediction.unsqueeze(1)
    if prediction.dim() != 2 or prediction.shape[0] != contexts.ids.shape[0]:
        raise ValueError(
            f"prediction shape {tuple(prediction.shape)} does not fit {contexts.ids.shape[0]} "
            "contexts; expected [B, N] or [B]"
        )
    if prediction.is_floating_point() and dtype == torch.long:
        raise ValueError("prediction for a classification core must hold integer class ids")
    prediction = prediction.to(dtype)
    if validate and prediction.is_floating_point() and not bool(torch.isfinite(prediction).all()):
        raise ValueError("prediction contains NaN or infinite values; actions must be finite")
    return prediction


def class_rollouts(
    prediction: Any, contexts: Contexts, num_classes: int, validate: bool
) -> torch.Tensor:
    """Class-id predictions as ``[B, N]`` longs; with ``validate``, each in [0, num_classes)."""
    prediction = _as_rollouts(prediction, contexts, torch.long, validate)
    if (
        validate
        and prediction.numel()
        and (int(prediction.min()) < 0 or int(prediction.max()) >= num_classes)
    ):
        raise ValueError(
            f"action values must be class ids in [0, {num_classes - 1}], "
            f"got min {int(prediction.min())} and max {int(prediction.max())}"
        )
    return prediction
