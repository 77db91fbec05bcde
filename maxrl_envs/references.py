"""Exact reference levels of the ``eval/*`` metrics for each environment and split.

``reference_levels`` scores three fixed predictors on every context of a split, exactly
(closed forms and finite sums from ``maxrl_envs.likelihoods``, no sampling):

- ``random``: the uniform policy over the action space: Uniform[-R, R] for a Box env,
  uniform over the classes, or uniform over the token grid (the decoded values of every
  token sequence). Its point prediction (for ``eval/excess_mse``) is the centre 0.
- ``bayes_point``: the deterministic predictor f(x), the clean signal (snapped to the
  nearest grid point for tokens; the clean label for classification).
- ``bayes_sampler``: draws ŷ from the true law of y given x: f(x) + noise_scale(x)·ε with
  the env's unit-variance noise family (snapped to the grid for tokens, so that a token
  policy can produce it); for classification the clean class with probability 1 - ε_l and
  each other class with probability ε_l / (K - 1). Its point prediction is f(x).

For each, the metrics of ``agents.evaluation.evaluate`` in their exact form:

- ``eval/log_likelihood``: mean over contexts of log p(y|x), p = E_ŷ l(y, ŷ). With a
  verifier head (or classification) a predictor that misses a context has p = 0 there and
  the mean is ``-inf``; it is kept as ``-inf`` (not the Monte-Carlo metric's -100 floor).
- ``eval/pass@1``: mean of p1 = P(success); ``eval/pass@{k}``: mean of 1 - (1 - p1)^k
  (k independent draws).
- ``eval/excess_mse`` (regression and tokens): mean (point prediction - f(x))².

Neither Bayes reference dominates: with a head as wide as the noise (the default
head_scale = noise std, Gaussian head and noise) the point predictor f(x) is the
log-likelihood optimum over all prediction laws (the law convolved with the head must match
the noise law, and N(0, σ² - s²) is a point mass at s = σ), while the sampler wins on
pass@k for k > 1 because its draws spread over the noise. ``best_reference`` picks the
better per metric. Box-env references are not clipped to the prediction range: f(x) and the
sampler's draws can leave [-R, R], where no Box policy can follow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from maxrl_envs.core import ClassificationCore
from maxrl_envs.likelihoods import (
    grid_log_probs_noise,
    log_expected_likelihood_discrete,
    log_expected_likelihood_noise,
    log_expected_likelihood_uniform,
    log_likelihood_head,
    pass_probability_noise,
)
from maxrl_envs.tokens import TokenCodec

REFERENCES = ("random", "bayes_point", "bayes_sampler")
#: Contexts x grid values evaluated at once for token grids.
_MAX_GRID_ELEMENTS = 1 << 22


def _f64(t: torch.Tensor) -> torch.Tensor:
    device = torch.device("cpu") if t.device.type == "mps" else t.device
    return t.to(device, torch.float64)


def _pass_at_k(p1: torch.Tensor, k: int) -> torch.Tensor:
    """1 - (1 - p1)^k per context, computed without cancellation."""
    return -torch.expm1(k * torch.log1p(-p1.clamp(0.0, 1.0)))


def _summary(
    log_p: torch.Tensor,
    p1: torch.Tensor,
    pass_k: int,
    sq_error: torch.Tensor | None,
    reachable: torch.Tensor | None = None,
) -> dict[str, float]:
    kept = log_p if reachable is None else log_p[reachable.to(log_p.device)]
    out = {"eval/log_likelihood": float(kept.mean()) if kept.numel() else math.nan}
    if sq_error is not None:
        out["eval/excess_mse"] = float(sq_error.mean())
    out["eval/pass@1"] = float(p1.mean())
    out[f"eval/pass@{pass_k}"] = float(_pass_at_k(p1, pass_k).mean())
    return out


def grid_values(codec: TokenCodec, device: Any = "cpu") -> torch.Tensor:
    """Every prediction a token policy can make: ``codec.decode`` of every sequence, ``[L]``.

    Float32 (the env's values), increasing, L = base**num_digits.
    """
    n = torch.arange(codec.levels, device=device)
    powers = codec.base ** torch.arange(codec.num_digits - 1, -1, -1, device=device)
    return codec.decode((n.unsqueeze(1) // powers) % codec.base)


def _chunks(count: int, width: int) -> list[slice]:
    step = max(1, _MAX_GRID_ELEMENTS // max(width, 1))
    return [slice(i, min(count, i + step)) for i in range(0, count, step)]


def _regression_levels(
    core: Any, contexts: Any, pass_k: int, codec: TokenCodec | None
) -> dict[str, dict[str, float]]:
    head, s, r = core.head, float(core.head_scale), float(core.prediction_range)
    y, f, sigma = (_f64(t) for t in (contexts.target, contexts.signal, contexts.noise_scale))
    noise, df = core.noise, float(core.student_df)
    levels: dict[str, dict[str, float]] = {}

    if codec is None:
        log_p = log_expected_likelihood_uniform(head, s, y, -r, r)
        p1 = log_expected_likelihood_uniform("verifier", s, y, -r, r).exp()
    else:
        grid = _f64(grid_values(codec, contexts.target.device))
        flat = torch.full_like(grid, -math.log(grid.numel()))
        log_p = log_expected_likelihood_discrete(head, s, y, grid, flat)
        p1 = log_expected_likelihood_discrete("verifier", s, y, grid, flat).exp()
    reach = core.reachable(contexts)
    levels["random"] = _summary(log_p, p1, pass_k, f.square(), reach)

    if codec is None:
        point = f
    else:
        snapped = codec.decode(codec.encode(contexts.signal))
        point = _f64(snapped)
    log_p = log_likelihood_head(head, s, y, point)
    p1 = ((y - point).abs() <= s).to(torch.float64)
    levels["bayes_point"] = _summary(log_p, p1, pass_k, (point - f).square(), reach)

    if codec is None:
        log_p = log_expected_likelihood_noise(head, s, y, f, sigma, noise, df)
        p1 = pass_probability_noise(s, y, f, sigma, noise, df)
    else:
        log_parts, p1_parts = [], []
        for part in _chunks(y.numel(), grid.numel()):
            law = grid_log_probs_noise(grid, f[part], sigma[part], noise, df)
            log_parts.append(log_expected_likelihood_discrete(head, s, y[part], grid, law))
            p1_parts.append(
                log_expected_likelihood_discrete("verifier", s, y[part], grid, law).exp()
            )
        log_p, p1 = torch.cat(log_parts), torch.cat(p1_parts)
    levels["bayes_sampler"] = _summary(log_p, p1, pass_k, (point - f).square(), reach)
    return levels


def _classification_levels(core: Any, contexts: Any, pass_k: int) -> dict[str, dict[str, float]]:
    k, eps = int(core.num_classes), float(core.label_noise)
    clean = (contexts.signal == contexts.target).to(torch.float64)
    clean = _f64(clean)
    levels: dict[str, dict[str, float]] = {}
    uniform = torch.full_like(clean, 1.0 / k)
    if hasattr(core, "uniform_pass_rate"):  # a core accepting several classes per context
        uniform = _f64(core.uniform_pass_rate(contexts))
    levels["random"] = _summary(uniform.log(), uniform, pass_k, None)
    levels["bayes_point"] = _summary(clean.log(), clean, pass_k, None)
    hit, miss = torch.full_like(clean, 1.0 - eps), torch.full_like(clean, eps / (k - 1))
    p = torch.where(clean > 0, hit, miss)
    levels["bayes_sampler"] = _summary(p.log(), p, pass_k, None)
    return levels


@torch.no_grad()
def reference_levels(
    core: Any, split: str = "test", pass_k: int = 16, codec: TokenCodec | None = None
) -> dict[str, dict[str, float]]:
    """Exact ``eval/*`` levels of the random, Bayes-point and Bayes-sampler predictors.

    Args:
        core: A ``RegressionCore`` or ``ClassificationCore`` (``task.core`` of
            ``maxrl_envs.make_task``).
        split: ``train``, ``validation`` or ``test``; every context of it is used.
        pass_k: k of ``eval/pass@{k}`` (>= 1).
        codec: The token codec of a ``MaxRLTokens`` env (``task.codec``): predictions are
            then restricted to its grid. None for Box and classification envs.

    Returns:
        ``{reference: {metric: value}}`` for the references ``random``, ``bayes_point`` and
        ``bayes_sampler``; metrics ``eval/log_likelihood`` (may be ``-inf``, see the module
        docs), ``eval/excess_mse`` (not for classification), ``eval/pass@1`` and
        ``eval/pass@{pass_k}``.
    """
    if isinstance(pass_k, bool) or int(pass_k) != pass_k or pass_k < 1:
        raise ValueError(f"pass_k={pass_k!r} must be an integer >= 1")
    pass_k = int(pass_k)
    contexts = core.all_contexts(split)
    if isinstance(core, ClassificationCore):
        if codec is not None:
            raise ValueError("codec is only meaningful for a regression (token) core")
        return _classification_levels(core, contexts, pass_k)
    return _regression_levels(core, contexts, pass_k, codec)


#: Metrics where lower is better (all others: higher is better).
LOWER_IS_BETTER = ("eval/excess_mse",)


def as_float(value: Any) -> float:
    """A stored metric value as a float.

    Rows store non-finite values as the strings ``"nan"``, ``"inf"`` and ``"-inf"`` (strict
    JSON); those become the floats again. Anything that is not a number (None, a missing
    value, another string) is NaN.
    """
    if isinstance(value, bool):
        return float("nan")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return float("nan")
    return float("nan")


def best_reference(metric: str, references: Mapping[str, Mapping[str, Any]]) -> float:
    """The better of the two Bayes references' levels of a metric.

    ``bayes_point`` (the predictor f(x)) and ``bayes_sampler`` (draws from p(y|x)): neither
    dominates (the point predictor misses every context of a verifier, log-likelihood
    ``-inf``; the sampler wins pass@k), so the better one per metric (lower for
    ``LOWER_IS_BETTER`` metrics, ``eval/excess_mse``) is the Bayes level.
    ``eval/excess_mse`` is 0 for the Bayes predictor by definition when neither reference
    gives it.

    Args:
        metric: An ``eval/*`` tag.
        references: ``reference_levels``'s output, or a result row's stored ``references``
            (values may be the strings of non-finite floats).

    Returns:
        The level, or NaN when neither reference has the metric.
    """
    best = float("nan")
    for name in ("bayes_point", "bayes_sampler"):
        value = as_float((references.get(name) or {}).get(metric))
        if math.isnan(value):
            continue
        lower = metric in LOWER_IS_BETTER
        if math.isnan(best) or (value < best if lower else value > best):
            best = value
    if math.isnan(best) and metric == "eval/excess_mse":
        return 0.0
    return best


def normalized_score(metric: str, value: Any, references: Mapping[str, Mapping[str, Any]]) -> float:
    """``(x - random) / (bayes - random)``: 0 at the random policy, 1 at the Bayes level.

    ``bayes`` is :func:`best_reference`; for a lower-is-better metric (excess MSE) both
    differences are negative, so a higher normalized score is better for every metric.

    Args:
        metric: An ``eval/*`` tag.
        value: The agent's value of the metric (a number or its stored string).
        references: ``reference_levels``'s output or a row's ``references``:
            ``{"random": {tag: value}, "bayes_point": ..., "bayes_sampler": ...}``.

    Returns:
        The normalized score; NaN when the denominator is 0 or not finite (a reference is
        missing, infinite or equal to random) or the value is NaN. An infinite value gives an
        infinite score.
    """
    random = as_float((references.get("random") or {}).get(metric))
    denominator = best_reference(metric, references) - random
    x = as_float(value)
    if not math.isfinite(denominator) or denominator == 0 or math.isnan(x):
        return float("nan")
    return (x - random) / denominator


def reference_table(env_ids: list[str], split: str = "test", pass_k: int = 16) -> str:
    """Markdown table of the reference levels of registered ids (default keyword arguments)."""
    from maxrl_envs.registration import make_task

    lines = [
        f"| env | reference | log_likelihood | excess_mse | pass@1 | pass@{pass_k} |",
        "|---|---|---|---|---|---|",
    ]
    for env_id in env_ids:
        task = make_task(env_id)
        levels = reference_levels(task.core, split, pass_k, task.codec)
        for i, (name, values) in enumerate(levels.items()):
            cells = [env_id if i == 0 else "", name]
            for metric in ("eval/log_likelihood", "eval/excess_mse", "eval/pass@1"):
                cells.append(f"{values[metric]:.3f}" if metric in values else "–")
            cells.append(f"{values[f'eval/pass@{pass_k}']:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m maxrl_envs.references [ID ...]
    import sys

    from maxrl_envs.registration import all_ids

    print(reference_table(sys.argv[1:] or all_ids()))
