"""The fast order-N MaxRL kernel: its documented error bound, its dispatch, its edge cases.

The reference is the exact order-N kernel (Gauss-Legendre with ceil(N/2) nodes) in float64
on the same (widened) inputs. The bound is proved in docs/estimators.md; the hard input
families are ``benchmarks.bench_estimators.hard_families``.
"""

from __future__ import annotations

import pytest
import torch

from agents import estimators
from agents.trainer import TrainConfig, Trainer
from benchmarks.bench_estimators import exact_omega, hard_families, relative_errors

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("group_size", [16, 25, 64, 1000, 4096])
def test_fast_kernel_within_documented_bound_on_hard_families(group_size: int) -> None:
    names, lik = hard_families(group_size, torch.Generator().manual_seed(group_size))
    omega_err, weight_err = relative_errors(lik)
    rows = zip(names, omega_err.tolist(), weight_err.tolist(), strict=True)
    worst = {name: (o, w) for name, o, w in rows}
    assert max(o for o, _ in worst.values()) <= estimators.FAST_MATH_BOUND, worst
    assert max(w for _, w in worst.values()) <= estimators.FAST_FLOAT32_BOUND, worst
    if group_size <= 2 * estimators.FAST_NODES:  # the exact rule: float64 rounding only
        assert max(o for o, _ in worst.values()) <= 1e-14, worst


def test_fast_kernel_bound_where_lambda_crosses_the_cutoff() -> None:
    # lambda from c - 0.5 to c + 0.5 in small steps: s_max switches from 1 to c / lambda.
    c, n = estimators.FAST_CUTOFF, 300
    lam = torch.linspace(c - 0.5, c + 0.5, 21, dtype=torch.float64)[:, None]
    lik = (lam / (n - 1)).expand(-1, n).clone()
    lik[:, 0] = 1.0
    omega_err, weight_err = relative_errors(lik.float())
    assert float(omega_err.max()) <= estimators.FAST_MATH_BOUND
    assert float(weight_err.max()) <= estimators.FAST_FLOAT32_BOUND


def test_fast_kernel_closed_forms() -> None:
    # Equal likelihoods: omega = sum_{k<N} a^k; binary: omega_j l_j = N l_j / K.
    n = 1024
    for value in (0.3, 0.01, 1.0):
        lik = torch.full((1, n), value, dtype=torch.float64)
        a = 1.0 - value
        want = n if a == 1.0 else (1.0 - a**n) / value
        got = estimators._omega_fast(lik, False)
        torch.testing.assert_close(got, torch.full_like(got, want), rtol=5e-9, atol=0)
    binary = torch.zeros(3, n)
    binary[0, :1] = 1.0
    binary[1, :21] = 1.0
    binary[2, :600] = 1.0
    weights = estimators.maxrl_weights(binary, baseline=None)  # float32: the fast kernel
    want = n * binary / binary.sum(-1, keepdim=True)
    torch.testing.assert_close(weights, want, rtol=estimators.FAST_FLOAT32_BOUND, atol=0)


def test_fast_kernel_log_space_matches_linear_and_survives_underflow() -> None:
    g = torch.Generator().manual_seed(5)
    lik = torch.rand(6, 300, generator=g, dtype=torch.float64) ** 4
    lik[0, ::7] = 0.0
    lik[1] = 1.0
    log_l = lik.float().log()  # a float32 log l: exp(log l) is not the float32 l
    logged = estimators.maxrl_weights(log_l, baseline=None, log_space=True).double()
    widened = log_l.double().exp()
    ref = exact_omega(widened) * widened
    torch.testing.assert_close(logged, ref, rtol=estimators.FAST_FLOAT32_BOUND, atol=0)
    # log l where exp underflows float32: omega * l is still formed (in float64).
    log_l = torch.full((2, 64), -20.0)  # N = 64: the truncated G-node rule
    log_l[:, 0] = -90.0  # exp is subnormal in float32, omega * l is normal
    log_l[1, 1:] = -1e4  # exactly 0 in float64 too
    got = estimators.maxrl_weights(log_l, baseline=None, log_space=True).double()
    ref = exact_omega(log_l.double().exp()) * log_l.double().exp()
    assert float(got[0, 0]) > 0.0
    torch.testing.assert_close(got, ref, rtol=estimators.FAST_FLOAT32_BOUND, atol=1e-300)


def test_fast_kernel_unbiased_by_enumeration() -> None:
    # Every 3-tuple of a 3-outcome policy: E[omega_j] = w_N(p) with the fast kernel forced
    # (N <= 2G: the exact rule, so the mean is exact up to rounding).
    values = torch.tensor([0.0, 0.4, 1.0], dtype=torch.float64)
    probs = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    n = 3
    idx = torch.cartesian_prod(*[torch.arange(3)] * n)
    lik, prob = values[idx], probs[idx].prod(-1)
    with estimators.full_order_kernel("fast"):
        omega = estimators.maxrl_omega(lik)
    assert omega.dtype == torch.float64
    p = float((values * probs).sum())
    want = sum((1 - p) ** k for k in range(n))
    mean = float((prob[:, None] * omega).sum(0)[0])
    assert abs(mean - want) <= 1e-13


def test_dispatch_by_dtype_and_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    fast, exact = estimators._omega_fast, estimators._omega_full_order

    def spy_fast(*args, **kwargs):
        calls.append("fast")
        return fast(*args, **kwargs)

    def spy_exact(*args, **kwargs):
        calls.append("exact")
        return exact(*args, **kwargs)

    monkeypatch.setattr(estimators, "_omega_fast", spy_fast)
    monkeypatch.setattr(estimators, "_omega_full_order", spy_exact)
    lik = torch.rand(4, 40, generator=torch.Generator().manual_seed(0))

    def used(fn) -> list[str]:
        calls.clear()
        fn()
        return list(calls)

    assert used(lambda: estimators.maxrl_weights(lik)) == ["fast"]
    assert used(lambda: estimators.maxrl_omega(lik.half())) == ["fast"]
    assert used(lambda: estimators.maxrl_weights(lik.log(), log_space=True)) == ["fast"]
    assert used(lambda: estimators.maxrl_weights(lik.double())) == ["exact"]
    assert "fast" not in used(lambda: estimators.maxrl_weights(lik, order=39))  # T < N: exact
    with estimators.full_order_kernel("exact"):
        assert used(lambda: estimators.maxrl_weights(lik)) == ["exact"]
        assert estimators.full_order_kernel_for(torch.float32) == "exact"
    with estimators.full_order_kernel("fast"):
        assert used(lambda: estimators.maxrl_omega(lik.double())) == ["fast"]
    assert estimators.full_order_kernel_for(torch.float32) == "fast"
    assert estimators.full_order_kernel_for(torch.float64) == "exact"
    refused = pytest.raises(ValueError, match=r"kind must be one of auto, fast, exact; got 'quick'")
    with refused, estimators.full_order_kernel("quick"):
        pass


def test_trainer_default_float32_step_uses_the_fast_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    fast, exact = estimators._omega_fast, estimators._omega_full_order
    monkeypatch.setattr(
        estimators, "_omega_fast", lambda *a, **k: calls.append("fast") or fast(*a, **k)
    )
    monkeypatch.setattr(
        estimators, "_omega_full_order", lambda *a, **k: calls.append("exact") or exact(*a, **k)
    )
    trainer = Trainer(TrainConfig(num_groups=8, group_size=32, budget=10**6, log_dir=None))
    assert trainer.config.estimator == "maxrl" and trainer.config.order is None
    assert next(trainer.policy.parameters()).dtype == torch.float32
    trainer.train_step(with_stats=False)
    assert calls == ["fast"]


def test_fast_kernel_shapes_dtypes_and_gradients() -> None:
    empty = estimators.maxrl_weights(torch.zeros(0, 40))
    assert empty.shape == (0, 40) and empty.dtype == torch.float32
    assert estimators.maxrl_weights(torch.rand(3, 1), baseline=None).shape == (3, 1)
    two = torch.tensor([[0.25, 1.0]])
    # N = 2: omega_j = 1 + (1 - l_other) / 1
    torch.testing.assert_close(
        estimators.maxrl_omega(two), torch.tensor([[1.0, 1.75]]), rtol=1e-7, atol=0
    )
    head = torch.rand(5, 100, requires_grad=True)
    weights = estimators.maxrl_weights(head)
    assert not weights.requires_grad and weights.dtype == torch.float32
    half = estimators.maxrl_weights(head.detach().half())
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), weights, rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_kernel_cuda_matches_cpu() -> None:
    _, lik = hard_families(1000, torch.Generator().manual_seed(2))
    cpu = estimators.maxrl_weights(lik, baseline=None)
    cuda = estimators.maxrl_weights(lik.cuda(), baseline=None).cpu()
    torch.testing.assert_close(cuda, cpu, rtol=2 * estimators.FAST_FLOAT32_BOUND, atol=0)
