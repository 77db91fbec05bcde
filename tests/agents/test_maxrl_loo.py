"""maxrl-loo: generalized MaxRL with a leave-one-out baseline; exact unbiasedness by enumeration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from agents.estimators import ESTIMATORS, group_weights, maxrl_loo_weights, maxrl_omega
from agents.objectives import get_objective

F64 = torch.float64
THETA = torch.tensor([0.3, -0.5, 0.1, 0.6], dtype=F64)
GRADED = torch.tensor([0.0, 0.3, 0.9, 1.0], dtype=F64)  # per-outcome likelihood l(z)
BINARY = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=F64)


def loop_omega(row: list[float], order: int) -> list[float]:
    """omega_j = sum_{k<T} e_k(1 - l_{-j}) / C(N-1, k) by the textbook e_k recursion."""
    out = []
    for j in range(len(row)):
        a = [1.0 - row[i] for i in range(len(row)) if i != j]
        e = [1.0] + [0.0] * len(a)
        for v in a:
            for k in range(len(a), 0, -1):
                e[k] += v * e[k - 1]
        out.append(sum(e[k] / math.comb(len(a), k) for k in range(order)))
    return out


def loop_maxrl_loo(row: list[float], order: int) -> list[float]:
    n = len(row)
    omega = loop_omega(row, order)
    return [omega[j] * (row[j] - (sum(row) - row[j]) / (n - 1)) for j in range(n)]


def expected_gradient(weights_fn, per_outcome: torch.Tensor, n: int) -> torch.Tensor:
    """E[(1/N) sum_j A_j grad log m(z_j)] over all |Z|^N outcome tuples, exactly."""
    theta = THETA.clone().requires_grad_(True)
    log_m = torch.log_softmax(theta, 0)
    tuples = torch.tensor(list(itertools.product(range(len(THETA)), repeat=n)))
    prob = log_m.detach()[tuples].sum(1).exp()
    weights = weights_fn(per_outcome[tuples])
    surrogate = (prob[:, None] * weights.detach() * log_m[tuples]).sum() / n
    return torch.autograd.grad(surrogate, theta)[0]


def target_gradient(per_outcome: torch.Tensor, order: int) -> torch.Tensor:
    """grad J_T, J_T(p) = -sum_{k<=T} (1 - p)^k / k, p = sum_z m(z) l(z), by autograd."""
    theta = THETA.clone().requires_grad_(True)
    p = (torch.softmax(theta, 0) * per_outcome).sum()
    objective = -sum((1 - p) ** k / k for k in range(1, order + 1))
    return torch.autograd.grad(objective, theta)[0]


@pytest.mark.parametrize("outcomes", ["graded", "binary"])
@pytest.mark.parametrize(("n", "order"), [(n, t) for n in range(2, 6) for t in range(1, n + 1)])
def test_unbiased_for_the_truncated_objective(n, order, outcomes):
    per_outcome = GRADED if outcomes == "graded" else BINARY
    got = expected_gradient(lambda lik: maxrl_loo_weights(lik, order), per_outcome, n)
    want = target_gradient(per_outcome, order)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-13)
    # Log-space input gives the same weights (and so the same mean).
    lik = per_outcome[torch.tensor(list(itertools.product(range(4), repeat=n)))]
    assert torch.allclose(
        maxrl_loo_weights(lik.log(), order, log_space=True), maxrl_loo_weights(lik, order)
    )


def test_a_baseline_from_the_others_weights_would_be_biased():
    """b_j = mean_{k != j} omega_k l_k reads l_j through omega_k: its mean is not grad J_T."""

    def naive(lik: torch.Tensor) -> torch.Tensor:
        scaled = maxrl_omega(lik) * lik
        others = (scaled.sum(1, keepdim=True) - scaled) / (lik.shape[1] - 1)
        return scaled - others

    got = expected_gradient(naive, GRADED, 3)
    assert (got - target_gradient(GRADED, 3)).abs().max() > 1e-3


def test_matches_the_loop_reference():
    gen = torch.Generator().manual_seed(5)
    for n, order in [(2, 2), (3, 1), (5, 3), (8, 8), (9, 7), (16, 5), (17, 17)]:
        rows = torch.rand(6, n, generator=gen, dtype=F64)
        rows[0, 0], rows[1] = 0.0, 1.0  # an exact zero; a group of all ones
        want = torch.tensor([loop_maxrl_loo(row, order) for row in rows.tolist()], dtype=F64)
        assert torch.allclose(maxrl_loo_weights(rows, order), want, rtol=1e-12, atol=1e-14)
        got32 = maxrl_loo_weights(rows.float(), order)
        assert got32.dtype == torch.float32
        assert torch.allclose(got32.double(), want, rtol=1e-5, atol=1e-6)


def test_binary_closed_form_and_equal_groups():
    n = 6
    for k in range(n + 1):
        row = torch.tensor([[1.0] * k + [0.0] * (n - k)], dtype=F64)
        got = maxrl_loo_weights(row)[0]
        success = n * (n - k) / (k * (n - 1)) if k else 0.0
        failure = -n * k / ((k + 1) * (n - 1))
        want = [success] * k + [failure if k < n else 0.0] * (n - k)
        assert torch.allclose(got, torch.tensor(want, dtype=F64), rtol=1e-14, atol=1e-15)
    # Equal likelihoods in a group give no signal at all (all fail, all pass, all equal).
    equal = torch.tensor([[0.0] * 4, [1.0] * 4, [0.4] * 4], dtype=F64)
    assert torch.equal(maxrl_loo_weights(equal), torch.zeros_like(equal))


def test_registry_and_errors():
    entry = ESTIMATORS["maxrl-loo"]
    assert entry.input == "likelihood" and entry.params == ("order",) and entry.role == "maxrl"
    assert entry.min_group_size == 2
    lik = torch.tensor([[0.2, 0.5, 0.9]])
    assert torch.allclose(group_weights("maxrl-loo", lik, order=2), maxrl_loo_weights(lik, 2))
    assert get_objective("maxrl-loo").name == "maxrl-loo"
    with pytest.raises(ValueError, match="needs N >= 2"):
        maxrl_loo_weights(torch.tensor([[0.5]]))
    with pytest.raises(ValueError, match="likelihoods"):
        maxrl_loo_weights(torch.tensor([[0.5, 1.5]]))
