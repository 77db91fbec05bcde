"""The hard-contexts task: windows, exact initial pass rates, per-bin metrics, references."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import maxrl_envs
import maxrl_envs.hard
from agents.evaluation import bin_tags, evaluate
from agents.exact import exact_log_likelihood
from agents.policies import TaskPolicy, make_policy
from maxrl_envs.references import reference_levels

SMALL = {"num_contexts": 1200, "num_test_contexts": 600, "num_validation_contexts": 64}


@pytest.fixture(scope="module")
def task():
    return maxrl_envs.make_task("MaxRLHardContexts-v0", **SMALL)


def test_windows_hold_exactly_k_classes_around_the_true_class(task):
    core = task.core
    ctx = core.all_contexts("train")
    accepted = core.accepted(ctx)
    width = ctx.noise_scale.round().long()
    assert torch.equal(accepted.sum(1), width)
    assert bool(accepted.gather(1, ctx.target.unsqueeze(1)).all())  # c*(x) is accepted
    # Contiguous: exactly one run of accepted classes per row.
    starts = accepted[:, 1:] & ~accepted[:, :-1]
    assert bool((starts.sum(1) + accepted[:, 0].long() == 1).all())
    # Widths are 2^(b+1) - 1 of the level; every level is used, with similar frequencies.
    level = core.difficulty_level(ctx)
    assert torch.equal(width, 2 ** (level + 1) - 1)
    counts = torch.bincount(level, minlength=core.levels)
    assert core.levels == 9 and bool((counts > 0.5 * len(level) / 9).all())
    # core.score agrees with the window on random classes, boundaries included.
    low, _ = core.window(ctx)
    probes = torch.stack([low - 1, low, low + width - 1, low + width], 1).clamp(0, 999)
    scores = core.score(ctx, probes)
    assert torch.equal(scores.is_success, accepted.gather(1, probes))
    assert torch.equal(scores.reward, scores.is_success.float())


def test_fresh_policy_pass_rates_span_1e_3_to_one_half_exactly(task):
    """Initial pass rates of an untrained policy, exact (sum of its window probabilities)."""
    core = task.core
    ctx = core.all_contexts("test")
    torch.manual_seed(0)
    agent = TaskPolicy(make_policy(task), task)
    p = exact_log_likelihood(agent, core, ctx).exp()
    # Independent computation: sum of softmax probabilities over the window.
    with torch.no_grad():
        probs = torch.softmax(agent.policy.net(ctx.obs).double(), -1)
    assert torch.allclose(p, (probs * core.accepted(ctx)).sum(1), rtol=1e-6, atol=0)
    level = core.difficulty_level(ctx)
    nominal = torch.tensor(core.level_pass_rates(), dtype=torch.float64)[level]
    assert torch.allclose(p, nominal, rtol=0.05)  # a fresh policy is near-uniform
    assert 0.9e-3 < float(p.min()) < 1.1e-3 and 0.49 < float(p.max()) < 0.53
    per_level = [float(p[level == b].mean()) for b in range(core.levels)]
    assert per_level == sorted(per_level) and per_level[-1] / per_level[0] > 400


def test_per_bin_metrics_of_a_uniform_policy_are_exact(task):
    core = task.core
    policy = make_policy(task)
    with torch.no_grad():
        policy.net[-1].weight.zero_()  # logits 0: the uniform policy
    agent = TaskPolicy(policy, task)
    metrics = evaluate(task, agent, eval_samples=32, pass_k=8, seed=3)
    tags = bin_tags(core.levels, 8)
    assert set(tags) <= set(metrics) and len(tags) == 27
    ctx = core.all_contexts("test")
    level = core.difficulty_level(ctx)
    counts = torch.bincount(level, minlength=core.levels).double()
    for b, rate in enumerate(core.level_pass_rates()):
        assert metrics[f"eval/bin{b}/log_likelihood"] == pytest.approx(math.log(rate), abs=1e-12)
    # The bins partition the contexts: their weighted means are the overall means.
    for name in ("log_likelihood", "pass@1", "pass@8"):
        values = torch.tensor(
            [metrics[f"eval/bin{b}/{name}"] for b in range(core.levels)], dtype=torch.float64
        )
        pooled = float((values.double() * counts).sum() / counts.sum())
        assert pooled == pytest.approx(metrics[f"eval/{name}"], abs=1e-12)
    # Sampled pass@1 per bin follows k_b / C (32 samples x ~67 contexts per bin).
    assert metrics["eval/bin8/pass@1"] == pytest.approx(0.511, abs=0.03)
    assert metrics["eval/bin0/pass@1"] < 0.01


def test_reference_levels_use_the_windows(task):
    levels = reference_levels(task.core, "test", pass_k=16)
    ctx = task.core.all_contexts("test")
    rate = ctx.noise_scale.double() / 1000
    assert levels["random"]["eval/log_likelihood"] == pytest.approx(float(rate.log().mean()))
    assert levels["random"]["eval/pass@1"] == pytest.approx(float(rate.mean()))
    assert levels["bayes_point"]["eval/log_likelihood"] == 0.0


def test_vector_env_groups_and_errors():
    import gymnasium

    envs = gymnasium.make_vec("MaxRLHardContexts-v0", num_envs=8, group_size=4, **SMALL)
    obs, info = envs.reset(seed=1)
    _, reward, terminated, _, info = envs.step(np.arange(8))
    assert obs.shape == (8, 8) and reward.shape == (8,) and terminated.all()
    assert (info["context_id"][:4] == info["context_id"][0]).all()
    with pytest.raises(ValueError, match="num_classes=100 is smaller than the widest window"):
        maxrl_envs.describe_env("MaxRLHardContexts-v0", num_classes=100)
    with pytest.raises(ValueError, match="levels=0"):
        maxrl_envs.describe_env("MaxRLHardContexts-v0", levels=0)
    info = maxrl_envs.describe_env("MaxRLHardContexts-v0", levels=4, num_classes=20)
    assert info.kind.name == "hard-contexts" and int(info.step_action_space.n) == 20


def test_kind_card_example_runs():
    results = doctest.testmod(maxrl_envs.hard, optionflags=doctest.ELLIPSIS, verbose=False)
    assert results.attempted > 0 and results.failed == 0


def test_sb3_categorical_scores_the_window(task):
    from stable_baselines3 import PPO

    from agents.evaluation import SB3Policy
    from maxrl_envs.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("MaxRLHardContexts-v0", num_envs=2, seed=0, **SMALL)
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=8, device="cpu", seed=0)
    ctx = task.core.contexts(torch.arange(40), "test")
    got = SB3Policy(model, task).log_likelihood(ctx)
    with torch.no_grad():
        logits = model.policy.get_distribution(ctx.obs).distribution.logits.double()
    want = torch.logsumexp(
        torch.log_softmax(logits, -1).masked_fill(~task.core.accepted(ctx), -math.inf), -1
    )
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
