"""Exact log p(y|x) of a policy on contexts, where the policy's prediction law is tractable.

``agents.evaluation.evaluate`` reports ``eval/log_likelihood`` as a Monte-Carlo estimate
log((1/M) Σ_m l(y, ŷ_m)), biased low for finite M and floored at -100 for binary misses.
``exact_log_likelihood`` computes log p(y|x) = log E_{ŷ ~ policy}[l(y, ŷ)] exactly instead:

- ``GaussianPolicy``: actions a ~ N(μ, σ²) are clipped to [-1, 1] and scaled by R =
  ``prediction_range``, so ŷ is a censored normal with mean Rμ, std Rσ and atoms at ±R
  (``maxrl_envs.likelihoods.log_expected_likelihood_normal``, closed form for every head);
- ``CategoricalPolicy`` with ``values`` (binned regression): a finite sum over the bins;
- ``CategoricalPolicy`` without ``values`` (classification): log m(y|x), the policy's
  log-probability of the observed label, i.e. minus the cross-entropy;
- ``CategoricalPolicy`` without ``values`` on a numeric kind (a ``TaskPolicy`` whose task
  maps choice a to ``task.prediction(a)``): log sum_a m(a|x) l(y, prediction(a))
  (``discrete_choices_log_likelihood``, shared with ``SB3Policy``);
- ``TokenPolicy``: the law over all base**num_digits sequences, enumerated level by level
  with one batched forward per token position (``token_sequence_log_probs``), then a finite
  sum over the decoded grid; refused (None) above ``max_sequences`` sequences.

Anything else (e.g. a Stable-Baselines3 model) returns None: use the Monte-Carlo metric.
Log-probabilities are recomputed in float64 from the network's float32 outputs and
renormalized there; predictions are the env's float32 values (bins, decoded grid points) so
verifier decisions match ``core.score`` exactly. A verifier miss everywhere gives -inf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from gymnasium import spaces

from maxrl_envs.core import Contexts
from maxrl_envs.heads import get_head
from maxrl_envs.likelihoods import log_expected_likelihood_discrete, log_expected_likelihood_normal

#: Largest number of token sequences enumerated per context by default.
MAX_SEQUENCES = 2**16
#: Rows (contexts x sequences) per chunk of the token enumeration.
MAX_TOKEN_ROWS = 2**18


class HeadCore(Protocol):
    """What the exact forms read from a numeric task's core (e.g. ``RegressionCore``)."""

    head: str
    head_scale: float
    prediction_range: float


def no_exact_form_reason(rollout_space: spaces.Space, max_sequences: int = MAX_SEQUENCES) -> str:
    """Why our policy for a rollout space has no exact log p(y|x); "" when it has one.

    Only a token tree (``MultiDiscrete``) larger than ``max_sequences`` sequences has none:
    ``exact_log_likelihood`` refuses to enumerate it and ``evaluate`` reports the
    Monte-Carlo ``eval/log_likelihood_mc`` instead of ``eval/log_likelihood``.

    Args:
        rollout_space: ``Task.rollout_space()`` (or ``describe_env(...).rollout_space``).
        max_sequences: The enumeration's cap.
    """
    if isinstance(rollout_space, spaces.MultiDiscrete):
        count = math.prod(int(n) for n in rollout_space.nvec.reshape(-1))
        if count > max_sequences:
            return (
                f"its {count} token sequences exceed the {max_sequences} that the exact "
                "log-likelihood enumerates"
            )
    return ""


def _float64_device(device: torch.device) -> torch.device:
    return torch.device("cpu") if device.type == "mps" else device


def _renormalized(log_probs: torch.Tensor) -> torch.Tensor:
    """Float64 log-probabilities over the last dimension that sum exactly to 1."""
    log_probs = log_probs.to(_float64_device(log_probs.device), torch.float64)
    return log_probs - torch.logsumexp(log_probs, dim=-1, keepdim=True)


def all_token_sequences(num_digits: int, base: int, device: Any = "cpu") -> torch.Tensor:
    """Every token sequence in enumeration order: row n spells n in base ``base``.

    Args:
        num_digits: Tokens per sequence.
        base: Vocabulary size.
        device: Torch device.

    Returns:
        Long ``[base**num_digits, num_digits]``, first token most significant (the order of
        ``token_sequence_log_probs`` and of ``TokenCodec.decode``'s integer n).
    """
    n = torch.arange(base**num_digits, device=device)
    powers = base ** torch.arange(num_digits - 1, -1, -1, device=device)
    return (n.unsqueeze(1) // powers) % base


@torch.no_grad()
def sequence_log_probs(
    step_log_probs: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    obs: torch.Tensor,
    base: int,
    digits: int,
) -> torch.Tensor:
    """``sequence_log_probs_grad`` without gradients (see there)."""
    return sequence_log_probs_grad(step_log_probs, obs, base, digits)


def sequence_log_probs_grad(
    step_log_probs: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    obs: torch.Tensor,
    base: int,
    digits: int,
) -> torch.Tensor:
    """Log-probabilities of every token sequence for each context, by batched enumeration.

    Level t holds the base**t prefixes of all contexts; one call of ``step_log_probs`` on
    ``[B * base**t]`` rows extends them all by one token. There is a Python loop over the
    ``digits`` positions only.

    Args:
        step_log_probs: ``(obs rows [M, D], written [M, digits], t) -> [M, base]``
            log-probabilities (or logits) of token t given the prefix ``written[:, :t]``.
        obs: Observations x ``[B, D]`` (without step features).
        base: Vocabulary size.
        digits: Tokens per sequence.

    Returns:
        Float64 ``[B, base**digits]``: column n is the sequence spelling n
        (``all_token_sequences``); each row sums to 1 in probability.
    """
    b, device = obs.shape[0], obs.device
    log_p = torch.zeros(b, 1, dtype=torch.float64, device=_float64_device(device))
    prefixes = torch.zeros(1, digits, dtype=torch.long, device=device)
    for t in range(digits):
        count = prefixes.shape[0]
        rows = obs.repeat_interleave(count, dim=0)
        written = prefixes.repeat(b, 1)
        step = _renormalized(step_log_probs(rows, written, t).reshape(b, count, base))
        log_p = (log_p.unsqueeze(-1) + step).reshape(b, count * base)
        prefixes = prefixes.repeat_interleave(base, dim=0)
        prefixes[:, t] = torch.arange(base, device=device).repeat(count)
    return log_p


def token_sequence_log_probs(policy: Any, obs: torch.Tensor) -> torch.Tensor:
    """``sequence_log_probs`` of a ``TokenPolicy`` (its ``step_logits``)."""
    return sequence_log_probs(policy.step_logits, obs, policy.base, policy.num_digits)


def discrete_choices_log_likelihood(
    task: Any, log_probs: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Exact log p(y|x) of a categorical over the choices of a one-step numeric discrete kind.

    Choice a predicts ``task.prediction(a)`` (e.g. -1 or +1 for a sign kind), so
    log p(y|x) = log sum_a pi(a|x) l(y, prediction(a)), a finite sum over the choices. Our
    ``CategoricalPolicy`` (``TaskPolicy``) and SB3's categorical (``SB3Policy``) share it.

    Args:
        task: The task (its kind is numeric; ``prediction`` maps choice ids to predictions;
            the core gives ``head`` and ``head_scale``).
        log_probs: Log-probabilities or logits of every choice, ``[B, K]`` (renormalized
            here in float64).
        target: Targets y, ``[B]``.

    Returns:
        Float64 ``[B]`` on the device of ``target`` (-inf where every choice with positive
        probability misses a verifier target).

    Raises:
        ValueError: The task's kind is not numeric (its choices are labels, not predictions).
    """
    if not task.kind.numeric:
        raise ValueError(
            f"task kind {task.kind.name!r} is not numeric: its choices are labels, scored by "
            "the probability of the observed label"
        )
    choices = torch.arange(log_probs.shape[-1], device=task.core.device)
    values = task.prediction(choices).to(torch.float32)
    core = task.core
    return log_expected_likelihood_discrete(
        core.head, core.head_scale, target, values, _renormalized(log_probs)
    )


def discrete_sequences_log_likelihood(
    step_log_probs: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    codec: Any,
    core: HeadCore,
    contexts: Contexts,
    max_rows: int = MAX_TOKEN_ROWS,
) -> torch.Tensor:
    """Exact log p(y|x) of any autoregressive digit policy, by enumerating its sequences.

    Args:
        step_log_probs: As for ``sequence_log_probs``.
        codec: The task's ``TokenCodec`` (decodes sequences to grid values).
        core: The task core (``head``, ``head_scale``).
        contexts: ``B`` contexts.
        max_rows: Contexts x sequences per chunk.

    Returns:
        Float64 ``[B]``.
    """
    sequences = all_token_sequences(codec.num_digits, codec.base, contexts.obs.device)
    values = codec.decode(sequences)
    count = contexts.obs.shape[0]
    chunk = max(1, max_rows // sequences.shape[0])
    parts = []
    for start in range(0, count, chunk):
        obs = contexts.obs[start : start + chunk]
        log_probs = sequence_log_probs_grad(step_log_probs, obs, codec.base, codec.num_digits)
        target = contexts.target[start : start + chunk]
        parts.append(
            log_expected_likelihood_discrete(core.head, core.head_scale, target, values, log_probs)
        )
    if not parts:
        return torch.zeros(0, dtype=torch.float64, device=_float64_device(contexts.obs.device))
    return torch.cat(parts)


def censored_normal_log_likelihood_grad(
    head: str,
    s: float,
    y: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    low: float,
    high: float,
) -> torch.Tensor:
    """Log E l(y, clip(a, low, high)), a ~ N(mean, std^2), std > 0, with safe gradients.

    The same quantity as ``maxrl_envs.likelihoods.log_expected_likelihood_normal`` (whose
    value it returns, to the last bit), with the gradient of the head's ``normal_grad`` form
    (``maxrl_envs.heads``), closed forms written so that autograd never meets 0 * inf: with
    p = Phi(z_low) l(y, low) + Phi(-z_high) l(y, high) + interior,

    - verifier: p = Phi(u) - Phi(v), u = (y + s - mean) / std (+inf when the upper atom
      passes, y + s >= high), v = (y - s - mean) / std (-inf when y - s <= low);
    - gaussian: interior N(y; mean, std^2 + s^2) [Phi((high - c)/tau) - Phi((low - c)/tau)];
    - laplace: each side of y is e^{+-(mean - y)/s + std^2/2s^2} times a Phi difference at
      mean -+ std^2 / s.

    Args:
        head: A registered head with a ``normal_grad`` form (``gaussian``, ``laplace``,
            ``verifier``).
        s: Head scale.
        y: Targets, float64 ``[B]``.
        mean: Mean of a, float64 ``[B]`` (differentiable).
        std: Std of a, float64 ``[B]``, > 0 (differentiable).
        low: Lower clip bound (finite).
        high: Upper clip bound (finite, > low).

    Returns:
        Float64 ``[B]``: the exact value, differentiable in ``mean`` and ``std``; -inf (with a
        zero gradient) where p = 0 (a verifier target out of reach).
    """
    exact = log_expected_likelihood_normal(head, s, y, mean.detach(), std.detach(), low, high).to(
        mean.device
    )
    y = y.to(mean.device, torch.float64)
    safe = get_head(head).form("normal_grad")(s, y, mean, std, low, high)
    finite = torch.isfinite(exact)
    safe = torch.where(finite, safe, torch.zeros_like(safe))
    return exact + (safe - safe.detach())


def label_log_likelihood(core: Any, log_probs: torch.Tensor, contexts: Contexts) -> torch.Tensor:
    """Exact log p(y|x) of a categorical over the classes of a (non-numeric) classification core.

    The probability of the observed label, or, for a core that accepts a set of classes per
    context (``log_pass_probability``, e.g. ``maxrl_envs.hard.HardContextsCore``), the log
    of the probability mass on that set. Differentiable in ``log_probs``.

    Args:
        core: The classification core.
        log_probs: Normalized log-probabilities ``[B, C]``.
        contexts: ``B`` contexts (``target``, and what the core's set needs).

    Returns:
        ``[B]`` in the dtype and on the device of ``log_probs``.
    """
    if hasattr(core, "log_pass_probability"):
        return core.log_pass_probability(log_probs, contexts)
    labels = contexts.target.to(log_probs.device, torch.long).unsqueeze(1)
    return log_probs.gather(1, labels)[:, 0]


@runtime_checkable
class ExactForm(Protocol):
    """A policy whose prediction law has an exact log p(y|x): our policy classes.

    Each class answers for its own law (``agents.policies``: the censored normal of
    ``GaussianPolicy``, the sums of ``CategoricalPolicy`` and ``TokenPolicy``), built from
    the functions of this module; ``log_likelihood_grad`` only asks the policy.
    """

    def exact_log_likelihood(
        self, core: Any, contexts: Contexts, *, task: Any, max_sequences: int, max_rows: int
    ) -> torch.Tensor | None:
        """Float64 ``[B]`` log p(y|x), differentiable in the policy; None without a form."""
        ...


def gaussian_log_likelihood(
    mean: torch.Tensor, log_std: torch.Tensor, core: HeadCore, target: torch.Tensor
) -> torch.Tensor:
    """Exact log p(y|x) of a Gaussian action a ~ N(mean, std²) clipped to [-1, 1], scaled by R.

    ŷ = R clip(a, -1, 1) (R = ``prediction_range``) is a censored normal with mean R mean,
    std R std and atoms at ±R: the head's closed form, with safe gradients when ``mean``
    requires them (``censored_normal_log_likelihood_grad``).

    Args:
        mean: Mean of a in action units, ``[B]``.
        log_std: Log std of a in action units, ``[B]`` (or broadcastable).
        core: The regression core (``head``, ``head_scale``, ``prediction_range``).
        target: Targets y, ``[B]``.

    Returns:
        Float64 ``[B]``.
    """
    scale = float(core.prediction_range)
    device = _float64_device(mean.device)
    mean = mean.to(device, torch.float64) * scale
    std = log_std.to(device, torch.float64).exp() * scale
    if torch.is_grad_enabled() and mean.requires_grad:
        return censored_normal_log_likelihood_grad(
            core.head, float(core.head_scale), target, mean, std, -scale, scale
        )
    return log_expected_likelihood_normal(
        core.head, core.head_scale, target, mean, std, -scale, scale
    )


def categorical_log_likelihood(
    log_probs: torch.Tensor,
    values: torch.Tensor | None,
    core: Any,
    contexts: Contexts,
    task: Any = None,
) -> torch.Tensor:
    """Exact log p(y|x) of a categorical policy: a finite sum over its choices.

    With ``values`` (binned regression) the choices predict those values; without, on a
    numeric ``task`` kind they predict ``task.prediction(a)``
    (``discrete_choices_log_likelihood``), else they are the classes of a classification
    core (``label_log_likelihood``).

    Args:
        log_probs: Log-probabilities (or logits) ``[B, K]``, renormalized here in float64.
        values: The bins' predictions ``[K]``, or None.
        core: The task core.
        contexts: ``B`` contexts.
        task: The task (tells how the choices of a numeric kind map to predictions).

    Returns:
        Float64 ``[B]``.

    Raises:
        ValueError: No ``values``, no numeric task, and a core without classes.
    """
    log_probs = _renormalized(log_probs)
    target = contexts.target
    if values is None:
        if task is not None and task.kind.numeric:  # choices of a numeric kind
            return discrete_choices_log_likelihood(task, log_probs, target)
        if not hasattr(core, "num_classes"):
            raise ValueError(
                "a CategoricalPolicy without values predicts classes; it needs a "
                "classification core, or a TaskPolicy whose task kind maps its choices "
                "to predictions"
            )
        return label_log_likelihood(core, log_probs, contexts)
    return log_expected_likelihood_discrete(core.head, core.head_scale, target, values, log_probs)


def _exact_form(policy: Any) -> Any:
    """The object that answers for the policy's law: itself, or a wrapper's ``policy``."""
    if isinstance(policy, ExactForm):
        return policy
    inner = getattr(policy, "policy", None)
    return inner if isinstance(inner, ExactForm) else None


@torch.no_grad()
def exact_log_likelihood(
    policy: Any,
    core: Any,
    contexts: Contexts,
    *,
    max_sequences: int = MAX_SEQUENCES,
    max_rows: int = MAX_TOKEN_ROWS,
) -> torch.Tensor | None:
    """Exact log p(y|x) = log E_{ŷ ~ policy(x)} l(y, ŷ) for each context, or None.

    ``log_likelihood_grad`` is the same computation with gradients (the ``supervised-ml``
    objective); see it for the arguments.
    """
    return log_likelihood_grad(
        policy, core, contexts, max_sequences=max_sequences, max_rows=max_rows
    )


def log_likelihood_grad(
    policy: Any,
    core: Any,
    contexts: Contexts,
    *,
    max_sequences: int = MAX_SEQUENCES,
    max_rows: int = MAX_TOKEN_ROWS,
) -> torch.Tensor | None:
    """Exact log p(y|x) = log E_{ŷ ~ policy(x)} l(y, ŷ) per context, differentiable.

    The policy answers for its own law (its ``exact_log_likelihood``, ``ExactForm``). Every
    form is a closed form or a finite sum of torch operations, so autograd gives the exact
    gradient of log p(y|x) in the policy's parameters.

    Args:
        policy: A ``GaussianPolicy``, ``CategoricalPolicy`` or ``TokenPolicy`` (any
            ``ExactForm``), or an object with one as its ``policy`` attribute (e.g.
            ``TaskPolicy``), on the core's device. A ``TaskPolicy``'s ``task`` also tells
            how the choices of a plain ``CategoricalPolicy`` on a numeric kind map to
            predictions.
        core: The task core (``head``, ``head_scale``, ``prediction_range``; a
            classification core for a plain ``CategoricalPolicy`` without a numeric task).
        contexts: ``B`` contexts (``obs`` and ``target`` are used).
        max_sequences: Largest token tree (base**num_digits) enumerated; above it the
            result is None.
        max_rows: Contexts x sequences evaluated per chunk of the token enumeration.

    Returns:
        Float64 ``[B]`` of log p(y|x) (the normalized density for gaussian and laplace
        heads, a probability for the verifier and classification; -inf where it is 0), or
        None when there is no exact form for this policy (unknown class, token tree larger
        than ``max_sequences``).

    Raises:
        ValueError: For a plain ``CategoricalPolicy`` on a regression core.
    """
    form = _exact_form(policy)
    if form is None:
        return None
    task = getattr(policy, "task", None)
    return form.exact_log_likelihood(
        core, contexts, task=task, max_sequences=max_sequences, max_rows=max_rows
    )


def exact_mean_log_likelihood(policy: Any, core: Any, contexts: Contexts) -> float | None:
    """Mean over contexts of ``exact_log_likelihood`` (the exact ``eval/log_likelihood``).

    As in ``agents.evaluation.evaluate`` and the reference levels, contexts whose target no
    prediction in the range can score (``core.reachable``: a verifier target beyond
    prediction_range + head_scale, where every policy has p = 0) are left out of the mean.

    Args:
        policy: As for ``exact_log_likelihood``.
        core: The task core.
        contexts: The contexts to average over.

    Returns:
        The mean over reachable contexts as a Python float (-inf if a reachable context has
        p = 0; NaN if no context is reachable), or None when there is no exact form.
    """
    values = exact_log_likelihood(policy, core, contexts)
    if values is None:
        return None
    kept = values[core.reachable(contexts).to(values.device)]
    return float(kept.mean()) if kept.numel() else float("nan")
