"""Policies: shapes, log-probs against torch.distributions, one forward per context, seeding."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Normal

import maxrl_envs
from agents.policies import (
    CategoricalPolicy,
    GaussianPolicy,
    TaskPolicy,
    TokenPolicy,
    make_policy,
)

B, N = 5, 7


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _count_calls(module: torch.nn.Module) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    module.register_forward_hook(lambda _m, inputs, _out: shapes.append(tuple(inputs[0].shape)))
    return shapes


@pytest.mark.parametrize("state_dependent", [False, True])
def test_gaussian_log_prob_matches_torch_normal(state_dependent: bool) -> None:
    torch.manual_seed(0)
    policy = GaussianPolicy(3, (16,), init_std=0.3, state_dependent_std=state_dependent)
    obs = torch.randn(B, 3)
    out = policy.sample(obs, N, _gen())
    assert out.actions.shape == (B, N) and out.log_prob.shape == (B, N)
    assert out.entropy.shape == (B,)
    mean, log_std = policy.distribution_params(obs)
    reference = Normal(mean.unsqueeze(1), log_std.exp().unsqueeze(1))
    torch.testing.assert_close(out.log_prob, reference.log_prob(out.actions))
    torch.testing.assert_close(policy.log_prob(obs, out.actions), out.log_prob)
    torch.testing.assert_close(out.entropy, reference.entropy()[:, 0])
    assert out.log_prob.requires_grad and not out.actions.requires_grad


def test_gaussian_initial_std_and_gradients() -> None:
    policy = GaussianPolicy(2, (8,), init_std=0.25)
    assert policy.std().item() == pytest.approx(0.25)
    out = policy.sample(torch.randn(4, 2), 3, _gen())
    out.log_prob.sum().backward()
    assert policy.log_std.grad is not None and policy.net[0].weight.grad is not None
    assert policy.net[0].weight.grad.abs().sum() > 0


def test_gaussian_samples_follow_the_distribution() -> None:
    policy = GaussianPolicy(2, (8,), init_std=0.5)
    obs = torch.zeros(1, 2)
    actions = policy.sample(obs, 20_000, _gen(1)).actions
    mean = policy.mode(obs)
    assert abs(actions.mean().item() - mean.item()) < 0.02
    assert abs(actions.std().item() - 0.5) < 0.02


def test_categorical_log_prob_matches_torch_categorical() -> None:
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 6, (16,))
    obs = torch.randn(B, 4)
    out = policy.sample(obs, N, _gen())
    assert out.actions.shape == (B, N) and out.actions.dtype == torch.long
    assert out.log_prob.shape == (B, N)
    reference = Categorical(logits=policy.net(obs))
    expected = reference.log_prob(out.actions.T).T
    torch.testing.assert_close(out.log_prob, expected)
    torch.testing.assert_close(out.entropy, reference.entropy())
    assert torch.equal(policy.mode(obs), reference.probs.argmax(-1))


def test_categorical_sampling_frequencies() -> None:
    policy = CategoricalPolicy(2, 3, ())
    with torch.no_grad():
        policy.net[0].weight.zero_()
        policy.net[0].bias.copy_(torch.log(torch.tensor([0.2, 0.3, 0.5])))
    actions = policy.sample(torch.zeros(1, 2), 30_000, _gen()).actions[0]
    freq = torch.bincount(actions, minlength=3).float() / actions.numel()
    torch.testing.assert_close(freq, torch.tensor([0.2, 0.3, 0.5]), atol=0.01, rtol=0)


def test_token_log_prob_matches_per_step_categoricals() -> None:
    torch.manual_seed(0)
    codec = maxrl_envs.TokenCodec(num_digits=3, base=4)
    policy = TokenPolicy(5, codec, (16,))
    obs = torch.randn(B, 5)
    out = policy.sample(obs, N, _gen())
    assert out.actions.shape == (B, N, 3) and out.log_prob.shape == (B, N)
    tokens = out.actions.reshape(B * N, 3)
    x = obs.repeat_interleave(N, 0)
    expected = torch.zeros(B * N)
    for t in range(3):
        # The reference builds the full Gymnasium observation cat(x, step_features).
        features = torch.cat([x, codec.step_features(tokens, t)], 1)
        dist = Categorical(logits=policy.net(features))
        expected += dist.log_prob(tokens[:, t])
    torch.testing.assert_close(out.log_prob, expected.reshape(B, N))
    torch.testing.assert_close(policy.log_prob(obs, out.actions), out.log_prob)


def test_token_mode_is_greedy_and_sampling_uses_full_vocabulary() -> None:
    torch.manual_seed(1)
    codec = maxrl_envs.TokenCodec(num_digits=2, base=3)
    policy = TokenPolicy(2, codec, (8,))
    obs = torch.randn(3, 2)
    greedy = policy.mode(obs)
    for t in range(2):
        logits = policy.step_logits(obs, greedy, t)
        assert torch.equal(greedy[:, t], logits.argmax(-1))
    tokens = policy.sample(obs, 500, _gen()).actions
    assert set(tokens.unique().tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    "make",
    [
        lambda: GaussianPolicy(3, (16, 16)),
        lambda: CategoricalPolicy(3, 5, (16, 16)),
    ],
)
def test_one_step_policies_run_one_forward_per_context(make) -> None:
    policy = make()
    shapes = _count_calls(policy.net)
    policy.sample(torch.randn(B, 3), 64, _gen())
    assert shapes == [(B, 3)]


def test_token_policy_shares_the_context_part() -> None:
    codec = maxrl_envs.TokenCodec(num_digits=3, base=4)
    policy = TokenPolicy(3, codec, (16,))
    first = _count_calls(policy.net[0])
    later = _count_calls(policy.net[1])
    policy.sample(torch.randn(B, 3), N, _gen())
    # The first Linear is applied through its weight slices, never as a module on [*, D+F];
    # the rest of the MLP runs once on [B] rows for the first token, then on [B*N] rows.
    assert first == []
    assert later == [(B, 16), (B * N, 16), (B * N, 16)]


@pytest.mark.parametrize("policy_type", [GaussianPolicy, CategoricalPolicy])
def test_sampling_is_seeded_by_the_generator(policy_type) -> None:
    torch.manual_seed(0)
    policy = policy_type(3, 4, (8,)) if policy_type is CategoricalPolicy else policy_type(3, (8,))
    obs = torch.randn(B, 3)
    a = policy.sample(obs, N, _gen(3)).actions
    torch.manual_seed(123)  # the global RNG must not matter
    b = policy.sample(obs, N, _gen(3)).actions
    c = policy.sample(obs, N, _gen(4)).actions
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    ("env_id", "policy_type"),
    [
        ("MaxRLRegression-v0", GaussianPolicy),
        ("MaxRLClassification-v0", CategoricalPolicy),
        ("MaxRLTokens-v0", TokenPolicy),
    ],
)
def test_make_policy_and_task_policy(env_id: str, policy_type: type) -> None:
    task = maxrl_envs.make_task(env_id)
    policy = make_policy(task, (16,))
    assert isinstance(policy, policy_type)
    agent = TaskPolicy(policy, task)
    contexts = task.core.contexts([0, 1, 2], "test")
    samples = agent.sample(contexts, 9, _gen())
    assert samples.shape == (3, 9)
    assert agent.point(contexts).shape == (3,)
    scores = task.core.score(contexts, samples)
    assert scores.reward.shape == (3, 9)
    labels = agent.labels(contexts)
    # The label rollout writes the observed target (up to the token grid / clipping).
    written = agent.to_prediction(labels)[:, 0]
    if task.kind.name == "classification":
        assert torch.equal(written, contexts.target)
    elif task.kind.name == "tokens":
        step = 2 * task.codec.prediction_range / (task.codec.levels - 1)
        assert (written - contexts.target).abs().max() <= step / 2 + 1e-5
    else:
        torch.testing.assert_close(written, contexts.target.clamp(-4, 4))


def test_binned_policy_predicts_bin_values() -> None:
    task = maxrl_envs.make_task("MaxRLRegression-v0")
    policy = make_policy(task, (8,), kind="binned", bins=9)
    assert isinstance(policy, CategoricalPolicy) and policy.num_classes == 9
    agent = TaskPolicy(policy, task)
    contexts = task.core.contexts([0, 1], "test")
    grid = torch.linspace(-4, 4, 9)
    samples = agent.sample(contexts, 50, _gen())
    assert torch.isin(samples, grid).all()
    nearest = agent.to_prediction(agent.labels(contexts))[:, 0]
    assert ((nearest - contexts.target).abs() <= 0.5 + 1e-6).all()


def test_make_policy_rejects_bad_kind() -> None:
    task = maxrl_envs.make_task("MaxRLClassification-v0")
    with pytest.raises(ValueError, match="policy='binned'"):
        make_policy(task, kind="binned")
    with pytest.raises(ValueError, match="allowed"):
        make_policy(task, kind="mixture")


def test_untrained_policies_start_near_uniform() -> None:
    torch.manual_seed(0)
    policy = CategoricalPolicy(64, 10, (64, 64))
    probs = policy.log_probs(torch.rand(100, 64)).exp()
    assert (probs - 0.1).abs().max() < 0.02
    gaussian = GaussianPolicy(8, (64, 64), init_std=0.5)
    assert gaussian.mode(torch.randn(100, 8)).abs().max() < 0.1
    assert math.isclose(gaussian.std().item(), 0.5, rel_tol=1e-6)
