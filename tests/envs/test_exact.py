"""Exact expected likelihoods (maxrl_envs.likelihoods) and reference levels (maxrl_envs.references).

Every exact form is checked against an independent computation: adaptive quadrature
(scipy.integrate.quad) on well-conditioned cases, closed forms evaluated in 50-digit
arithmetic (mpmath) in the far tails, and Monte Carlo through the env's own head scoring
(``score_head``), noise draws (``unit_noise``) and ``core.score``, with tolerances of a few
standard errors. All random draws use fixed seeds.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy import integrate, stats

import maxrl_envs
from agents.evaluation import pass_at_k_table
from maxrl_envs.heads import score_head
from maxrl_envs.likelihoods import (
    grid_log_probs_noise,
    log_expected_likelihood_discrete,
    log_expected_likelihood_noise,
    log_expected_likelihood_normal,
    log_expected_likelihood_uniform,
    log_likelihood_head,
    pass_probability_noise,
)
from maxrl_envs.noise import unit_noise
from maxrl_envs.references import (
    best_reference,
    grid_values,
    normalized_score,
    reference_levels,
)

HEADS = ("gaussian", "laplace", "verifier")
SMALL_POOL = {"num_contexts": 8, "num_validation_contexts": 8}


def f64(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def head_density(head: str, s: float, y: float, t: float) -> float:
    """The normalized likelihood l(y, t), written independently of the code under test."""
    d = y - t
    if head == "gaussian":
        return math.exp(-0.5 * (d / s) ** 2) / (s * math.sqrt(2 * math.pi))
    if head == "laplace":
        return math.exp(-abs(d) / s) / (2 * s)
    return 1.0 if abs(d) <= s else 0.0


def quad(fn, lo: float, hi: float, points: list[float]) -> float:
    inner = sorted({p for p in points if lo < p < hi})
    edges = [lo, *inner, hi]
    return sum(
        integrate.quad(fn, a, b, epsabs=0.0, epsrel=1e-10, limit=200)[0]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    )


# -- censored normal ---------------------------------------------------------------------------

# (s, mean, std, y, low, high): interior, atoms dominating on either side, wide and narrow laws,
# a target outside the clip range, head narrower and wider than the law.
NORMAL_CASES = [
    (0.3, 0.1, 0.5, 0.2, -1.0, 1.0),
    (0.3, 5.0, 0.5, 0.2, -1.0, 1.0),
    (0.3, -5.0, 0.5, 0.2, -1.0, 1.0),
    (0.1, 0.0, 40.0, 0.5, -4.0, 4.0),
    (1.0, 0.0, 0.01, 0.01, -4.0, 4.0),
    (0.5, 0.0, 0.3, 3.0, -4.0, 4.0),
    (0.3, 3.0, 0.2, 3.5, -math.inf, math.inf),
    (0.05, 0.0, 30.0, 3.9, -4.0, 4.0),
    (2.0, 1.0, 0.5, 4.5, -4.0, 4.0),
    (0.3, 3.8, 1.0, 4.1, -4.0, 4.0),
]


@pytest.mark.parametrize("head", HEADS)
def test_censored_normal_matches_quadrature(head):
    for s, m, sd, y, lo, hi in NORMAL_CASES:
        got = float(log_expected_likelihood_normal(head, s, f64(y), f64(m), f64(sd), lo, hi))
        a, b = max(lo, m - 40 * sd), min(hi, m + 40 * sd)

        def integrand(t, s=s, m=m, sd=sd, y=y):
            return stats.norm.pdf(t, m, sd) * head_density(head, s, y, t)

        total = quad(integrand, a, b, [y - s, y, y + s, m]) if a < b else 0.0
        if lo > -math.inf:
            total += stats.norm.cdf(lo, m, sd) * head_density(head, s, y, lo)
        if hi < math.inf:
            total += stats.norm.sf(hi, m, sd) * head_density(head, s, y, hi)
        assert got == pytest.approx(math.log(total), abs=1e-9), (head, s, m, sd, y, lo, hi)


def test_censored_normal_far_tails_match_50_digit_closed_forms():
    mp.mp.dps = 50
    # Verifier: only the interval [y - s, high] = [2.5, 4] and the atom at 4 pass; together
    # they are P(a >= 2.5) = Φ(-15).
    got = log_expected_likelihood_normal("verifier", 2.0, f64(4.5), f64(1.0), f64(0.1), -4, 4)
    assert float(got) == pytest.approx(float(mp.log(mp.ncdf(-15))), rel=1e-13)
    # Gaussian head, no clipping, target 1500 standard deviations away: N(y; m, sd² + s²).
    got = log_expected_likelihood_normal("gaussian", 0.3, f64(3.5), f64(300.0), f64(0.2))
    ref = mp.log(mp.npdf(mp.mpf("3.5"), 300, mp.sqrt(mp.mpf("0.2") ** 2 + mp.mpf("0.3") ** 2)))
    assert float(got) == pytest.approx(float(ref), rel=1e-13)
    # Verifier, target 2700 standard deviations away: log(Φ(-2690) - Φ(-2710)).
    got = log_expected_likelihood_normal("verifier", 0.01, f64(3.0), f64(0.3), f64(1e-3), -4, 4)
    ref = mp.log(mp.ncdf(-mp.mpf(2690)) - mp.ncdf(-mp.mpf(2710)))
    assert float(got) == pytest.approx(float(ref), rel=1e-12)
    # Laplace head, law much narrower than the head, far target: E e^{-(y - a)/s} / (2s) with
    # a ~ N(m, sd²) is e^{-(y - m)/s + k²/2} / (2s), k = sd/s (the rest is below e^-3e6).
    got = log_expected_likelihood_normal("laplace", 0.01, f64(3.0), f64(0.3), f64(1e-3), -4, 4)
    ref = -(mp.mpf(3) - mp.mpf("0.3")) / mp.mpf("0.01") + mp.mpf("0.1") ** 2 / 2
    assert float(got) == pytest.approx(float(ref - mp.log(mp.mpf("0.02"))), rel=1e-13)
    # Gaussian noise and head, 10^4 noise scales out: N(y; f, sigma² + s²).
    got = log_expected_likelihood_noise("gaussian", 1.0, f64(1e4), f64(0.0), f64(1.0), "gaussian")
    assert float(got) == pytest.approx(float(mp.log(mp.npdf(1e4, 0, mp.sqrt(2)))), rel=1e-13)
    # Laplace head, no clipping, y 10^4 std to the right: e^{-(y-m)/s + k²/2} Φ((y-m)/sd - k)
    # / (2s) with k = 2 and Φ(...) = 1 - 1e-2e7; e^{k²/2} is formed only inside erfcx.
    got = log_expected_likelihood_normal("laplace", 0.5, f64(1e4), f64(0.0), f64(1.0))
    assert float(got) == pytest.approx(-2e4 + 2.0 - math.log(1.0), rel=1e-13)


def test_laplace_head_with_law_far_wider_than_head_is_finite_and_right():
    # std / s = 1e4: the interior pieces carry e^{k²/2} = e^{5e7} factors that must cancel.
    y = torch.tensor([0.0, 1.0, 30.0], dtype=torch.float64)
    got = log_expected_likelihood_normal("laplace", 1e-3, y, f64(0.0), f64(10.0))
    # E N(y + u; 0, σ²) over the head's u (moments E u² = 2s², E u⁴ = 24s⁴) is
    # N(y)(1 + s² He2(z)/σ² + s⁴ He4(z)/σ⁴ + O(s⁶/σ⁶)), z = y/σ.
    s, sd = 1e-3, 10.0
    z = y / sd
    series = 1 + s**2 * (z**2 - 1) / sd**2 + s**4 * (z**4 - 6 * z**2 + 3) / sd**4
    ref = -0.5 * z**2 - math.log(sd * math.sqrt(2 * math.pi)) + series.log()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("head", HEADS)
def test_censored_normal_matches_monte_carlo_of_score_head(head):
    # Heavy clipping: 31% of the mass sits in the atom at high = 4, and y = 3.9 sees it.
    gen = torch.Generator().manual_seed(0)
    m, sd, s, lo, hi, n = 3.0, 2.0, 0.5, -4.0, 4.0, 400_000
    for y in (3.9, 0.0, -3.0):
        draws = (m + sd * torch.randn(n, generator=gen, dtype=torch.float64)).clamp(lo, hi)
        out = score_head(head, s, torch.tensor(y, dtype=torch.float64), draws)
        values = out.is_success.double() if head == "verifier" else out.log_likelihood.exp()
        mc, se = values.mean().item(), values.std().item() / math.sqrt(n)
        exact = log_expected_likelihood_normal(head, s, f64(y), f64(m), f64(sd), lo, hi).exp()
        assert abs(exact.item() - mc) < 5 * se, (head, y, exact.item(), mc, se)


@pytest.mark.parametrize("head", HEADS)
def test_zero_and_tiny_std_are_the_deterministic_limit(head):
    # Means inside, on and outside the clip range; targets away from the verifier boundary.
    mean = torch.tensor([0.2, 4.0, 7.0, -9.0, 1.0], dtype=torch.float64)
    y = torch.tensor([0.3, 3.8, 3.9, -3.6, 2.0], dtype=torch.float64)
    point = log_likelihood_head(head, 0.5, y, mean.clamp(-4.0, 4.0))
    assert (point[-1] == -math.inf) == (head == "verifier")  # a verifier miss
    zero = log_expected_likelihood_normal(head, 0.5, y, mean, torch.zeros(5), -4.0, 4.0)
    torch.testing.assert_close(zero, point, atol=0, rtol=0)
    for std, tol in [(1e-9, 1e-7), (1e-4, 1e-3)]:
        near = log_expected_likelihood_normal(head, 0.5, y, mean, torch.full((5,), std), -4, 4)
        torch.testing.assert_close(near[:4], point[:4], atol=tol, rtol=0)
        if head == "verifier":  # the miss is a normal tail at 5e3 (or 5e8) std: log p ~ -z²/2
            assert -math.inf < near[4] < -1e7
        else:
            torch.testing.assert_close(near[4], point[4], atol=tol, rtol=0)
    # The random branch really ran: std = 1e-4 moves the Gaussian and Laplace heads.
    if head != "verifier":
        near = log_expected_likelihood_normal(head, 0.5, y, mean, torch.full((5,), 1e-4), -4, 4)
        assert (near - point).abs().max() > 1e-9


def test_verifier_is_minus_inf_only_when_the_support_misses():
    y = torch.tensor([4.6, 4.4, -5.0], dtype=torch.float64)
    out = log_expected_likelihood_normal("verifier", 0.5, y, f64(0.0), f64(1.0), -4.0, 4.0)
    assert out[0] == -math.inf  # |y| > R + s: no clipped prediction can pass
    assert math.isfinite(out[1]) and out[1] < 0  # the atom at 4 passes
    assert out[2] == -math.inf
    assert (out <= 0).all()


# -- uniform and discrete ----------------------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_uniform_matches_quadrature(head):
    for s, y, lo, hi in [
        (0.3, 0.5, -4, 4),
        (0.3, 4.1, -4, 4),
        (1.0, -30.0, -4, 4),
        (2.0, 0, -1, 1),
    ]:
        got = float(log_expected_likelihood_uniform(head, s, f64(y), lo, hi))
        total = quad(lambda t, s=s, y=y: head_density(head, s, y, t), lo, hi, [y - s, y, y + s])
        ref = math.log(total / (hi - lo)) if total > 0 else -math.inf
        if head != "verifier" and y == -30.0:
            ref = {  # quad underflows this far out; use the closed CDF forms in 50 digits
                "gaussian": float(mp.log((mp.ncdf(-26 / s) - mp.ncdf(-34 / s)) / 8)),
                "laplace": float(mp.log((mp.exp(-26 / s) - mp.exp(-34 / s)) / 16)),
            }[head]
        assert got == pytest.approx(ref, abs=1e-10), (head, s, y)
    # Closed form of the verifier: |[y - s, y + s] ∩ [low, high]| / (high - low).
    got = log_expected_likelihood_uniform("verifier", 0.5, f64(3.8), -4.0, 4.0)
    assert float(got) == pytest.approx(math.log(0.7 / 8.0), rel=1e-14)
    # A zero-width interval is the point mass.
    got = log_expected_likelihood_uniform("gaussian", 0.5, f64(1.0), 0.25, 0.25)
    assert float(got) == pytest.approx(stats.norm.logpdf(0.75, scale=0.5), rel=1e-14)


@pytest.mark.parametrize("head", HEADS)
def test_discrete_matches_enumeration(head):
    gen = torch.Generator().manual_seed(1)
    values = torch.linspace(-4, 4, 9, dtype=torch.float64)
    log_probs = torch.log_softmax(torch.randn(5, 9, generator=gen, dtype=torch.float64), -1)
    y = torch.tensor([0.1, 3.9, -2.2, 10.0, 0.55], dtype=torch.float64)
    got = log_expected_likelihood_discrete(head, 0.3, y, values, log_probs)
    for i in range(5):
        p = sum(
            log_probs[i, k].exp().item() * head_density(head, 0.3, y[i].item(), values[k].item())
            for k in range(9)
        )
        assert got[i].item() == pytest.approx(math.log(p) if p > 0 else -math.inf, rel=1e-12)
    if head == "verifier":
        assert got[3] == -math.inf  # every value misses y = 10
        assert math.isfinite(got[1])  # the value 4 passes
    else:
        assert torch.isfinite(got).all()


# -- the Bayes sampler -------------------------------------------------------------------------

NOISE_CASES = [  # (s, y, f, sigma)
    (0.3, 0.2, 0.0, 0.3),
    (0.3, 5.0, 0.0, 0.3),
    (0.01, 0.5, 0.0, 1.0),
    (1.0, 0.1, 0.0, 0.01),
    (1e-4, 0.0, 0.0, 1.0),
    (0.1, 30.0, 1.0, 0.5),
]


def noise_density(noise: str, x: float, sigma: float, df: float) -> float:
    """Density of sigma * ε for the unit-variance families, written out (fast under quad)."""
    if noise == "gaussian":
        return math.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    if noise == "laplace":
        b = sigma / math.sqrt(2)
        return math.exp(-abs(x) / b) / (2 * b)
    w = sigma * math.sqrt((df - 2) / df)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p((x / w) ** 2 / df)) / w


def test_noise_densities_of_the_reference_are_scipys():
    for x in (-3.0, 0.1, 7.0):
        assert noise_density("gaussian", x, 2.0, 3) == pytest.approx(stats.norm.pdf(x, scale=2))
        b = 2 / math.sqrt(2)
        assert noise_density("laplace", x, 2.0, 3) == pytest.approx(stats.laplace.pdf(x, scale=b))
        w = 2 * math.sqrt(1 / 3)
        assert noise_density("student-t", x, 2.0, 3) == pytest.approx(stats.t.pdf(x, 3, scale=w))


# quad warns on the heavy Student-t tails (slow convergence) but meets the 1e-8 tolerance.
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize(
    ("noise", "df"),
    [
        ("gaussian", 3.0),
        ("laplace", 3.0),
        ("student-t", 2.05),
        ("student-t", 3.0),
        ("student-t", 30.0),
    ],
)
@pytest.mark.parametrize("head", HEADS)
def test_noise_matches_quadrature(head, noise, df):
    for s, y, f, sigma in NOISE_CASES:
        got = float(log_expected_likelihood_noise(head, s, f64(y), f64(f), f64(sigma), noise, df))

        def integrand(t, s=s, y=y, f=f, sigma=sigma):
            return noise_density(noise, t - f, sigma, df) * head_density(head, s, y, t)

        if head == "verifier":
            total = quad(integrand, y - s, y + s, [f])
        else:
            width = 60 * s
            points = [y - width, y - s, y, y + s, y + width, f - 30 * sigma, f, f + 30 * sigma]
            total = quad(integrand, -math.inf, math.inf, points)
        if total == 0.0:  # below 1e-308 (Gaussian noise 58σ out): closed forms in 50 digits
            assert noise == "gaussian" and head != "laplace"
            mp.mp.dps = 50
            y_, f_, s_, sd_ = (mp.mpf(str(v)) for v in (y, f, s, sigma))
            if head == "gaussian":
                total = mp.npdf(y_, f_, mp.sqrt(sd_**2 + s_**2))
            else:
                total = mp.ncdf((f_ - y_ + s_) / sd_) - mp.ncdf((f_ - y_ - s_) / sd_)
        assert got == pytest.approx(float(mp.log(total)), abs=1e-8), (s, y, f, sigma)


@pytest.mark.parametrize("df", [2.5, 3.0, 300.0, 1e5])
def test_student_t_far_tails_and_pass_probability(df):
    # Up to 10^4 noise scales out with a head of width 1e-6: p is the t density at y up to a
    # relative s² (log q)'' / 2 < 1e-9.
    scale = math.sqrt((df - 2) / df)
    y = torch.tensor([1e4, -3e3, 50.0, 0.3], dtype=torch.float64)
    density = torch.as_tensor(stats.t.logpdf(y.numpy(), df, scale=scale))
    got = log_expected_likelihood_noise("gaussian", 1e-6, y, f64(0.0), f64(1.0), "student-t", df)
    torch.testing.assert_close(got, density, atol=1e-8, rtol=0)
    # The verifier through the mixture quadrature vs scipy's Student-t CDF.
    for s, yy, sigma in [(0.3, 0.2, 0.3), (0.3, 5.0, 0.3), (1e-3, 0.5, 1.0), (2.0, 40.0, 1.0)]:
        quad_p = log_expected_likelihood_noise(
            "verifier", s, f64(yy), f64(0.0), f64(sigma), "student-t", df
        )
        cdf_p = pass_probability_noise(s, f64(yy), f64(0.0), f64(sigma), "student-t", df)
        assert quad_p.exp().item() == pytest.approx(cdf_p.item(), rel=1e-9)


@pytest.mark.parametrize("noise", ["gaussian", "laplace", "student-t"])
def test_noise_conventions_match_monte_carlo_of_the_env_noise(noise):
    # Draw the env's own unit-variance noise and score it with the env's heads.
    rng = np.random.default_rng(5)
    n, s, f, sigma = 400_000, 0.4, 0.3, 0.5
    draws = torch.as_tensor(f + sigma * unit_noise(noise, n, rng, 3.0))
    for head in HEADS:
        for y in (0.35, 1.6):
            out = score_head(head, s, torch.tensor(y, dtype=torch.float64), draws)
            vals = out.is_success.double() if head == "verifier" else out.log_likelihood.exp()
            mc, se = vals.mean().item(), vals.std().item() / math.sqrt(n)
            exact = log_expected_likelihood_noise(head, s, f64(y), f64(f), f64(sigma), noise, 3.0)
            assert abs(exact.exp().item() - mc) < 5 * se, (head, y, exact.exp().item(), mc)
            if head == "verifier":
                p = pass_probability_noise(s, f64(y), f64(f), f64(sigma), noise, 3.0)
                assert p.item() == pytest.approx(exact.exp().item(), rel=1e-9)


def test_zero_sigma_is_the_point_predictor():
    y = torch.tensor([0.1, 0.9], dtype=torch.float64)
    for noise in ("gaussian", "laplace", "student-t"):
        for head in HEADS:
            got = log_expected_likelihood_noise(head, 0.5, y, f64(0.0), torch.zeros(2), noise)
            torch.testing.assert_close(got, log_likelihood_head(head, 0.5, y, 0.0))
        p = pass_probability_noise(0.5, y, f64(0.0), torch.zeros(2), noise)
        assert p.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("noise", ["gaussian", "laplace", "student-t"])
def test_grid_law_matches_snapped_draws(noise):
    codec = maxrl_envs.TokenCodec(num_digits=1, base=9, prediction_range=2.0)
    grid = grid_values(codec).double()
    f = torch.tensor([0.1, 1.7, -2.5], dtype=torch.float64)
    sigma = torch.tensor([0.6, 0.2, 1.0], dtype=torch.float64)
    law = grid_log_probs_noise(grid, f, sigma, noise, 3.0)
    torch.testing.assert_close(torch.logsumexp(law, -1), torch.zeros(3, dtype=torch.float64))
    rng = np.random.default_rng(2)
    n = 200_000
    for i in range(3):
        draws = torch.as_tensor(f[i].item() + sigma[i].item() * unit_noise(noise, n, rng, 3.0))
        counts = torch.bincount(codec.encode(draws.float())[:, 0], minlength=9).double() / n
        se = (law[i].exp() * (1 - law[i].exp()) / n).sqrt()
        assert ((counts - law[i].exp()).abs() <= 5 * se + 1e-12).all(), (i, counts, law[i].exp())


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="head"):
        log_expected_likelihood_normal("cauchy", 1.0, f64(0.0), f64(0.0), f64(1.0))
    with pytest.raises(ValueError, match="std"):
        log_expected_likelihood_normal("gaussian", 1.0, f64(0.0), f64(0.0), f64(-1.0))
    with pytest.raises(ValueError, match="student_df"):
        log_expected_likelihood_noise("gaussian", 1.0, f64(0.0), f64(0.0), f64(1.0), "student-t", 2)
    with pytest.raises(ValueError, match="noise"):
        pass_probability_noise(1.0, f64(0.0), f64(0.0), f64(1.0), "cauchy")


# -- reference levels --------------------------------------------------------------------------


def test_classification_random_reference_is_uniform_closed_form():
    task = maxrl_envs.make_task(
        "MaxRLClassification-v0",
        task="teacher-mlp",
        num_classes=7,
        num_test_contexts=64,
        **SMALL_POOL,
    )
    levels = reference_levels(task.core, pass_k=5)
    assert levels["random"] == pytest.approx(
        {
            "eval/log_likelihood": -math.log(7),
            "eval/pass@1": 1 / 7,
            "eval/pass@5": 1 - (6 / 7) ** 5,
        },
        rel=1e-12,
    )
    assert levels["bayes_point"] == {
        "eval/log_likelihood": 0.0,
        "eval/pass@1": 1.0,
        "eval/pass@5": 1.0,
    }
    assert levels["bayes_sampler"] == levels["bayes_point"]


def test_classification_label_noise_references():
    eps, k = 0.3, 5
    task = maxrl_envs.make_task(
        "MaxRLClassification-v0",
        task="teacher-mlp",
        num_classes=k,
        label_noise=eps,
        num_test_contexts=512,
        **SMALL_POOL,
    )
    core = task.core
    ctx = core.all_contexts("test")
    levels = reference_levels(core, pass_k=4)
    hit = core.score(ctx, ctx.signal).is_success[:, 0].double()
    assert 0.6 < hit.mean() < 0.8  # label noise flipped about eps of the labels
    assert levels["bayes_point"]["eval/log_likelihood"] == -math.inf
    assert levels["bayes_point"]["eval/pass@1"] == pytest.approx(hit.mean().item(), rel=1e-12)
    p = torch.where(hit > 0, torch.full_like(hit, 1 - eps), torch.full_like(hit, eps / (k - 1)))
    sampler = levels["bayes_sampler"]
    assert sampler["eval/log_likelihood"] == pytest.approx(p.log().mean().item(), rel=1e-12)
    assert sampler["eval/pass@4"] == pytest.approx((1 - (1 - p) ** 4).mean().item(), rel=1e-12)
    # Monte Carlo through core.score: the sampler's classes, scored by the env.
    gen = torch.Generator().manual_seed(0)
    m = 256
    flip = torch.rand(ctx.ids.shape[0], m, generator=gen) < eps
    shift = torch.randint(1, k, (ctx.ids.shape[0], m), generator=gen)
    classes = torch.where(flip, (ctx.signal.unsqueeze(1) + shift) % k, ctx.signal.unsqueeze(1))
    success = core.score(ctx, classes).is_success.double()
    se = math.sqrt((p * (1 - p)).mean().item() / m / ctx.ids.shape[0])
    assert abs(success.mean().item() - sampler["eval/pass@1"]) < 5 * se


def monte_carlo_check(core, ctx, predictions, exact: dict, k: int) -> None:
    """Score [B, M] predictions with core.score and compare with exact per-context levels.

    ``exact`` holds per-context ``p`` and ``p1`` (likelihood and pass probability) and the
    reference's mean ``pass@k``.
    """
    scores = core.score(ctx, predictions.float())
    lik = scores.log_likelihood.double().exp()
    if core.head == "verifier":
        lik = scores.is_success.double()
    p_hat = lik.mean(1)
    p_exact = torch.as_tensor(exact["p"])
    # The mean over contexts of p-hat - p has standard error sqrt(Σ var / M) / B.
    se = (lik.var(1) / lik.shape[1]).mean().sqrt().item() / math.sqrt(lik.shape[0])
    assert abs((p_hat - p_exact).mean().item()) < 5 * se + 1e-12
    # pass@1 from the same draws, and the unbiased pass@k of agents.evaluation.
    success = scores.is_success.double()
    p1 = torch.as_tensor(exact["p1"])
    se1 = math.sqrt((p1 * (1 - p1)).mean().item() / success.shape[1] / success.shape[0])
    assert abs(success.mean().item() - p1.mean().item()) < 5 * se1 + 1e-12
    pass_k = pass_at_k_table(predictions.shape[1], k)[scores.is_success.sum(1)]
    # Delta method: Var(pass@k estimate) ~ (k (1 - p1)^(k-1))² p1 (1 - p1) / M per context.
    var = (k * (1 - p1) ** (k - 1)) ** 2 * p1 * (1 - p1) / success.shape[1]
    se_k = math.sqrt(var.mean().item() / success.shape[0])
    assert abs(pass_k.mean().item() - exact["pass@k"]) < 5 * se_k + 1e-12


@pytest.mark.parametrize("head", HEADS)
def test_box_references_match_monte_carlo_with_core_score(head):
    # Student-t noise (3 d.o.f.) with heteroscedastic scales, scored by each head.
    task = maxrl_envs.make_task(
        "MaxRLRegressionHeavyTail-v0",
        head=head,
        heteroscedastic=1.0,
        num_test_contexts=256,
        **SMALL_POOL,
    )
    core = task.core
    ctx = core.all_contexts("test")
    y, f, sigma = (t.double() for t in (ctx.target, ctx.signal, ctx.noise_scale))
    r, s, k = core.prediction_range, core.head_scale, 8
    levels = reference_levels(core, pass_k=k)
    gen = torch.Generator().manual_seed(3)
    b, m = ctx.ids.shape[0], 1024
    # random: Uniform[-R, R]
    p = log_expected_likelihood_uniform(head, s, y, -r, r).exp()
    p1 = log_expected_likelihood_uniform("verifier", s, y, -r, r).exp()
    uniform = (2 * torch.rand(b, m, generator=gen, dtype=torch.float64) - 1) * r
    exact = {"p": p, "p1": p1, "pass@k": levels["random"][f"eval/pass@{k}"]}
    monte_carlo_check(core, ctx, uniform, exact, k)
    assert levels["random"]["eval/log_likelihood"] == pytest.approx(p.log().mean().item())
    # bayes_sampler: f + sigma * eps, the env's Student-t noise
    rng = np.random.default_rng(4)
    eps = torch.as_tensor(unit_noise(core.noise, b * m, rng, core.student_df)).reshape(b, m)
    draws = f.unsqueeze(1) + sigma.unsqueeze(1) * eps
    p = log_expected_likelihood_noise(head, s, y, f, sigma, core.noise, core.student_df).exp()
    p1 = pass_probability_noise(s, y, f, sigma, core.noise, core.student_df)
    sampler = levels["bayes_sampler"]
    exact = {"p": p, "p1": p1, "pass@k": sampler[f"eval/pass@{k}"]}
    monte_carlo_check(core, ctx, draws, exact, k)
    # bayes_point: exactly what the env scores for f(x)
    point = core.score(ctx, ctx.signal)
    expected = point.log_likelihood.double().mean().item()
    if head == "verifier":
        expected = -math.inf if not point.is_success.all() else 0.0
    assert levels["bayes_point"]["eval/log_likelihood"] == pytest.approx(expected, rel=1e-6)
    assert levels["bayes_point"]["eval/pass@1"] == point.is_success.double().mean().item()
    assert levels["bayes_point"]["eval/excess_mse"] == 0.0
    assert levels["random"]["eval/excess_mse"] == pytest.approx(f.square().mean().item())


@pytest.mark.parametrize("head", ["gaussian", "verifier"])
def test_token_references_match_enumeration_and_snapped_draws(head):
    task = maxrl_envs.make_task(
        "MaxRLTokens-v0",
        task="teacher-mlp",
        snr=0.5,
        head=head,
        num_digits=2,
        base=6,
        num_test_contexts=128,
        **SMALL_POOL,
    )
    core, codec, k = task.core, task.codec, 4
    ctx = core.all_contexts("test")
    levels = reference_levels(core, pass_k=k, codec=codec)
    grid = grid_values(codec)
    b, size = ctx.ids.shape[0], grid.numel()
    # random: every grid value, equally likely, scored by the env
    scores = core.score(ctx, grid.expand(b, size))
    log_terms = scores.log_reward if head == "verifier" else scores.log_likelihood
    log_p = torch.logsumexp(log_terms.double(), 1) - math.log(size)
    assert levels["random"]["eval/log_likelihood"] == pytest.approx(log_p.mean().item(), rel=1e-6)
    p1 = scores.is_success.double().mean(1)
    assert levels["random"]["eval/pass@1"] == pytest.approx(p1.mean().item(), rel=1e-12)
    # bayes_point: the snapped signal
    snapped = codec.decode(codec.encode(ctx.signal))
    point = core.score(ctx, snapped)
    assert levels["bayes_point"]["eval/pass@1"] == point.is_success.double().mean().item()
    excess = (snapped.double() - ctx.signal.double()).square().mean().item()
    assert levels["bayes_point"]["eval/excess_mse"] == pytest.approx(excess, rel=1e-6)
    step = 2 * core.prediction_range / (codec.levels - 1)
    assert 0 < excess <= (step / 2) ** 2
    # bayes_sampler: snapped draws of f + sigma * eps
    rng = np.random.default_rng(6)
    m = 1024
    eps = torch.as_tensor(unit_noise(core.noise, b * m, rng, 3.0)).reshape(b, m)
    draws = ctx.signal.double().unsqueeze(1) + ctx.noise_scale.double().unsqueeze(1) * eps
    draws = codec.decode(codec.encode(draws.float()))
    law = grid_log_probs_noise(grid.double(), ctx.signal, ctx.noise_scale, core.noise)
    p = log_expected_likelihood_discrete(head, core.head_scale, ctx.target, grid, law).exp()
    p1 = log_expected_likelihood_discrete("verifier", core.head_scale, ctx.target, grid, law).exp()
    sampler = levels["bayes_sampler"]
    assert sampler["eval/log_likelihood"] == pytest.approx(p.log().mean().item(), rel=1e-12)
    exact = {"p": p, "p1": p1, "pass@k": sampler[f"eval/pass@{k}"]}
    monte_carlo_check(core, ctx, draws, exact, k)


def test_point_wins_log_likelihood_and_sampler_wins_pass_at_k():
    # Gaussian head as wide as Gaussian noise (the default head_scale): the point predictor is
    # the log-likelihood optimum; the sampler spreads its draws and wins pass@16.
    task = maxrl_envs.make_task("MaxRLRegression-v0", num_test_contexts=512, **SMALL_POOL)
    levels = reference_levels(task.core, pass_k=16)
    point, sampler = levels["bayes_point"], levels["bayes_sampler"]
    # Per context E log N(y; f, s²) = -1/2 - log(s√2π) vs E log N(y; f, 2s²) = -1/4 - ...:
    # an expected gap of 1/4 - log(2)/2 = 0.097 nats.
    gap = point["eval/log_likelihood"] - sampler["eval/log_likelihood"]
    assert 0.06 < gap < 0.13
    assert sampler["eval/pass@16"] > point["eval/pass@16"] + 0.2
    assert point["eval/pass@1"] > sampler["eval/pass@1"]
    assert best_reference("eval/log_likelihood", levels) == point["eval/log_likelihood"]
    assert best_reference("eval/pass@16", levels) == sampler["eval/pass@16"]
    assert best_reference("eval/excess_mse", levels) == 0.0
    assert levels["random"]["eval/log_likelihood"] < point["eval/log_likelihood"] - 1.0


def test_normalized_score():
    def score(metric: str, value: float, random: float, bayes: float) -> float:
        levels = {"random": {metric: random}, "bayes_point": {metric: bayes}}
        return normalized_score(metric, value, levels)

    ll, mse = "eval/log_likelihood", "eval/excess_mse"
    assert score(ll, -1.0, -3.0, -1.0) == 1.0
    assert score(ll, -3.0, -3.0, -1.0) == 0.0
    assert score(ll, -2.5, -3.0, -1.0) == pytest.approx(0.25)
    assert score(mse, 0.02, 1.0, 0.0) == pytest.approx(0.98)  # lower-is-better metrics
    assert math.isnan(score(ll, 0.5, 0.5, 0.5))
    assert math.isnan(score(ll, 0.5, -math.inf, 0.0))
    assert math.isnan(score(ll, 0.5, 0.0, math.inf))


def test_reference_levels_rejects_bad_arguments():
    task = maxrl_envs.make_task("MaxRLRegression-v0", num_test_contexts=8, **SMALL_POOL)
    with pytest.raises(ValueError, match="pass_k"):
        reference_levels(task.core, pass_k=0)
    levels = reference_levels(task.core, split="validation", pass_k=3)
    assert set(levels) == {"random", "bayes_point", "bayes_sampler"}
    assert set(levels["random"]) == {
        "eval/log_likelihood",
        "eval/excess_mse",
        "eval/pass@1",
        "eval/pass@3",
    }


def _squashed(head: str, s: float, y: float, mean: float, std: float, scale: float):
    """log_expected_likelihood_squashed at one float64 context."""
    from maxrl_envs.likelihoods import log_expected_likelihood_squashed

    f64 = torch.float64
    return log_expected_likelihood_squashed(
        head, s, *(torch.tensor([v], dtype=f64) for v in (y, mean, std)), scale
    )


@pytest.mark.parametrize("head", ["gaussian", "laplace", "verifier"])
@pytest.mark.parametrize(
    "mean, std, s, y",
    [(0.1, 0.3, 1.0, 0.5), (2.0, 1.5, 0.3, 3.99), (-0.3, 0.05, 3.0, -2.0), (1.0, 0.5, 1.0, 4.5)],
)
def test_squashed_normal_matches_adaptive_quadrature(head, mean, std, s, y):
    from scipy import integrate
    from scipy.stats import norm

    scale = 4.0

    def likelihood(prediction: float) -> float:
        d = y - prediction
        if head == "gaussian":
            return math.exp(-0.5 * (d / s) ** 2) / (s * math.sqrt(2 * math.pi))
        if head == "laplace":
            return math.exp(-abs(d) / s) / (2 * s)
        return float(abs(d) <= s)

    def integrand(u: float) -> float:
        return likelihood(scale * math.tanh(u)) * norm.pdf(u, mean, std)

    lo, hi = mean - 14 * std, mean + 14 * std
    breaks = [math.atanh(max(-0.999999, min(0.999999, v / scale))) for v in (y - s, y, y + s)]
    inside = sorted(b for b in breaks if lo < b < hi)
    reference, _ = integrate.quad(integrand, lo, hi, points=inside or None, limit=400)
    got = _squashed(head, s, y, mean, std, scale)
    assert float(got[0]) == pytest.approx(math.log(reference), rel=1e-7, abs=1e-7)
    # std -> 0 is the deterministic prediction scale * tanh(mean)
    point = _squashed(head, s, y, mean, 0.0, scale)
    expected = likelihood(scale * math.tanh(mean))
    if expected > 0:
        assert float(point[0]) == pytest.approx(math.log(expected), rel=1e-9)
    else:
        assert float(point[0]) == -math.inf


@pytest.mark.parametrize("head", ["gaussian", "laplace"])
@pytest.mark.parametrize(
    "mean, std, s, y, scale",
    [
        (30.0, 0.1, 0.1, 0.0, 1.0),  # saturated at +scale (tanh(u) = 1 in float64), far target
        (30.0, 0.1, 0.1, 0.99, 1.0),  # saturated, target near the edge
        (0.0, 0.01, 0.01, 0.9, 1.0),  # confident and wrong: the two windows are disjoint
        (2.0, 0.05, 0.001, -0.5, 1.0),  # disjoint, narrow head
        (-25.0, 1.0, 0.3, 0.5, 2.0),  # saturated at -scale
        (40.0, 0.5, 0.05, -1.5, 2.0),
    ],
)
def test_squashed_normal_far_and_saturated_cases_are_finite_and_exact(head, mean, std, s, y, scale):
    """Disjoint windows and saturated means used to give -inf; a fine Riemann sum in log
    space over the whole region where the integrand lives is the reference."""
    from scipy.special import logsumexp

    lo, hi = min(mean - 14 * std, -3.0), max(mean + 14 * std, 3.0)
    u = np.linspace(lo, hi, 4_000_001)
    d = y - scale * np.tanh(u)
    if head == "gaussian":
        log_l = -0.5 * (d / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
    else:
        log_l = -np.abs(d) / s - math.log(2 * s)
    log_density = -0.5 * ((u - mean) / std) ** 2 - math.log(std * math.sqrt(2 * math.pi))
    reference = float(logsumexp(log_density + log_l) + math.log(u[1] - u[0]))
    got = _squashed(head, s, y, mean, std, scale)
    assert math.isfinite(float(got[0]))
    assert float(got[0]) == pytest.approx(reference, rel=1e-6, abs=1e-6)


def test_register_head_rejects_bad_entries_and_unknown_heads_are_named():
    from maxrl_envs.heads import HEADS, VERIFIER, Head, get_head, register_head

    def score(error, s, ok):
        return error, error

    with pytest.raises(ValueError, match="head='verifier' is already registered"):
        register_head(Head("verifier", score, VERIFIER.log_density))
    assert register_head(VERIFIER) is VERIFIER  # the same entry again: no change
    with pytest.raises(ValueError, match="log_density=None must be callable"):
        register_head(Head("bad", score, None))
    with pytest.raises(ValueError, match="support=0 must be > 0"):
        register_head(Head("bad", score, VERIFIER.log_density, support=0))
    with pytest.raises(ValueError, match="squashed_window=-1.0 must be None or a finite"):
        register_head(Head("bad", score, VERIFIER.log_density, squashed_window=-1.0))
    assert "bad" not in HEADS
    with pytest.raises(ValueError, match="head='cauchy' is not supported; allowed: 'gaussian'"):
        get_head("cauchy")
    with pytest.raises(ValueError, match="head='cauchy' is not supported"):
        maxrl_envs.make_task("MaxRLRegression-v0", head="cauchy")
