"""SB3 policies' exact eval/log_likelihood against a large Monte-Carlo estimate of p(y|x)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

import maxrl_envs
from agents.evaluation import SB3Policy, evaluate
from maxrl_envs.sb3 import make_sb3_vec_env

POOL = {"num_contexts": 64, "num_test_contexts": 16, "num_validation_contexts": 8}


def monte_carlo_p(policy: SB3Policy, task, contexts, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-context mean likelihood of ``samples`` draws and its standard error."""
    generator = task.core.make_generator(7)
    predictions = policy.sample(contexts, samples, generator)
    likelihood = task.core.score(contexts, predictions).log_likelihood.double().exp()
    values = likelihood.numpy()
    return values.mean(1), values.std(1, ddof=1) / math.sqrt(samples)


def build(algo, env_id, **kwargs):
    env_kwargs = {**POOL, **kwargs}
    venv = make_sb3_vec_env(env_id, num_envs=4, seed=0, **env_kwargs)
    extra = {"learning_starts": 0} if algo in (SAC, TD3, DQN) else {}
    model = algo("MlpPolicy", venv, seed=1, device="cpu", **extra)
    if algo is SAC:  # a wider, off-centre policy than the initial one, so the test has teeth
        with torch.no_grad():
            model.policy.actor.mu.bias.fill_(0.4)
            model.policy.actor.log_std.bias.fill_(-0.7)
    task = maxrl_envs.make_task(env_id, **env_kwargs)
    return SB3Policy(model, task), task


@pytest.mark.parametrize(
    "algo, env_id, kwargs",
    [
        (PPO, "MaxRLRegression-v0", {"snr": 1.0}),
        (PPO, "MaxRLRegression-v0", {"snr": 1.0, "head": "laplace"}),
        (SAC, "MaxRLRegression-v0", {"snr": 1.0}),
        (SAC, "MaxRLRegression-v0", {"snr": 1.0, "head": "laplace", "head_scale": 0.5}),
        (SAC, "MaxRLVerifier-v0", {"snr": 1.0}),
        (A2C, "MaxRLClassification-v0", {"task": "teacher-mlp", "num_classes": 5}),
        (PPO, "MaxRLTokens-v0", {"snr": 1.0, "num_digits": 2, "base": 4}),
    ],
)
def test_stochastic_sb3_policies_match_monte_carlo(algo, env_id, kwargs) -> None:
    policy, task = build(algo, env_id, **kwargs)
    contexts = task.core.all_contexts("test")
    exact = policy.log_likelihood(contexts)
    assert exact is not None and exact.shape == (16,) and exact.dtype == torch.float64
    p_hat, se = monte_carlo_p(policy, task, contexts, 8_000)
    p = exact.exp().numpy()
    assert np.all(np.abs(p - p_hat) <= 5 * se + 1e-12), (p, p_hat, se)
    metrics = evaluate(task, policy, eval_samples=4, pass_k=1)
    assert metrics["eval/log_likelihood"] == pytest.approx(float(exact.mean()), rel=1e-9)
    assert "eval/log_likelihood_mc" not in metrics


@pytest.mark.parametrize(
    "algo, env_id, kwargs",
    [
        (TD3, "MaxRLRegression-v0", {}),
        (DQN, "MaxRLClassification-v0", {"task": "teacher-mlp", "num_classes": 5}),
    ],
)
def test_deterministic_sb3_policies_score_their_point_prediction(algo, env_id, kwargs) -> None:
    policy, task = build(algo, env_id, **kwargs)
    contexts = task.core.all_contexts("test")
    exact = policy.log_likelihood(contexts)
    point = policy.point(contexts)
    expected = task.core.score(contexts, point.reshape(-1, 1)).log_likelihood[:, 0].double()
    if not task.kind.numeric:  # a miss is log 0 exactly (the Monte-Carlo floor is -100)
        expected = torch.where(expected < -50, -math.inf, expected)
    torch.testing.assert_close(exact, expected, rtol=1e-5, atol=1e-5)


def test_sb3_laws_are_looked_up_along_the_mro_and_plugins_register_their_own() -> None:
    """A registered law answers for its class and subclasses; SB3 subclasses inherit theirs."""
    from types import SimpleNamespace

    from stable_baselines3.common.policies import ActorCriticPolicy

    from agents.evaluation import SB3_LAWS, register_sb3_law, sb3_exact_form, sb3_law

    class ContribPolicy(ActorCriticPolicy):  # e.g. an sb3-contrib policy
        pass

    venv = make_sb3_vec_env("MaxRLRegression-v0", num_envs=2, seed=0, **POOL)
    task = maxrl_envs.make_task("MaxRLRegression-v0", **POOL)
    contexts = task.core.contexts([0, 1, 2], "test")
    plain = SB3Policy(PPO("MlpPolicy", venv, seed=1, device="cpu"), task)
    contrib = SB3Policy(PPO(ContribPolicy, venv, seed=1, device="cpu"), task)
    assert (
        contrib.law
        is plain.law
        is sb3_law(ActorCriticPolicy)
        is not sb3_law(SAC.policy_aliases["MlpPolicy"])
    )
    torch.testing.assert_close(contrib.log_likelihood(contexts), plain.log_likelihood(contexts))

    class PluginPolicy:  # outside SB3's classes: no law until a plugin registers one
        pass

    class Child(PluginPolicy):
        pass

    model = SimpleNamespace(policy=Child(), device="cpu")
    tokens = maxrl_envs.make_task("MaxRLTokens-v0", num_digits=2)
    assert sb3_law(Child) is None and not sb3_exact_form(Child, task)
    assert SB3Policy(model, task).log_likelihood(contexts) is None
    seen = []

    def law(sb3: SB3Policy, ctx) -> torch.Tensor:
        seen.append(sb3)
        return -ctx.target.double().abs()

    def one_step(t) -> bool:
        return t.episode_length == 1

    try:
        entry = register_sb3_law(PluginPolicy, law, exact_form=one_step)
        assert register_sb3_law(PluginPolicy, law, exact_form=one_step) is entry  # no-op
        assert sb3_law(Child) is entry and sb3_exact_form(Child, task)
        assert not sb3_exact_form(Child, tokens)
        policy = SB3Policy(model, task)
        expected = -contexts.target.double().abs()
        torch.testing.assert_close(policy.log_likelihood(contexts), expected)
        assert seen == [policy]
        register_sb3_law(Child, lambda sb3, ctx: None)  # a subclass's own law comes first
        assert SB3Policy(model, task).log_likelihood(contexts) is None and len(seen) == 1
        with pytest.raises(ValueError, match="PluginPolicy already has an SB3 law"):
            register_sb3_law(PluginPolicy, lambda sb3, ctx: None)
        with pytest.raises(ValueError, match="policy_class='PPO' must be a class"):
            register_sb3_law("PPO", law)
        with pytest.raises(ValueError, match="law=3 must be callable"):
            register_sb3_law(Child, 3)
    finally:
        SB3_LAWS.pop(PluginPolicy, None)
        SB3_LAWS.pop(Child, None)
