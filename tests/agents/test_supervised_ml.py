"""supervised-ml: exact maximum likelihood of the scored quantity (loss, gradient, closed form)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import maxrl_envs
from agents.exact import exact_mean_log_likelihood
from agents.objectives import StepInputs, get_objective, objective_names
from agents.policies import TaskPolicy, make_policy
from agents.trainer import TrainConfig, train
from maxrl_envs.references import reference_levels

SMALL = {"num_contexts": 64, "num_test_contexts": 16, "num_validation_contexts": 16}
CASES = {
    "gaussian": ("MaxRLRegression-v0", {"snr": 1.0}, {}),
    "laplace": ("MaxRLRegression-v0", {"head": "laplace", "snr": 1.0}, {}),
    "verifier": ("MaxRLVerifier-v0", {"snr": 1.0}, {}),
    "binned": ("MaxRLVerifier-v0", {"snr": 1.0}, {"kind": "binned", "bins": 9}),
    "classes": ("MaxRLClassification-v0", {"task": "teacher-mlp", "num_classes": 7}, {}),
    "hard": ("MaxRLHardContexts-v0", {"num_classes": 40, "levels": 5}, {}),
    "tokens": ("MaxRLTokens-v0", {"num_digits": 2, "base": 4, "snr": 1.0}, {}),
}


def build(case: str, seed: int = 0):
    env_id, kwargs, policy_kwargs = CASES[case]
    task = maxrl_envs.make_task(env_id, **SMALL, **kwargs)
    torch.manual_seed(seed)
    policy = make_policy(task, (8,), **policy_kwargs)
    return task, policy


def ml_loss(task, policy, contexts) -> torch.Tensor:
    step = StepInputs(TaskPolicy(policy, task), contexts, 1, torch.Generator())
    return get_objective("supervised-ml").loss(step)[0]


@pytest.mark.parametrize("case", list(CASES))
def test_loss_is_minus_the_exact_metric_and_its_gradient_matches_finite_differences(case):
    task, policy = build(case)
    contexts = task.core.all_contexts("train")
    loss = ml_loss(task, policy, contexts)
    exact = exact_mean_log_likelihood(TaskPolicy(policy, task), task.core, contexts)
    assert math.isfinite(exact) and float(loss.detach()) == pytest.approx(-exact, rel=1e-6)
    if case == "tokens":  # float32 step features: compare with an independent autograd path
        check_token_gradient(task, policy, contexts, loss)
        return
    # Gradient: autograd against central differences, in float64 end to end.
    policy = policy.double()
    contexts64 = dataclasses.replace(contexts, obs=contexts.obs.double())
    loss64 = ml_loss(task, policy, contexts64).double()
    params = [p for p in policy.parameters() if p.requires_grad]
    grads = torch.autograd.grad(ml_loss(task, policy, contexts64), params)
    assert float(loss64.detach()) == pytest.approx(-exact, rel=1e-5)
    gen = torch.Generator().manual_seed(1)
    for param, grad in zip(params, grads, strict=True):
        assert torch.isfinite(grad).all()
        for index in torch.randint(param.numel(), (2,), generator=gen).tolist():
            flat = param.data.view(-1)
            old, h = float(flat[index]), 1e-6
            with torch.no_grad():
                flat[index] = old + h
                up = float(ml_loss(task, policy, contexts64).detach())
                flat[index] = old - h
                down = float(ml_loss(task, policy, contexts64).detach())
                flat[index] = old
            numeric = (up - down) / (2 * h)
            assert float(grad.view(-1)[index]) == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def check_token_gradient(task, policy, contexts, loss) -> None:
    """Teacher-forced log m(sequence) of every sequence, summed against the head, by autograd."""
    from agents.exact import all_token_sequences
    from maxrl_envs.likelihoods import log_likelihood_head

    codec, core = task.codec, task.core
    sequences = all_token_sequences(codec.num_digits, codec.base)
    b, count = contexts.obs.shape[0], sequences.shape[0]
    log_m = policy.log_prob(contexts.obs, sequences.unsqueeze(0).expand(b, count, -1))
    values = codec.decode(sequences).double()
    log_l = log_likelihood_head(core.head, core.head_scale, contexts.target[:, None], values)
    independent = -torch.logsumexp(log_m.double() + log_l, dim=1).mean()
    params = list(policy.parameters())
    want = torch.autograd.grad(independent, params)
    got = torch.autograd.grad(loss, params)
    for a, b_ in zip(got, want, strict=True):
        torch.testing.assert_close(a, b_.to(a.dtype), rtol=1e-4, atol=1e-6)


def test_gaussian_head_is_the_widened_normal_away_from_the_clip():
    """Gaussian policy N(R mu, R^2 s^2), Gaussian head h: E_z l = N(y; R mu, R^2 s^2 + h^2)."""
    task = maxrl_envs.make_task("MaxRLRegression-v0", **SMALL, snr=1.0, prediction_range=1e3)
    torch.manual_seed(2)
    policy = make_policy(task, (8,), init_std=1e-3)  # std 1 in target units, bounds at 1000
    contexts = task.core.all_contexts("train")
    with torch.no_grad():
        mean, log_std = policy.distribution_params(contexts.obs)
    r, h = 1e3, task.core.head_scale
    var = (r * log_std.double().exp()) ** 2 + h**2
    y, m = contexts.target.double(), r * mean.double()
    closed = -0.5 * (y - m) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)
    loss = float(ml_loss(task, policy, contexts).detach())
    assert loss == pytest.approx(-float(closed.mean()), rel=1e-6)
    # The density-of-y reference optimizes something else: its loss differs.
    step = StepInputs(TaskPolicy(policy, task), contexts, 1, torch.Generator())
    density_of_y = float(get_objective("supervised").loss(step)[0].detach())
    assert abs(density_of_y + float(closed.mean())) > 1.0


def test_trains_and_is_listed():
    assert "supervised-ml" in objective_names() and "supervised" in objective_names()
    assert get_objective("supervised-ml").rollouts_per_context(16) == 1
    env_kwargs = {**SMALL, "num_classes": 40, "levels": 5}
    config = TrainConfig(
        env_id="MaxRLHardContexts-v0",
        env_kwargs=env_kwargs,
        estimator="supervised-ml",
        num_groups=32,
        budget=32 * 100,
        lr=3e-2,
        hidden=(16,),
        eval_every=0,
        eval_samples=8,
        eval_split="train",
        pass_k=4,
        log_dir=None,
        device="cpu",
    )
    task = maxrl_envs.make_task("MaxRLHardContexts-v0", **env_kwargs)
    before = reference_levels(task.core, "train", 4)["random"]
    after = train(config)
    assert after["eval/log_likelihood"] > before["eval/log_likelihood"] + 0.3
    assert "eval/bin0/log_likelihood" in after and "eval/bin4/pass@4" in after


def test_token_tree_too_large_is_refused():
    task = maxrl_envs.make_task("MaxRLTokens-v0", **SMALL, num_digits=9, base=4)
    policy = make_policy(task, (8,))
    with pytest.raises(ValueError, match="supervised-ml.*allowed: 'supervised'"):
        ml_loss(task, policy, task.core.all_contexts("train"))


@pytest.mark.parametrize("head", ["gaussian", "laplace", "verifier"])
def test_gradient_stays_finite_and_exact_in_the_tails(head):
    """Tiny policy std, means far from the targets and targets beyond the prediction range."""
    from agents.exact import censored_normal_log_likelihood_grad
    from maxrl_envs.likelihoods import log_expected_likelihood_normal

    y = torch.tensor([-4.3, -3.9, -1.0, 0.0, 2.5, 3.95, 4.6], dtype=torch.float64)
    for std_value in (1e-4, 0.05, 3.0):
        mean = torch.tensor([3.0, -4.5, 1.0, -0.2, -3.0, 4.2, 0.5], dtype=torch.float64)
        mean.requires_grad_(True)
        std = torch.full_like(mean, std_value, requires_grad=True)
        value = censored_normal_log_likelihood_grad(head, 0.5, y, mean, std, -4.0, 4.0)
        exact = log_expected_likelihood_normal(head, 0.5, y, mean.detach(), std.detach(), -4, 4)
        assert torch.equal(value.detach(), exact)  # the value is the metric, bit for bit
        kept = torch.isfinite(value)
        grads = torch.autograd.grad(value[kept].sum(), (mean, std))
        assert all(torch.isfinite(g).all() for g in grads)
        for i in torch.nonzero(kept & (exact > -200))[:, 0].tolist():
            h = 1e-6 * std_value
            for g, bump in ((grads[0], (h, 0.0)), (grads[1], (0.0, h))):
                up = log_expected_likelihood_normal(
                    head, 0.5, y[i], mean[i].detach() + bump[0], std[i].detach() + bump[1], -4, 4
                )
                down = log_expected_likelihood_normal(
                    head, 0.5, y[i], mean[i].detach() - bump[0], std[i].detach() - bump[1], -4, 4
                )
                numeric = float(up - down) / (2 * h)
                assert float(g[i]) == pytest.approx(numeric, rel=1e-4, abs=1e-6 / std_value)


def test_contexts_no_bin_can_score_have_no_gradient():
    """A binned policy whose bins all miss a verifier window: p = 0 there, kept out."""
    task = maxrl_envs.make_task("MaxRLVerifier-v0", **SMALL, snr=100.0)
    policy = make_policy(task, (8,), kind="binned", bins=3)  # predictions -4, 0, 4
    contexts = task.core.all_contexts("train")
    values = exact_log_likelihood_per_context(task, policy, contexts)
    assert bool((~torch.isfinite(values)).any()) and bool(torch.isfinite(values).any())
    loss = ml_loss(task, policy, contexts)
    grads = torch.autograd.grad(loss, list(policy.parameters()))
    assert math.isfinite(float(loss.detach())) and all(torch.isfinite(g).all() for g in grads)
    assert float(loss.detach()) == pytest.approx(-float(values[torch.isfinite(values)].mean()))


def exact_log_likelihood_per_context(task, policy, contexts):
    from agents.exact import exact_log_likelihood

    return exact_log_likelihood(TaskPolicy(policy, task), task.core, contexts)
