"""The training step's fast paths against the plain eager path, in the same test.

- Default (eager) path: the speed-ups it carries are bitwise neutral on CPU. Each test runs
  the same training twice, once as shipped and once with the speed-ups replaced by the plain
  code they stand for (``torch.matmul`` for the quadrature's node sum, the range-checked
  token decode), and compares every parameter bitwise.
- ``TrainConfig.compile``: compiled kernels and fused Adam agree with eager to rounding.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest
import torch

from agents import estimators
from agents.compile import unavailable_reason
from agents.trainer import RUNTIME_FIELDS, TrainConfig, Trainer
from maxrl_envs.kinds import TaskKind
from maxrl_envs.registration import make_task

pytestmark = pytest.mark.usefixtures("single_thread")


def _plain_node_sum(w: torch.Tensor, loo: torch.Tensor) -> torch.Tensor:
    return torch.matmul(w, loo)


def _checked_prediction(self: TaskKind, task, rollouts: torch.Tensor) -> torch.Tensor:
    return self.prediction(task, rollouts)


def _train(config: TrainConfig, steps: int) -> list[torch.Tensor]:
    trainer = Trainer(config)
    for _ in range(steps):
        trainer.train_step(with_stats=False)
    return [p.detach().clone() for p in trainer.policy.parameters()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("batch", "nodes", "rollouts"),
    [(1, 1, 1), (5, 3, 16), (1024, 4, 64), (300, 1, 256), (7, 2, 199), (64, 24, 16)],
)
def test_weighted_node_sum_is_matmul_bitwise(
    dtype: torch.dtype, batch: int, nodes: int, rollouts: int
) -> None:
    g = torch.Generator().manual_seed(batch * 1000 + nodes * 10 + rollouts)
    w = torch.rand(nodes, generator=g, dtype=dtype)
    loo = torch.rand(batch, nodes, rollouts, generator=g, dtype=dtype) ** 7
    loo[:, :, ::5] = 0.0
    assert torch.equal(estimators._weighted_node_sum(w, loo), torch.matmul(w, loo))


@pytest.mark.parametrize("log_space", [False, True])
@pytest.mark.parametrize(("batch", "rollouts"), [(64, 16), (1024, 32), (3, 5)])
def test_maxrl_weights_match_plain_node_sum_bitwise(
    monkeypatch: pytest.MonkeyPatch, log_space: bool, batch: int, rollouts: int
) -> None:
    g = torch.Generator().manual_seed(batch + rollouts)
    lik = torch.rand(batch, rollouts, generator=g) ** 3
    lik[torch.rand(batch, rollouts, generator=g) < 0.1] = 1.0
    lik[torch.rand(batch, rollouts, generator=g) < 0.1] = 0.0
    x = lik.log() if log_space else lik
    with estimators.full_order_kernel("exact"):  # float32 takes the fast kernel by default
        fast = estimators.maxrl_weights(x, log_space=log_space)
        monkeypatch.setattr(estimators, "_weighted_node_sum", _plain_node_sum)
        plain = estimators.maxrl_weights(x, log_space=log_space)
    assert torch.equal(fast, plain)


@pytest.mark.parametrize(
    ("env_id", "estimator", "num_groups", "group_size"),
    [
        ("MaxRLRegression-v0", "maxrl", 64, 16),
        ("MaxRLRegression-v0", "maxrl", 256, 32),
        ("MaxRLClassificationManyClass-v0", "maxrl", 64, 16),
        ("MaxRLTokens-v0", "maxrl", 64, 16),
    ],
)
def test_default_step_is_the_plain_eager_step_bitwise(
    monkeypatch: pytest.MonkeyPatch, env_id: str, estimator: str, num_groups: int, group_size: int
) -> None:
    config = TrainConfig(
        env_id=env_id,
        estimator=estimator,
        num_groups=num_groups,
        group_size=group_size,
        budget=10**9,
        log_dir=None,
        device="cpu",
        seed=3,
    )
    fast = _train(config, steps=3)
    with monkeypatch.context() as patch:
        patch.setattr(estimators, "_weighted_node_sum", _plain_node_sum)
        patch.setattr(TaskKind, "trusted_prediction", _checked_prediction)
        plain = _train(config, steps=3)
    for a, b in zip(fast, plain, strict=True):
        assert torch.equal(a, b)


def test_trusted_token_decode_skips_only_the_range_check() -> None:
    task = make_task("MaxRLTokens-v0")
    tokens = torch.randint(0, task.codec.base, (4, 3, task.codec.num_digits))
    assert torch.equal(task.prediction(tokens), task.prediction(tokens, validate=False))
    bad = tokens.clone()
    bad[0, 0, 0] = task.codec.base
    with pytest.raises(ValueError, match="token values"):
        task.prediction(bad)
    task.prediction(bad, validate=False)  # trusted: no check, no host sync


def test_compile_is_a_runtime_field() -> None:
    assert "compile" in RUNTIME_FIELDS


def test_compile_without_a_compiler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    assert "C++ compiler" in str(unavailable_reason("cpu"))
    with pytest.raises(ValueError, match="compile=True cannot run on cpu.*C\\+\\+ compiler"):
        Trainer(TrainConfig(log_dir=None, device="cpu", compile=True))


# Compiling the kernels takes 5-20 s (inductor's on-disk cache makes reruns faster).
needs_compile = pytest.mark.skipif(
    unavailable_reason("cpu") is not None or os.environ.get("MAXRL_SKIP_COMPILE") == "1",
    reason=f"torch.compile cannot build CPU kernels here: {unavailable_reason('cpu')}",
)


@pytest.mark.slow
@needs_compile
def test_compiled_maxrl_weights_match_eager() -> None:
    # float64, where both kernels are accurate to ~1e-14; the float32 kernel is compared
    # through training in test_compiled_step_matches_eager_step.
    dtype = torch.float64
    g = torch.Generator().manual_seed(0)
    for batch, rollouts, order in [(33, 32, None), (8, 100, None), (16, 64, 50), (4, 16, None)]:
        lik = (torch.rand(batch, rollouts, generator=g, dtype=torch.float64) ** 3).to(dtype)
        lik[0] = 0.0
        lik[1] = 1.0
        lik[2, ::3] = 1.0
        lik[3, ::2] = 0.0
        for log_space in (False, True):
            x = lik.log() if log_space else lik
            eager = estimators.maxrl_weights(x, order, log_space=log_space)
            with estimators.compiled_kernels():
                fused = estimators.maxrl_weights(x, order, log_space=log_space)
            assert fused.dtype == dtype
            torch.testing.assert_close(fused, eager, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@needs_compile
def test_compiled_step_matches_eager_step() -> None:
    config = TrainConfig(
        num_groups=16, group_size=32, budget=10**9, log_dir=None, device="cpu", seed=1
    )
    eager = Trainer(config)
    fused = Trainer(dataclasses.replace(config, compile=True))
    assert fused.optimizer.param_groups[0]["fused"] is True
    for _ in range(3):
        stats_e = eager.train_step()
        stats_f = fused.train_step()
        torch.testing.assert_close(stats_f["train/loss"], stats_e["train/loss"], rtol=1e-5, atol=0)
    for a, b in zip(fused.policy.parameters(), eager.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize(
    "env_id", ["MaxRLRegression-v0", "MaxRLClassificationManyClass-v0", "MaxRLTokens-v0"]
)
@pytest.mark.parametrize("estimator", ["maxrl", "grpo"])
def test_cuda_step_has_no_host_sync(env_id: str, estimator: str) -> None:
    trainer = Trainer(
        TrainConfig(
            env_id=env_id,
            estimator=estimator,
            num_groups=256,
            group_size=16,
            budget=10**9,
            log_dir=None,
            device="cuda",
        )
    )
    trainer.train_step()  # the first step checks its inputs: host syncs allowed there
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.train_step(with_stats=False)
        stats = trainer.train_step(with_stats=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(value.is_cuda for value in stats.values())


@pytest.mark.gpu
@needs_cuda
@pytest.mark.skipif(
    unavailable_reason("cuda") is not None,
    reason=f"torch.compile cannot build CUDA kernels: {unavailable_reason('cuda')}",
)
def test_cuda_compiled_step_matches_eager_step() -> None:
    config = TrainConfig(
        num_groups=256, group_size=64, budget=10**9, log_dir=None, device="cuda", seed=1
    )
    eager = Trainer(config)
    fused = Trainer(dataclasses.replace(config, compile=True))
    for _ in range(3):
        eager.train_step(with_stats=False)
        fused.train_step(with_stats=False)
    for a, b in zip(fused.policy.parameters(), eager.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
