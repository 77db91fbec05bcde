"""What every agent shares: the metric that selects checkpoints, and the selection itself.

Our trainer (``agents.trainer``) and the Stable-Baselines3 runner (``agents.sb3_baselines``)
both select checkpoints the same way (early stopping): at every evaluation the policy is
scored on the validation split, and the one with the best ``select_metric`` so far is kept.
The run then reports that policy's test metrics instead of the last one's, plus
``selected_rollouts`` and ``selected_value``. ``CheckpointSelector`` owns that rule and the
best-so-far (a ``Best``); each agent keeps only how it scores a policy and how its
checkpoint stores the selection.

The settings both configs have (``TrainConfig`` and ``SB3Config``) are named once here:
``RunSettings`` (what is trained, for how long, where) and ``EvalSettings`` (how it is
evaluated and selected). Each config exposes them as ``config.run_settings`` and
``config.eval_settings``, views over its own flat fields: the configs stay flat because a
run's id is a digest of its config as stored, so nesting them would change every run id.

The run directory lifecycle (stored-config check, resume, ``final.json``) is
``agents.runs.RunDirectory``, shared the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from agents.evaluation import any_metric_tags, better, check_select_metric, default_metrics
from maxrl_envs import validation as v


def resolve_select_metric(
    select_metric: str | None, numeric: bool, head: str | None, pass_k: int, exact: bool
) -> str:
    """The metric that selects checkpoints: ``select_metric`` or the task's default.

    The default names the log-likelihood tag evaluation reports: ``eval/log_likelihood``, or
    ``eval/log_likelihood_mc`` where the policy's likelihood has no exact form (``exact``
    False); pass@1 where the task has no likelihood metric. Runs record it in ``final.json``.

    Args:
        select_metric: The configured tag (None: the default).
        numeric: Whether the task's predictions are numbers.
        head: The likelihood head of a numeric task (None otherwise).
        pass_k: k of ``eval/pass@k``.
        exact: Whether evaluation reports the exact log-likelihood for this policy.
    """
    if select_metric is not None:
        return select_metric
    return default_metrics(numeric, head if numeric else None, pass_k, exact)[0]


def check_selection(
    select_metric: str | None, pass_k: int, numeric: bool, exact: bool, env_id: str, why: str
) -> None:
    """Refuse a ``select_metric`` that is no tag, or one this task and policy do not report.

    Args:
        select_metric: The configured tag (None passes: the default always exists).
        pass_k: k of ``eval/pass@k``.
        numeric: Whether the task's predictions are numbers.
        exact: Whether evaluation reports the exact log-likelihood for this policy.
        env_id: The env, named in the error.
        why: Why the exact form is missing (named in the error).

    Raises:
        ValueError: Naming ``select_metric``, its value and the allowed tags.
    """
    if select_metric is None:
        return
    v.check_choice("select_metric", select_metric, any_metric_tags(pass_k))
    check_select_metric(select_metric, pass_k, numeric, exact, env_id, why)


def _view(cls: type, config: Any) -> Any:
    return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class RunSettings:
    """What every agent's run is: env, budget, seed, evaluation cadence and run directory.

    Both ``TrainConfig`` and ``SB3Config`` have these fields (with their own defaults, e.g.
    ``eval_every`` and ``device``); ``config.run_settings`` is the view.
    """

    env_id: str
    env_kwargs: dict[str, Any]
    budget: int
    seed: int
    eval_every: int
    device: str
    log_dir: str | None
    run_name: str | None
    resume: bool
    progress: bool

    @classmethod
    def of(cls, config: Any) -> RunSettings:
        """The run settings of a ``TrainConfig`` or ``SB3Config``."""
        return _view(cls, config)


@dataclass(frozen=True)
class EvalSettings:
    """How every agent is evaluated and its checkpoint selected (``config.eval_settings``).

    Attributes:
        eval_samples: Samples M per held-out context.
        pass_k: k of ``eval/pass@k``, at most ``eval_samples``.
        eval_split: The split evaluated (``test``, or ``validation`` for tuning runs).
        early_stopping: Report the validation-best checkpoint (``CheckpointSelector``).
        select_metric: The tag that selects checkpoints (None: the task's default).
        select_contexts: Validation contexts scored for the selection (None: all).
    """

    eval_samples: int
    pass_k: int
    eval_split: str
    early_stopping: bool
    select_metric: str | None
    select_contexts: int | None

    @classmethod
    def of(cls, config: Any) -> EvalSettings:
        """The evaluation settings of a ``TrainConfig`` or ``SB3Config``."""
        return _view(cls, config)

    def check(self) -> None:
        """The rule the fields' own rules cannot say: ``pass_k <= eval_samples``.

        Raises:
            ValueError: Naming ``pass_k``, its value and the allowed range.
        """
        if self.pass_k > self.eval_samples:
            raise ValueError(
                f"pass_k={self.pass_k!r} is invalid; allowed: an integer in [1, "
                f"{self.eval_samples}] (eval_samples={self.eval_samples})"
            )


@dataclass
class Best:
    """The best evaluation so far of an early-stopping run.

    Attributes:
        value: Its validation value of the select metric.
        rollouts: Rollouts consumed when it was evaluated.
        policy: A copy of the policy's ``state_dict`` then.
    """

    value: float
    rollouts: int
    policy: dict[str, Any]


def copy_state(module: Any) -> dict[str, Any]:
    """A detached copy of a torch module's ``state_dict``."""
    return {k: t.detach().clone() for k, t in module.state_dict().items()}


class CheckpointSelector:
    """Early stopping: keep the policy with the best validation ``select_metric``.

    Args:
        early_stopping: Whether the run selects checkpoints (else every call is a no-op).
        select_metric: The ``eval/*`` tag compared (``agents.evaluation.better`` knows
            which direction is better).

    Attributes:
        best: The best evaluation so far (None before the first finite value).
    """

    def __init__(self, early_stopping: bool, select_metric: str) -> None:
        self.early_stopping = early_stopping
        self.select_metric = select_metric
        self.best: Best | None = None

    @property
    def tag(self) -> str:
        """The TensorBoard tag of the validation values: ``select/<metric>``."""
        return "select/" + self.select_metric.removeprefix("eval/")

    def offer(self, value: float, rollouts: int, module: Any) -> bool:
        """Keep ``module``'s policy when ``value`` is finite and beats the best so far.

        Args:
            value: The validation value of the select metric.
            rollouts: Rollouts consumed.
            module: The torch module whose ``state_dict`` is copied when kept.

        Returns:
            Whether it was kept.
        """
        if not self.early_stopping or not math.isfinite(value):
            return False
        if self.best is not None and not better(self.select_metric, value, self.best.value):
            return False
        self.best = Best(value, rollouts, copy_state(module))
        return True

    def selected(
        self, module: Any, evaluate: Callable[[], Mapping[str, float]]
    ) -> dict[str, float] | None:
        """The selected policy's metrics, or None without a selection.

        Loads the best policy into ``module``, runs ``evaluate()``, then puts the last
        policy back.

        Returns:
            ``evaluate()``'s metrics plus ``selected_rollouts`` and ``selected_value``.
        """
        if not self.early_stopping or self.best is None:
            return None
        last = copy_state(module)
        module.load_state_dict(self.best.policy)
        metrics = dict(evaluate())
        module.load_state_dict(last)
        return {
            **metrics,
            "selected_rollouts": float(self.best.rollouts),
            "selected_value": self.best.value,
        }


__all__ = [
    "Best",
    "CheckpointSelector",
    "EvalSettings",
    "RunSettings",
    "check_selection",
    "copy_state",
    "resolve_select_metric",
]
