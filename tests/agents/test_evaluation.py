"""Evaluation: exact metrics on constructed policies, pass@k, SB3 adapter, logging helper."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import maxrl_envs
from agents import evaluation
from agents.evaluation import EvalPolicy, SB3Policy, evaluate, log_metrics, pass_at_k_table
from agents.policies import TaskPolicy, make_policy


class SignalPolicy:
    """Always predicts the clean signal f(x) (the Bayes predictor), plus a fixed offset."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def sample(self, contexts, eval_samples, generator):
        return self.point(contexts).unsqueeze(1).expand(-1, eval_samples)

    def point(self, contexts):
        return contexts.signal + self.offset


class CountPolicy:
    """Classification: context i gets the observed label in its first c_i = i mod (M+1) samples."""

    def __init__(self, num_classes: int) -> None:
        self.k = num_classes

    def successes(self, contexts, m):
        return contexts.ids % (m + 1)

    def sample(self, contexts, eval_samples, generator):
        c = self.successes(contexts, eval_samples)
        hit = torch.arange(eval_samples).unsqueeze(0) < c.unsqueeze(1)
        target = contexts.target.unsqueeze(1)
        return torch.where(hit, target, (target + 1) % self.k)

    def point(self, contexts):
        return torch.where(contexts.ids % 2 == 0, contexts.target, (contexts.target + 1) % self.k)


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    items = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(items[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 4, 7])
def test_pass_at_k_table_matches_enumeration(n: int) -> None:
    for k in range(1, n + 1):
        table = pass_at_k_table(n, k)
        for c in range(n + 1):
            assert table[c].item() == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_table_rejects_k_above_n() -> None:
    with pytest.raises(ValueError, match="pass_k=5"):
        pass_at_k_table(4, 5)


def test_bayes_predictor_has_zero_excess_mse_and_exact_log_likelihood() -> None:
    task = maxrl_envs.make_task("MaxRLRegression-v0", snr=4.0)
    policy = SignalPolicy()
    assert isinstance(policy, EvalPolicy)
    metrics = evaluate(task, policy, eval_samples=8, pass_k=4)
    assert metrics["eval/excess_mse"] == 0.0
    contexts = task.core.all_contexts("test")
    scores = task.core.score(contexts, contexts.signal.unsqueeze(1))
    # A deterministic policy's marginal likelihood is its point prediction's likelihood.
    expected = scores.log_likelihood.mean().item()
    assert metrics["eval/log_likelihood_mc"] == pytest.approx(expected, abs=1e-5)
    success = scores.is_success.float().mean().item()
    assert metrics["eval/pass@1"] == pytest.approx(success)
    assert metrics["eval/pass@4"] == pytest.approx(success)  # identical samples: no gain from k
    assert metrics["eval/success_rate"] == pytest.approx(success)
    assert metrics["eval/reward"] == pytest.approx(scores.reward.mean().item(), rel=1e-5)


def test_excess_mse_of_an_offset_predictor() -> None:
    task = maxrl_envs.make_task("MaxRLRegression-v0")
    metrics = evaluate(task, SignalPolicy(offset=0.5), eval_samples=2, pass_k=1)
    assert metrics["eval/excess_mse"] == pytest.approx(0.25, rel=1e-6)
    assert (
        metrics["eval/log_likelihood_mc"]
        < evaluate(task, SignalPolicy(), eval_samples=2, pass_k=1)["eval/log_likelihood_mc"]
    )


def test_classification_metrics_from_known_success_counts() -> None:
    task = maxrl_envs.make_task("MaxRLClassification-v0")
    m, k = 6, 3
    metrics = evaluate(task, CountPolicy(10), eval_samples=m, pass_k=k)
    ids = torch.arange(task.core.num_contexts("test"))
    counts = (ids % (m + 1)).tolist()
    expected_ll = [math.log(c / m) if c else evaluation_floor() for c in counts]
    assert "eval/excess_mse" not in metrics
    assert metrics["eval/log_likelihood_mc"] == pytest.approx(
        sum(expected_ll) / len(counts), abs=1e-9
    )
    assert metrics["eval/pass@1"] == pytest.approx(sum(c / m for c in counts) / len(counts))
    brute = sum(brute_force_pass_at_k(m, c, k) for c in counts) / len(counts)
    assert metrics[f"eval/pass@{k}"] == pytest.approx(brute, abs=1e-12)
    assert metrics["eval/success_rate"] == pytest.approx(float((ids % 2 == 0).float().mean()))
    assert metrics["eval/reward"] == pytest.approx(metrics["eval/pass@1"])


def evaluation_floor() -> float:
    # No sample succeeds: every per-sample log-likelihood is the floor, so the mean is too.
    return -100.0


def test_chunked_evaluation_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    task = maxrl_envs.make_task("MaxRLClassification-v0")
    whole = evaluate(task, CountPolicy(10), eval_samples=5, pass_k=2)
    monkeypatch.setattr(evaluation, "MAX_ROWS", 37)
    chunked = evaluate(task, CountPolicy(10), eval_samples=5, pass_k=2)
    assert chunked == pytest.approx(whole, abs=1e-12)


def test_evaluation_is_reproducible_and_seeded() -> None:
    task = maxrl_envs.make_task("MaxRLRegression-v0")
    torch.manual_seed(0)
    agent = TaskPolicy(make_policy(task, (16,)), task)
    a = evaluate(task, agent, eval_samples=16, pass_k=4, seed=1, max_contexts=100)
    b = evaluate(task, agent, eval_samples=16, pass_k=4, seed=1, max_contexts=100)
    c = evaluate(task, agent, eval_samples=16, pass_k=4, seed=2, max_contexts=100)
    assert a == b and a != c
    assert set(a) == {
        "eval/log_likelihood",
        "eval/excess_mse",
        "eval/pass@1",
        "eval/pass@4",
        "eval/success_rate",
        "eval/reward",
    }
    assert a["eval/pass@4"] >= a["eval/pass@1"]


def test_max_contexts_uses_the_first_contexts() -> None:
    task = maxrl_envs.make_task("MaxRLClassification-v0")
    few = evaluate(task, CountPolicy(10), eval_samples=4, pass_k=1, max_contexts=5)
    # ids 0..4 -> success counts 0, 1, 2, 3, 4 of 4 samples.
    assert few["eval/pass@1"] == pytest.approx((0 + 1 + 2 + 3 + 4) / 4 / 5)


def test_evaluate_rejects_bad_arguments() -> None:
    task = maxrl_envs.make_task("MaxRLRegression-v0")
    with pytest.raises(ValueError, match="pass_k=9"):
        evaluate(task, SignalPolicy(), eval_samples=8, pass_k=9)
    with pytest.raises(ValueError, match="eval_samples=0"):
        evaluate(task, SignalPolicy(), eval_samples=0, pass_k=1)
    with pytest.raises(ValueError, match="max_contexts=0"):
        evaluate(task, SignalPolicy(), eval_samples=2, pass_k=1, max_contexts=0)


class FakeWriter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, int]] = []

    def add_scalar(self, tag, value, step):
        self.calls.append((tag, value, step))


def test_log_metrics_writes_only_tags() -> None:
    writer = FakeWriter()
    log_metrics(writer, {"eval/reward": 0.5, "rollouts": 10.0, "wall_time": 1.0}, 123)
    assert writer.calls == [("eval/reward", 0.5, 123)]


# --- Stable-Baselines3 adapter -------------------------------------------------------------


def _ppo(env_id: str, **kwargs):
    gymnasium = pytest.importorskip("gymnasium")
    sb3 = pytest.importorskip("stable_baselines3")
    env = gymnasium.make(env_id, **kwargs)
    return sb3.PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0, device="cpu")


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("MaxRLRegression-v0", {}),
        ("MaxRLClassification-v0", {}),
        ("MaxRLTokens-v0", {"num_digits": 2}),
    ],
)
def test_sb3_policy_shapes_seeding_and_metrics(env_id: str, kwargs: dict) -> None:
    model = _ppo(env_id, **kwargs)
    task = maxrl_envs.make_task(env_id, **kwargs)
    policy = SB3Policy(model, task)
    contexts = task.core.contexts(list(range(10)), "test")
    before = torch.get_rng_state()
    a = policy.sample(contexts, 6, task.core.make_generator(0))
    assert torch.equal(torch.get_rng_state(), before)  # global RNG untouched
    b = policy.sample(contexts, 6, task.core.make_generator(0))
    c = policy.sample(contexts, 6, task.core.make_generator(1))
    assert a.shape == (10, 6) and torch.equal(a, b) and not torch.equal(a, c)
    point = policy.point(contexts)
    assert point.shape == (10,) and torch.equal(point, policy.point(contexts))
    if task.kind.name == "classification":
        assert a.dtype == torch.long and int(a.min()) >= 0 and int(a.max()) < 10
    else:
        assert a.abs().max() <= task.core.prediction_range + 1e-6
    if task.kind.name == "tokens":
        # Decoded predictions lie on the token grid.
        assert torch.equal(task.codec.decode(task.codec.encode(a)), a)
    metrics = evaluate(task, policy, eval_samples=6, pass_k=2, max_contexts=20)
    assert ("eval/excess_mse" in metrics) == (task.kind.name != "classification")
    assert 0.0 <= metrics["eval/pass@1"] <= metrics["eval/pass@2"] <= 1.0


def test_sb3_policy_point_matches_deterministic_predict() -> None:
    model = _ppo("MaxRLRegression-v0")
    task = maxrl_envs.make_task("MaxRLRegression-v0")
    contexts = task.core.contexts(list(range(4)), "test")
    action, _ = model.policy.predict(contexts.obs.numpy(), deterministic=True)
    expected = task.core.action_to_prediction(torch.as_tensor(action).reshape(-1))
    torch.testing.assert_close(SB3Policy(model, task).point(contexts), expected)


def test_sb3_token_policy_sees_the_env_observations() -> None:
    gymnasium = pytest.importorskip("gymnasium")
    model = _ppo("MaxRLTokens-v0", num_digits=2)
    task = maxrl_envs.make_task("MaxRLTokens-v0", num_digits=2)
    seen: list[tuple[int, ...]] = []
    original = model.policy.predict

    def spy(obs, *args, **kwargs):
        seen.append(obs.shape)
        return original(obs, *args, **kwargs)

    model.policy.predict = spy
    SB3Policy(model, task).point(task.core.contexts([0, 1, 2], "test"))
    env = gymnasium.make("MaxRLTokens-v0", num_digits=2)
    assert seen == [(3, env.observation_space.shape[0])] * 2
