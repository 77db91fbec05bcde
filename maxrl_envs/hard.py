"""Hard contexts: one task whose per-context initial pass rates span 1e-3 to 0.5.

The ``hard-contexts`` kind is classification with a per-context tolerance. As in the
``teacher-mlp`` classification task, each input x has a true class c*(x): which of C
equal-frequency bins of a fixed random network's output x falls in, so neighbouring classes
are neighbouring output ranges. A context of difficulty level b accepts a window of

    k_b = 2^(b+1) - 1        (1, 3, 7, ..., 511 classes for b = 0 ... 8)

consecutive classes around c*(x): the window [lo, lo + k_b - 1] with
lo = clip(c* - (k_b - 1)/2, 0, C - k_b), so it always holds exactly k_b classes and c*. A
rollout passes (reward 1) when its class lies in the window. A uniform policy therefore
passes with probability exactly k_b / C on a context of level b: with C = 1000 and 9 levels,
0.001, 0.003, ..., 0.511, side by side in one task. The level is a smooth function of x
(``levels`` equal-frequency slices of Phi(v . x / |v|) for a fixed random direction v, the
difficulty axis of the heteroscedastic regression tasks), so each level holds about 1/levels
of the contexts, and a policy can learn where it must be precise.

Every context is solvable: the Bayes policy names c*(x) and passes everywhere, so the
maximum-likelihood objective E log p is 0 at the optimum. The exact likelihood of a
categorical policy is log p(x) = log sum_{a in window} pi(a | x); the supervised label is
c*(x) (the window's centre, unless the window is clipped at an end).

Each ``Contexts`` of this core carries its window width k_b in ``noise_scale`` (an exact
integer in float32); ``difficulty_level`` gives b and ``uniform_pass_rate`` gives k_b / C,
which the evaluation uses to report metrics per difficulty bin
(``eval/bin<b>/log_likelihood``, ``eval/bin<b>/pass@1``, ``eval/bin<b>/pass@<k>``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from maxrl_envs.core import (
    ClassificationCore,
    Contexts,
    Scores,
    TaskCore,
    _spec,
    class_rollouts,
)
from maxrl_envs.datasets import DatasetShape, classification_dataset, classification_shape
from maxrl_envs.heads import LOG_LIKELIHOOD_FLOOR
from maxrl_envs.kinds import ClassificationKind, register_kind
from maxrl_envs.validation import check_choice, check_int

SPLITS = ("train", "test", "validation")
#: Default class count and number of difficulty levels: pass rates 1/1000 ... 511/1000.
DEFAULT_CLASSES = 1000
DEFAULT_LEVELS = 9
#: Most difficulty levels (L levels need C >= 2^L - 1 classes and a train pool of C).
MAX_LEVELS = 20


def level_widths(levels: int) -> list[int]:
    """Window width k_b = 2^(b+1) - 1 of each difficulty level b = 0 ... levels - 1."""
    return [2 ** (b + 1) - 1 for b in range(levels)]


@dataclass(frozen=True)
class HardContextsSpec:
    """The keyword arguments of a hard-contexts core, validated without building any data.

    Args:
        task: Only ``teacher-mlp`` (the synthetic classes of ``MaxRLClassificationManyClass``).
        dim: Input dimension (default 8).
        num_classes: Class count C (default 1000), at most the train pool size and at least
            the widest window 2^levels - 1.
        levels: Number of difficulty levels L in [1, 20]; level b accepts 2^(b+1) - 1
            classes, so a uniform policy passes with probability (2^(b+1) - 1) / C.
        num_contexts: Train pool size (None: 4096).
        num_test_contexts: Test pool size (None: 1024).
        num_validation_contexts: Validation pool size (None: 512).
        data_seed: Seed of the data set.
    """

    task: str = "teacher-mlp"
    dim: int | None = None
    num_classes: int | None = None
    levels: int = DEFAULT_LEVELS
    num_contexts: int | None = None
    num_test_contexts: int | None = None
    num_validation_contexts: int | None = None
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("task", self.task, ("teacher-mlp",))
        set_ = functools.partial(object.__setattr__, self)
        set_("levels", check_int("levels", self.levels, 1, MAX_LEVELS))
        classes = DEFAULT_CLASSES if self.num_classes is None else self.num_classes
        widest = 2**self.levels - 1
        if (
            isinstance(classes, (int, np.integer))
            and not isinstance(classes, bool)
            and classes < widest
        ):
            raise ValueError(
                f"num_classes={classes!r} is smaller than the widest window of "
                f"levels={self.levels} ({widest} classes); allowed: an integer >= {widest} "
                "and <= num_contexts"
            )
        shape = classification_shape(
            self.task,
            self.dim,
            classes,
            self.num_contexts,
            self.num_test_contexts,
            self.num_validation_contexts,
            self.data_seed,
        )
        set_("shape", shape)

    shape: DatasetShape = field(init=False, repr=False, compare=False)


class HardContextsCore(ClassificationCore):
    """Classification with a per-context window of accepted classes (see the module docs).

    Args:
        device: Torch device.
        **kwargs: The fields of ``HardContextsSpec``.
    """

    Spec = HardContextsSpec  # type: ignore[assignment]

    def __init__(self, device: str | torch.device = "cpu", **kwargs: Any) -> None:
        TaskCore.__init__(self, device)
        spec = _spec(HardContextsSpec, "a hard-contexts core", kwargs)
        self.spec = spec  # type: ignore[assignment]
        self.task = spec.task
        self.label_noise = 0.0
        self.obs_dim = spec.shape.dim
        self.num_classes = spec.shape.num_classes
        self.levels = spec.levels
        self.widths = level_widths(spec.levels)
        widths = np.asarray(self.widths, dtype=np.int64)
        data = classification_dataset(spec.shape)
        for split in SPLITS:
            level = np.minimum(
                (data.difficulty[split] * self.levels).astype(np.int64), self.levels - 1
            )
            self._store(
                split,
                obs=data.x[split],
                signal=data.signal[split],
                target=data.signal[split],
                noise_scale=widths[level].astype(np.float32),
            )

    # -- the window of each context ----------------------------------------------------------

    def window(self, contexts: Contexts) -> tuple[torch.Tensor, torch.Tensor]:
        """First accepted class and window width of each context, long ``[B]`` each."""
        width = contexts.noise_scale.round().long()
        low = (contexts.target.long() - (width - 1) // 2).clamp(min=0)
        low = torch.minimum(low, self.num_classes - width)
        return low, width

    def accepted(self, contexts: Contexts) -> torch.Tensor:
        """Bool ``[B, C]``: which classes each context accepts."""
        low, width = self.window(contexts)
        classes = torch.arange(self.num_classes, device=low.device)
        return (classes >= low.unsqueeze(1)) & (classes < (low + width).unsqueeze(1))

    def difficulty_level(self, contexts: Contexts) -> torch.Tensor:
        """Difficulty level b in [0, levels) of each context, long ``[B]`` (0 is hardest)."""
        width = contexts.noise_scale.round().long()
        return torch.log2((width + 1).double()).round().long() - 1

    def uniform_pass_rate(self, contexts: Contexts) -> torch.Tensor:
        """k_b / C per context, float64 ``[B]``: the pass rate of a uniform policy."""
        return contexts.noise_scale.double() / self.num_classes

    def level_pass_rates(self) -> list[float]:
        """k_b / C of each level b: the nominal initial pass rate of each difficulty bin."""
        return [w / self.num_classes for w in self.widths]

    def log_pass_probability(self, log_probs: torch.Tensor, contexts: Contexts) -> torch.Tensor:
        """Exact log p(x) = log sum_{a in window} pi(a|x) from log-probabilities ``[B, C]``.

        Differentiable in ``log_probs`` (a masked logsumexp); -inf where the policy puts no
        mass on the window.
        """
        mask = self.accepted(contexts).to(log_probs.device)
        return torch.logsumexp(log_probs.masked_fill(~mask, -math.inf), dim=-1)

    # -- scoring ----------------------------------------------------------------------------

    def score(self, contexts: Contexts, prediction: torch.Tensor, validate: bool = True) -> Scores:
        """Score ``[B, N]`` predicted classes: reward 1 inside the context's window.

        Args:
            contexts: ``B`` contexts.
            prediction: Class ids, ``[B, N]`` (or ``[B]`` for N = 1), integers.
            validate: Reject class ids outside ``[0, num_classes)`` (a host sync on GPUs).

        Returns:
            Per-rollout scores, ``[B, N]``; ``squared_error`` is the 0-1 error.
        """
        prediction = class_rollouts(prediction, contexts, self.num_classes, validate)
        low, width = self.window(contexts)
        offset = prediction - low.unsqueeze(1)
        hit = (offset >= 0) & (offset < width.unsqueeze(1))
        reward = hit.float()
        return Scores(
            prediction=prediction,
            reward=reward,
            log_reward=torch.where(hit, 0.0, -math.inf),
            log_likelihood=torch.where(hit, 0.0, LOG_LIKELIHOOD_FLOOR),
            squared_error=1.0 - reward,
            is_success=hit,
        )


class HardContextsKind(ClassificationKind):
    """Hard and easy contexts side by side: classification with a per-context tolerance.

    ## Description
    Each context x has a true class c*(x) among ``num_classes`` (C, default 1000) ordered
    classes (equal-frequency bins of a fixed random network's output) and a difficulty
    level b in [0, ``levels``) (default 9 levels), a smooth function of x with equal
    frequencies. The context accepts the k_b = 2^(b+1) - 1 consecutive classes around c*(x)
    (shifted inward at the ends, always exactly k_b classes). A uniform policy passes with
    probability k_b / C: 0.001, 0.003, 0.007, ..., 0.511 for the default settings. Id:
    ``MaxRLHardContexts-v0``.

    ## Action Space
    ``Discrete(num_classes)``. Values outside raise ``ValueError``.

    ## Observation Space
    ``Box(-inf, inf, (dim,), float32)``: standard-normal inputs.

    ## Rewards
    1.0 if the action lies in the context's window, else 0.0. ``info`` carries
    ``log_likelihood`` (0, or -100 for log 0), ``target`` and ``signal`` (c*(x)),
    ``squared_error`` (0-1 error), ``is_success``, ``prediction`` and ``context_id``.

    ## Starting State
    A context drawn uniformly from the split, or ``reset(options={"context_id": i})``.

    ## Episode End
    After one step (terminated=True, truncated=False).

    ## Arguments
    ``dim``, ``num_classes`` (>= 2^levels - 1), ``levels`` (1 to 20), ``num_contexts``,
    ``num_test_contexts``, ``num_validation_contexts``, ``data_seed``, plus the shell's
    ``split`` and ``device``.

    >>> import gymnasium, maxrl_envs
    >>> env = gymnasium.make("MaxRLHardContexts-v0")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, env.action_space
    ((8,), Discrete(1000))

    ## Vector environment
    ``gymnasium.make_vec("MaxRLHardContexts-v0", num_envs=B * N, group_size=N)``.

    ## Version History
    * v0: Initial version.
    """

    name = "hard-contexts"
    core_class = HardContextsCore


register_kind(HardContextsKind())

__all__ = [
    "DEFAULT_CLASSES",
    "DEFAULT_LEVELS",
    "HardContextsCore",
    "HardContextsKind",
    "HardContextsSpec",
    "level_widths",
]
