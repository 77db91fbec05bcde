"""Float64 log-space primitives shared by the likelihood heads and the exact likelihoods.

Normal CDFs enter as ``log_ndtr``, differences of CDFs as log(e^a - e^b) =
a + log(1 - e^(b - a)), and Gaussian-times-exponential integrals through the scaled
complementary error function ``erfcx``, so that no exp(+large) is ever formed. The
``*_grad`` variants return the same values and are safe under autograd (no 0 * inf = NaN).
"""

from __future__ import annotations

import math
from typing import Any

import torch

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
SQRT2 = math.sqrt(2.0)
LN2 = math.log(2.0)
INF = math.inf


def float64_device(*values: Any) -> torch.device:
    """The device float64 work runs on: the first tensor's, the CPU for MPS (no float64)."""
    for value in values:
        if isinstance(value, torch.Tensor):
            return torch.device("cpu") if value.device.type == "mps" else value.device
    return torch.device("cpu")


def f64(*values: Any) -> list[torch.Tensor]:
    """Float64 tensors on one device, broadcast against each other."""
    device = float64_device(*values)
    tensors = [torch.as_tensor(v, dtype=torch.float64).to(device) for v in values]
    return list(torch.broadcast_tensors(*tensors))


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - e^x) for x <= 0, accurate everywhere (-inf at x = 0, 0 at x = -inf)."""
    return torch.where(x > -LN2, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_sub(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(e^a - e^b) for a >= b (-inf where a = b, a where b = -inf)."""
    diff = torch.where(torch.isneginf(b), torch.full_like(b, -INF), b - a)
    out = a + log1mexp(diff.clamp(max=0.0))
    return torch.where(torch.isneginf(a), a, out)


def log_ndtr_diff(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """log(Φ(hi) - Φ(lo)) for lo <= hi (standard normal CDF Φ), -inf where lo >= hi.

    Both ends positive are reflected (Φ(hi) - Φ(lo) = Φ(-lo) - Φ(-hi)) so the difference is
    always taken on the left tail, where ``log_ndtr`` keeps full relative precision; an
    interval containing 0 is 0.5 (erf(hi/√2) + erf(-lo/√2)), a sum of two positive terms.
    Relative error ~1e-16 (1 + |lo|) / (hi - lo), i.e. ~1e-15 unless the interval is
    narrower than ~1e-3 standard deviations.
    """
    flip = lo > 0
    a = torch.where(flip, -hi, lo)
    b = torch.where(flip, -lo, hi)
    tail = log_sub(torch.special.log_ndtr(b), torch.special.log_ndtr(a))
    straddle = torch.log(0.5 * (torch.special.erf(b / SQRT2) + torch.special.erf(-a / SQRT2)))
    out = torch.where(b <= 0, tail, straddle)
    return torch.where(lo >= hi, torch.full_like(out, -INF), out)


def log_ndtr_diff_grad(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """log(Φ(hi) - Φ(lo)) for lo < hi (either may be infinite), safe under autograd.

    The value is that of ``log_ndtr_diff`` (left tail after reflection, erf sum across 0),
    but every branch is evaluated on inputs that keep it and its derivative finite (a branch
    a row does not take sees a harmless stand-in), so no 0 * inf = NaN reaches the gradient.
    """
    flip = lo > 0
    a = torch.where(flip, -hi, lo)
    b = torch.where(flip, -lo, hi)
    tail = b <= 0
    b_t = torch.where(tail, b, torch.full_like(b, -1.0))
    finite_a = tail & torch.isfinite(a)
    a_t = torch.where(finite_a, a, b_t - 1.0)
    log_b = torch.special.log_ndtr(b_t)
    rest = log1mexp(torch.special.log_ndtr(a_t) - log_b)
    tail_value = log_b + torch.where(finite_a, rest, torch.zeros_like(rest))
    a_s = torch.where(tail, torch.full_like(a, -1.0), a)
    b_s = torch.where(tail, torch.ones_like(b), b)
    straddle = torch.log(0.5 * (torch.special.erf(b_s / SQRT2) - torch.special.erf(a_s / SQRT2)))
    return torch.where(tail, tail_value, straddle)


def masked(value: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """``value`` with -inf where ``empty``."""
    return torch.where(empty, torch.full_like(value, -math.inf), value)


def log_laplace_cdf_diff(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """log(F(hi) - F(lo)) for the standard Laplace CDF F (scale 1), -inf where lo >= hi.

    F(u) = e^u / 2 for u < 0 and 1 - e^-u / 2 otherwise; the same reflection as
    ``log_ndtr_diff`` keeps every case free of cancellation except a narrow interval.
    """
    flip = lo > 0
    a = torch.where(flip, -hi, lo)
    b = torch.where(flip, -lo, hi)
    tail = b - LN2 + log1mexp((a - b).clamp(max=0.0))
    straddle = torch.log(0.5 * (-torch.expm1(a.clamp(max=0.0)) - torch.expm1(-b.clamp(min=0.0))))
    out = torch.where(b <= 0, tail, straddle)
    return torch.where(lo >= hi, torch.full_like(out, -INF), out)


def _log_gauss_exp_cdf(k: torch.Tensor, zy: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Log ∫_{-inf}^{z} φ(u) e^{k (u - zy)} du for k > 0 and z <= zy, with no overflow.

    The integral is e^{k²/2 - k zy} Φ(z - k). For z < k, Φ(z - k) = erfcx((k - z)/√2)
    e^{-(k - z)²/2} / 2 and the exponents combine into -k (zy - z) - z²/2; otherwise the
    exponent is -k (zy - k) - k²/2. Either way every term is <= 0.
    """
    left = z < k
    gap = torch.where(left, k - z, torch.zeros_like(z))
    low = -k * (zy - z) - 0.5 * z.square() + torch.log(0.5 * torch.special.erfcx(gap / SQRT2))
    high = -k * (zy - k) - 0.5 * k.square() + torch.special.log_ndtr(z - k)
    out = torch.where(left, low, high)
    return torch.where(torch.isneginf(z), torch.full_like(out, -INF), out)


def log_gauss_exp_integral(
    k: torch.Tensor, zy: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    """Log ∫_{lo}^{min(hi, zy)} φ(u) e^{k (u - zy)} du (k > 0); -inf for an empty range."""
    top = torch.minimum(hi, zy)
    out = log_sub(_log_gauss_exp_cdf(k, zy, top), _log_gauss_exp_cdf(k, zy, lo))
    return torch.where(lo >= top, torch.full_like(out, -INF), out)
