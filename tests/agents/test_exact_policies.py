"""Exact log p(y|x) of policies (agents.exact) against enumeration and Monte Carlo.

Discrete policies are checked against brute-force enumeration scored by the env
(``core.score`` on every value), the Gaussian policy against Monte Carlo of its own samples
through ``TaskPolicy`` and ``core.score`` with a tolerance of a few standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch

import maxrl_envs
from agents.exact import (
    all_token_sequences,
    exact_log_likelihood,
    exact_mean_log_likelihood,
    token_sequence_log_probs,
)
from agents.policies import CategoricalPolicy, GaussianPolicy, TaskPolicy, TokenPolicy, make_policy

POOL = {"num_contexts": 8, "num_validation_contexts": 8}


def log_lik_terms(core, scores):
    """log l per rollout with log 0 = -inf (the env reports a -100 floor for misses)."""
    if core.head == "verifier":
        return scores.log_reward.double()
    return scores.log_likelihood.double()


@pytest.mark.parametrize("head", ["gaussian", "laplace", "verifier"])
@pytest.mark.parametrize("state_dependent", [False, True])
def test_gaussian_policy_matches_monte_carlo_with_core_score(head, state_dependent):
    torch.manual_seed(0)
    task = maxrl_envs.make_task(
        "MaxRLRegression-v0",
        task="teacher-mlp",
        snr=1.0,
        head=head,
        head_scale=0.5,
        num_test_contexts=64,
        **POOL,
    )
    core = task.core
    policy = GaussianPolicy(core.obs_dim, (16,), init_std=0.4, state_dependent_std=state_dependent)
    with torch.no_grad():  # mean near 0.7 in action units: about 23% of draws clip at +1
        policy.net[-1].bias[0] = 0.7
        policy.net[-1].weight.mul_(30.0)
    ctx = core.all_contexts("test")
    exact = exact_log_likelihood(policy, core, ctx)
    assert exact.dtype == torch.float64 and exact.shape == (64,)
    samples = TaskPolicy(policy, task).sample(ctx, 8192, torch.Generator().manual_seed(1))
    assert (samples == core.prediction_range).double().mean() > 0.1  # the atom matters
    lik = log_lik_terms(core, core.score(ctx, samples)).exp()
    p_hat, p = lik.mean(1), exact.exp()
    se = (lik.var(1) / lik.shape[1]).sqrt()
    z = (p_hat - p) / se.clamp(min=1e-300)
    assert z.abs().max() < 5.0
    # The mean over contexts: standard error sqrt(Σ var) / B.
    assert abs((p_hat - p).mean()) < 5 * se.square().sum().sqrt() / len(p)


def test_gaussian_policy_with_zero_like_std_is_the_point_prediction():
    task = maxrl_envs.make_task("MaxRLRegression-v0", num_test_contexts=16, **POOL)
    core = task.core
    policy = GaussianPolicy(core.obs_dim, (8,), init_std=1e-5)  # clamped at log_std >= -12
    ctx = core.all_contexts("test")
    exact = exact_log_likelihood(policy, core, ctx)
    point = core.score(ctx, TaskPolicy(policy, task).point(ctx)).log_likelihood[:, 0]
    torch.testing.assert_close(exact, point.double(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("head", ["gaussian", "laplace", "verifier"])
def test_binned_policy_matches_enumeration(head):
    torch.manual_seed(1)
    task = maxrl_envs.make_task(
        "MaxRLRegression-v0", head=head, head_scale=0.2, num_test_contexts=32, **POOL
    )
    core = task.core
    policy = make_policy(task, (16,), kind="binned", bins=11)
    with torch.no_grad():
        policy.net[-1].weight.mul_(200.0)  # far from uniform
    ctx = core.all_contexts("test")
    exact = exact_log_likelihood(policy, core, ctx)
    log_probs = policy.log_probs(ctx.obs).double()
    scores = core.score(ctx, policy.values.expand(32, 11))
    brute = torch.logsumexp(log_probs + log_lik_terms(core, scores), dim=1)
    torch.testing.assert_close(exact, brute, atol=1e-5, rtol=1e-6)
    if head == "verifier":  # bins 0.8 apart, tolerance 0.2: some targets fall between bins
        assert torch.isneginf(exact).any() and torch.isfinite(exact).any()


def test_classification_is_the_log_probability_of_the_observed_label():
    torch.manual_seed(2)
    task = maxrl_envs.make_task(
        "MaxRLClassification-v0",
        task="teacher-mlp",
        num_classes=6,
        label_noise=0.2,
        num_test_contexts=40,
        **POOL,
    )
    core = task.core
    policy = make_policy(task, (16,))
    with torch.no_grad():
        policy.net[-1].weight.mul_(100.0)
    ctx = core.all_contexts("test")
    exact = exact_log_likelihood(policy, core, ctx)
    # Minus the cross-entropy of the observed labels...
    ce = torch.nn.functional.cross_entropy(
        policy.net(ctx.obs).double(), ctx.target, reduction="none"
    )
    torch.testing.assert_close(exact, -ce, atol=1e-6, rtol=0)
    # ...and the enumeration over classes scored by the env.
    classes = torch.arange(6).expand(40, 6)
    brute = torch.logsumexp(
        policy.log_probs(ctx.obs).double() + core.score(ctx, classes).log_reward.double(), 1
    )
    torch.testing.assert_close(exact, brute, atol=1e-6, rtol=0)
    assert exact_mean_log_likelihood(policy, core, ctx) == pytest.approx(exact.mean().item())


def token_task(head: str = "gaussian", **kwargs):
    return maxrl_envs.make_task(
        "MaxRLTokens-v0", task="teacher-mlp", head=head, num_test_contexts=24, **POOL, **kwargs
    )


def trained_like_token_policy(task, seed: int = 3) -> TokenPolicy:
    torch.manual_seed(seed)
    policy = make_policy(task, (16,))
    with torch.no_grad():
        policy.net[-1].weight.mul_(150.0)  # peaked, context-dependent token laws
    return policy


def test_token_sequence_log_probs_match_teacher_forcing():
    task = token_task(num_digits=3, base=4)
    policy = trained_like_token_policy(task)
    ctx = task.core.all_contexts("test")
    enumerated = token_sequence_log_probs(policy, ctx.obs)
    assert enumerated.shape == (24, 64) and enumerated.dtype == torch.float64
    sequences = all_token_sequences(3, 4)
    forced = policy.log_prob(ctx.obs, sequences.expand(24, 64, 3)).double()
    torch.testing.assert_close(enumerated, forced, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.logsumexp(enumerated, 1), torch.zeros(24, dtype=torch.float64))
    # Column n spells n: the same order as TokenCodec.decode's integer.
    assert torch.equal(task.codec.encode(task.codec.decode(sequences)), sequences)
    assert enumerated.exp().max() > 0.5  # the laws are peaked, so a wrong order would show


def test_token_enumeration_runs_one_batched_forward_per_position():
    task = token_task(num_digits=3, base=5)
    policy = trained_like_token_policy(task)
    ctx = task.core.all_contexts("test")
    shapes: list[tuple[int, ...]] = []
    hook = policy.net[-1].register_forward_hook(  # the output layer runs once per forward
        lambda _m, inputs, _out: shapes.append(tuple(inputs[0].shape))
    )
    token_sequence_log_probs(policy, ctx.obs)
    hook.remove()
    assert [s[0] for s in shapes] == [24, 24 * 5, 24 * 25]


@pytest.mark.parametrize("head", ["gaussian", "laplace", "verifier"])
def test_token_policy_matches_enumeration_scored_by_the_env(head):
    task = token_task(head, num_digits=2, base=7, head_scale=0.1)
    core = task.core
    policy = trained_like_token_policy(task, seed=4)
    ctx = core.all_contexts("test")
    exact = exact_log_likelihood(policy, core, ctx)
    sequences = all_token_sequences(2, 7)
    grid = task.codec.decode(sequences)
    log_probs = policy.log_prob(ctx.obs, sequences.expand(24, 49, 2)).double()
    brute = torch.logsumexp(
        log_probs + log_lik_terms(core, core.score(ctx, grid.expand(24, 49))), 1
    )
    torch.testing.assert_close(exact, brute, atol=1e-5, rtol=1e-6)
    # Chunked enumeration (a few contexts at a time) gives the same numbers.
    chunked = exact_log_likelihood(policy, core, ctx, max_rows=49 * 5)
    torch.testing.assert_close(chunked, exact, atol=1e-12, rtol=0)
    # Through TaskPolicy, and against Monte Carlo of the policy's own samples.
    wrapped = exact_log_likelihood(TaskPolicy(policy, task), core, ctx)
    torch.testing.assert_close(wrapped, exact, atol=0, rtol=0)
    samples = TaskPolicy(policy, task).sample(ctx, 4096, torch.Generator().manual_seed(0))
    lik = log_lik_terms(core, core.score(ctx, samples)).exp()
    se = (lik.var(1) / lik.shape[1]).sqrt()
    assert ((lik.mean(1) - exact.exp()).abs() <= 5 * se + 1e-12).all()


def test_token_tree_above_the_cap_is_refused_without_a_forward():
    task = token_task(num_digits=11, base=3)  # 177147 sequences > 2**16
    policy = make_policy(task, (8,))
    calls: list[int] = []
    policy.net[-1].register_forward_hook(lambda *_: calls.append(1))
    ctx = task.core.all_contexts("test")
    assert exact_log_likelihood(policy, task.core, ctx) is None
    assert exact_mean_log_likelihood(policy, task.core, ctx) is None
    assert calls == []
    small = token_task(num_digits=2, base=4)
    assert exact_log_likelihood(make_policy(small, (8,)), small.core, ctx, max_sequences=15) is None


def test_unknown_policies_and_mismatched_cores():
    task = maxrl_envs.make_task("MaxRLRegression-v0", num_test_contexts=4, **POOL)
    ctx = task.core.all_contexts("test")
    assert exact_log_likelihood(object(), task.core, ctx) is None
    plain = CategoricalPolicy(task.core.obs_dim, 5, (8,))
    with pytest.raises(ValueError, match="classification core"):
        exact_log_likelihood(plain, task.core, ctx)


def test_monte_carlo_metric_is_biased_low_and_converges_to_the_exact_value():
    # Without an exact form, evaluate() reports the log of a Monte-Carlo mean
    # (eval/log_likelihood_mc): biased low by about Var(l) / (2 p² M)
    # (Jensen). With a head 24x narrower than the policy, M = 64 is about 0.2 nats low (its
    # seed-to-seed spread here is ~0.05); M = 16384 is within 0.015 (its s.e. is ~0.004).
    from agents.evaluation import evaluate

    torch.manual_seed(5)
    task = maxrl_envs.make_task(
        "MaxRLRegression-v0", task="teacher-mlp", head_scale=0.05, num_test_contexts=128, **POOL
    )
    policy = GaussianPolicy(task.core.obs_dim, (8,), init_std=0.3)
    exact = exact_mean_log_likelihood(policy, task.core, task.core.all_contexts("test"))
    bound = TaskPolicy(policy, task)
    assert evaluate(task, bound, eval_samples=8, pass_k=1)["eval/log_likelihood"] == pytest.approx(
        exact, rel=1e-12
    )

    class SamplesOnly:  # the same policy without its exact form: evaluate falls back to MC
        sample = bound.sample
        point = bound.point

    few = evaluate(task, SamplesOnly(), eval_samples=64, pass_k=1)
    many = evaluate(task, SamplesOnly(), eval_samples=16384, pass_k=1)
    assert "eval/log_likelihood" not in few
    assert few["eval/log_likelihood_mc"] < exact - 0.1
    assert abs(many["eval/log_likelihood_mc"] - exact) < 0.015


def test_unreachable_verifier_targets_are_left_out_of_the_log_likelihood():
    from agents.evaluation import evaluate
    from maxrl_envs.references import reference_levels

    # SNR 0.05: noise std 4.5 against a prediction range of 4, so some targets lie beyond
    # prediction_range + head_scale, where every policy's likelihood is exactly 0.
    task = maxrl_envs.make_task("MaxRLVerifier-v0", snr=0.05, num_test_contexts=256, **POOL)
    contexts = task.core.all_contexts("test")
    reachable = task.core.reachable(contexts)
    assert 0 < int((~reachable).sum()) < 256
    torch.manual_seed(1)
    policy = TaskPolicy(GaussianPolicy(task.core.obs_dim, (8,), init_std=0.5), task)
    per_context = exact_log_likelihood(policy.policy, task.core, contexts)
    assert torch.isneginf(per_context[~reachable]).all()
    assert torch.isfinite(per_context[reachable]).all()
    metrics = evaluate(task, policy, eval_samples=4, pass_k=2)
    assert metrics["eval/log_likelihood"] == pytest.approx(float(per_context[reachable].mean()))
    # The exact mean leaves out the same contexts (it was -inf with them in).
    mean = exact_mean_log_likelihood(policy, task.core, contexts)
    assert mean == pytest.approx(metrics["eval/log_likelihood"], rel=1e-12)
    assert math.isfinite(mean)
    only_unreachable = _subset(contexts, ~reachable)
    assert math.isnan(exact_mean_log_likelihood(policy, task.core, only_unreachable))
    levels = reference_levels(task.core, "test", pass_k=2)
    assert math.isfinite(levels["random"]["eval/log_likelihood"])
    assert math.isfinite(levels["bayes_sampler"]["eval/log_likelihood"])


def _subset(contexts, mask: torch.Tensor):
    from maxrl_envs.core import Contexts

    return Contexts(
        ids=contexts.ids[mask],
        obs=contexts.obs[mask],
        signal=contexts.signal[mask],
        target=contexts.target[mask],
        noise_scale=contexts.noise_scale[mask],
    )
