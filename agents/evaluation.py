"""One evaluation for every agent: ours (``TaskPolicy``) and Stable-Baselines3's (``SB3Policy``).

``evaluate`` scores a policy on the held-out contexts of a task and returns metrics keyed by
their TensorBoard tags, so every agent's curves share tags and overlay. With M samples per
context and per-sample likelihood scores l_m = Scores.log_likelihood:

- ``eval/log_likelihood``: mean over contexts of the exact log p(y|x) = log E_ŷ l(y, ŷ)
  under the policy's prediction law (normalized density for Gaussian/Laplace heads,
  probability for the verifier and classification, where it is minus the cross-entropy),
  from ``policy.log_likelihood`` (``agents.exact``: closed forms, finite sums over classes,
  bins or token sequences, and a fixed quadrature for SB3's tanh-squashed SAC policy; an
  SB3 model's law is looked up by its policy class in ``SB3_LAWS``, ``register_sb3_law``).
  Contexts whose target no prediction in the range can score (a verifier target farther
  than prediction_range + head_scale from 0, where p = 0 for every policy) are left out of
  the mean (``core.reachable``); the reference levels leave out the same contexts.
- ``eval/log_likelihood_mc``: only for a policy without an exact form: the Monte-Carlo
  estimate logsumexp_m(l_m) - log M over its M samples, biased low for finite M (Jensen),
  with a failed binary sample scored ``LOG_LIKELIHOOD_FLOOR`` (-100).
- ``eval/excess_mse`` (regression and tokens only): mean (point prediction - f(x))^2; the
  Bayes predictor f(x) = E[y|x] scores 0.
- ``eval/pass@1``: mean success over samples; ``eval/pass@{k}``: the unbiased estimator
  1 - C(n-c, k) / C(n, k) per context (n = M samples, c successes), averaged.
- ``eval/success_rate``: success of the point prediction.
- ``eval/reward``: mean reward of the samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium import spaces

from agents import exact
from maxrl_envs.core import Contexts
from maxrl_envs.heads import get_head
from maxrl_envs.kinds import Task
from maxrl_envs.likelihoods import (
    log_expected_likelihood_normal,
    log_expected_likelihood_squashed,
    log_likelihood_head,
)
from maxrl_envs.references import LOWER_IS_BETTER

#: Rows (contexts x samples) scored at once; larger test sets are evaluated in chunks.
MAX_ROWS = 1 << 17


#: Tag of the exact log-likelihood and of its Monte-Carlo stand-in (no exact form).
EXACT_TAG = "eval/log_likelihood"
MC_TAG = "eval/log_likelihood_mc"


def _likelihood_tag(tags: list[str], exact: bool) -> list[str]:
    return tags if exact else [MC_TAG if tag == EXACT_TAG else tag for tag in tags]


def default_metrics(numeric: bool, head: str | None, pass_k: int, exact: bool = True) -> list[str]:
    """Report metrics of a task; the first one also selects models (rates, checkpoints).

    Numeric tasks with a Gaussian or Laplace head: ``eval/log_likelihood`` (the held-out
    marginal log-likelihood, a proper score of the whole predictive distribution) and
    ``eval/excess_mse`` (of the point prediction). Binary heads (``Head.binary``: the
    verifier) and classification: ``eval/pass@1`` and ``eval/pass@k``, then the
    log-likelihood.

    Args:
        numeric: Whether the task kind is numeric.
        head: The likelihood head of a numeric task (None for classification).
        pass_k: k of ``eval/pass@k``.
        exact: Whether the agent's log-likelihood has an exact form on this task; False
            (e.g. a token tree above ``agents.exact.MAX_SEQUENCES``) names the Monte-Carlo
            ``eval/log_likelihood_mc`` instead, the tag ``evaluate`` then reports.
    """
    pass_at_k = [f"eval/pass@{pass_k}"] if pass_k > 1 else []
    if not numeric:
        return _likelihood_tag(["eval/pass@1", *pass_at_k, EXACT_TAG], exact)
    if head is not None and get_head(head).binary:
        return _likelihood_tag(["eval/pass@1", *pass_at_k, EXACT_TAG, "eval/excess_mse"], exact)
    return _likelihood_tag([EXACT_TAG, "eval/excess_mse", "eval/pass@1"], exact)


def better(metric: str, a: float, b: float) -> bool:
    """Whether value ``a`` is better than ``b`` for ``metric`` (NaN is never better)."""
    return a < b if metric in LOWER_IS_BETTER else a > b


def metric_tags(pass_k: int, numeric: bool = True, exact: bool = True) -> tuple[str, ...]:
    """The ``eval/*`` tags ``evaluate`` returns for a ``pass_k`` (numeric tasks add errors).

    ``exact=False`` (no exact log-likelihood for the agent on the task) lists
    ``eval/log_likelihood_mc`` in place of ``eval/log_likelihood``.
    """
    tags = [EXACT_TAG, "eval/excess_mse", "eval/pass@1", f"eval/pass@{pass_k}"]
    if not numeric:
        tags.remove("eval/excess_mse")
    return (*dict.fromkeys(_likelihood_tag(tags, exact)), "eval/success_rate", "eval/reward")


def any_metric_tags(pass_k: int) -> tuple[str, ...]:
    """Every ``eval/*`` tag ``evaluate`` can report for a ``pass_k``, exact or Monte-Carlo.

    The first check of a ``select_metric`` setting, before the env (and so the kind and
    whether the log-likelihood is exact) is known; ``check_select_metric`` then narrows it.
    """
    return tuple(dict.fromkeys((*metric_tags(pass_k), *metric_tags(pass_k, exact=False))))


def check_select_metric(
    metric: str, pass_k: int, numeric: bool, exact: bool, env_id: str, why: str = ""
) -> None:
    """Refuse a ``select_metric`` the evaluation of this agent on this env will not report.

    Args:
        metric: The ``select_metric`` setting.
        pass_k: k of ``eval/pass@k``.
        numeric: Whether the env's kind is numeric.
        exact: Whether the agent's log-likelihood is exact on the env.
        env_id: The env id (for the message).
        why: Why there is no exact log-likelihood (for the message), when ``exact`` is False.

    Raises:
        ValueError: Naming ``select_metric``, its value and the allowed tags; for
            ``eval/log_likelihood`` without an exact form it suggests
            ``eval/log_likelihood_mc``.
    """
    allowed = metric_tags(pass_k, numeric, exact)
    if metric in allowed:
        return
    if metric == EXACT_TAG and not exact:
        raise ValueError(
            f"select_metric={metric!r} is not reported for env_id={env_id!r}: {why}, so "
            f"evaluation reports the Monte-Carlo {MC_TAG!r} instead; use "
            f"select_metric={MC_TAG!r} (allowed: {', '.join(allowed)})"
        )
    raise ValueError(
        f"select_metric={metric!r} is not reported for env_id={env_id!r}; "
        f"allowed: {', '.join(allowed)}"
    )


@runtime_checkable
class EvalPolicy(Protocol):
    """What ``evaluate`` needs from an agent.

    Optionally also ``log_likelihood(contexts) -> Tensor | None``: the exact log p(y|x) per
    context (float64 ``[B]``), or None without an exact form; ``evaluate`` then reports
    ``eval/log_likelihood`` from it, else the Monte-Carlo ``eval/log_likelihood_mc``.
    """

    def sample(
        self, contexts: Contexts, eval_samples: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Predictions of ``eval_samples`` stochastic rollouts per context, ``[B, M]``.

        Target units for regression and tokens, class ids for classification.
        """
        ...

    def point(self, contexts: Contexts) -> torch.Tensor:
        """Point prediction per context, ``[B]``: mean action, argmax class, greedy tokens."""
        ...


def pass_at_k_table(eval_samples: int, pass_k: int) -> torch.Tensor:
    """Unbiased pass@k for every success count: ``table[c] = 1 - C(M-c, k) / C(M, k)``.

    Args:
        eval_samples: Samples M per context (>= 1).
        pass_k: Attempts k (1 <= k <= M).

    Returns:
        Float64 ``[M + 1]``, computed from exact integer binomials.
    """
    n, k = eval_samples, pass_k
    if not 1 <= k <= n:
        raise ValueError(f"pass_k={k!r} must lie in [1, eval_samples={n}]")
    total = math.comb(n, k)
    values = [1.0 - math.comb(n - c, k) / total for c in range(n + 1)]
    return torch.tensor(values, dtype=torch.float64)


def _select_contexts(core: Any, split: str, max_contexts: int | None) -> Contexts:
    size = core.num_contexts(split)
    if max_contexts is not None:
        if max_contexts < 1:
            raise ValueError(f"max_contexts={max_contexts!r} must be None or an integer >= 1")
        size = min(size, int(max_contexts))
    return core.contexts(torch.arange(size, device=core.device), split, validate=False)


def _chunk(contexts: Contexts, start: int, stop: int) -> Contexts:
    return Contexts(
        ids=contexts.ids[start:stop],
        obs=contexts.obs[start:stop],
        signal=contexts.signal[start:stop],
        target=contexts.target[start:stop],
        noise_scale=contexts.noise_scale[start:stop],
    )


class _Sums(NamedTuple):
    """Running float64 sums over contexts of the per-context quantities ``evaluate`` means.

    ``log_likelihood`` is summed over reachable contexts only (0 elsewhere) and divided by
    ``reachable``; every other sum is divided by the number of contexts.
    """

    log_likelihood: torch.Tensor
    excess_mse: torch.Tensor
    pass_at_1: torch.Tensor
    pass_at_k: torch.Tensor
    success_rate: torch.Tensor
    reward: torch.Tensor
    reachable: torch.Tensor

    @classmethod
    def zeros(cls, device: Any) -> _Sums:
        return cls(*torch.zeros(len(cls._fields), dtype=torch.float64, device=device))

    def plus(self, other: _Sums) -> _Sums:
        """Field-by-field sum."""
        return _Sums(*(a + b for a, b in zip(self, other, strict=True)))

    def metrics(self, count: int, tag: str, numeric: bool, pass_k: int) -> dict[str, float]:
        """The ``eval/*`` means over ``count`` contexts (log p: over the reachable ones)."""
        means = _Sums(*(torch.stack(self) / max(count, 1)).tolist())
        reached = float(self.reachable)
        metrics = {tag: float(self.log_likelihood) / reached if reached else math.nan}
        if numeric:
            metrics["eval/excess_mse"] = means.excess_mse
        metrics["eval/pass@1"] = means.pass_at_1
        metrics[f"eval/pass@{pass_k}"] = means.pass_at_k
        metrics["eval/success_rate"] = means.success_rate
        metrics["eval/reward"] = means.reward
        return metrics


def _chunk_log_likelihood(
    exact_form: Any, part: Any, scores: Any, log_m: float, device: torch.device
) -> tuple[torch.Tensor, bool]:
    """Per-context float64 log p of a chunk: the exact form if given, else Monte Carlo."""
    log_lik = exact_form(part) if exact_form is not None else None
    exact = log_lik is not None
    if log_lik is None:  # no exact form: the Monte-Carlo estimate, under its own name
        log_lik = torch.logsumexp(scores.log_likelihood.double(), dim=1) - log_m
    return log_lik.to(device, torch.float64), exact


def _bin_rows(
    log_lik: torch.Tensor, scores: Any, pass_k_hits: torch.Tensor, reachable: torch.Tensor
) -> torch.Tensor:
    """Per-context rows (log p, pass@1, pass@k, reachable) summed into the difficulty bins."""
    return torch.stack(
        [
            log_lik,
            scores.is_success.double().mean(1),
            pass_k_hits,
            reachable.double(),
        ],
        dim=1,
    )


def _chunk_sums(
    log_lik: torch.Tensor,
    excess: torch.Tensor,
    scores: Any,
    pass_k_hits: torch.Tensor,
    point_scores: Any,
    reachable: torch.Tensor,
) -> _Sums:
    """The chunk's contribution to every ``eval/*`` sum."""
    return _Sums(
        log_likelihood=log_lik.sum(),
        excess_mse=excess.sum(),
        pass_at_1=scores.is_success.double().mean(1).sum(),
        pass_at_k=pass_k_hits.sum(),
        success_rate=point_scores.is_success.double().sum(),
        reward=scores.reward.double().mean(1).sum(),
        reachable=reachable.double().sum(),
    )


@torch.no_grad()
def evaluate(
    task: Task,
    policy: EvalPolicy,
    *,
    eval_samples: int = 64,
    pass_k: int = 16,
    seed: int = 0,
    split: str = "test",
    max_contexts: int | None = None,
) -> dict[str, float]:
    """Evaluate a policy on a task's held-out contexts.

    Args:
        task: From ``maxrl_envs.make_task``.
        policy: Any ``EvalPolicy`` on the core's device.
        eval_samples: Samples M per context (>= 1).
        pass_k: k of the ``eval/pass@{k}`` metric, in [1, M].
        seed: Seed of the sampling generator (a fresh generator on the core's device), so
            repeated evaluations of one policy give the same numbers.
        split: Split to evaluate on (``"test"`` or ``"train"``).
        max_contexts: Evaluate only the first ``max_contexts`` contexts (in id order).

    Returns:
        ``eval/log_likelihood`` (exact; ``eval/log_likelihood_mc`` instead for a policy
        without an exact form), ``eval/excess_mse`` (not for classification),
        ``eval/pass@1``, ``eval/pass@{pass_k}``, ``eval/success_rate``, ``eval/reward``.
    """
    if isinstance(eval_samples, bool) or int(eval_samples) != eval_samples or eval_samples < 1:
        raise ValueError(f"eval_samples={eval_samples!r} must be an integer >= 1")
    table = pass_at_k_table(int(eval_samples), int(pass_k))
    core = task.core
    numeric = task.kind.numeric
    contexts = _select_contexts(core, split, max_contexts)
    generator = core.make_generator(seed)
    table = table.to(core.device)
    log_m = math.log(eval_samples)
    sums = _Sums.zeros(core.device)
    count = contexts.ids.shape[0]
    step = max(1, MAX_ROWS // eval_samples)
    exact_form = getattr(policy, "log_likelihood", None)
    exact = exact_form is not None
    binned = hasattr(core, "difficulty_level")  # per-bin metrics (hard-contexts tasks)
    bin_sums = torch.zeros(
        int(getattr(core, "levels", 0)), 4, dtype=torch.float64, device=core.device
    )
    for start in range(0, count, step):
        part = _chunk(contexts, start, min(count, start + step))
        samples = policy.sample(part, eval_samples, generator)
        scores = core.score(part, samples)
        point = policy.point(part)
        point_scores = core.score(part, point.reshape(-1, 1))
        pass_k_hits = table[scores.is_success.sum(1)]
        log_lik, exact = _chunk_log_likelihood(
            exact_form if exact else None, part, scores, log_m, core.device
        )
        # Targets no prediction in the range can score (a verifier target beyond
        # prediction_range + head_scale) have p = 0 under every policy: they are left out of
        # the log-likelihood mean, as in the reference levels.
        reachable = core.reachable(part)
        log_lik = torch.where(reachable, log_lik, torch.zeros_like(log_lik))
        if binned:
            rows = _bin_rows(log_lik, scores, pass_k_hits, reachable)
            bin_sums.index_add_(0, core.difficulty_level(part).to(core.device), rows)
        excess = (
            (point.double().reshape(-1) - part.signal.double()).square()
            if numeric
            else torch.zeros_like(log_lik)
        )
        sums = sums.plus(_chunk_sums(log_lik, excess, scores, pass_k_hits, point_scores, reachable))
    tag = "eval/log_likelihood" if exact else "eval/log_likelihood_mc"
    metrics = sums.metrics(count, tag, numeric, pass_k)
    if binned:
        metrics.update(_bin_metrics(bin_sums, tag, pass_k))
    return metrics


def bin_tags(levels: int, pass_k: int, exact: bool = True) -> tuple[str, ...]:
    """The per-difficulty-bin tags ``evaluate`` reports on a core with ``levels`` bins.

    ``eval/bin<b>/log_likelihood`` (mean exact log p over the bin's contexts; ``_mc`` without
    an exact form), ``eval/bin<b>/pass@1`` and ``eval/bin<b>/pass@<k>``, for b = 0 (hardest)
    ... levels - 1. A hard-contexts core (``maxrl_envs.hard``) names each bin's nominal
    initial pass rate in ``level_pass_rates()``.
    """
    name = "log_likelihood" if exact else "log_likelihood_mc"
    return tuple(
        f"eval/bin{b}/{metric}"
        for b in range(levels)
        for metric in (name, "pass@1", f"pass@{pass_k}")
    )


def _bin_metrics(bin_sums: torch.Tensor, tag: str, pass_k: int) -> dict[str, float]:
    """Means per difficulty bin from per-bin sums (log p, pass@1, pass@k, reachable count)."""
    out: dict[str, float] = {}
    name = tag.removeprefix("eval/")
    for b, (log_p, pass1, passk, n) in enumerate(bin_sums.tolist()):
        out[f"eval/bin{b}/{name}"] = log_p / n if n else math.nan
        out[f"eval/bin{b}/pass@1"] = pass1 / n if n else math.nan
        out[f"eval/bin{b}/pass@{pass_k}"] = passk / n if n else math.nan
    return out


def log_metrics(writer: Any, metrics: dict[str, float], step: int) -> None:
    """Write every tagged metric (keys containing ``/``) as a scalar at x = ``step``.

    Args:
        writer: A ``torch.utils.tensorboard.SummaryWriter`` (or anything with ``add_scalar``).
        metrics: Tag -> value, e.g. the output of ``evaluate``; untagged keys such as
            ``rollouts`` or ``wall_time`` are skipped.
        step: The x-axis value: rollouts consumed (SB3: ``num_timesteps``).
    """
    for tag, value in metrics.items():
        if "/" in tag:
            writer.add_scalar(tag, float(value), int(step))


#: ``(sb3: SB3Policy, contexts) -> float64 [B] log p(y|x)``, or None where the law has no
#: exact form: one SB3 policy class's prediction law (``register_sb3_law``).
SB3LawFn = Callable[["SB3Policy", Contexts], "torch.Tensor | None"]
#: ``(task) -> bool``: whether a law has an exact form on a ``Task`` or ``EnvInfo``, decided
#: without a model (``sb3_exact_form``).
SB3ExactFormFn = Callable[[Any], bool]


@dataclass(frozen=True)
class SB3Law:
    """The prediction law of an SB3 policy class: its exact log p(y|x), and where it has one.

    Attributes:
        log_likelihood: ``(sb3, contexts) -> float64 [B]`` log p(y|x) = log E_ŷ l(y, ŷ) for
            the ``SB3Policy`` ``sb3`` (``sb3.model.policy``, ``sb3.task``, ``sb3.core``,
            ``sb3.point``), or None where it has no exact form (``evaluate`` then reports
            ``eval/log_likelihood_mc``).
        exact_form: ``(task) -> bool`` for a ``Task`` or ``maxrl_envs.describe_env``'s
            ``EnvInfo``: whether ``log_likelihood`` gives a value on that task.
    """

    log_likelihood: SB3LawFn
    exact_form: SB3ExactFormFn


#: SB3 policy class -> its law (``register_sb3_law`` adds to it). The built-in laws are
#: added on first use, so that importing this module does not import Stable-Baselines3.
SB3_LAWS: dict[type, SB3Law] = {}
_BUILT_IN_LAWS_ADDED: list[bool] = []


def _always(task: Any) -> bool:
    return True


def _never(task: Any) -> bool:
    return False


def register_sb3_law(
    policy_class: type, law: SB3LawFn, exact_form: SB3ExactFormFn | None = None
) -> SB3Law:
    """Give an SB3 policy class (and its subclasses, through the MRO) a prediction law.

    ``SB3Policy`` then answers ``log_likelihood`` with ``law`` for a model whose policy is
    an instance of ``policy_class`` or of a subclass without a law of its own.

    Args:
        policy_class: The policy class (e.g. ``type(model.policy)``; SB3's are built in).
        law: ``(sb3: SB3Policy, contexts) -> float64 [B]`` log p(y|x), or None where it has
            no exact form (``SB3Law.log_likelihood``).
        exact_form: ``(task) -> bool``: whether ``law`` gives a value on a task (used before
            a model exists, to pick the report metric); None: on every task.

    Returns:
        The registered ``SB3Law``.

    Raises:
        ValueError: ``policy_class`` is not a class, ``law`` or ``exact_form`` is not
            callable, or the class already has another law.
    """
    _add_built_in_laws()
    if not isinstance(policy_class, type):
        raise ValueError(f"policy_class={policy_class!r} must be a class")
    if not callable(law):
        raise ValueError(f"law={law!r} must be callable: (sb3, contexts) -> log p or None")
    if exact_form is not None and not callable(exact_form):
        raise ValueError(f"exact_form={exact_form!r} must be None or callable: (task) -> bool")
    entry = SB3Law(law, _always if exact_form is None else exact_form)
    known = SB3_LAWS.get(policy_class)
    if known is not None:
        if known != entry:
            raise ValueError(f"policy_class={policy_class.__qualname__} already has an SB3 law")
        return known  # the same law again: no change
    SB3_LAWS[policy_class] = entry
    return entry


def sb3_law(policy_class: type) -> SB3Law | None:
    """The law of the first class in ``policy_class``'s MRO that has one, or None.

    Every SB3 policy has one (SB3's ``BasePolicy`` has the fallback law); None only for a
    class outside SB3's hierarchy that no plugin registered.

    Raises:
        ValueError: ``policy_class`` is not a class.
    """
    _add_built_in_laws()
    if not isinstance(policy_class, type):
        raise ValueError(f"policy_class={policy_class!r} must be a class")
    for cls in policy_class.__mro__:
        law = SB3_LAWS.get(cls)
        if law is not None:
            return law
    return None


def sb3_exact_form(policy_class: type, task: Task | Any) -> bool:
    """Whether ``SB3Policy.log_likelihood`` has an exact form for this SB3 policy and task.

    Args:
        policy_class: The SB3 policy class (``type(model.policy)``, or an algorithm's
            ``policy_aliases["MlpPolicy"]`` before a model exists).
        task: A ``Task`` or ``maxrl_envs.describe_env``'s ``EnvInfo`` (``step_action_space``,
            ``rollout_space``, ``episode_length`` and ``codec``).

    Returns:
        The ``exact_form`` of the class's law (``sb3_law``): True for deterministic policies
        (TD3, DDPG, DQN), actor-critic policies (PPO, A2C) on one-step tasks, actor-critic
        policies on token tasks the exact enumeration takes
        (``agents.exact.no_exact_form_reason``), and SAC on Box actions; False otherwise
        (``evaluate`` then reports ``eval/log_likelihood_mc``).
    """
    law = sb3_law(policy_class)
    return law is not None and bool(law.exact_form(task))


def _space(task: Any, name: str) -> spaces.Space:
    space = getattr(task, name)
    return space() if callable(space) else space


def _actor_critic_exact_form(task: Any) -> bool:
    """One-step tasks, and token tasks whose sequences ``agents.exact`` enumerates."""
    if int(task.episode_length) == 1:
        return True
    return task.codec is not None and not exact.no_exact_form_reason(_space(task, "rollout_space"))


def _squashed_exact_form(task: Any) -> bool:
    """One-step tasks with Box actions."""
    return int(task.episode_length) == 1 and isinstance(
        _space(task, "step_action_space"), spaces.Box
    )


def _point_law(sb3: SB3Policy, contexts: Contexts) -> torch.Tensor:
    """TD3, DDPG, DQN: ``predict`` adds no noise, so log l(y, ŷ) of the point prediction."""
    core = sb3.core
    point = sb3.point(contexts)
    if sb3.task.kind.numeric:
        return log_likelihood_head(core.head, core.head_scale, contexts.target, point)
    hit = (point == contexts.target).to(torch.float64)
    return hit.log()


def _actor_critic_law(sb3: SB3Policy, contexts: Contexts) -> torch.Tensor | None:
    """PPO, A2C: censored normal (Box), categorical choices or labels, token sequences."""
    policy, core, task = sb3.model.policy, sb3.core, sb3.task
    if task.episode_length > 1:
        if not _actor_critic_exact_form(task):
            return None  # no codec, or a token tree too large to enumerate

        def step_log_probs(rows: torch.Tensor, written: torch.Tensor, t: int) -> torch.Tensor:
            features = task.step_features(written, t)
            logits = policy.get_distribution(sb3._tensor(torch.cat([rows, features], 1)))
            return logits.distribution.logits

        return exact.discrete_sequences_log_likelihood(step_log_probs, task.codec, core, contexts)
    dist = policy.get_distribution(sb3._tensor(contexts.obs)).distribution
    if sb3._box:  # a Gaussian action clipped to [-1, 1] by predict, times R
        scale = float(core.prediction_range)
        mean = dist.mean.reshape(-1).double().cpu() * scale
        std = dist.stddev.reshape(-1).double().cpu() * scale
        target = contexts.target.cpu()
        return log_expected_likelihood_normal(
            core.head, core.head_scale, target, mean, std, -scale, scale
        )
    if task.kind.numeric:  # choice a predicts task.prediction(a): sum over choices
        return exact.discrete_choices_log_likelihood(task, dist.logits, contexts.target)
    log_probs = torch.log_softmax(dist.logits.double(), dim=-1)
    return exact.label_log_likelihood(core, log_probs.to(core.device), contexts)


def _squashed_gaussian_law(sb3: SB3Policy, contexts: Contexts) -> torch.Tensor | None:
    """SAC's ŷ = R tanh(u), u ~ N(μ, σ²), for any actor with ``get_action_dist_params``.

    None on token tasks, on Discrete actions and for a policy without such an actor.
    """
    core = sb3.core
    actor = getattr(sb3.model.policy, "actor", None)
    if sb3.task.episode_length > 1 or not sb3._box:
        return None
    if not hasattr(actor, "get_action_dist_params"):
        return None
    mean, log_std, _ = actor.get_action_dist_params(sb3._tensor(contexts.obs))
    return log_expected_likelihood_squashed(
        core.head,
        core.head_scale,
        contexts.target.cpu(),
        mean.reshape(-1).double().cpu(),
        log_std.reshape(-1).double().exp().cpu(),
        float(core.prediction_range),
    )


def _add_built_in_laws() -> None:
    """Register the laws of SB3's policy classes (once, on first use)."""
    if _BUILT_IN_LAWS_ADDED:
        return
    _BUILT_IN_LAWS_ADDED.append(True)
    from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
    from stable_baselines3.dqn.policies import DQNPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    for policy_class, law in (
        (TD3Policy, SB3Law(_point_law, _always)),  # also DDPG's
        (DQNPolicy, SB3Law(_point_law, _always)),
        (ActorCriticPolicy, SB3Law(_actor_critic_law, _actor_critic_exact_form)),
        (SACPolicy, SB3Law(_squashed_gaussian_law, _squashed_exact_form)),
        # Any other SB3 policy: read as SAC's law where its actor has SAC's interface (e.g.
        # sb3-contrib's TQC), else None; not counted as exact before a model exists.
        (BasePolicy, SB3Law(_squashed_gaussian_law, _never)),
    ):
        SB3_LAWS.setdefault(policy_class, law)


class SB3Policy:
    """``EvalPolicy`` for a Stable-Baselines3 model trained on a maxrl_envs environment.

    A rollout is written step by step, as the env does: at each of the task's
    ``episode_length`` steps the observation is ``cat(x, task.step_features(written, t))``
    (just x for one-step kinds), ``model.policy.predict`` gives that step's action, and the
    finished rollout becomes a prediction through ``task.prediction``. Stochastic samples
    repeat the observations M times (``deterministic=False``); ``point`` uses
    ``deterministic=True``. SB3 samples with torch's global RNG; it is seeded from
    ``generator`` inside ``torch.random.fork_rng`` so evaluations are reproducible and leave
    the global RNG untouched. Observation normalization wrappers (VecNormalize) are not
    applied.

    The exact log-likelihood is the policy class's prediction law (``law``), looked up once
    in ``SB3_LAWS`` along the class's MRO (``sb3_law``), so a subclass (e.g. an sb3-contrib
    policy deriving from ``ActorCriticPolicy``) gets its parent's law unless it has its own;
    ``register_sb3_law`` adds one for a new policy class.

    Args:
        model: A trained SB3 model (``model.policy`` is used).
        task: The task of the same env id and kwargs (``maxrl_envs.make_task``).
    """

    def __init__(self, model: Any, task: Task) -> None:
        self.model = model
        self.task = task
        self.core = task.core
        self._box = isinstance(task.step_action_space(), spaces.Box)
        #: The law of ``type(model.policy)`` (``sb3_law``); None: no exact form.
        self.law = sb3_law(type(model.policy))

    def _predict(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        array = obs.detach().cpu().numpy().astype(np.float32, copy=False)
        actions, _ = self.model.policy.predict(array, deterministic=deterministic)
        dtype = torch.float32 if self._box else torch.long
        return torch.as_tensor(np.asarray(actions), dtype=dtype).reshape(obs.shape[0])

    def _act(self, x: torch.Tensor, deterministic: bool) -> torch.Tensor:
        length = self.task.episode_length
        if length == 1:
            step = self._predict(x, deterministic).to(self.core.device)
            return self.task.prediction(step)
        dtype = torch.float32 if self._box else torch.long
        written = torch.zeros(x.shape[0], length, dtype=dtype, device=x.device)
        for t in range(length):
            obs = torch.cat([x, self.task.step_features(written, t)], dim=1)
            written[:, t] = self._predict(obs, deterministic).to(x.device)
        return self.task.prediction(written)

    @torch.no_grad()
    def log_likelihood(self, contexts: Contexts) -> torch.Tensor | None:
        """Exact log p(y|x) of the SB3 policy's prediction law, float64 ``[B]``, or None.

        The law registered for the policy class (``law``; built in for SB3's classes):

        - Actor-critic (PPO, A2C), Box: a Gaussian action clipped to [-1, 1], so a censored
          normal prediction (closed form); Discrete: the categorical's probability of the
          observed label, or, for a numeric kind (choice a predicts ``task.prediction(a)``),
          log sum_a pi(a|x) l(y, prediction(a)) (``agents.exact``, as for our agents);
          tokens: its sequences enumerated, None above ``agents.exact.MAX_SEQUENCES``
          sequences, as for our token policy (``sb3_exact_form``).
        - SAC: R tanh(u) with u Gaussian (``log_expected_likelihood_squashed``); the same
          for any other SB3 policy whose actor has SAC's ``get_action_dist_params``.
        - TD3, DDPG and DQN predict deterministically (SB3's ``predict`` adds no noise):
          log l(y, ŷ) of the point prediction.

        None (``evaluate`` then reports ``eval/log_likelihood_mc``) where the law has no
        exact form, and for a policy class with no law.
        """
        if self.law is None:
            return None
        return self.law.log_likelihood(self, contexts)

    def _tensor(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.detach().to(self.model.device, torch.float32)

    def sample(
        self, contexts: Contexts, eval_samples: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Predictions ``[B, M]`` of stochastic SB3 actions."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        devices = [self.model.device] if torch.device(self.model.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            x = contexts.obs.repeat_interleave(eval_samples, dim=0)
            return self._act(x, deterministic=False).reshape(-1, eval_samples)

    def point(self, contexts: Contexts) -> torch.Tensor:
        """Deterministic SB3 prediction per context, ``[B]``."""
        return self._act(contexts.obs, deterministic=True)
