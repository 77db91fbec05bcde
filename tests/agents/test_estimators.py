"""Tests for agents.estimators: exact unbiasedness, loop references, float32 accuracy, errors."""

from __future__ import annotations

import decimal
import itertools
import math
import statistics
from fractions import Fraction

import numpy as np
import pytest
import torch

from agents import estimators as est
from agents.estimators import (
    ESTIMATOR_NAMES,
    ESTIMATORS,
    dr_grpo,
    group_weights,
    grpo,
    maxrl_binary_weights,
    maxrl_omega,
    maxrl_weights,
    reinforce,
    rloo,
)

F64 = torch.float64

# ---------------------------------------------------------------------------------------------
# Plain loop references (direct definitions, Python floats)
# ---------------------------------------------------------------------------------------------


def loop_symmetric_means(values: list[float]) -> list[float]:
    """e_k(values) / C(n, k) by the textbook O(n k) recursion on unnormalized e_k."""
    n = len(values)
    e = [1.0] + [0.0] * n
    for v in values:
        for k in range(n, 0, -1):
            e[k] += v * e[k - 1]
    return [e[k] / math.comb(n, k) for k in range(n + 1)]


def loop_omega(row: list[float], order: int) -> list[float]:
    out = []
    for j in range(len(row)):
        others = [1.0 - row[i] for i in range(len(row)) if i != j]
        out.append(sum(loop_symmetric_means(others)[:order]))
    return out


def loop_maxrl(rows: list[list[float]], order: int, baseline: float | None) -> list[list[float]]:
    b = baseline or 0.0
    return [[w * lj - b for w, lj in zip(loop_omega(row, order), row, strict=True)] for row in rows]


def loop_maxrl_binary(rows):
    out = []
    for row in rows:
        k, n = sum(row), len(row)
        out.append([n * r / k - 1.0 if k > 0 else 0.0 for r in row])
    return out


def loop_reinforce(rows, baseline=0.0):
    return [[r - baseline for r in row] for row in rows]


def loop_rloo(rows):
    return [[r - (sum(row) - r) / (len(row) - 1) for r in row] for row in rows]


def loop_grpo(rows, eps=1e-4):
    out = []
    for row in rows:
        mean, scale = statistics.fmean(row), statistics.stdev(row) + eps
        out.append([(r - mean) / scale if scale > 0 else 0.0 for r in row])
    return out


def loop_dr_grpo(rows):
    return [[r - statistics.fmean(row) for r in row] for row in rows]


def np_loo_omega(likelihoods: np.ndarray, j: int, order: int) -> float:
    """omega_j by the normalized recursion over the other rollouts, float64 (independent)."""
    a = np.delete(1.0 - likelihoods, j)
    means = np.zeros(order)
    means[0] = 1.0
    k = np.arange(1, order)
    for i, ai in enumerate(a, start=1):
        means[1:] = np.where(k <= i, ((i - k) * means[1:] + k * ai * means[:-1]) / i, 0.0)
    return float(means.sum())


def w_order(p: float, order: int) -> float:
    return sum((1 - p) ** k for k in range(order))


# ---------------------------------------------------------------------------------------------
# Exact unbiasedness by enumeration of every N-tuple of outcomes (float64, autograd)
# ---------------------------------------------------------------------------------------------

THETA = torch.tensor([0.3, -0.5, 0.1, 0.6], dtype=F64)
GRADED = torch.tensor([0.0, 0.3, 0.9, 1.0], dtype=F64)  # per-outcome likelihood l(z)
BINARY = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=F64)


def expected_gradient(weights_fn, per_outcome: torch.Tensor, n: int) -> torch.Tensor:
    """E[(1/N) sum_j A_j grad log m(z_j)] over all |Z|^N tuples, exactly."""
    theta = THETA.clone().requires_grad_(True)
    log_m = torch.log_softmax(theta, 0)
    tuples = torch.tensor(list(itertools.product(range(len(THETA)), repeat=n)))
    prob = log_m.detach()[tuples].sum(1).exp()
    weights = weights_fn(per_outcome[tuples])
    assert weights.shape == tuples.shape and weights.dtype == F64
    surrogate = (prob[:, None] * weights.detach() * log_m[tuples]).sum() / n
    (grad,) = torch.autograd.grad(surrogate, theta)
    assert math.isclose(float(prob.sum()), 1.0, rel_tol=1e-12)
    return grad


def target_gradient(per_outcome: torch.Tensor, order: int) -> torch.Tensor:
    """grad J_T with J_T(p) = -sum_{k<=T} (1-p)^k / k, p = sum_z m(z) l(z), by autograd."""
    theta = THETA.clone().requires_grad_(True)
    p = (torch.softmax(theta, 0) * per_outcome).sum()
    objective = -sum((1 - p) ** k / k for k in range(1, order + 1))
    (grad,) = torch.autograd.grad(objective, theta)
    return grad


ORDERS = [(n, t) for n in range(2, 6) for t in range(1, n + 1)]


@pytest.mark.parametrize("baseline", [1.0, None, -0.37])
@pytest.mark.parametrize(("n", "order"), ORDERS)
def test_maxrl_unbiased_for_truncated_objective(n, order, baseline):
    got = expected_gradient(lambda lik: maxrl_weights(lik, order, baseline), GRADED, n)
    want = target_gradient(GRADED, order)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    # the test can tell neighbouring orders apart
    other = target_gradient(GRADED, order + 1)
    assert (other - want).abs().max() > 1e-4


@pytest.mark.parametrize(("n", "order"), [(3, 2), (4, 4), (5, 3)])
def test_maxrl_unbiased_in_log_space(n, order):
    got = expected_gradient(
        lambda lik: maxrl_weights(lik.log(), order, 0.5, log_space=True), GRADED, n
    )
    torch.testing.assert_close(got, target_gradient(GRADED, order), rtol=0, atol=1e-10)


def test_target_gradient_is_w_times_grad_p():
    theta = THETA.clone().requires_grad_(True)
    p = (torch.softmax(theta, 0) * GRADED).sum()
    (grad_p,) = torch.autograd.grad(p, theta)
    for order in (1, 3, 6):
        want = w_order(float(p.detach()), order) * grad_p
        torch.testing.assert_close(target_gradient(GRADED, order), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_maxrl_binary_unbiased_for_order_n_minus_1(n):
    got = expected_gradient(maxrl_binary_weights, BINARY, n)
    torch.testing.assert_close(got, target_gradient(BINARY, n - 1), rtol=0, atol=1e-10)
    assert (got - target_gradient(BINARY, n)).abs().max() > 1e-4  # not order N


@pytest.mark.parametrize("n", [2, 3, 5])
def test_order_one_baselines_unbiased_for_grad_p(n):
    want = target_gradient(GRADED, 1)
    for fn in (reinforce, lambda r: reinforce(r, 0.5), rloo):
        torch.testing.assert_close(expected_gradient(fn, GRADED, n), want, rtol=0, atol=1e-10)
    # Dr. GRPO is r - mean = (N - 1)/N (r - mean of others): biased by exactly (N - 1)/N
    got = expected_gradient(dr_grpo, GRADED, n)
    torch.testing.assert_close(got, (n - 1) / n * want, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Exact special cases
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 64, 1024])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_binary_full_order_is_divide_by_k(n, dtype):
    g = torch.Generator().manual_seed(n)
    r = torch.rand(6, n, generator=g) < torch.tensor([[0.5], [0.05], [0.9], [0], [1], [0.3]])
    r = r.to(dtype)
    r[5] = 0
    r[5, -1] = 1  # exactly one success
    k = r.sum(1, keepdim=True)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == F64 else dict(rtol=2e-6, atol=2e-6)
    scaled = maxrl_weights(r, baseline=None)
    want = torch.where(k > 0, n * r / k.clamp_min(1), torch.zeros_like(r))
    torch.testing.assert_close(scaled, want, **tol)
    # the default baseline 1 gives the paper's (r/K - 1/N) * N; all-fail groups get -1
    torch.testing.assert_close(maxrl_weights(r), want - 1.0, **tol)
    assert bool((maxrl_weights(r)[3] == -1).all())
    # the practical form agrees wherever K > 0 and is zero where K = 0
    binary = maxrl_binary_weights(r)
    torch.testing.assert_close(binary[k[:, 0] > 0], (want - 1.0)[k[:, 0] > 0], **tol)
    assert bool((binary[3] == 0).all())


def test_order_one_is_reinforce():
    lik = torch.rand(5, 7, dtype=F64)
    assert bool((maxrl_omega(lik, 1) == 1).all())
    assert torch.equal(maxrl_weights(lik, 1, baseline=0.25), lik - 0.25)
    assert torch.equal(maxrl_weights(lik, 1, baseline=None), lik)
    assert torch.equal(maxrl_weights(lik[:, :1], baseline=0.0), lik[:, :1])  # N = 1 forces T = 1


@pytest.mark.parametrize(
    ("n", "order"),
    [(4096, 2), (4096, 2049), (4096, 3000), (4096, 4096), (1000, 100), (1000, 700), (1000, 999)],
)
def test_equal_likelihoods_give_geometric_sum(n, order):
    # all a_i equal: E_k = a^k exactly, so omega = sum_{k<T} a^k (ties stress rounding)
    values = [1e-4, 3e-3, 0.2, 0.97]
    lik = torch.tensor(values, dtype=torch.float32)[:, None].expand(-1, n).contiguous()
    omega = maxrl_omega(lik, order)
    for row, v in zip(omega, values, strict=True):
        a = 1 - float(torch.tensor(v, dtype=torch.float32))
        want = (1 - a**order) / (1 - a)
        torch.testing.assert_close(
            row.double(), torch.full((n,), want, dtype=F64), rtol=1e-5, atol=0
        )


def test_omega_bounds_and_monotonicity():
    g = torch.Generator().manual_seed(3)
    lik = torch.rand(4, 40, generator=g, dtype=F64) ** 3
    previous = torch.zeros_like(lik)
    for order in range(1, 41):
        omega = maxrl_omega(lik, order)
        assert bool((omega >= 1 - 1e-12).all()) and bool((omega <= order + 1e-9).all())
        assert bool((omega >= previous - 1e-12).all())  # adding non-negative terms
        previous = omega


# ---------------------------------------------------------------------------------------------
# Vectorized estimators vs the plain loops
# ---------------------------------------------------------------------------------------------


def _likelihood_rows(batch: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lik = torch.rand(batch, n, generator=g, dtype=F64)
    lik[0, : max(1, n // 4)] = 0.0
    if batch > 1:
        lik[1, : max(1, n // 3)] = 1.0
    if batch > 2:
        lik[2] = lik[2] ** 6  # mostly small
    return lik


@pytest.mark.parametrize(
    ("batch", "n", "orders"),
    [
        (3, 2, (1, 2)),
        (3, 3, (1, 2, 3)),
        (4, 5, (1, 2, 3, 4, 5)),
        (3, 9, (2, 5, 6, 8, 9)),
        (2, 16, (3, 9, 10, 15, 16)),
        (3, 33, (2, 17, 18, 25, 32, 33)),
    ],
)
def test_maxrl_matches_loop_reference(batch, n, orders):
    lik = _likelihood_rows(batch, n, seed=n)
    for order in orders:
        for baseline in (1.0, None):
            got = maxrl_weights(lik, order, baseline)
            want = torch.tensor(loop_maxrl(lik.tolist(), order, baseline), dtype=F64)
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
            got_log = maxrl_weights(lik.log(), order, baseline, log_space=True)
            torch.testing.assert_close(got_log, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 8])
def test_peer_estimators_match_loop_reference(n):
    g = torch.Generator().manual_seed(n)
    rewards = torch.randn(5, n, generator=g, dtype=F64)
    rewards[0] = 0.7  # constant group
    unit = torch.rand(5, n, generator=g, dtype=F64)
    unit[1] = 0.0
    unit[2] = (unit[2] > 0.5).to(F64)
    rows, unit_rows = rewards.tolist(), unit.tolist()
    cases = [
        (reinforce(rewards), loop_reinforce(rows)),
        (reinforce(rewards, 0.3), loop_reinforce(rows, 0.3)),
        (rloo(rewards), loop_rloo(rows)),
        (grpo(rewards), loop_grpo(rows)),
        (grpo(rewards[1:], eps=0.0), loop_grpo(rows[1:], eps=0.0)),  # no constant group
        (dr_grpo(rewards), loop_dr_grpo(rows)),
        (maxrl_binary_weights(unit), loop_maxrl_binary(unit_rows)),
    ]
    for got, want in cases:  # atol: the rounded mean of a constant group leaves ~1e-16 / eps
        torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=1e-12, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# float32 accuracy at large N
# ---------------------------------------------------------------------------------------------


def _hard_contexts(n: int) -> torch.Tensor:
    """Five contexts in float32: exact 0s/1s, near-all-zero, skewed small, near-one, binary."""
    g = torch.Generator().manual_seed(n)
    u = torch.rand(5, n, generator=g, dtype=F64)
    lik = u.clone()
    lik[0, : n // 10] = 0.0
    lik[0, n // 10 : n // 5] = 1.0
    lik[1] = 1e-3 * u[1]
    lik[1, :3] = 0.5
    lik[2] = u[2] ** 8
    lik[3] = 1 - 1e-3 * u[3]
    lik[4] = (u[4] > 0.7).to(F64)
    return lik.float()


@pytest.mark.parametrize("n", [1024, 4096])
def test_float32_matches_float64_at_large_n(n):
    l32 = _hard_contexts(n)
    l64 = l32.double()
    orders = (
        (n, n - 1, 3 * n // 4, n // 2 + 2, n // 2, 16)
        if n <= 1024
        else (n, 3 * n // 4, n // 2 + 2, n // 2, 16)
    )
    for order in orders:
        omega32, omega64 = maxrl_omega(l32, order), maxrl_omega(l64, order)
        assert omega32.dtype == torch.float32
        rel = ((omega32.double() - omega64).abs() / omega64).max()
        assert rel < 1e-5, (order, float(rel))
    for order in (n, 3 * n // 4) if n <= 1024 else (n,):
        scaled32, scaled64 = maxrl_weights(l32, order, None), maxrl_weights(l64, order, None)
        err = (scaled32.double() - scaled64).abs() / scaled64.abs().clamp_min(1e-30)
        assert err.max() < 1e-5, (order, float(err.max()))


@pytest.mark.parametrize(("n", "order", "rows"), [(1024, 700, (0, 1, 3)), (4096, 3000, (1, 3))])
def test_float64_matches_independent_reference_at_large_n(n, order, rows):
    lik = _hard_contexts(n).double()
    omega = maxrl_omega(lik, order)
    for row in rows:
        # one rollout whose l is near 1 (forward peel-off) and one near 0 (top-down peel-off)
        for j in (int(lik[row].argmax()), int(lik[row].argmin())):
            want = np_loo_omega(lik[row].numpy(), j, order)
            assert math.isclose(float(omega[row, j]), want, rel_tol=1e-9), (row, j)


def torch_loo_omega_all(likelihoods: torch.Tensor, order: int) -> torch.Tensor:
    """omega_j for every j of one context by the normalized recursion, one table per j."""
    n = likelihoods.numel()
    a = 1.0 - likelihoods.double()
    means = torch.zeros(n, order, dtype=F64)
    means[:, 0] = 1.0
    k = torch.arange(1, order, dtype=F64)
    rows = torch.arange(n)
    for i in range(n):
        count = torch.where(rows <= i, i, i + 1).to(F64)[:, None]  # items seen, j excluded
        update = ((count - k) * means[:, 1:] + k * a[i] * means[:, :-1]) / count
        keep = (rows == i)[:, None]
        means[:, 1:] = torch.where(keep, means[:, 1:], update)
    return means.sum(1)


@pytest.mark.slow
def test_all_rollouts_match_independent_reference_at_n_1024():
    n, order = 1024, 700
    lik = _hard_contexts(n)[:3].double()
    omega = maxrl_omega(lik, order)
    for row in range(3):
        torch.testing.assert_close(
            omega[row], torch_loo_omega_all(lik[row], order), rtol=1e-9, atol=0
        )


def test_vectorized_reference_agrees_with_loop():
    lik = _likelihood_rows(1, 9, seed=4)[0]
    for order in (1, 4, 9):
        want = torch.tensor(loop_omega(lik.tolist(), order), dtype=F64)
        torch.testing.assert_close(torch_loo_omega_all(lik, order), want, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------
# float64 against exact rational references
# ---------------------------------------------------------------------------------------------

_FIXED_BITS = 256  # the exact sums are carried as integers scaled by 2^256 (error < T 2^-256)
F64_REL = 2e-14  # float64 omega and omega * l, relative (measured: <= 1e-14 up to N = 4096)


def binomial_row(n: int) -> list[int]:
    """[C(n, 0), ..., C(n, n)] by the product recurrence."""
    row = [1]
    for i in range(n):
        row.append(row[-1] * (n - i) // (i + 1))
    return row


def exact_omega_sums(others: dict[Fraction, int], order: int) -> list[Fraction]:
    """[omega for T = 1..order] of a rollout whose others have likelihoods {l: count}.

    omega = sum_{k<T} e_k(a) / C(m, k), a = 1 - l, with e_k the coefficients of
    prod_l (1 + a_l x)^count computed in exact integers over a common denominator q:
    prod (q + p x)^c / q^(sum c) with p = a q. Fast at m = 4095 as long as the likelihoods
    strictly between 0 and 1 have small counts (0s and 1s may have any).
    """
    m = sum(others.values())
    q = math.lcm(*(value.denominator for value in others))
    poly, scale = [1], 1
    for value, count in others.items():
        p = int((1 - value) * q)
        if count == 0 or p == 0:  # l = 1: a factor 1
            continue
        factor = binomial_row(count)
        if p < q:  # (q + p x)^count; l = 0 (p = q) is (1 + x)^count
            factor = [c * q ** (count - i) * p**i for i, c in enumerate(factor)]
            scale *= q**count
        product = [0] * (len(poly) + len(factor) - 1)
        for i, x in enumerate(poly):
            for r, y in enumerate(factor):
                product[i + r] += x * y
        poly = product
    sums, acc, binomial = [], 0, 1  # binomial = C(m, k)
    for k in range(order):
        if k < len(poly):
            acc += (poly[k] << _FIXED_BITS) // (scale * binomial)
        sums.append(Fraction(acc, 1 << _FIXED_BITS))
        binomial = binomial * (m - k) // (k + 1)
    return sums


def enumerated_omega(row: list[Fraction], j: int, order: int) -> Fraction:
    """omega_j by brute force: e_k as the sum over every k-subset of the others' a_i."""
    a = [1 - value for i, value in enumerate(row) if i != j]
    return sum(
        (
            sum((math.prod(subset) for subset in itertools.combinations(a, k)), Fraction(0))
            / math.comb(len(a), k)
            for k in range(order)
        ),
        Fraction(0),
    )


def fraction_omega_sums(row: list[Fraction], j: int) -> list[Fraction]:
    """[omega_j for T = 1..N] by the textbook e_k recursion in exact rationals."""
    a = [1 - value for i, value in enumerate(row) if i != j]
    e = [Fraction(1)] + [Fraction(0)] * len(a)
    for x in a:
        for k in range(len(a), 0, -1):
            e[k] += x * e[k - 1]
    return list(itertools.accumulate(e[k] / math.comb(len(a), k) for k in range(len(a) + 1)))


def max_relative_error(got: torch.Tensor, want: list[Fraction]) -> float:
    return max(
        (float(abs(Fraction(g) - w) / w) for g, w in zip(got.tolist(), want, strict=True) if w),
        default=0.0,
    )


def _rational_row(n: int, seed: int, denominator: int) -> list[Fraction]:
    """Likelihoods k / denominator with a few exact 0s and 1s."""
    g = torch.Generator().manual_seed(seed)
    row = [
        Fraction(int(k), denominator) for k in torch.randint(0, denominator + 1, (n,), generator=g)
    ]
    row[0], row[-1] = Fraction(0), Fraction(1)
    return row


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_float64_matches_brute_force_enumeration(n):
    g = torch.Generator().manual_seed(n)
    lik = torch.rand(2, n, generator=g, dtype=F64)
    lik[1] = lik[1] ** 8
    lik[1, 0] = 1.0
    for order in range(1, n + 1):
        omega = maxrl_omega(lik, order)
        scaled = maxrl_weights(lik, order, None)
        for b in range(2):
            row = [Fraction(v) for v in lik[b].tolist()]  # exact values of the float64 inputs
            want = [enumerated_omega(row, j, order) for j in range(n)]
            # the two references agree
            assert want == [fraction_omega_sums(row, j)[order - 1] for j in range(n)]
            assert max_relative_error(omega[b], want) <= F64_REL, (order, b)
            weights = [w * value for w, value in zip(want, row, strict=True)]
            assert max_relative_error(scaled[b], weights) <= F64_REL, (order, b)


@pytest.mark.parametrize("n", [16, 33, 64])
def test_float64_matches_exact_rationals_at_moderate_n(n):
    row = _rational_row(n, seed=n, denominator=64)
    lik = torch.tensor([[float(v) for v in row]], dtype=F64)
    exact = [fraction_omega_sums(row, j) for j in range(n)]
    for order in sorted({2, n // 2, n // 2 + 2, 3 * n // 4, n - 1, n}):
        want = [sums[order - 1] for sums in exact]
        assert max_relative_error(maxrl_omega(lik, order)[0], want) <= F64_REL, order


# Rows of {likelihood: count} at large N: ties, one-hot, binary, rationals near 0 and near 1.
LARGE_ROWS = {
    "one-hot": (1024, {Fraction(1): 1, Fraction(0): 1023}),
    "binary": (1024, {Fraction(1): 300, Fraction(0): 724}),
    "eighths": (1024, {Fraction(1): 200, Fraction(0): 700, Fraction(3, 8): 60, Fraction(5, 8): 64}),
    "near-zero": (1000, {Fraction(1, 8): 40, Fraction(0): 958, Fraction(1): 2}),
    "near-one": (1023, {Fraction(7, 8): 40, Fraction(1): 983}),
    "binary-4096": (4096, {Fraction(1): 7, Fraction(0): 4089}),
}


@pytest.mark.parametrize("case", list(LARGE_ROWS))
def test_float64_matches_exact_rationals_at_large_n(case):
    n, counts = LARGE_ROWS[case]
    values = list(counts)
    row = torch.tensor([float(v) for v in values for _ in range(counts[v])], dtype=F64)
    g = torch.Generator().manual_seed(n)
    lik = torch.stack((row, row[torch.randperm(n, generator=g)]))  # sorted (ties grouped), mixed
    want = {}  # value -> [omega for T = 1..n] of a rollout with that likelihood
    for value in values:
        others = dict(counts)
        others[value] -= 1
        want[value] = exact_omega_sums(others, n)
    orders = (
        {2, 3, n // 2, n // 2 + 1, n // 2 + 2, 3 * n // 4, n - 1, n}
        if n <= 1024
        else {2, n // 2, n // 2 + 2, n - 1, n}
    )
    for order in sorted(orders):
        omega = maxrl_omega(lik, order)
        scaled = maxrl_weights(lik, order, None)
        for value in values:
            exact = want[value][order - 1]
            where = lik == float(value)
            extremes = omega[where].aminmax()  # the largest error is at one of them
            assert max_relative_error(torch.stack(extremes), [exact] * 2) <= F64_REL, (order, value)
            if value:
                extremes = scaled[where].aminmax()
                assert max_relative_error(torch.stack(extremes), [exact * value] * 2) <= F64_REL


@pytest.mark.parametrize("n", [1024, 2048, 4096])
def test_full_order_binary_is_n_over_k_to_ulps(n):
    # T = N with many successes: omega l = N / K comes from the quadrature's first nodes
    # (an integrand (1 - t)^(K - 1)), where the old Gauss-Legendre rule was off by 1e-13
    counts = (n // 2, n - n // 16, n - 4, n - 1)
    lik = torch.zeros(len(counts), n, dtype=F64)
    for row, k in enumerate(counts):
        lik[row, :k] = 1.0
    scaled = maxrl_weights(lik, None, None)
    for row, k in enumerate(counts):
        got = scaled[row, :k].aminmax()
        assert max_relative_error(torch.stack(got), [Fraction(n, k)] * 2) <= F64_REL, k


@pytest.mark.parametrize("order", [2, 512, 1023, 1024])
def test_lone_success_gets_exactly_order(order):
    # the audit's case: every other a_i = 1, so omega_0 = sum_{k<T} 1 = T
    lik = torch.zeros(1, 1024, dtype=F64)
    lik[0, 0] = 1.0
    got = float(maxrl_weights(lik, order=order, baseline=None)[0, 0])
    assert abs(got - order) <= F64_REL * order, got


# ---------------------------------------------------------------------------------------------
# Inputs that require grad
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_inputs_requiring_grad_give_weights_without_grad(dtype):
    lik = _likelihood_rows(3, 9, seed=5).to(dtype)
    for name in ESTIMATOR_NAMES:  # every estimator, a leaf that requires grad
        rewards = (lik > 0.5).to(dtype) if name == "maxrl-binary" else lik
        leaf = rewards.clone().requires_grad_(True)
        got = group_weights(name, leaf)
        assert not got.requires_grad and got.grad_fn is None, name
        assert torch.equal(got, group_weights(name, rewards)), name
        assert leaf.grad is None and torch.equal(leaf.detach(), rewards), name  # untouched
    # likelihoods from a differentiable head (a non-leaf), every MaxRL regime and log space
    logits = torch.randn(3, 9, generator=torch.Generator().manual_seed(1)).to(dtype)
    logits.requires_grad_(True)
    head, log_head = torch.sigmoid(logits), torch.nn.functional.logsigmoid(logits)
    for order in (1, 2, 5, 6, 8, 9):
        for got, want in (
            (maxrl_omega(head, order), maxrl_omega(head.detach(), order)),
            (maxrl_weights(head, order), maxrl_weights(head.detach(), order)),
            (
                maxrl_weights(log_head, order, log_space=True),
                maxrl_weights(log_head.detach(), order, log_space=True),
            ),
        ):
            assert not got.requires_grad and got.grad_fn is None, order
            assert torch.equal(got, want), order
    # the weights are constants in a surrogate loss: gradients flow only through log_prob
    log_prob = torch.log_softmax(logits.float(), -1)
    loss = -(maxrl_weights(head, 4).float() * log_prob).mean()
    loss.backward()
    assert logits.grad is not None and bool(torch.isfinite(logits.grad).all())


# ---------------------------------------------------------------------------------------------
# maxrl-binary rounding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [2, 16, 1024, 4096])
def test_maxrl_binary_weights_are_correctly_rounded(dtype, n):
    # A = (N r - K) / K: with binary r, N r - K and K are exact integers, so A is rounded once
    # (N r / K - 1 cancelled: 9.5e-7 relative in float32 at N = 1024, K = 1023)
    g = torch.Generator().manual_seed(n)
    counts = sorted({0, 1, 2, n // 3, n - 2, n - 1, n} & set(range(n + 1)))
    r = torch.zeros(len(counts), n, dtype=dtype)
    for row, k in enumerate(counts):
        r[row, torch.randperm(n, generator=g)[:k]] = 1.0
    got = maxrl_binary_weights(r)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    for row, k in enumerate(counts):
        for success in (0, 1):
            values = got[row][r[row] == success]
            if values.numel() == 0:
                continue
            assert bool((values == values[0]).all())
            exact = Fraction(n * success - k, k) if k else Fraction(0)
            value = np_dtype(values[0].item())
            half_ulp = Fraction(float(np.spacing(abs(value)))) / 2
            assert abs(Fraction(float(value)) - exact) <= half_ulp, (k, success, float(value))


def test_maxrl_binary_weights_float32_error_bound_for_graded_rewards():
    # rewards in [0, 1]: |A - exact| <= 4 u (N r / K + 1) with u = 2^-24 (measured: 1.3 u),
    # the exact value computed from the float32 inputs in rationals
    n = 1024
    g = torch.Generator().manual_seed(3)
    r = torch.rand(3, n, generator=g)
    r[1] = 1 - 1e-3 * r[1]  # almost every rollout near 1: the cancelling case
    r[2] = r[2] ** 8
    got = maxrl_binary_weights(r)
    u = Fraction(1, 2**24)
    for row in range(3):
        values = [Fraction(v) for v in r[row].tolist()]
        k = sum(values)
        for value, a in zip(values, got[row].tolist(), strict=True):
            scale = n * value / k
            assert abs(Fraction(a) - (scale - 1)) <= 4 * u * (scale + 1)


# ---------------------------------------------------------------------------------------------
# log_space
# ---------------------------------------------------------------------------------------------


def test_log_space_equals_linear_space():
    lik = _likelihood_rows(4, 12, seed=7)
    for order in (1, 4, 9, 12):
        for baseline in (1.0, None):
            linear = maxrl_weights(lik, order, baseline)
            logged = maxrl_weights(lik.log(), order, baseline, log_space=True)
            torch.testing.assert_close(logged, linear, rtol=1e-12, atol=1e-12)
    l32 = lik.float()
    torch.testing.assert_close(
        maxrl_weights(l32.log(), 7, log_space=True), maxrl_weights(l32, 7), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("order", [None, 2, 40, 63])
def test_log_space_where_exp_underflows_in_float32(order):
    n = 64
    log_l = torch.full((3, n), -200.0, dtype=F64)
    log_l[0, 5] = -1.0
    log_l[1, ::7] = -0.5
    log_l[2] = -torch.linspace(60, 300, n, dtype=F64)  # all far below float32's smallest
    log_l[2, 0] = -0.01
    ref_omega = maxrl_omega(log_l, order, log_space=True)
    ref = maxrl_weights(log_l, order, log_space=True)
    ref_none = maxrl_weights(log_l, order, None, log_space=True)
    omega = maxrl_omega(log_l.float(), order, log_space=True)
    weights = maxrl_weights(log_l.float(), order, log_space=True)
    weights_none = maxrl_weights(log_l.float(), order, None, log_space=True)
    assert bool(torch.isfinite(weights).all()) and bool(torch.isfinite(weights_none).all())
    torch.testing.assert_close(omega.double(), ref_omega, rtol=1e-5, atol=0)
    torch.testing.assert_close(weights.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights_none.double(), ref_none, rtol=1e-5, atol=1e-30)
    # the lone good rollout of context 0 has omega = T (every other a_i is 1)
    t = n if order is None else order
    assert math.isclose(float(weights_none[0, 5]), t * math.exp(-1.0), rel_tol=1e-5)


def test_log_space_keeps_tiny_weights_in_float64():
    log_l = torch.tensor([[-700.0, -650.0, -0.2, -745.0]], dtype=F64)
    got = maxrl_weights(log_l, baseline=None, log_space=True)
    want = maxrl_omega(log_l, log_space=True) * log_l.exp()
    torch.testing.assert_close(got[:, :3], want[:, :3], rtol=1e-12, atol=0)
    assert float(got[0, 3]) > 0  # exp(-745) is subnormal; omega * l is not lost


def _decimal_times_exp(omega: float, log_l: float) -> float:
    """omega * exp(log_l) to 40 significant digits, then rounded once to float64."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        return float(decimal.Decimal(omega) * decimal.Decimal(log_l).exp())


def _log_likelihood_rows(n: int, seed: int) -> torch.Tensor:
    """log l over the whole normal float64 range, with exact 0s (-inf) and 1s (0)."""
    g = torch.Generator().manual_seed(seed)
    log_l = -(10 ** torch.empty(4, n, dtype=F64).uniform_(-12, 2.8, generator=g))  # to -630
    log_l[0, ::5] = -float("inf")
    log_l[1, ::7] = 0.0
    log_l[2, 0] = -700.0  # l = 9.9e-305, still normal
    log_l[3] = -1e-3 * log_l[3].abs() / log_l[3].abs().max()  # all near 1
    return log_l


@pytest.mark.parametrize("n", [9, 40])
def test_log_space_matches_linear_space_to_ulps_in_float64(n):
    log_l = _log_likelihood_rows(n, seed=n)
    lik = log_l.exp()
    for order in sorted({1, 2, n // 2, n // 2 + 2, n - 1, n}):
        logged = maxrl_weights(log_l, order, None, log_space=True)
        linear = maxrl_weights(lik, order, None)
        # omega sees 1 - l as -expm1(log l) here and 1 - exp(log l) there: a few ulps of omega
        rel = ((logged - linear).abs() / linear.abs().clamp_min(1e-300)).max()
        assert rel <= 1e-15, (order, float(rel))  # exp(log omega + log l): up to 2.8e-14
        omega = maxrl_omega(log_l, order, log_space=True)
        for (b, j), value in np.ndenumerate(logged.numpy()):
            want = _decimal_times_exp(float(omega[b, j]), float(log_l[b, j]))
            assert abs(value - want) <= 2.5 * np.spacing(want), (order, b, j)


def test_log_space_where_exp_is_subnormal_in_float64():
    n = 64
    log_l = torch.full((2, n), -1000.0, dtype=F64)  # l = 0 in float64: a = 1 exactly
    log_l[0, :8] = torch.linspace(-716.0, -708.5, 8, dtype=F64)  # exp subnormal, omega l normal
    log_l[0, 8] = -740.0  # omega l subnormal too
    log_l[1, :16] = -torch.linspace(0.01, 5.0, 16, dtype=F64)  # a nontrivial omega
    log_l[1, 16:24] = torch.linspace(-716.0, -708.5, 8, dtype=F64)
    for order in (2, 33, 63, 64):
        got = maxrl_weights(log_l, order, None, log_space=True)
        omega = maxrl_omega(log_l, order, log_space=True)
        for b, j in [(0, j) for j in range(9)] + [(1, j) for j in range(16, 24)]:
            want = _decimal_times_exp(float(omega[b, j]), float(log_l[b, j]))
            assert want > 0 and abs(float(got[b, j]) - want) <= 2.5 * np.spacing(want), (b, j)
        # the others of context 0 all have a = 1, so omega = T there
        assert torch.equal(omega[0], torch.full((n,), float(order), dtype=F64))


@pytest.mark.parametrize("order", [None, 1, 2, 40])
def test_log_space_float32_product_is_rounded_once(order):
    # exp underflows in float32 below log l = -87.3 (subnormal) and -103.3 (zero); omega * l
    # is still a normal float32 down to about -87.3 - log(omega)
    n = 64
    log_l = torch.full((2, n), -200.0)
    log_l[0, :32] = -torch.linspace(80.0, 95.0, 32)
    log_l[1] = -torch.linspace(0.001, 95.0, n)
    got = maxrl_weights(log_l, order, None, log_space=True)
    omega = maxrl_omega(log_l, order, log_space=True)  # the same float32 omega
    assert got.dtype == torch.float32
    for (b, j), value in np.ndenumerate(got.numpy()):
        want = np.float32(_decimal_times_exp(float(omega[b, j]), float(log_l[b, j])))
        if want >= np.finfo(np.float32).tiny:
            assert abs(float(value) - float(want)) <= np.spacing(want), (b, j)  # <= 1 ulp
        else:  # subnormal result: absolute resolution of float32
            assert abs(float(value) - float(want)) <= np.spacing(np.float32(0)), (b, j)
    # and end to end against float64 (the float32 omega's own error, ~1e-6)
    ref = maxrl_weights(log_l.double(), order, None, log_space=True)
    normal = ref >= np.finfo(np.float32).tiny
    torch.testing.assert_close(got.double()[normal], ref[normal], rtol=1e-5, atol=0)


# ---------------------------------------------------------------------------------------------
# Internals: quadrature rule, chunked paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 64, 100])
def test_gauss_legendre_matches_numpy(n):
    t, s, w = est._gauss_legendre_unit(n)
    x, wx = np.polynomial.legendre.leggauss(n)
    order = np.argsort(x)
    np.testing.assert_allclose(t, (1 + x[order]) / 2, atol=1e-14)
    np.testing.assert_allclose(s, 1 - t, atol=1e-14)
    np.testing.assert_allclose(w, wx[order] / 2, atol=1e-14)


@pytest.mark.parametrize("n", [512, 2048])
def test_gauss_legendre_exact_for_beta_integrals(n):
    t, s, w = est._gauss_legendre_unit(n)
    m = 2 * n - 1  # highest exact degree
    for k in (0, 1, n // 3, n, m - 1, m):
        # int_0^1 t^k (1-t)^(m-k) dt = 1 / ((m + 1) C(m, k)); compare in log space
        terms = np.log(w) + k * np.log(t) + (m - k) * np.log(s)
        got = np.logaddexp.reduce(terms)
        want = -math.log(m + 1) - (math.lgamma(m + 1) - math.lgamma(k + 1) - math.lgamma(m - k + 1))
        assert abs(got - want) < 1e-10, k


def test_chunked_paths_agree(monkeypatch):
    lik = _likelihood_rows(3, 37, seed=11)
    orders = (2, 10, 20, 30, 36, 37)
    before = [maxrl_omega(lik, order) for order in orders]
    monkeypatch.setattr(est, "_MERGE_CHUNK_ELEMENTS", 50)
    monkeypatch.setattr(est, "_QUAD_CHUNK_ELEMENTS_CPU", 100)
    est._hypergeometric_weights.cache_clear()
    after = [maxrl_omega(lik, order) for order in orders]
    for x, y in zip(before, after, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-13, atol=1e-13)


def test_symmetric_means_match_loop_for_odd_sizes():
    for n in (1, 2, 3, 5, 6, 7, 11, 13, 24):
        a = torch.rand(2, n, dtype=F64)
        for top in sorted({1, n // 2, n - 1, n} - {0}):
            got = est._symmetric_means(a, top)
            for row in range(2):
                want = loop_symmetric_means(a[row].tolist())[: top + 1]
                np.testing.assert_allclose(got[row].numpy(), want, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Shapes, dtypes, registry, validation switch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_output_dtype_shape_device(dtype):
    lik = torch.rand(3, 6).to(dtype)
    for name in ESTIMATOR_NAMES:
        rewards = (lik > 0.5).to(dtype) if name == "maxrl-binary" else lik
        out = group_weights(name, rewards)
        assert out.shape == lik.shape and out.dtype == dtype and out.device == lik.device, name
        assert bool(torch.isfinite(out).all()), name
    if dtype in (torch.float16, torch.bfloat16):  # computed in float32, rounded once
        want = maxrl_weights(lik.float(), 4).to(dtype)
        torch.testing.assert_close(maxrl_weights(lik, 4), want, rtol=0, atol=0)


def test_registry_dispatches_to_functions():
    assert ESTIMATOR_NAMES == (
        "maxrl",
        "maxrl-binary",
        "reinforce",
        "reinforce-mean",
        "rloo",
        "grpo",
        "dr-grpo",
    )
    lik = _likelihood_rows(3, 6, seed=1)
    binary = (lik > 0.5).to(F64)
    torch.testing.assert_close(group_weights("maxrl", lik), maxrl_weights(lik))
    torch.testing.assert_close(group_weights("maxrl", lik, order=3), maxrl_weights(lik, 3))
    torch.testing.assert_close(
        group_weights("maxrl", lik.log(), order=2, log_space=True), maxrl_weights(lik, 2)
    )
    torch.testing.assert_close(group_weights("maxrl-binary", binary), maxrl_binary_weights(binary))
    for name, fn in [
        ("reinforce", reinforce),
        ("rloo", rloo),
        ("grpo", grpo),
        ("dr-grpo", dr_grpo),
    ]:
        torch.testing.assert_close(group_weights(name, lik), fn(lik))
        torch.testing.assert_close(ESTIMATORS[name](lik), fn(lik))


def test_validate_false_skips_scan_only():
    lik = _likelihood_rows(2, 9, seed=2)
    torch.testing.assert_close(maxrl_weights(lik, 5, validate=False), maxrl_weights(lik, 5))
    bad = lik.clone()
    bad[0, 0] = 2.0
    maxrl_weights(bad, validate=False)  # no scan, no error
    with pytest.raises(ValueError, match="order"):  # cheap checks still run
        maxrl_weights(lik, 10, validate=False)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

GOOD = torch.full((2, 4), 0.5)


def _with(value: float, fill: float = 0.5) -> torch.Tensor:
    x = torch.full((2, 4), fill)
    x[1, 2] = value
    return x


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (
            lambda: maxrl_weights(_with(1.5)),
            r"likelihoods must contain only likelihoods in \[0, 1\].*1\.5",
        ),
        (lambda: maxrl_weights(_with(-0.1)), r"likelihoods.*-0\.1"),
        (lambda: maxrl_weights(_with(float("nan"))), r"likelihoods.*nan"),
        (lambda: maxrl_omega(_with(float("inf"))), r"likelihoods.*inf"),
        (
            lambda: maxrl_weights(_with(0.5, -0.7), log_space=True),
            r"log-likelihoods.*\[-inf, 0\].*got 1 offending value\(s\), e\.g\. \[0\.5\]",
        ),
        (
            lambda: maxrl_weights(_with(float("nan"), -0.7), log_space=True),
            r"log-likelihoods.*\[nan\]",
        ),
        (lambda: maxrl_weights(torch.rand(4)), r"likelihoods must be a 2-D tensor.*\(4,\)"),
        (lambda: maxrl_weights(torch.rand(2, 3, 4)), r"likelihoods must be a 2-D.*\(2, 3, 4\)"),
        (lambda: maxrl_weights(torch.ones(2, 3, dtype=torch.long)), r"likelihoods.*floating"),
        (lambda: maxrl_weights(torch.rand(2, 0)), r"likelihoods has N = 0.*N >= 1"),
        (lambda: maxrl_weights(GOOD, 0), r"order must be an integer.*1 <= T <= N = 4.*got 0"),
        (lambda: maxrl_weights(GOOD, 5), r"order.*N = 4.*got 5"),
        (lambda: maxrl_weights(GOOD, 2.0), r"order.*got 2\.0"),
        (lambda: maxrl_weights(GOOD, True), r"order.*got True"),
        (lambda: maxrl_weights(GOOD, baseline=float("nan")), r"baseline must be.*nan"),
        (lambda: maxrl_weights(GOOD, baseline="1"), r"baseline must be.*'1'"),
        (
            lambda: maxrl_binary_weights(_with(1.5)),
            r"rewards must contain only rewards in \[0, 1\]",
        ),
        (
            lambda: maxrl_binary_weights(torch.ones(3, 1)),
            r"rewards has N = 1.*maxrl-binary.*N >= 2",
        ),
        (lambda: rloo(torch.ones(3, 1)), r"rewards has N = 1.*rloo.*N >= 2"),
        (lambda: grpo(torch.ones(3, 1)), r"rewards has N = 1.*grpo.*N >= 2"),
        (lambda: dr_grpo(torch.ones(3, 1)), r"rewards has N = 1.*dr-grpo.*N >= 2"),
        (lambda: reinforce(torch.ones(3, 0)), r"rewards has N = 0.*N >= 1"),
        (lambda: reinforce(_with(float("inf"))), r"rewards must contain only finite.*inf"),
        (lambda: rloo(_with(float("nan"))), r"rewards must contain only finite.*nan"),
        (lambda: reinforce(GOOD, float("inf")), r"baseline must be.*inf"),
        (lambda: grpo(GOOD, eps=-1.0), r"eps must be a finite real number >= 0.*-1\.0"),
        (
            lambda: group_weights("ppo", GOOD),
            r"name must be one of maxrl, maxrl-binary, reinforce, reinforce-mean, rloo, grpo, "
            r"dr-grpo, maxrl-loo; got .ppo.",
        ),
        (lambda: group_weights("rloo", GOOD, order=2), r"order applies only to name='maxrl'"),
        (lambda: group_weights("maxrl-binary", GOOD, order=3), r"order applies only"),
        (lambda: group_weights("grpo", GOOD, log_space=True), r"log_space applies only"),
        (lambda: group_weights("maxrl", GOOD, order=9), r"order.*got 9"),
    ],
)
def test_bad_input_raises_value_error_naming_parameter(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_non_tensor_raises_type_error():
    with pytest.raises(TypeError, match="likelihoods must be a torch.Tensor"):
        maxrl_weights([[0.5, 0.5]])
    with pytest.raises(TypeError, match="rewards must be a torch.Tensor"):
        grpo(np.ones((2, 3)))


# ---------------------------------------------------------------------------------------------
# CUDA
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        for n, orders in ((16, (1, 5, 9, 16)), (1024, (2, 300, 514, 800, 1023, 1024))):
            lik = _hard_contexts(n).to(dtype)
            for order in orders:
                cpu = maxrl_weights(lik, order)
                gpu = maxrl_weights(lik.cuda(), order)
                assert gpu.is_cuda and gpu.dtype == dtype
                torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol, atol=tol)
                logged = maxrl_weights(lik.log().cuda(), order, log_space=True)
                torch.testing.assert_close(logged.cpu(), cpu, rtol=tol, atol=tol)
            rewards = (lik > 0.5).to(dtype)
            for name in ESTIMATOR_NAMES[1:]:
                torch.testing.assert_close(
                    group_weights(name, rewards.cuda()).cpu(),
                    group_weights(name, rewards),
                    rtol=tol,
                    atol=tol,
                )
