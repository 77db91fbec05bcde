"""What one training step optimizes: a policy-gradient estimator, or supervised likelihood.

The trainer runs one loop for every objective; an objective turns a batch of contexts into a
loss. ``PolicyGradient`` samples N rollouts per context, scores them with the task's core and
weights their log-probabilities with a registered estimator (``agents.estimators``);
``Supervised`` maximizes the log-probability of the rollout that writes the observed target
(the "labels seen directly" reference, density of y); ``SupervisedML`` maximizes the exact
log E_z l(y, z) of the scored quantity on the same labels. ``get_objective(name)`` resolves
a ``TrainConfig.estimator`` name: every registered estimator, plus ``supervised`` and
``supervised-ml``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from agents import estimators
from agents.exact import exact_log_likelihood, log_likelihood_grad, no_exact_form_reason
from agents.policies import TaskPolicy
from maxrl_envs.core import Contexts, Scores

SUPERVISED = "supervised"
SUPERVISED_ML = "supervised-ml"


@dataclass
class StepInputs:
    """What an objective sees of one step.

    Attributes:
        agent: The policy bound to its task.
        contexts: The step's B contexts.
        group_size: Rollouts N per context (policy-gradient objectives).
        generator: The run's generator (all training randomness).
        params: The estimator's parameters (e.g. ``{"order": 4}``).
        validate: Check values on this step (a host sync; the trainer does it once).
        with_stats: Also return the logged statistics.
        compiled: Run the estimator's compiled kernels where it has them
            (``agents.estimators.compiled_kernels``; ``TrainConfig.compile``).
    """

    agent: TaskPolicy
    contexts: Contexts
    group_size: int
    generator: torch.Generator
    params: dict[str, Any] = field(default_factory=dict)
    validate: bool = False
    with_stats: bool = False
    compiled: bool = False


class Objective(ABC):
    """A training objective.

    Attributes:
        name: Its ``TrainConfig.estimator`` name.
        role: ``maxrl``, ``baseline`` or ``reference`` (how reports group agents).
        min_group_size: Fewest rollouts N per context it accepts.
        params: Estimator parameters a run may set.
        ignored_settings: Run settings its result does not depend on (the supervised
            objectives fit one label per context, whatever N, ``group_size``, is).
    """

    name: str
    role: str
    min_group_size: int = 1
    params: tuple[str, ...] = ()
    ignored_settings: tuple[str, ...] = ()

    @abstractmethod
    def rollouts_per_context(self, group_size: int) -> int:
        """Rollouts (budget units) one context costs per step."""

    def check_params(self, params: dict[str, Any]) -> None:
        """Refuse parameters this objective does not take (None values always pass).

        Raises:
            ValueError: Naming the parameter and the estimators that take it.
        """
        given = {k: val for k, val in params.items() if val is not None}
        if given:
            key, value = next(iter(given.items()))
            raise ValueError(
                f"{key}={value!r} is not used by estimator={self.name!r}; allowed: None"
            )

    @abstractmethod
    def loss(self, step: StepInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The step's loss and, when ``step.with_stats``, detached statistics by tag."""


class PolicyGradient(Objective):
    """Sample N rollouts per context and weight their scores with an estimator.

    Args:
        estimator: A registry entry of ``agents.estimators``.
    """

    def __init__(self, estimator: estimators.Estimator) -> None:
        self.estimator = estimator
        self.name = estimator.name
        self.role = estimator.role
        self.min_group_size = estimator.min_group_size
        self.params = estimator.params

    def rollouts_per_context(self, group_size: int) -> int:
        """N."""
        return group_size

    def check_params(self, params: dict[str, Any]) -> None:
        """The estimator's own check (see ``agents.estimators.check_params``)."""
        estimators.check_params(self.estimator, params)

    def weights(
        self,
        scores: Scores,
        params: dict[str, Any],
        *,
        validate: bool = False,
        compiled: bool = False,
    ) -> torch.Tensor:
        """The estimator's weights A ``[B, N]`` from a step's scores (see ``StepInputs``)."""
        params = {k: v for k, v in params.items() if v is not None}
        with estimators.compiled_kernels(compiled):
            if self.estimator.input == "likelihood":
                # Log-space keeps Gaussian-head likelihoods that underflow float32 distinct.
                return self.estimator.weights(
                    scores.log_reward, log_space=True, validate=validate, **params
                )
            return self.estimator.weights(scores.reward, validate=validate, **params)

    def loss(self, step: StepInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-(A.detach() * log m(z | x)).mean() with A from the estimator."""
        agent = step.agent
        rollouts, prediction = agent.rollouts(step.contexts, step.group_size, step.generator)
        # Input checks are host syncs: the policy's outputs are checked on the first step.
        scores = agent.core.score(step.contexts, prediction, validate=step.validate)
        weights = self.weights(scores, step.params, validate=step.validate, compiled=step.compiled)
        loss = -(weights.detach() * rollouts.log_prob).mean()
        stats: dict[str, torch.Tensor] = {}
        if step.with_stats:
            log_reward = scores.log_reward
            stats["rollout/ep_rew_mean"] = scores.reward.mean()
            stats["train/entropy"] = rollouts.entropy.mean()
            stats["estimator/weight_mean"] = weights.mean()
            stats["estimator/weight_std"] = weights.std(unbiased=False)
            stats["estimator/no_signal_frac"] = (
                (log_reward.amax(1) == log_reward.amin(1)).float().mean()
            )
        return loss, stats


class Supervised(Objective):
    """Maximize log m(z* | x) of the rollout z* that writes the observed target.

    Gaussian NLL of y / prediction_range, cross-entropy on the label, or on the target's
    digits; one label per context, so a step costs B rollouts of budget.
    """

    name = SUPERVISED
    role = "reference"
    ignored_settings = ("group_size",)

    def rollouts_per_context(self, group_size: int) -> int:
        """1: one label per context."""
        return 1

    def loss(self, step: StepInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean negative log-likelihood of the label rollouts."""
        agent = step.agent
        labels = agent.labels(step.contexts)
        return -agent.policy.log_prob(step.contexts.obs, labels).mean(), {}


class SupervisedML(Objective):
    """Exact maximum likelihood of the scored quantity: maximize log E_z l(y, z) under the policy.

    The N -> infinity limit of MaxRL, trained on the same labels as ``supervised`` (one
    observed target per context, so a step costs B rollouts of budget). The loss is
    -mean log p(y|x) with p(y|x) = E_{z ~ m(.|x)} l(y, z), computed exactly and
    differentiably by ``agents.exact.log_likelihood_grad``, the code behind the exact
    ``eval/log_likelihood``:

    - Gaussian policy N(mu, s^2), clipped to the prediction range: the censored-normal
      closed form of each head (Gaussian head of width h: N(y; R mu, R^2 s^2 + h^2) away
      from the clip bounds; Laplace and verifier heads: their closed forms);
    - categorical policies: cross-entropy on the label (classification), the log of the
      probability mass on the accepted classes (hard contexts), or log sum_k pi_k l(y, v_k)
      over the bins of a binned policy;
    - token policies: the exact sum over every token sequence (up to
      ``agents.exact.MAX_SEQUENCES``; above it the objective refuses to run).

    ``supervised`` (log m(z* | x) of the rollout that writes y, e.g. a Gaussian NLL of
    y / prediction_range) is kept as the density-of-y variant. As in the evaluation,
    contexts whose target no prediction can score (``core.reachable``) are left out, and so
    are contexts where the policy's p(y|x) is exactly 0 (a binned policy whose bins all miss
    a verifier window): they have no gradient.
    """

    name = SUPERVISED_ML
    role = "reference"
    ignored_settings = ("group_size",)

    def rollouts_per_context(self, group_size: int) -> int:
        """1: one label per context."""
        return 1

    def loss(self, step: StepInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """-mean exact log p(y|x) over the step's reachable contexts with p(y|x) > 0."""
        agent, contexts = step.agent, step.contexts
        # A first pass without gradients finds the contexts to keep, so that the graph never
        # holds a row whose log p is -inf (its backward would turn 0 * inf into NaN).
        values = exact_log_likelihood(agent, agent.core, contexts)
        if values is None:
            why = no_exact_form_reason(agent.task.rollout_space()) or "no exact form"
            raise ValueError(
                f"estimator={self.name!r} needs the exact log-likelihood of the policy, and "
                f"this task has none ({why}); allowed: 'supervised' here"
            )
        kept = agent.core.reachable(contexts).to(values.device) & torch.isfinite(values)
        if not bool(kept.all()):
            contexts = _subset(contexts, kept.to(contexts.ids.device))
        if contexts.ids.numel() == 0:  # nothing to learn from on this step
            loss = sum((p * 0.0).sum() for p in agent.policy.parameters())
        else:
            loss = -log_likelihood_grad(agent, agent.core, contexts).mean()
        stats: dict[str, torch.Tensor] = {}
        if step.with_stats:
            stats["train/log_likelihood"] = -loss.detach().float()
        return loss.to(step.contexts.obs.dtype), stats  # float32 in training, as the others


def _subset(contexts: Contexts, keep: torch.Tensor) -> Contexts:
    """The contexts where ``keep`` is True (every field indexed alike)."""
    return Contexts(**{f.name: getattr(contexts, f.name)[keep] for f in fields(contexts)})


def objective_names() -> tuple[str, ...]:
    """Every name ``get_objective`` resolves: the estimators, supervised and supervised-ml."""
    return (*estimators.estimator_names(), SUPERVISED, SUPERVISED_ML)


def get_objective(name: str) -> Objective:
    """The objective called ``name``.

    Raises:
        ValueError: An unknown name, listing the allowed ones.
    """
    if name == SUPERVISED:
        return Supervised()
    if name == SUPERVISED_ML:
        return SupervisedML()
    if not isinstance(name, str) or name not in estimators.ESTIMATORS:
        raise ValueError(
            f"estimator={name!r} is invalid; allowed: {', '.join(objective_names())} "
            "(add one with agents.estimators.register_estimator)"
        )
    return PolicyGradient(estimators.get_estimator(name))
