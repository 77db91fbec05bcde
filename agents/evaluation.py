"""One evaluation for every agent: ours (``TaskPolicy``) and Stable-Baselines3's (``SB3Policy``).

``evaluate`` scores a policy on the held-out contexts of a task and returns metrics keyed by
their TensorBoard tags, so every agent's curves share tags and overlay. With M samples per
context and per-sample likelihood scores l_m = Scores.log_likelihood:

- ``eval/log_likelihood``: mean over contexts of log p(y|x) ~= logsumexp_m(l_m) - log M, the
  log of the Monte-Carlo marginal likelihood (normalized density for Gaussian/Laplace heads,
  probability for the verifier and classification). For binary heads a sample that fails
  scores ``LOG_LIKELIHOOD_FLOOR`` (-100), so a context where none of the M samples succeeds
  contributes ~= -100 and one with c > 0 successes contributes log(c / M).
  The estimate is biased low for finite M (Jensen); it is exact for a deterministic policy.
- ``eval/excess_mse`` (regression and tokens only): mean (point prediction - f(x))^2; the
  Bayes predictor f(x) = E[y|x] scores 0.
- ``eval/pass@1``: mean success over samples; ``eval/pass@{k}``: the unbiased estimator
  1 - C(n-c, k) / C(n, k) per context (n = M samples, c successes), averaged.
- ``eval/success_rate``: success of the point prediction.
- ``eval/reward``: mean reward of the samples.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium import spaces

from maxrl_envs.core import Contexts
from maxrl_envs.kinds import Task

#: Rows (contexts x samples) scored at once; larger test sets are evaluated in chunks.
MAX_ROWS = 1 << 17
#: Metrics where lower is better (all others: higher is better).
LOWER_IS_BETTER = ("eval/excess_mse",)


def default_metrics(numeric: bool, head: str | None, pass_k: int) -> list[str]:
    """Report metrics of a task; the first one also selects models (rates, checkpoints).

    Numeric tasks with a Gaussian or Laplace head: ``eval/log_likelihood`` (the held-out
    marginal log-likelihood, a proper score of the whole predictive distribution) and
    ``eval/excess_mse`` (of the point prediction). Verifier heads and classification:
    ``eval/pass@1`` and ``eval/pass@k``, then the log-likelihood.
    """
    pass_at_k = [f"eval/pass@{pass_k}"] if pass_k > 1 else []
    if not numeric:
        return ["eval/pass@1", *pass_at_k, "eval/log_likelihood"]
    if head == "verifier":
        return ["eval/pass@1", *pass_at_k, "eval/log_likelihood", "eval/excess_mse"]
    return ["eval/log_likelihood", "eval/excess_mse", "eval/pass@1"]


def better(metric: str, a: float, b: float) -> bool:
    """Whether value ``a`` is better than ``b`` for ``metric`` (NaN is never better)."""
    return a < b if metric in LOWER_IS_BETTER else a > b


def metric_tags(pass_k: int, numeric: bool = True) -> tuple[str, ...]:
    """The ``eval/*`` tags ``evaluate`` returns for a ``pass_k`` (numeric tasks add errors)."""
    tags = ["eval/log_likelihood", "eval/excess_mse", "eval/pass@1", f"eval/pass@{pass_k}"]
    if not numeric:
        tags.remove("eval/excess_mse")
    return (*dict.fromkeys(tags), "eval/success_rate", "eval/reward")


@runtime_checkable
class EvalPolicy(Protocol):
    """What ``evaluate`` needs from an agent."""

    def sample(
        self, contexts: Contexts, num_samples: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Predictions of ``num_samples`` stochastic rollouts per context, ``[B, M]``.

        Target units for regression and tokens, class ids for classification.
        """
        ...

    def point(self, contexts: Contexts) -> torch.Tensor:
        """Point prediction per context, ``[B]``: mean action, argmax class, greedy tokens."""
        ...


def pass_at_k_table(n: int, k: int) -> torch.Tensor:
    """Unbiased pass@k for every success count: ``table[c] = 1 - C(n-c, k) / C(n, k)``.

    Args:
        n: Samples per context (>= 1).
        k: Attempts (1 <= k <= n).

    Returns:
        Float64 ``[n + 1]``, computed from exact integer binomials.
    """
    if not 1 <= k <= n:
        raise ValueError(f"pass_k={k!r} must lie in [1, num_samples={n}]")
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


@torch.no_grad()
def evaluate(
    task: Task,
    policy: EvalPolicy,
    *,
    num_samples: int = 64,
    pass_k: int = 16,
    seed: int = 0,
    split: str = "test",
    max_contexts: int | None = None,
) -> dict[str, float]:
    """Evaluate a policy on a task's held-out contexts.

    Args:
        task: From ``maxrl_envs.make_task``.
        policy: Any ``EvalPolicy`` on the core's device.
        num_samples: Samples M per context (>= 1).
        pass_k: k of the ``eval/pass@{k}`` metric, in [1, M].
        seed: Seed of the sampling generator (a fresh generator on the core's device), so
            repeated evaluations of one policy give the same numbers.
        split: Split to evaluate on (``"test"`` or ``"train"``).
        max_contexts: Evaluate only the first ``max_contexts`` contexts (in id order).

    Returns:
        ``eval/log_likelihood``, ``eval/excess_mse`` (not for classification),
        ``eval/pass@1``, ``eval/pass@{pass_k}``, ``eval/success_rate``, ``eval/reward``.
    """
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples={num_samples!r} must be an integer >= 1")
    table = pass_at_k_table(int(num_samples), int(pass_k))
    core = task.core
    numeric = task.kind.numeric
    contexts = _select_contexts(core, split, max_contexts)
    generator = core.make_generator(seed)
    table = table.to(core.device)
    log_m = math.log(num_samples)
    sums = torch.zeros(6, dtype=torch.float64, device=core.device)
    count = contexts.ids.shape[0]
    step = max(1, MAX_ROWS // num_samples)
    for start in range(0, count, step):
        part = _chunk(contexts, start, min(count, start + step))
        samples = policy.sample(part, num_samples, generator)
        scores = core.score(part, samples)
        point = policy.point(part)
        point_scores = core.score(part, point.reshape(-1, 1))
        successes = scores.is_success.sum(1)
        log_lik = torch.logsumexp(scores.log_likelihood.double(), dim=1) - log_m
        excess = (
            (point.double().reshape(-1) - part.signal.double()).square()
            if numeric
            else torch.zeros_like(log_lik)
        )
        sums += torch.stack(
            [
                log_lik.sum(),
                excess.sum(),
                scores.is_success.double().mean(1).sum(),
                table[successes].sum(),
                point_scores.is_success.double().sum(),
                scores.reward.double().mean(1).sum(),
            ]
        )
    means = (sums / max(count, 1)).tolist()
    metrics = {"eval/log_likelihood": means[0]}
    if numeric:
        metrics["eval/excess_mse"] = means[1]
    metrics["eval/pass@1"] = means[2]
    metrics[f"eval/pass@{pass_k}"] = means[3]
    metrics["eval/success_rate"] = means[4]
    metrics["eval/reward"] = means[5]
    return metrics


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

    Args:
        model: A trained SB3 model (``model.policy`` is used).
        task: The task of the same env id and kwargs (``maxrl_envs.make_task``).
    """

    def __init__(self, model: Any, task: Task) -> None:
        self.model = model
        self.task = task
        self.core = task.core
        self._box = isinstance(task.step_action_space(), spaces.Box)

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

    def sample(
        self, contexts: Contexts, num_samples: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Predictions ``[B, M]`` of stochastic SB3 actions."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        devices = [self.model.device] if torch.device(self.model.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            x = contexts.obs.repeat_interleave(num_samples, dim=0)
            return self._act(x, deterministic=False).reshape(-1, num_samples)

    def point(self, contexts: Contexts) -> torch.Tensor:
        """Deterministic SB3 prediction per context, ``[B]``."""
        return self._act(contexts.obs, deterministic=True)
