"""Group gradient estimators: per-rollout weights for MaxRL and its peers.

Every estimator is a pure function of a ``[B, N]`` tensor (B contexts, N rollouts each) of
rewards or likelihoods and returns per-rollout weights ``A`` of the same shape, dtype and device,
computed without gradient: the input may require grad (likelihoods from a differentiable head,
say); it is read through a detached view and never modified, and ``A`` never requires grad. The
policy-gradient estimate for one context is

    g = (1/N) * sum_j A_j * grad log m(z_j | x),

averaged over contexts, so a trainer only needs ``loss = -(A.detach() * log_prob).mean()``.
The estimators know nothing about environments, policies or logging.

Names (see :data:`ESTIMATORS` and :func:`group_weights`):

- ``maxrl``: generalized MaxRL of order T (:func:`maxrl_weights`), unbiased for grad J_T with
  J_T(p) = -sum_{k<=T} (1-p)^k / k, for any per-rollout likelihood l in [0, 1].
- ``maxrl-binary``: the paper's practical (r - mean) / mean, zero for groups without success
  (:func:`maxrl_binary_weights`), unbiased for grad J_{N-1} with binary rewards.
- ``reinforce``, ``rloo``, ``grpo``, ``dr-grpo``: the usual order-1 baselines.

The math, the unbiasedness proofs and the numerics are in ``docs/estimators.md``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import pad

from maxrl_envs.validation import check_int, register_unique

__all__ = [
    "ESTIMATORS",
    "ESTIMATOR_NAMES",
    "Estimator",
    "dr_grpo",
    "estimator_names",
    "full_order_kernel",
    "get_estimator",
    "group_weights",
    "grpo",
    "maxrl_binary_weights",
    "maxrl_omega",
    "maxrl_weights",
    "register_estimator",
    "reinforce",
    "reinforce_mean",
    "rloo",
]

# Upper bound (elements) on one temporary of the merge tree; the loops this implies run over
# merge pairs or row blocks, never one context at a time unless a single pair is that large.
_MERGE_CHUNK_ELEMENTS = 1 << 22
# Quadrature temporaries are [B, nodes, N] chunks; on CPU a cache-sized chunk is faster for the
# chain of elementwise passes, on GPU a large one keeps kernel launches few.
_QUAD_CHUNK_ELEMENTS_CPU = 1 << 18
_QUAD_CHUNK_ELEMENTS_GPU = 1 << 24
_LOG_HALF = -math.log(2.0)
_LOG_TINY_F64 = math.log(torch.finfo(torch.float64).tiny)  # exp below this is subnormal
# Subnormal floats are ~100x slower on CPUs. Terms below these bounds are far below the
# resolution of an omega >= 1, so they are raised (exponent floor) or flushed to zero, which
# keeps every product in the hot loops a normal number.
_EXP_FLOOR = {torch.float32: -60.0, torch.float64: -600.0}
_MEANS_FLUSH = 1e-60  # merge-tree entries; products of two stay >= 1e-120
_WEIGHT_FLUSH = 1e-150  # hypergeometric weights; so every product in a merge is >= 1e-270
_COEF_FLUSH = 1e-30  # recursion coefficients (an upper bound on the terms they produce)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _check_group_tensor(x: object, name: str, min_group_size: int, why: str) -> Tensor:
    """Check type, rank, dtype and group size; return ``x``, detached if it requires grad.

    Weights are never differentiated, and the in-place arithmetic of the MaxRL kernels would
    be refused on a tensor that requires grad. Either way the result shares the caller's
    storage, so no kernel may write into it.
    """
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape [B, N] (B contexts, N rollouts each); "
            f"got {type(x).__name__}"
        )
    if x.dim() != 2:
        raise ValueError(
            f"{name} must be a 2-D tensor of shape [B, N] (B contexts, N rollouts each); "
            f"got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must have a floating-point dtype (float16/bfloat16/float32/float64); "
            f"got {x.dtype}; convert with .float()"
        )
    if x.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds no values; allowed: cpu, cuda")
    if x.shape[1] < min_group_size:
        raise ValueError(
            f"{name} has N = {x.shape[1]} rollouts per context (dim 1); {why} needs N >= "
            f"{min_group_size}"
        )
    return x.detach() if x.requires_grad else x


def _raise_if_any(x: Tensor, bad: Tensor, name: str, allowed: str) -> None:
    """Raise a ValueError naming ``name``, a few offending values and ``allowed``."""
    if bool(bad.any()):
        count = int(bad.sum())
        examples = x[bad][:5].tolist()
        raise ValueError(
            f"{name} must contain only {allowed}; got {count} offending value(s), e.g. {examples}"
        )


def _check_values(x: Tensor, name: str, kind: str) -> None:
    """Value checks (one device-to-host sync on GPU); ``kind`` selects the allowed set."""
    if x.numel() == 0:
        return
    if kind == "likelihood":
        _raise_if_any(x, ~((x >= 0) & (x <= 1)), name, "likelihoods in [0, 1] (no NaN)")
    elif kind == "log_likelihood":
        _raise_if_any(x, ~(x <= 0), name, "log-likelihoods in [-inf, 0] (no NaN, no +inf)")
    elif kind == "unit_reward":
        _raise_if_any(x, ~((x >= 0) & (x <= 1)), name, "rewards in [0, 1] (no NaN)")
    else:
        _raise_if_any(x, ~torch.isfinite(x), name, "finite rewards (no NaN or inf)")


def _check_real(
    value: object, name: str, *, allow_none: bool = False, minimum: float | None = None
) -> float | None:
    """Return ``value`` as a float after checking it is a finite real number (or None)."""
    if value is None and allow_none:
        return None
    allowed = "a finite real number" + (f" >= {minimum}" if minimum is not None else "")
    if allow_none:
        allowed += " or None"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    out = float(value)
    if not math.isfinite(out) or (minimum is not None and out < minimum):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return out


def _resolve_order(order: object, group_size: int) -> int:
    """Return the truncation order T, checking 1 <= T <= N (None means T = N)."""
    if order is None:
        return group_size
    if (
        isinstance(order, bool)
        or not isinstance(order, numbers.Integral)
        or not (1 <= int(order) <= group_size)
    ):
        raise ValueError(
            f"order must be an integer T with 1 <= T <= N = {group_size} (rollouts per context), "
            f"or None for T = N; got {order!r}"
        )
    return int(order)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are computed in float32 and cast back."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# --------------------------------------------------------------------------------------------
# Gauss-Legendre quadrature on [0, 1]
# --------------------------------------------------------------------------------------------


# The quadrature rule is computed once per size in the widest hardware float: x87 extended
# precision (64-bit mantissa) where numpy's longdouble is that, else float64. Software quad
# precision (longdouble on some ARM platforms) would be slow, so it is not used.
_WIDE = np.longdouble if np.finfo(np.longdouble).nmant == 63 else np.float64


@functools.lru_cache(maxsize=32)
def _gauss_legendre_unit(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n-point Gauss-Legendre rule on [0, 1] in float64, each value to about an ulp.

    Newton's method in theta on P_n(cos theta) = 0 from the usual asymptotic guess, for the
    nodes with theta <= pi/2 (t = sin^2(theta/2) <= 1/2); the others are their mirror images
    t -> 1 - t with the same weights, so t and 1 - t = cos^2(theta/2) both keep full relative
    precision near their end. P_n is evaluated in t by the three-term recurrence written for
    the differences D_d = P_d - P_{d-1} (which never forms x = 1 - 2t),

        D_d = ((d - 1) D_{d-1} - 2 (2d - 1) t P_{d-1}) / d,   P_d = P_{d-1} + D_d,

    and the weight is (1 - x^2) / (n (x P_n - P_{n-1}))^2 with x P_n - P_{n-1} = D_n - 2t P_n,
    which the recurrence carries to its own relative precision even near t = 0 (where P_{n-1}
    alone is small). The recurrence in x = 1 - 2t loses t's relative precision there: 1e-12
    in the first nodes and weights at n = 512 (1e-11 at n = 2048), about 1e-14 in omega. Run
    in float64 this one keeps nodes to ~1e-15 and weights to ~1e-14 at n = 2048; its last
    Newton step and the weights run in :data:`_WIDE`, which rounds both to within an ulp.
    O(n^2) once per n; numpy's ``leggauss`` is only tested to n = 100.

    Returns:
        ``(t, 1 - t, w)``: nodes ascending in (0, 1), their complements, and weights summing
        to 1; exact for polynomials of degree <= 2n - 1.
    """
    half = n // 2
    k = np.arange(1, half + 1, dtype=np.float64)
    theta = np.pi * (k - 0.25) / (n + 0.5)  # the roots with theta < pi/2, ascending

    def legendre(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P_n(1 - 2t) and x P_n - P_{n-1} = D_n - 2t P_n."""
        p, diff = 1 - 2 * t, -2 * t
        for d in range(2, n + 1):
            diff = ((d - 1) * diff - (2 * (2 * d - 1)) * t * p) / d
            p = p + diff
        return p, diff - 2 * t * p

    def newton(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # d/dtheta P_n(cos theta) = n (x P_n - P_{n-1}) / sin(theta)
        p, slope = legendre(np.sin(theta / 2) ** 2)
        step = p * np.sin(theta) / (n * slope)
        return theta - step, step

    # Newton converges quadratically from this guess (error O(1/n^2)): once every step is
    # below 1e-10 of theta, one more leaves only float64 rounding; a last step in _WIDE
    # (about 8x slower per pass) then leaves only its rounding.
    for _ in range(30):
        theta, step = newton(theta)
        if bool(np.all(np.abs(step) <= 1e-10 * theta)):
            break
    theta, _ = newton(theta)
    theta, _ = newton(theta.astype(_WIDE))
    t, s = np.sin(theta / 2) ** 2, np.cos(theta / 2) ** 2
    if n % 2:  # the middle root x = 0, t = 1/2 exactly
        t, s = np.append(t, _WIDE(0.5)), np.append(s, _WIDE(0.5))
    _, slope = legendre(t)
    # on [0, 1] (half the rule on [-1, 1]); 1 - x^2 = 4 t (1 - t)
    weights = (4 * t * s / (n * slope) ** 2).astype(np.float64)
    t, s = t.astype(np.float64), s.astype(np.float64)
    mirror = slice(half - 1, None, -1) if half else slice(0, 0)
    return (
        np.concatenate((t, s[mirror])),
        np.concatenate((s, t[mirror])),
        np.concatenate((weights, weights[mirror])),
    )


@functools.lru_cache(maxsize=64)
def _quadrature_rule(
    n: int, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Device copies of :func:`_gauss_legendre_unit` and the count of nodes with t <= 1/2."""
    t, s, w = _gauss_legendre_unit(n)
    as_tensor = functools.partial(torch.as_tensor, dtype=dtype, device=device)
    return as_tensor(t), as_tensor(s), as_tensor(w), int(np.searchsorted(t, 0.5, side="right"))


# --------------------------------------------------------------------------------------------
# Compiled T = N kernel (TrainConfig.compile)
# --------------------------------------------------------------------------------------------

_COMPILED = False
# Products below this are flushed to 0: they add < 1e-280 to an omega >= 1, and subnormal
# float64 arithmetic is ~100x slower on CPUs.
_PRODUCT_FLUSH = 1e-290


@contextlib.contextmanager
def compiled_kernels(enabled: bool = True) -> Iterator[None]:
    """Inside the block, the exact order-N kernel runs compiled (float64 inputs by default).

    float32 and half inputs take the fast kernel (:func:`full_order_kernel`), which needs no
    compiling; with ``full_order_kernel("exact")``, or for float64 inputs, the quadrature of
    :func:`_omega_full_order` is evaluated in product form by
    :func:`_compiled_full_order` under ``torch.compile`` (``agents.compile.compiled``): no
    logarithms or exponentials and no ``[nodes, N, B]`` temporaries, in float64. It agrees
    with the eager kernel to rounding (float64: ~1e-15 relative; the eager float32 kernel's
    own error is ~1e-7 to 1e-6), not bitwise. On one CPU thread it is 3.5-6x faster than the
    eager kernel (N = 16 to 256). Other estimators and orders keep the eager kernels.

    Args:
        enabled: Use the compiled kernel (False: the eager one, e.g. to switch it off inside
            an enclosing block).
    """
    global _COMPILED
    previous, _COMPILED = _COMPILED, bool(enabled)
    try:
        yield
    finally:
        _COMPILED = previous


def _factors(lik_t: Tensor, a_t: Tensor, t: Tensor, s: Tensor) -> Tensor:
    """f_i(t_g) = 1 - t_g l_i to float64 precision, ``[G, N, B]`` from ``[N, B]`` inputs.

    1 - t l while t l <= 1/2, else s + t a (s = 1 - t, a = 1 - l): no cancellation in either,
    and f >= min(1/2, s_g) > 0 at every node. Contexts are the last (contiguous) axis, so the
    compiled reductions over rollouts and nodes run vectorized across contexts, however
    small N is.
    """
    node = t[:, None, None]
    tl = node * lik_t.double()[None]
    far = torch.addcmul(s[:, None, None], node, a_t.double()[None])
    return torch.where(tl <= 0.5, 1.0 - tl, far)


def _node_products(lik_t: Tensor, a_t: Tensor, t: Tensor, s: Tensor, needed: Tensor) -> Tensor:
    """P(t_g) = prod_i f_i(t_g) per node and context, ``[G, B]`` float64 (compiled).

    Nodes at or past ``needed`` (per context, as in the eager kernel) get 0, and so does a
    product below ``_PRODUCT_FLUSH``: it belongs to a term far below an omega >= 1.
    """
    keep = torch.arange(t.shape[0], device=t.device)[:, None] < needed[None, :]  # [G, B]
    f = torch.where(keep[:, None, :], _factors(lik_t, a_t, t, s), 1.0)
    p = f.prod(1)
    return torch.where(keep & (p >= _PRODUCT_FLUSH), p, 0.0)


def _node_sums(lik_t: Tensor, a_t: Tensor, t: Tensor, s: Tensor, w: Tensor, p: Tensor) -> Tensor:
    """sum_g w_g P(t_g) / f_j(t_g) = sum_g w_g prod_{i != j} f_i(t_g), ``[N, B]`` (compiled).

    The division keeps the relative precision of the product (a few float64 ulps at N =
    4096). The factors are formed again rather than stored: ``[G, N, B]`` never exists.
    """
    return (w[:, None, None] * p[:, None, :] / _factors(lik_t, a_t, t, s)).sum(0)


def _compiled_full_order(lik: Tensor, a: Tensor, needed: Tensor, nodes: int) -> Tensor:
    """The T = N omega in product form on the first ``nodes`` nodes, by two compiled kernels.

    N * sum_g w_g P(t_g) / f_j(t_g) with P(t) = prod_i f_i(t): two reductions (over rollouts,
    then over nodes), float64, no logarithms or exponentials.
    """
    from agents.compile import compiled

    n = lik.shape[1]
    t, s, w, _ = _quadrature_rule((n + 1) // 2, torch.float64, lik.device)
    # Copies, not views: a view of the cached rule would make dynamo guard on its base's size
    # and recompile once the node count first drops below the full rule.
    t, s, w = t[:nodes].clone(), s[:nodes].clone(), w[:nodes].clone()
    lik_t, a_t = lik.t().contiguous(), a.t().contiguous()
    p = compiled(_node_products)(lik_t, a_t, t, s, needed)
    sums = compiled(_node_sums)(lik_t, a_t, t, s, w, p)
    return sums.t().mul(n).to(lik.dtype)


#: torch's CPU bmm runs a plain accumulation loop below this many multiply-adds per product.
_SMALL_BMM = 400


def _weighted_node_sum(w: Tensor, loo: Tensor) -> Tensor:
    """sum_g w_g loo[:, g, :] for ``w`` ``[G]`` and ``loo`` ``[B, G, N]``: ``matmul(w, loo)``.

    The matmul is a bmm of B products ``[1, G] @ [G, N]``. On CPU, when G * N < 400, torch
    computes each with a plain loop (acc = 0; acc += w_g * loo_g, rounded in the input dtype
    at each step, no fused multiply-add), and per context that costs more in dispatch than in
    arithmetic. The same loop written as G elementwise passes over all B contexts at once
    rounds identically (``tests/agents/test_step_paths.py`` compares the two bitwise) and is
    several times faster. Larger products, and other devices, keep the matmul.
    """
    nodes, n = loo.shape[1], loo.shape[2]
    if loo.device.type != "cpu" or nodes * n >= _SMALL_BMM:
        return torch.matmul(w, loo)
    out = loo[:, 0] * w[0]
    for g in range(1, nodes):  # G < 400 / N quadrature nodes, never contexts or rollouts
        out += loo[:, g] * w[g]
    return out


def _omega_full_order(lik: Tensor, a: Tensor) -> Tensor:
    """omega_j for T = N: N * int_0^1 prod_{i != j} (1 - t l_i) dt, exactly by Gauss-Legendre.

    The integrand has degree N - 1 in t, so ceil(N/2) nodes are exact. Each log factor is
    computed to a few ulps *relative to itself*: log1p(-t l) while t l <= 1/2, else
    log(s + t a) with s = 1 - t, a = 1 - l (no cancellation in either). The log-sum over
    rollouts then has relative error of a few ulps however many rollouts tie, and the
    leave-one-out product is exp(sum - own term).

    Args:
        lik: Likelihoods l, ``[B, N]``.
        a: ``1 - l`` computed accurately, ``[B, N]``.

    Returns:
        omega, ``[B, N]``.
    """
    b, n = lik.shape
    t, s, w, n_low = _quadrature_rule((n + 1) // 2, lik.dtype, lik.device)
    nodes = t.numel()
    on_cpu = lik.device.type == "cpu"
    needed = None
    compiled = _COMPILED
    if on_cpu or compiled:
        # prod_{i != j} (1 - t l_i) <= exp(-t (sum_i l_i - 1)): past t = 100 / (sum l - 1) the
        # nodes (ascending) add < e^-100 to an omega >= 1, below float64 resolution, so each
        # context stops there. Reading these counts is free on CPU; on GPU it would be a sync.
        mass = lik.sum(-1) - 1.0
        cutoff = torch.where(mass > 0, 100.0 / mass.clamp_min(1e-30), torch.full_like(mass, 2.0))
        needed = torch.searchsorted(t, cutoff.contiguous()).clamp_(1, nodes)
        if on_cpu:
            nodes = int(needed.max())
    if compiled:
        return _compiled_full_order(lik, a, needed, nodes)
    budget = _QUAD_CHUNK_ELEMENTS_CPU if on_cpu else _QUAD_CHUNK_ELEMENTS_GPU
    step = max(1, budget // max(1, b * n))
    omega = torch.zeros_like(lik)
    floor = _EXP_FLOOR.get(lik.dtype, -60.0)
    g0 = 0
    while g0 < nodes:
        g1 = min(nodes, g0 + step)
        if g0 < n_low < g1:  # keep each chunk on one side of t = 1/2
            g1 = n_low
        rows = None
        if needed is not None and int(needed.min()) <= g0:
            rows = (needed > g0).nonzero().squeeze(1)
        lc, ac = (lik, a) if rows is None else (lik[rows], a[rows])
        tc = t[g0:g1, None]
        tl = tc * lc[:, None, :]  # [B, g, N]
        if g0 >= n_low:
            log_far = torch.addcmul(s[g0:g1, None], tc, ac[:, None, :]).log_()
            log_f = torch.where(tl <= 0.5, torch.log1p(-tl), log_far)
        else:
            log_f = tl.neg_().log1p_()
        total = log_f.sum(-1, keepdim=True)
        loo = torch.sub(total, log_f, out=log_f).clamp_min_(floor).exp_()  # prod_{i != j}
        part = _weighted_node_sum(w[g0:g1], loo)
        if rows is None:
            omega += part
        else:
            omega.index_add_(0, rows, part)
        g0 = g1
    return omega.mul_(n)


# --------------------------------------------------------------------------------------------
# Fast T = N kernel: G fixed nodes on [0, s_max] (default for float32 and half inputs)
# --------------------------------------------------------------------------------------------

#: Nodes of the fast kernel's Gauss-Legendre rule on [0, s_max] (docs/estimators.md).
FAST_NODES = 12
#: Its cutoff constant c: s_max = min(1, c / lambda), lambda = sum_i l_i - max_i l_i.
FAST_CUTOFF = 20.0
#: The relative error bound of the fast kernel's float64 result (truncation 1 / (e^c - 1)
#: plus quadrature, proved in docs/estimators.md); float32 output adds its rounding, 2^-24.
FAST_MATH_BOUND = 3e-9
#: The documented bound on the float32 weights' relative error against the exact kernel.
FAST_FLOAT32_BOUND = 1e-7
# [G, rows, N] float64 temporaries per chunk: a cache-sized chunk on CPU, few launches on GPU.
_FAST_CHUNK_ELEMENTS_CPU = 1 << 18
_FAST_CHUNK_ELEMENTS_GPU = 1 << 24
# log l is raised to this floor before exp: l >= 4.5e-296 keeps every product in the kernel a
# normal float64 (subnormal operands and exp's underflow path cost 2-3x the whole kernel),
# and changes omega by < N * 1e-295.
_FAST_LOG_FLOOR = -680.0

#: The T = N kernel choices of :func:`full_order_kernel`.
KERNELS = ("auto", "fast", "exact")
_KERNEL = "auto"


@contextlib.contextmanager
def full_order_kernel(kind: str = "auto") -> Iterator[None]:
    """Inside the block, order T = N uses the kernel ``kind``.

    ``auto`` (the default outside any block): :func:`_omega_fast` for float32 and half
    inputs on every device, the exact quadrature (:func:`_omega_full_order`) for float64.
    ``fast`` or ``exact`` force one of them for every dtype. Orders T < N always use their
    exact algorithms.

    Args:
        kind: One of :data:`KERNELS`.

    Raises:
        ValueError: For another ``kind``.
    """
    global _KERNEL
    if kind not in KERNELS:
        raise ValueError(f"kind must be one of {', '.join(KERNELS)}; got {kind!r}")
    previous, _KERNEL = _KERNEL, kind
    try:
        yield
    finally:
        _KERNEL = previous


def full_order_kernel_for(dtype: torch.dtype) -> str:
    """``fast`` or ``exact``: the T = N kernel that inputs of ``dtype`` get right now."""
    if _KERNEL != "auto":
        return _KERNEL
    return "exact" if _compute_dtype(dtype) == torch.float64 else "fast"


def _omega_fast(x: Tensor, log_space: bool, *, times_likelihood: bool = False) -> Tensor:
    """omega_j = N int_0^1 prod_{i != j} (1 - s l_i) ds by G nodes on [0, s_max], float64.

    With lambda = sum_i l_i - max_i l_i, prod_{i != j} (1 - s l_i) <= exp(-lambda s) for
    every j, and the integrand is log-concave, so the part past s_max = min(1, c / lambda)
    is at most 1 / (e^c - 1) of the rest; on [0, s_max], s_max sum_{i != j} l_i <= c + 1
    bounds the integrand on a Bernstein ellipse around the interval whatever N is, so a
    fixed G-node Gauss-Legendre rule is accurate to 8.5e-10 relative (G = 12, c = 20: proof
    and measurements in ``docs/estimators.md``). Where
    ceil(N/2) <= G the exact rule on [0, 1] is used instead (exact, like the reference).

    Everything runs in float64 from the exactly widened input: l = exp(log l) once (the
    only transcendental) and, with m_i = s_max l_i, each factor f = 1 - t_g m_i > 0
    (t_g < 1, m_i <= 1). Each f carries an absolute error of about 2^-53, so a relative
    one of 2^-53 / f; f >= 1/2 except for the at most 2(c + 1) rollouts with m_i > 1/2
    (sum_i m_i <= c + 1), where f >= 1 - t_G (0.0047 at G = 12): the product over all
    rollouts is within ~1e-11 relative, also where likelihoods tie (the cancellation that
    float32 factors would suffer is 2^29 times smaller here). The leave-one-out product is
    that product over the own factor. O(B N G) work, no host sync.

    Per block of rows, five eager passes over a ``[G, rows, N]`` float64 buffer (the factors
    in two, their product over i, the quotients, their sum over g); the blocks are of equal
    size (no near-empty last block) and the scale n s_max w_g is formed once per call.
    Cost and where it goes: ``docs/performance.md``.

    Args:
        x: ``[B, N]`` likelihoods, or log-likelihoods when ``log_space``.
        log_space: Read ``x`` as log l.
        times_likelihood: Return omega * l (formed in float64, so the caller rounds once).

    Returns:
        omega (or omega * l) ``[B, N]`` in float64.
    """
    b, n = x.shape
    lik = x.double().clamp_min_(_FAST_LOG_FLOOR).exp_() if log_space else x.double()
    exact_nodes = (n + 1) // 2
    truncate = exact_nodes > FAST_NODES
    t, _, w, _ = _quadrature_rule(FAST_NODES if truncate else exact_nodes, torch.float64, x.device)
    nodes = t.numel()
    if truncate:  # s_max = c / max(c, lambda) per context; m_i = s_max l_i
        lam = lik.sum(-1, keepdim=True).sub_(lik.amax(-1, keepdim=True))
        s_max = torch.div(FAST_CUTOFF, lam.clamp_min_(FAST_CUTOFF))  # [B, 1]
        m = lik * s_max
        coef_scale = w[:, None] * s_max.view(1, b).mul_(n)  # [G, B]: n s_max w_g
    else:  # the exact ceil(N/2)-node rule on [0, 1]
        m, coef_scale = lik, (w * n)[:, None].expand(nodes, b)
    budget = _FAST_CHUNK_ELEMENTS_CPU if x.device.type == "cpu" else _FAST_CHUNK_ELEMENTS_GPU
    blocks = max(1, -(-b // max(1, budget // (nodes * n))))
    rows = max(1, -(-b // blocks))  # equal blocks, no near-empty remainder
    neg_t = t.neg()[:, None, None]
    omega = torch.empty(b, n, dtype=torch.float64, device=x.device)
    buf = torch.empty(nodes, rows, n, dtype=torch.float64, device=x.device)
    for r0 in range(0, b, rows):
        r1 = min(b, r0 + rows)
        f = buf[:, : r1 - r0]
        torch.mul(m[None, r0:r1], neg_t, out=f).add_(1.0)  # f[g, b, i] = 1 - t_g m_i
        coef = f.prod(-1).mul_(coef_scale[:, r0:r1])  # [G, rows]: n s_max w_g prod_i f_gi
        torch.div(coef[:, :, None], f, out=f)  # n s_max w_g prod_{i != j} f_gi
        torch.sum(f, 0, out=omega[r0:r1])
    if not times_likelihood:
        return omega
    if log_space and x.dtype == torch.float64:  # below the floor omega * l is still a float64
        return omega.mul_(x.exp())
    return omega.mul_(lik)  # float32 and half: products below 1e-290 round to 0 anyway


# --------------------------------------------------------------------------------------------
# Normalized elementary symmetric means by a merge tree
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _binomials_frexp(n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """C(n, k) for k < count as (mantissa, exponent), C = mantissa * 2**exponent.

    The binomials are exact Python integers (C(4096, 2048) has 4093 bits, far beyond float64);
    each mantissa in [1, 2] is their correctly rounded quotient by a power of two (CPython's
    int / int true division rounds correctly), so it carries half an ulp of error and no
    exponent overflows.
    """
    mantissa = np.empty(count, dtype=np.float64)
    exponent = np.empty(count, dtype=np.int64)
    c = 1
    for k in range(count):
        shift = c.bit_length() - 1
        mantissa[k] = c / (1 << shift)
        exponent[k] = shift
        c = c * (n - k) // (k + 1)
    return mantissa, exponent


def _normalize_antidiagonals(h: np.ndarray, n_a: int, n_b: int) -> None:
    """Make every complete anti-diagonal of ``h`` sum to 1 up to a fraction of an ulp, in place.

    The exact weights of output order k (i + r = k) sum to 1; rounded ones miss by an ulp or
    so, and where groups are identical (ties: binary rewards) that miss is the same in every
    merge of a level, so it adds up over the tree: about N * 1e-17 relative in the table
    (9e-14 at N = 4096). The sum is taken with an error-free transformation (TwoSum) and its
    residual is added to the diagonal's largest entry.
    """
    rows, cols = h.shape
    width = rows + cols - 1
    total, comp = np.zeros(width), np.zeros(width)
    peak, at = np.zeros(width), np.zeros(width, dtype=np.int64)
    for i in range(rows):
        seg = slice(i, i + cols)
        old, row = total[seg], h[i]
        new = old + row
        back = new - old
        comp[seg] += (old - (new - back)) + (row - back)
        total[seg] = new
        bigger = row > peak[seg]
        peak[seg] = np.where(bigger, row, peak[seg])
        at[seg] = np.where(bigger, i, at[seg])
    k = np.arange(width)
    # diagonal k holds i = max(0, k - n_b) .. min(k, n_a); complete if all of them are in h
    complete = (np.minimum(k, n_a) < rows) & (np.minimum(k, n_b) < cols)
    k, i = k[complete], at[complete]
    h[i, k - i] += (1.0 - total[complete]) - comp[complete]


@functools.lru_cache(maxsize=48)
def _hypergeometric_weights(
    n_a: int, n_b: int, rows: int, cols: int, device: torch.device
) -> Tensor:
    """H[i, r] = C(n_a, i) C(n_b, r) / C(n_a + n_b, i + r) for i < rows, r < cols (float64).

    Data-independent and cached. Each entry is formed from three correctly rounded binomial
    mantissas (one product, one quotient, an exact power-of-two scaling), so it is within
    about an ulp; exp of a sum of lgamma values of size ~N log N lost that many ulps instead
    (4e-13 in omega at N = 1024, 1.5e-12 at 4096).
    Each anti-diagonal is then normalized to sum to 1 (:func:`_normalize_antidiagonals`).
    """
    m_a, x_a = _binomials_frexp(n_a, rows)
    m_b, x_b = _binomials_frexp(n_b, cols)
    m_ab, x_ab = _binomials_frexp(n_a + n_b, rows + cols - 1)
    k = np.arange(rows)[:, None] + np.arange(cols)[None, :]
    h = np.ldexp(m_a[:, None] * m_b[None, :] / m_ab[k], x_a[:, None] + x_b[None, :] - x_ab[k])
    _normalize_antidiagonals(h, n_a, n_b)
    h[h < _WEIGHT_FLUSH] = 0.0
    return torch.from_numpy(h).to(device)


def _merge_means(e_a: Tensor, e_b: Tensor, n_a: int, n_b: int, top: int) -> Tensor:
    """Symmetric means of the union of two disjoint groups.

    E_k(A u B) = sum_i H(n_a, n_b, i, k) E_i(A) E_{k-i}(B) with hypergeometric weights
    H = C(n_a, i) C(n_b, k - i) / C(n_a + n_b, k) >= 0 that sum to 1 over i: a convex
    combination, so no cancellation. The outer product is written into a zero-padded buffer
    whose rows are then read with a skewed stride, which turns the sums along anti-diagonals
    i + r = k into a plain column sum.

    Args:
        e_a: ``[M, rows]`` means of the first groups, rows = min(n_a, top) + 1.
        e_b: ``[M, cols]`` means of the second groups, cols = min(n_b, top) + 1.
        n_a: Size of each first group.
        n_b: Size of each second group.
        top: Highest order k to keep.

    Returns:
        ``[M, min(n_a + n_b, top) + 1]``.
    """
    pairs, rows = e_a.shape
    cols = e_b.shape[1]
    # Products with i + r > top land in output columns that are cut off at the end.
    h = _hypergeometric_weights(n_a, n_b, rows, cols, e_a.device)
    budget = _MERGE_CHUNK_ELEMENTS
    block = rows if rows * (rows + cols) <= budget else max(1, min(rows, budget // (rows + cols)))
    per = max(1, min(pairs, budget // (block * (cols + block))))
    width = cols + block
    buf = e_a.new_zeros(per, block, width)
    out = e_a.new_zeros(pairs, rows + width)
    for m0 in range(0, pairs, per):
        m1 = min(pairs, m0 + per)
        for i0 in range(0, rows, block):
            i1 = min(rows, i0 + block)
            prod = buf[: m1 - m0, : i1 - i0, :cols]
            torch.mul(e_a[m0:m1, i0:i1, None], e_b[m0:m1, None, :], out=prod)
            prod.mul_(h[i0:i1])
            skew = buf.as_strided((m1 - m0, i1 - i0, width - 1), (block * width, width - 1, 1))
            out[m0:m1, i0 : i0 + width - 1] += skew.sum(1)
    out = out[:, : min(n_a + n_b, top) + 1]
    return out.masked_fill_(out < _MEANS_FLUSH, 0.0)


def _symmetric_means(a: Tensor, top: int) -> Tensor:
    """E_k(a) = e_k(a) / C(n, k) for k = 0..top over each row of ``a`` (float64 merge tree).

    Pairs of groups are merged level by level (log2 n levels, all groups of a level at once);
    a level holds groups of one size plus possibly a smaller last group. The table is kept in
    float64 because rounding in a product tree grows like sqrt(n) ulps, which at n = 4096 would
    cost float32 about 1e-5; it is O(B n top) work, small next to the recursions it feeds.

    Args:
        a: ``[B, n]`` values in [0, 1], float64.
        top: Highest order needed (top < n).

    Returns:
        ``[B, top + 1]`` float64, E_0 = 1.
    """
    b, n = a.shape
    groups = torch.stack((torch.ones_like(a), a), dim=-1)[..., : top + 1]  # singletons
    size, last = 1, 1  # every group has `size` elements except the last, which has `last`
    while groups.shape[1] > 1:
        count, cols = groups.shape[1], groups.shape[2]
        uneven = count % 2 == 0 and last != size
        full = count // 2 - (1 if uneven else 0)
        width = min(2 * size, top) + 1
        parts = []
        if full:
            pairs = groups[:, : 2 * full].reshape(b * full, 2, cols)
            merged = _merge_means(pairs[:, 0], pairs[:, 1], size, size, top)
            parts.append(merged.reshape(b, full, width))
        if count % 2:
            parts.append(pad(groups[:, -1:], (0, width - cols)))
        elif uneven:
            tail = groups[:, -1, : min(last, top) + 1]
            merged = _merge_means(groups[:, -2], tail, size, last, top)
            parts.append(pad(merged, (0, width - merged.shape[1]))[:, None])
            last = size + last
        else:
            last = 2 * size
        groups = torch.cat(parts, dim=1)
        size *= 2
    return groups[:, 0, : top + 1]


# --------------------------------------------------------------------------------------------
# Leave-one-out omega for any order
# --------------------------------------------------------------------------------------------


def _forward_sums(a: Tensor, means: Tensor, order: int) -> Tensor:
    """sum_{k<T} E_k(a_{-j}) by peeling a_j off the full-set means, from k = 0 upward.

    N E_k(all) = (N - k) E_k(-j) + k a_j E_{k-1}(-j), so
    E_k(-j) = [N E_k(all) - k a_j E_{k-1}(-j)] / (N - k). An error in E_{k-1}(-j) is scaled
    by k a_j / (N - k), at most 1 while (T - 1) a_j <= N - T + 1: used only there.
    """
    n = a.shape[1]
    ks = torch.arange(1, order, dtype=torch.float64, device=a.device)
    coef = means[:, 1:order] * (n / (n - ks))
    coef = coef.masked_fill_(coef < _COEF_FLUSH, 0.0).to(a.dtype)  # E_k(-j) <= coef_k
    x = torch.ones_like(a)
    total = torch.ones_like(a)
    for k in range(1, order):
        torch.addcmul(coef[:, k - 1 : k], a, x, value=-k / (n - k), out=x).clamp_(0.0, 1.0)
        total += x
    return total


def _backward_tail(a: Tensor, log_a: Tensor, means: Tensor, order: int, lanes: Tensor) -> Tensor:
    """sum_{k=T}^{N-1} E_k(a_{-j}) by peeling from the top, for the rollouts in ``lanes``.

    Starts at E_{N-1}(-j) = prod_{i != j} a_i (a log-sum with zeros counted apart) and uses
    E_{k-1}(-j) = [N E_k(all) - (N - k) E_k(-j)] / (k a_j), whose error factor
    (N - k) / (k a_j) is at most 1 on ``lanes``, where (T - 1) a_j > N - T + 1.
    """
    n = a.shape[1]
    zero = a == 0
    log_a = torch.where(zero, torch.zeros_like(log_a), log_a)
    others_zero = zero.sum(-1, keepdim=True) - zero.to(torch.int64)
    loo_log = log_a.sum(-1, keepdim=True) - log_a
    x = torch.where(others_zero > 0, torch.zeros_like(a), loo_log.exp())
    inv_a = torch.where(lanes, a, torch.ones_like(a)).reciprocal_()
    ks = torch.arange(order + 1, n, dtype=torch.float64, device=a.device)
    coef = means[:, order + 1 : n] * (n / ks)  # column k - T - 1 holds order k
    coef = coef.masked_fill_(coef < _COEF_FLUSH, 0.0).to(a.dtype)
    tail = x.clone()
    for k in range(n - 1, order, -1):
        col = k - order - 1
        torch.add(coef[:, col : col + 1], x, alpha=-(n - k) / k, out=x)
        x.mul_(inv_a).clamp_(0.0, 1.0)
        tail += x
    return tail


def _loo_omega(x: Tensor, order: int, log_space: bool) -> Tensor:
    """omega_j = sum_{k<T} e_k(a_{-j}) / C(N-1, k), a_i = 1 - l_i, for every rollout j.

    Regimes (N rollouts, order T):
      T = 1: omega = 1.
      T = N, float32/half (``full_order_kernel``): :func:`_omega_fast`, G nodes on
        [0, s_max], O(B N G), returned in float64.
      T = N, float64: Gauss-Legendre quadrature of N * int prod_{i != j}(1 - t l_i) dt,
        exact with ceil(N/2) nodes, O(B N^2 / 2).
      2T <= N + 2: forward peel-off from the full-set means, O(B N T).
      otherwise: forward peel-off where stable, else omega_N - (top-down tail), O(B N^2).
    """
    b, n = x.shape
    if order == 1 or b == 0:
        return torch.ones_like(x)
    if order == n and full_order_kernel_for(x.dtype) == "fast":
        return _omega_fast(x, log_space)
    if log_space:
        lik, a = x.exp(), -torch.expm1(x)
    else:
        lik, a = x, 1.0 - x
    # omega only sees each l through 1 - t l; likelihoods below the smallest normal float
    # change it by < N * 1.2e-38 but would make every node's arithmetic subnormal (slow).
    lik = torch.where(lik < torch.finfo(lik.dtype).tiny, torch.zeros_like(lik), lik)
    if order == n:
        return _omega_full_order(lik, a)
    # The table sums over all N rollouts, so a rounding of a = 1 - l (float32 rounds small l
    # by up to 2^-25 absolute) would be systematic wherever likelihoods tie: form a in float64.
    a64 = -torch.expm1(x.double()) if log_space else 1.0 - x.double()
    if 2 * order <= n + 2:
        return _forward_sums(a, _symmetric_means(a64, order - 1), order)
    means = _symmetric_means(a64, n - 1)
    forward = _forward_sums(a, means, order)
    if log_space:  # log(1 - exp(x)), accurate at both ends
        log_a = torch.where(x < _LOG_HALF, torch.log1p(-lik), torch.log(a))
    else:
        log_a = torch.log1p(-x)
    lanes = (order - 1) * a > (n - order + 1)
    tail = _backward_tail(a, log_a, means, order, lanes)
    full = _omega_full_order(lik, a)
    return torch.where(lanes, (full - tail).clamp_min_(1.0), forward)


def _times_likelihood(omega: Tensor, log_l: Tensor) -> Tensor:
    """The product omega * exp(log l), log l <= 0, to a few ulps wherever it is normal.

    Forming exp(log omega + log l) would round the exponent sum to |log l| ulps, a relative error of
    about |log l| eps (5e-6 at log l = -88 in float32, 8e-14 at -700 in float64). Below float64
    the product of omega and exp(log l) is formed in float64 and rounded once, which covers
    every log l where float32's own exp underflows. In float64, where exp(log l) would be
    subnormal, the product is (omega * exp(log l + 64)) * exp(-64): log l + 64 is exact there
    (64 is a multiple of the ulp of any |log l| < 2^46), and exp(log l + 64) is normal.
    """
    if omega.dtype != torch.float64:
        return (omega.double() * log_l.double().exp()).to(omega.dtype)
    if log_l.dtype != torch.float64:
        # The fast kernel's float64 omega with float32 log l: where exp(log l) leaves
        # float64's normal range the product is far below float32's, so one float64
        # product, rounded once by the caller, is within an ulp of float32.
        return omega * log_l.double().exp()
    direct = omega * log_l.exp()
    shifted = omega * (log_l + 64.0).exp() * math.exp(-64.0)
    return torch.where(log_l < _LOG_TINY_F64, shifted, direct)


def _prepare_likelihoods(
    likelihoods: Tensor, order: int | None, log_space: bool, validate: bool
) -> tuple[Tensor, int]:
    """Validate maxrl inputs; return them in the compute dtype and the resolved order."""
    name = "log-likelihoods (likelihoods with log_space=True)" if log_space else "likelihoods"
    x = _check_group_tensor(likelihoods, name, 1, "maxrl")
    order = _resolve_order(order, x.shape[1])
    if validate:
        _check_values(x, name, "log_likelihood" if log_space else "likelihood")
    return x.to(_compute_dtype(x.dtype)), order


# --------------------------------------------------------------------------------------------
# Public estimators
# --------------------------------------------------------------------------------------------


def maxrl_omega(
    likelihoods: Tensor,
    order: int | None = None,
    *,
    log_space: bool = False,
    validate: bool = True,
) -> Tensor:
    """Leave-one-out U-statistic weights omega_j, unbiased for w_T(p) = sum_{k<T} (1-p)^k.

    With a_i = 1 - l_i and e_k the k-th elementary symmetric polynomial of the other N - 1
    rollouts' a_i,

        omega_j = sum_{k=0}^{T-1} e_k(a_{-j}) / C(N-1, k),

    which depends on rollout j only through the others, so E[omega_j l_j S_j] = w_T(p) grad p.
    omega_j >= 1; T = 1 gives 1, T = N gives N * int_0^1 prod_{i != j} (1 - t l_i) dt.
    For T = N, float32 and half inputs use the fast kernel (within 6.3e-8 relative of the
    exact omega; ``full_order_kernel``), float64 inputs the exact quadrature.

    Args:
        likelihoods: ``[B, N]`` per-rollout likelihoods l in [0, 1], or their logs in
            [-inf, 0] when ``log_space`` is True.
        order: Truncation order T with 1 <= T <= N; None means T = N.
        log_space: Read ``likelihoods`` as log l (for heads whose likelihoods underflow).
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` omega, same dtype and device as ``likelihoods``.

    Raises:
        TypeError: If ``likelihoods`` is not a tensor.
        ValueError: For a non-2-D or non-float tensor, values outside the allowed range, NaN,
            N = 0, or an order outside [1, N].
    """
    x, order = _prepare_likelihoods(likelihoods, order, log_space, validate)
    return _loo_omega(x, order, log_space).to(likelihoods.dtype)


def maxrl_weights(
    likelihoods: Tensor,
    order: int | None = None,
    baseline: float | None = 1.0,
    *,
    log_space: bool = False,
    validate: bool = True,
) -> Tensor:
    """Generalized MaxRL weights of order T: A_j = omega_j * l_j - b.

    (1/N) sum_j A_j grad log m(z_j | x) is unbiased for grad J_T = w_T(p) grad p, where
    J_T(p) = -sum_{k=1}^{T} (1 - p)^k / k, p = E_z l(y, z), for any constant baseline b
    (E[S] = 0). omega_j is :func:`maxrl_omega`. T = 1 is REINFORCE (A = l - b); T = N with
    binary l gives omega_j l_j = N l_j / K (K successes), so b = 1 reproduces the paper's
    control-variate estimator sum_j (l_j / K - 1/N) S_j. For T = N, float32 and half inputs
    use the fast kernel: omega * l - b is formed in float64 and rounded once, within 6.3e-8
    relative of the exact omega * l (``full_order_kernel``; docs/estimators.md).

    Args:
        likelihoods: ``[B, N]`` per-rollout likelihoods l in [0, 1], or log l in [-inf, 0]
            when ``log_space`` is True.
        order: Truncation order T with 1 <= T <= N; None means T = N (closest to ML).
        baseline: Constant b subtracted from every weight (on the omega * l scale); None
            means 0. The default 1.0 is the binary control variate.
        log_space: Read ``likelihoods`` as log l. Gives the same weights as passing exp(log l),
            but omega only needs 1 - l = -expm1(log l) and omega * l is formed as
            omega * exp(log l) in float64 (with an exact shift of log l where even that
            exp is subnormal), so it is within a few ulps wherever omega * l is a normal
            number, also where exp(log l) underflows in the input's dtype.
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` weights A, same dtype and device as ``likelihoods``.

    Raises:
        TypeError: If ``likelihoods`` is not a tensor.
        ValueError: For a non-2-D or non-float tensor, likelihoods outside [0, 1] (log
            likelihoods > 0), NaN, N = 0, an order outside [1, N] or a non-finite baseline.
    """
    x, order = _prepare_likelihoods(likelihoods, order, log_space, validate)
    b = _check_real(baseline, "baseline", allow_none=True)
    if 1 < order == x.shape[1] and full_order_kernel_for(x.dtype) == "fast":
        scaled = _omega_fast(x, log_space, times_likelihood=True)  # float64, rounded once
        if b:
            scaled = scaled.sub_(b)
        return scaled.to(likelihoods.dtype)
    omega = _loo_omega(x, order, log_space)
    if not log_space:
        scaled = omega * x
    elif order == 1:  # omega = 1
        scaled = x.exp()
    else:
        scaled = _times_likelihood(omega, x)
    if b:
        scaled = scaled - b
    return scaled.to(likelihoods.dtype)


def maxrl_binary_weights(rewards: Tensor, *, validate: bool = True) -> Tensor:
    """The paper's practical MaxRL weights: A = (r - mean) / mean = N r / K - 1 per group.

    K = sum_j r_j; a group with K = 0 gets A = 0 everywhere. With binary rewards this is
    unbiased for grad J_{N-1} (order N - 1, not N): the order-N control-variate estimator
    sum_j (r_j / K - 1/N) S_j keeps -(1/N) sum_j S_j when K = 0, and that dropped term has
    expectation E[S_1 1{r_1 = 0}] (1 - p)^{N-1} = -(1 - p)^{N-1} grad p, so the mean becomes
    (w_N(p) - (1 - p)^{N-1}) grad p = w_{N-1}(p) grad p. Rewards in [0, 1] that are not binary
    are accepted (the same formula), but the unbiasedness statement is for binary rewards.
    For binary rewards A is correctly rounded (float32 up to N = 2^24, and float64).

    Args:
        rewards: ``[B, N]`` rewards in [0, 1] (binary for the unbiasedness statement), N >= 2.
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` weights A, same dtype and device as ``rewards``.

    Raises:
        TypeError: If ``rewards`` is not a tensor.
        ValueError: For a non-2-D or non-float tensor, N < 2, or values outside [0, 1] / NaN.
    """
    r = _check_group_tensor(rewards, "rewards", 2, "maxrl-binary")
    if validate:
        _check_values(r, "rewards", "unit_reward")
    r = r.to(_compute_dtype(r.dtype))
    # (N r - K) / K, not N r / K - 1: with binary rewards N r, K and their difference are
    # exact integers, so A is correctly rounded; N r / K - 1 cancels when almost every
    # rollout succeeds (9.5e-7 relative in float32 at N = 1024, K = 1023).
    # K may be subnormal (float32 [[1e-40, 0, 0, 0]]): divide by K itself, never by a floor
    # (a floor at the smallest normal once gave 0.0255 there instead of 3). With r_j <= K the
    # quotient lies in [-1, N - 1], so no group can overflow.
    total = r.sum(-1, keepdim=True)
    positive = total > 0
    weights = torch.where(
        positive, (r.shape[1] * r - total) / torch.where(positive, total, 1.0), 0.0
    )
    return weights.to(rewards.dtype)


def maxrl_loo_weights(
    likelihoods: Tensor,
    order: int | None = None,
    *,
    log_space: bool = False,
    validate: bool = True,
) -> Tensor:
    """Generalized MaxRL of order T with a leave-one-out baseline: A_j = omega_j (l_j - m_j).

    m_j = (1 / (N - 1)) sum_{k != j} l_k is the mean likelihood of the other rollouts, and
    omega_j is :func:`maxrl_omega` (also built from the other rollouts only). The baseline
    b_j = omega_j m_j is therefore a function of the rollouts k != j alone, which are
    independent of z_j, so E[b_j S_j] = E[b_j] E[S_j] = 0 and the estimator keeps the mean
    of :func:`maxrl_weights`: (1/N) sum_j A_j S_j is unbiased for grad J_T. It is the
    plug-in of the conditional mean of the weight, E[omega_j l_j | z_{-j}] = omega_j p.

    (A baseline built from the others' weights omega_k l_k, k != j, would not do: omega_k
    reads l_j, so it is correlated with S_j and biases the estimate.)

    Properties: a group where every likelihood is equal (all fail, all pass, all the same)
    gets A = 0, like the paper's practical binary estimator, yet the estimator stays
    unbiased for order T (``maxrl-binary`` is unbiased for order N - 1 only). With binary
    rewards, T = N and K successes: A_j = N (N - K) / (K (N - 1)) for a success and
    -N K / ((K + 1)(N - 1)) for a failure.

    Args:
        likelihoods: ``[B, N]`` per-rollout likelihoods l in [0, 1] (or log l in [-inf, 0]
            with ``log_space``), N >= 2.
        order: Truncation order T with 1 <= T <= N; None means T = N.
        log_space: Read ``likelihoods`` as log l.
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` weights A, same dtype and device as ``likelihoods``.

    Raises:
        TypeError: If ``likelihoods`` is not a tensor.
        ValueError: As :func:`maxrl_weights`, and for N < 2.
    """
    name = "log-likelihoods (likelihoods with log_space=True)" if log_space else "likelihoods"
    _check_group_tensor(likelihoods, name, 2, "maxrl-loo")
    x, order = _prepare_likelihoods(likelihoods, order, log_space, validate)
    omega = _loo_omega(x, order, log_space)
    lik = x.double().exp() if log_space else x.double()
    # l_j - m_j = (N d_j - sum_i d_i) / (N - 1) with d = l - l_1: exactly 0 on equal groups.
    d = lik - lik[:, :1]
    centred = (x.shape[1] * d - d.sum(-1, keepdim=True)) / (x.shape[1] - 1)
    return (omega.double() * centred).to(likelihoods.dtype)


def reinforce(rewards: Tensor, baseline: float = 0.0, *, validate: bool = True) -> Tensor:
    """REINFORCE with a constant baseline: A = r - b (unbiased for grad E[r], i.e. order 1).

    Args:
        rewards: ``[B, N]`` finite rewards, N >= 1.
        baseline: Constant b.
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` weights, same dtype and device as ``rewards``.

    Raises:
        TypeError: If ``rewards`` is not a tensor.
        ValueError: For a non-2-D or non-float tensor, N = 0, non-finite rewards or baseline.
    """
    r = _check_group_tensor(rewards, "rewards", 1, "reinforce")
    b = _check_real(baseline, "baseline")
    if validate:
        _check_values(r, "rewards", "finite")
    weights = r - b
    if validate:
        _check_weights(weights, r, "reinforce")
    return weights


def rloo(rewards: Tensor, *, validate: bool = True) -> Tensor:
    """REINFORCE leave-one-out: A_j = r_j - (1 / (N - 1)) sum_{i != j} r_i (unbiased, order 1).

    Args:
        rewards: ``[B, N]`` finite rewards, N >= 2.
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` weights, same dtype and device as ``rewards``.

    Raises:
        TypeError: If ``rewards`` is not a tensor.
        ValueError: For a non-2-D or non-float tensor, N < 2, non-finite rewards, or (with
            ``validate``) weights beyond the dtype's range (r = [max, -max] gives 2 max).
    """
    r = _check_group_tensor(rewards, "rewards", 2, "rloo (leave-one-out mean)")
    if validate:
        _check_values(r, "rewards", "finite")
    x = r.to(_compute_dtype(r.dtype))
    # A group whose sum could overflow (|r| near the dtype's maximum) is computed at a power
    # of two below it and scaled back: exact scaling, so the weights are those of an
    # overflow-free float; every other group is computed unscaled, as before.
    scale = _group_scale(x, x.shape[1])
    xs = x * scale
    others = (xs.sum(-1, keepdim=True) - xs) / (x.shape[1] - 1)
    weights = ((xs - others) / scale).to(r.dtype)
    if validate:
        _check_weights(weights, r, "rloo")
    return weights


def _check_weights(weights: Tensor, rewards: Tensor, name: str) -> None:
    """Refuse weights that overflowed although the rewards are finite (|A| past the max)."""
    if weights.numel() and not bool(torch.isfinite(weights).all()):
        bad = ~torch.isfinite(weights).reshape(weights.shape[0], -1)
        raise ValueError(
            f"rewards give {name} weights beyond the largest {rewards.dtype} "
            f"({torch.finfo(rewards.dtype).max:g}) in {int(bad.any(-1).sum())} group(s), e.g. "
            f"rewards {rewards[bad.any(-1)][0].tolist()[:5]}; allowed: rewards whose "
            "differences stay within the dtype's range (rescale them"
            + (", or use float64)" if rewards.dtype != torch.float64 else ")")
        )


def _group_scale(x: Tensor, terms: int) -> Tensor:
    """A power of two per group (``[B, 1]``) that keeps a sum of ``terms`` entries finite.

    1 for every group whose largest magnitude is at most ``finfo.max / (2 * terms)`` (all
    ordinary rewards, so their weights are unchanged bitwise); otherwise 2^-e with the
    largest magnitude scaled into [0.5, 1).
    """
    if x.shape[-1] == 0:
        return torch.ones((*x.shape[:-1], 1), dtype=x.dtype, device=x.device)
    peak = x.abs().amax(-1, keepdim=True)
    limit = torch.finfo(x.dtype).max / (2 * terms)
    exponent = torch.frexp(peak).exponent
    big = (peak > limit) & torch.isfinite(peak)
    return torch.where(big, torch.ldexp(torch.ones_like(peak), -exponent), 1.0)


def grpo(rewards: Tensor, eps: float = 1e-4, *, validate: bool = True) -> Tensor:
    """GRPO: A = (r - mean) / (std + eps) per group, std with Bessel's correction (N - 1).

    The unbiased (sample) standard deviation matches ``torch.std``'s default, which TRL's
    GRPOTrainer and verl's GRPO advantage both use, so weights compare one-to-one with those
    libraries (TRL's eps is 1e-4, the default here; verl uses 1e-6). A group whose std + eps
    is 0 gets weights 0. Biased in general: the group statistics depend on r_j.

    Args:
        rewards: ``[B, N]`` finite rewards, N >= 2.
        eps: Non-negative constant added to the std.
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` weights, same dtype and device as ``rewards``.

    Raises:
        TypeError: If ``rewards`` is not a tensor.
        ValueError: For a non-2-D or non-float tensor, N < 2, non-finite rewards or eps < 0.
    """
    r = _check_group_tensor(rewards, "rewards", 2, "grpo (group std)")
    e = _check_real(eps, "eps", minimum=0.0)
    if validate:
        _check_values(r, "rewards", "finite")
    x = r.to(_compute_dtype(r.dtype))
    std, mean = torch.std_mean(x, dim=-1, keepdim=True, correction=1)
    scale = std + e
    weights = torch.where(scale > 0, (x - mean) / scale.clamp_min(torch.finfo(x.dtype).tiny), 0.0)
    return weights.to(r.dtype)


def dr_grpo(rewards: Tensor, *, validate: bool = True) -> Tensor:
    """Dr. GRPO: A = r - mean per group (no std). Its mean is (N - 1)/N grad E[r].

    Args:
        rewards: ``[B, N]`` finite rewards, N >= 2.
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` weights, same dtype and device as ``rewards``.

    Raises:
        TypeError: If ``rewards`` is not a tensor.
        ValueError: For a non-2-D or non-float tensor, N < 2 or non-finite rewards.
    """
    r = _check_group_tensor(rewards, "rewards", 2, "dr-grpo (group mean)")
    if validate:
        _check_values(r, "rewards", "finite")
    x = r.to(_compute_dtype(r.dtype))
    scale = _group_scale(x, x.shape[1])  # 1 unless the group's sum could overflow (see rloo)
    xs = x * scale
    weights = ((xs - xs.mean(-1, keepdim=True)) / scale).to(r.dtype)
    if validate:
        _check_weights(weights, r, "dr-grpo")
    return weights


def reinforce_mean(rewards: Tensor, *, validate: bool = True) -> Tensor:
    """REINFORCE with the batch's mean reward as baseline: A = r - mean over all B x N rewards.

    One baseline for the whole step, unlike Dr. GRPO's per-context mean. The baseline contains
    r_j itself with weight 1/(BN), so the mean of the estimate is (1 - 1/(BN)) grad E[r]: the
    REINFORCE direction, shrunk by a constant.

    Args:
        rewards: ``[B, N]`` finite rewards, N >= 1.
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.

    Returns:
        ``[B, N]`` weights, same dtype and device as ``rewards``.

    Raises:
        TypeError: If ``rewards`` is not a tensor.
        ValueError: For a non-2-D or non-float tensor, N = 0 or non-finite rewards.
    """
    r = _check_group_tensor(rewards, "rewards", 1, "reinforce-mean")
    if validate:
        _check_values(r, "rewards", "finite")
    x = r.detach().to(_compute_dtype(r.dtype))
    scale = _group_scale(x.reshape(1, -1), x.numel())  # one batch-wide power of two (see rloo)
    xs = x * scale
    weights = ((xs - xs.mean()) / scale).to(r.dtype)
    if validate:
        _check_weights(weights, r, "reinforce-mean")
    return weights


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

#: What an estimator reads: rewards in [0, 1] or likelihoods (passed as log-likelihoods with
#: ``log_space=True``, so heads whose likelihoods underflow stay exact).
INPUTS = ("reward", "likelihood")
#: Roles in a report: MaxRL variants, and the baselines they are compared with.
ROLES = ("maxrl", "baseline")


@dataclass(frozen=True)
class Estimator:
    """A registry entry: everything a trainer, a CLI or a suite needs to use an estimator.

    Attributes:
        name: Name used by ``TrainConfig.estimator``, the CLI and suite files.
        weights: ``weights(x, *, validate, **params) -> A``: per-rollout weights ``[B, N]``
            from ``x`` ``[B, N]`` (estimators reading likelihoods also get ``log_space``).
        input: ``reward`` or ``likelihood``.
        min_group_size: Fewest rollouts N per context it accepts.
        params: Keyword parameters beyond ``x`` that a run may set (e.g. ``("order",)``).
        role: ``maxrl`` or ``baseline``.
        summary: One line for help texts.
    """

    name: str
    weights: Callable[..., Tensor]
    input: str = "reward"
    min_group_size: int = 2
    params: tuple[str, ...] = ()
    role: str = "baseline"
    summary: str = ""

    def __call__(self, x: Tensor, **kwargs: Any) -> Tensor:
        """``weights(x, **kwargs)``."""
        return self.weights(x, **kwargs)


#: Estimator name -> registry entry. Add entries with ``register_estimator``.
ESTIMATORS: dict[str, Estimator] = {}


def register_estimator(estimator: Estimator) -> Estimator:
    """Add an estimator to the registry, so runs and suites can use it by name.

    Args:
        estimator: The entry; its name must be new (re-registering the same entry is a no-op).

    Returns:
        The entry.

    Raises:
        ValueError: A name already taken by another entry, an unknown ``input`` or ``role``,
            or ``min_group_size`` < 1.
    """
    if not isinstance(estimator, Estimator):
        raise ValueError(f"estimator={estimator!r} must be an agents.estimators.Estimator")
    if estimator.input not in INPUTS:
        raise ValueError(f"input={estimator.input!r} is invalid; allowed: {', '.join(INPUTS)}")
    if estimator.role not in ROLES:
        raise ValueError(f"role={estimator.role!r} is invalid; allowed: {', '.join(ROLES)}")
    check_int("min_group_size", estimator.min_group_size, 1)
    return register_unique(ESTIMATORS, estimator.name, estimator, "estimator")


def estimator_names() -> tuple[str, ...]:
    """The registered estimator names, in registration order."""
    return tuple(ESTIMATORS)


def get_estimator(name: str) -> Estimator:
    """The registry entry called ``name``; ``ValueError`` listing the names otherwise."""
    if not isinstance(name, str) or name not in ESTIMATORS:
        raise ValueError(f"name must be one of {', '.join(ESTIMATORS)}; got {name!r}")
    return ESTIMATORS[name]


def check_params(estimator: Estimator, params: dict[str, Any]) -> None:
    """Refuse parameters the estimator does not take, naming those that do take them.

    Raises:
        ValueError: ``order=3`` for an estimator without ``order``, and so on.
    """
    for key, value in params.items():
        if value is None or key in estimator.params:
            continue
        takers = [e.name for e in ESTIMATORS.values() if key in e.params]
        own = ", ".join(estimator.params) or "none"
        if not takers:
            raise ValueError(
                f"{key}={value!r} is not a parameter of any registered estimator; "
                f"name={estimator.name!r} takes: {own}"
            )
        where = ", ".join(f"name={t!r}" for t in takers)
        raise ValueError(
            f"{key} applies only to {where}; got {key}={value!r} with "
            f"name={estimator.name!r}; allowed: None"
        )


_BUILT_IN = (
    Estimator(
        "maxrl",
        functools.partial(maxrl_weights, baseline=1.0),
        input="likelihood",
        min_group_size=1,
        params=("order",),
        role="maxrl",
        summary="generalized MaxRL of order T (default T = N), unbiased for grad J_T",
    ),
    Estimator(
        "maxrl-binary",
        maxrl_binary_weights,
        role="maxrl",
        summary="the paper's practical (r - mean) / mean, 0 for all-fail groups",
    ),
    Estimator("reinforce", reinforce, min_group_size=1, summary="REINFORCE, A = r"),
    Estimator(
        "reinforce-mean",
        reinforce_mean,
        min_group_size=1,
        summary="REINFORCE with the batch's mean reward as baseline",
    ),
    Estimator("rloo", rloo, summary="REINFORCE with the leave-one-out group mean as baseline"),
    Estimator("grpo", grpo, summary="GRPO, (r - group mean) / (group std + 1e-4)"),
    Estimator("dr-grpo", dr_grpo, summary="Dr. GRPO, r - group mean"),
)
for _entry in _BUILT_IN:
    register_estimator(_entry)

#: The built-in estimator names, in a fixed order (``estimator_names()`` adds registered ones).
ESTIMATOR_NAMES: tuple[str, ...] = tuple(entry.name for entry in _BUILT_IN)

#: Research variants beyond the built-in set (registered like a plugin would be).
register_estimator(
    Estimator(
        "maxrl-loo",
        maxrl_loo_weights,
        input="likelihood",
        min_group_size=2,
        params=("order",),
        role="maxrl",
        summary="generalized MaxRL of order T with the leave-one-out baseline omega_j * mean "
        "of the other likelihoods; unbiased for grad J_T, 0 for groups of equal likelihoods",
    )
)


def group_weights(
    name: str,
    rewards: Tensor,
    *,
    log_space: bool = False,
    validate: bool = True,
    **params: Any,
) -> Tensor:
    """Per-rollout weights ``[B, N]`` of the registered estimator called ``name``.

    Args:
        name: A registered estimator (``estimator_names()``).
        rewards: ``[B, N]`` rewards; for estimators reading likelihoods, the likelihoods (or
            log-likelihoods with ``log_space``).
        log_space: ``rewards`` are log-likelihoods (estimators reading likelihoods only).
        validate: Scan the values (one device-to-host sync on GPU); False skips the scan.
        **params: The estimator's parameters, e.g. ``order`` for ``maxrl`` (None means its
            default and is accepted by every estimator).

    Returns:
        ``[B, N]`` weights with the estimator's default baseline.

    Raises:
        ValueError: For an unknown name (the message lists the allowed names), a parameter
            or ``log_space`` given to an estimator that has none, or any error of the
            estimator.
    """
    estimator = get_estimator(name)
    check_params(estimator, params)
    kwargs = {k: v for k, v in params.items() if v is not None}
    if estimator.input == "likelihood":
        kwargs["log_space"] = log_space
    elif log_space:
        takers = ", ".join(f"name={e.name!r}" for e in ESTIMATORS.values() if e.input != "reward")
        raise ValueError(
            f"log_space applies only to {takers}; got log_space=True with name={name!r}; "
            "allowed: False"
        )
    return estimator.weights(rewards, validate=validate, **kwargs)
