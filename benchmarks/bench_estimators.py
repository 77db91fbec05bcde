"""Wall time of ``maxrl_weights`` for several B x N shapes and orders T, after a warm-up.

Each row times one call on a ``[B, N]`` batch of likelihoods (a mix of easy and hard
contexts, exact 0s and 1s included) and names the algorithm that order takes (see
``docs/estimators.md``)::

    python benchmarks/bench_estimators.py                        # CPU, float32, default grid
    python benchmarks/bench_estimators.py --device cuda          # or: --device all
    python benchmarks/bench_estimators.py --shapes 2x4096 --orders 1 2048 4096 --threads 1
    python benchmarks/bench_estimators.py --kernel both --orders 4096    # T = N: fast vs exact
    python -m benchmarks.bench_estimators --accuracy                    # the fast kernel's error

``--kernel`` picks the order-N kernel (``agents.estimators.full_order_kernel``): ``auto``
(the default: fast for float32, exact for float64), ``fast``, ``exact`` or ``both`` (one row
each). ``--accuracy`` measures the fast kernel against the exact float64 kernel on the hard
input families of ``docs/estimators.md`` (:func:`hard_families`) and a randomized
adversarial search (:func:`adversarial_search`), N = 16 to 4096, and prints the worst
relative error of omega (float64 output: the kernel's own error) and of the float32
weights omega * l.

Cells report the median and the best of ``--repeats`` calls; on a shared machine the best is
the less disturbed figure. ``--validate`` includes the input scan (a host sync on GPU).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from agents import estimators
from agents.estimators import ESTIMATOR_NAMES, group_weights, maxrl_weights

DEFAULT_SHAPES = ("256x16", "64x256", "8x1024", "2x4096")


def regime(order: int, group_size: int, kernel: str = "fast") -> str:
    """The algorithm ``maxrl_weights`` uses for order T at group size N (float32 inputs)."""
    if order == 1:
        return "T=1 (no omega)"
    if order == group_size:
        return "fast G-node" if kernel == "fast" else "exact quadrature"
    if 2 * order <= group_size + 2:
        return "forward peel"
    return "two-sided peel"


def default_orders(group_size: int) -> list[int]:
    """T = 1, 2, 8, N/4, N/2, N/2 + 2, 3N/4, N - 1, N, deduplicated and clipped to [1, N]."""
    n = group_size
    wanted = (1, 2, 8, n // 4, n // 2, n // 2 + 2, 3 * n // 4, n - 1, n)
    return sorted({t for t in wanted if 1 <= t <= n})


def likelihood_batch(
    num_groups: int, group_size: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Likelihoods u^p with p from 1/4 (easy) to 16 (hard) per context, 5% exact 0s and 1s.

    A ``[B, N]`` batch: ``num_groups`` B contexts of ``group_size`` N rollouts each.
    """
    g = torch.Generator().manual_seed(num_groups * 100_003 + group_size)
    u = torch.rand(num_groups, group_size, generator=g, dtype=torch.float64)
    power = torch.logspace(-2, 4, num_groups, base=2, dtype=torch.float64)[:, None]
    lik = u**power
    lik[torch.rand(num_groups, group_size, generator=g) < 0.05] = 0.0
    lik[torch.rand(num_groups, group_size, generator=g) < 0.05] = 1.0
    return lik.to(device=device, dtype=dtype)


def time_call(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of ``repeats`` calls after ``warmup`` untimed ones."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def parse_shape(text: str) -> tuple[int, int]:
    """``"BxN"`` as ``(num_groups, group_size)``; both must be >= 1."""
    num_groups, group_size = (int(part) for part in text.lower().split("x"))
    if num_groups < 1 or group_size < 1:
        raise argparse.ArgumentTypeError(f"shape {text!r}: B and N must be >= 1")
    return num_groups, group_size


# --------------------------------------------------------------------------------------------
# Accuracy of the fast order-N kernel
# --------------------------------------------------------------------------------------------

#: The hard input families for the fast kernel (docs/estimators.md), one name per row.
FAMILIES = (
    "all_one",
    "all_zero",
    "near_one",
    "near_one_ulp",
    "near_zero",
    "underflow",
    "low_success",
    "uniform",
    "u_pow_8",
    "ties_quarter",
    "ties_one_value",
    "zeros_ones_uniform",
    "one_success_rest_tiny",
    "lambda_below_c",
    "lambda_at_c",
    "lambda_above_c",
    "binary_k_near_c",
)


def hard_families(group_size: int, generator: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """One float32 row per family of :data:`FAMILIES` plus a binary K-sweep, ``[rows, N]``.

    The lambda_* rows put lambda = sum l - max l at c - 1, c and c + 1 (c =
    ``FAST_CUTOFF``): one likelihood 1, the others tied at lambda / (N - 1) (where N - 1 >=
    lambda; else as close as [0, 1] allows). The binary K-sweep has one row per K in
    {0, 1, 2, c - 1, c, c + 1, c + 2, N/2, N - 1, N} (those <= N).
    """
    n, g = group_size, generator
    c = estimators.FAST_CUTOFF

    def u() -> torch.Tensor:
        return torch.rand(n, generator=g, dtype=torch.float64)

    def lambda_row(lam: float) -> torch.Tensor:
        row = torch.full((n,), min(1.0, lam / max(1, n - 1)), dtype=torch.float64)
        row[0] = 1.0
        return row

    mixed = u()
    pick = u()
    mixed[pick < 0.1], mixed[pick > 0.9] = 0.0, 1.0
    one_success = u() * 1e-3
    one_success[n // 2] = 1.0
    binary_k = torch.zeros(n, dtype=torch.float64)
    binary_k[: min(n, round(c) + 1)] = 1.0
    rows = {
        "all_one": torch.ones(n, dtype=torch.float64),
        "all_zero": torch.zeros(n, dtype=torch.float64),
        "near_one": 1.0 - 1e-3 * u(),
        "near_one_ulp": 1.0 - 2.0**-23 * torch.randint(0, 4, (n,), generator=g),
        "near_zero": 1e-4 * u(),
        "underflow": 1e-38 * u(),
        "low_success": 0.02 * u(),
        "uniform": u(),
        "u_pow_8": u() ** 8,
        "ties_quarter": torch.randint(0, 5, (n,), generator=g).double() / 4,
        "ties_one_value": torch.full((n,), 0.3, dtype=torch.float64),
        "zeros_ones_uniform": mixed,
        "one_success_rest_tiny": one_success,
        "lambda_below_c": lambda_row(c - 1),
        "lambda_at_c": lambda_row(c),
        "lambda_above_c": lambda_row(c + 1),
        "binary_k_near_c": binary_k,
    }
    names, out = list(rows), list(rows.values())
    for k in sorted({0, 1, 2, int(c) - 1, int(c), int(c) + 1, int(c) + 2, n // 2, n - 1, n}):
        if 0 <= k <= n:
            row = torch.zeros(n, dtype=torch.float64)
            row[torch.randperm(n, generator=g)[:k]] = 1.0
            names.append(f"binary_K={k}")
            out.append(row)
    return names, torch.stack(out).float()


def exact_omega(lik: torch.Tensor) -> torch.Tensor:
    """The reference: the exact order-N kernel in float64 on the (widened) inputs."""
    with estimators.full_order_kernel("exact"):
        return estimators.maxrl_omega(lik.double(), validate=False)


def relative_errors(lik: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row worst relative error of the fast kernel: omega in float64, and omega * l.

    The first is the kernel's own error (truncation, quadrature, float64 rounding); the
    second the float32 weights ``maxrl_weights(lik, baseline=None)`` against the exact
    float64 omega * l (adds the final rounding to float32), over rollouts with l > 0.
    """
    ref = exact_omega(lik)
    fast = estimators._omega_fast(lik, False)
    omega_err = ((fast - ref).abs() / ref).amax(-1)
    with estimators.full_order_kernel("fast"):
        weights = maxrl_weights(lik, baseline=None, validate=False).double()
    want = ref * lik.double()
    err = torch.where(want > 0, (weights - want).abs() / want.clamp_min(1e-300), 0.0)
    return omega_err, err.amax(-1)


def _random_context(group_size: int, g: torch.Generator) -> torch.Tensor:
    """One adversarial candidate: a few large likelihoods, the rest spread to hit lambda ~ c."""
    c = estimators.FAST_CUTOFF

    def rand() -> float:
        return float(torch.rand((), generator=g))

    lam = c * math.exp((rand() - 0.5) * 1.5)  # lambda in about [0.47 c, 2.1 c]
    big = int(torch.randint(0, min(group_size, 2 * int(c) + 4) + 1, (), generator=g))
    row = torch.zeros(group_size, dtype=torch.float64)
    row[:big] = torch.where(
        torch.rand(big, generator=g) < 0.5, 1.0, 0.5 + 0.5 * torch.rand(big, generator=g)
    )
    rest = max(0.0, lam + 1 - float(row.sum()))
    if group_size > big and rest > 0:
        shape = torch.rand(group_size - big, generator=g, dtype=torch.float64) ** (8 * rand())
        if rand() < 0.3:  # ties
            shape = torch.ones(group_size - big, dtype=torch.float64)
        row[big:] = (shape * rest / shape.sum()).clamp(0, 1)
    return row[torch.randperm(group_size, generator=g)]


def adversarial_search(
    group_sizes: tuple[int, ...], num_candidates: int, rounds: int, seed: int = 0
) -> dict[int, tuple[float, float]]:
    """Worst (omega, omega * l) relative errors per N over a random search with hill climbing.

    ``num_candidates`` random candidate contexts per N in ``group_sizes``
    (:func:`_random_context`), then ``rounds`` rounds that perturb the 8 worst (scale one to
    eight entries by a random factor in [0.5, 2], clipped to [0, 1]) and keep a perturbed row
    if its error grew.
    """
    g = torch.Generator().manual_seed(seed)
    worst: dict[int, tuple[float, float]] = {}
    for n in group_sizes:
        rows = torch.stack([_random_context(n, g) for _ in range(num_candidates)]).float()
        omega_err, weight_err = relative_errors(rows)
        for _ in range(rounds):
            top = omega_err.argsort(descending=True)[:8]
            trial = rows[top].clone()
            for r in range(trial.shape[0]):
                k = int(torch.randint(1, 9, (), generator=g))
                idx = torch.randint(0, n, (k,), generator=g)
                factor = (0.5 + 1.5 * torch.rand(k, generator=g)).float()
                trial[r, idx] = (trial[r, idx] * factor).clamp(0, 1)
            t_omega, t_weight = relative_errors(trial)
            better = t_omega > omega_err[top]
            rows[top[better]] = trial[better]
            omega_err[top[better]] = t_omega[better]
            weight_err[top[better]] = t_weight[better]
        worst[n] = (float(omega_err.max()), float(weight_err.max()))
    return worst


def accuracy_report(
    group_sizes: tuple[int, ...], num_candidates: int, rounds: int, log: Callable
) -> float:
    """Print the fast kernel's worst errors per family and N; return the overall worst."""
    g = torch.Generator().manual_seed(1)
    overall = 0.0
    log(
        f"fast kernel: G = {estimators.FAST_NODES} nodes, c = {estimators.FAST_CUTOFF:g}; "
        f"documented bounds: omega (float64) {estimators.FAST_MATH_BOUND:.1e}, float32 "
        f"weights {estimators.FAST_FLOAT32_BOUND:.1e}"
    )
    for n in group_sizes:
        names, lik = hard_families(n, g)
        omega_err, weight_err = relative_errors(lik)
        i, j = int(omega_err.argmax()), int(weight_err.argmax())
        overall = max(overall, float(weight_err.max()))
        log(
            f"N = {n:5d} families ({len(names)} rows): omega {float(omega_err[i]):.2e} "
            f"({names[i]}), float32 omega*l {float(weight_err[j]):.2e} ({names[j]})"
        )
    found = adversarial_search(group_sizes, num_candidates, rounds)
    for n, (omega_worst, weight_worst) in found.items():
        overall = max(overall, weight_worst)
        log(
            f"N = {n:5d} adversarial ({num_candidates} contexts, {rounds} rounds x 8): "
            f"omega {omega_worst:.2e}, float32 omega*l {weight_worst:.2e}"
        )
    log(f"worst float32 relative error: {overall:.2e}")
    return overall


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.accuracy:
        accuracy_report(tuple(args.group_sizes), args.num_candidates, args.rounds, print)
        return
    shapes = args.shapes or [parse_shape(s) for s in DEFAULT_SHAPES]
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]
    dtype = getattr(torch, args.dtype)

    print(
        f"torch {torch.__version__}, {args.dtype}, CPU threads {torch.get_num_threads()}, "
        f"log_space={args.log_space}, validate={args.validate}, low_success={args.low_success}, "
        f"median/best of {args.repeats} after {args.warmup} warm-up calls"
    )
    header = (
        f"{'device':<7}{'B x N':>11}{'T':>7}  {'algorithm':<16}{'median ms':>11}"
        f"{'best ms':>10}{'M rollouts/s':>14}"
    )
    print(header)
    print("-" * len(header))
    for name in devices:
        device = torch.device(name)
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        for num_groups, group_size in shapes:
            lik = likelihood_batch(num_groups, group_size, device, dtype)
            if args.low_success:
                lik = 0.02 * torch.rand(
                    num_groups, group_size, generator=torch.Generator().manual_seed(group_size)
                ).to(device=device, dtype=dtype)
            _time_orders(args, device, dtype, lik)
            if args.peers:
                _time_peers(args, device, dtype, lik)
        print(f"({name}: {label})")


def _parser() -> argparse.ArgumentParser:
    """The command-line parser of the timing and ``--accuracy`` runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shapes",
        nargs="+",
        type=parse_shape,
        default=None,
        help=f"BxN shapes (default {' '.join(DEFAULT_SHAPES)})",
    )
    parser.add_argument(
        "--orders",
        nargs="+",
        type=int,
        default=None,
        help="orders T (default: 1, 2, 8, N/4, N/2, N/2+2, 3N/4, N-1, N)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or all (cuda if present)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--log-space", action="store_true", help="pass log-likelihoods")
    parser.add_argument("--validate", action="store_true", help="include the input scan")
    parser.add_argument(
        "--low-success",
        action="store_true",
        help="likelihoods 0.02 u, u ~ U(0, 1) (the regime MaxRL is for) instead of the mix",
    )
    parser.add_argument("--peers", action="store_true", help="also time the other estimators")
    parser.add_argument(
        "--kernel",
        choices=[*estimators.KERNELS, "both"],
        default="auto",
        help="order-N kernel (both: a fast and an exact row)",
    )
    parser.add_argument(
        "--accuracy", action="store_true", help="measure the fast kernel's error instead"
    )
    parser.add_argument(
        "--sizes",
        dest="group_sizes",
        metavar="N",
        nargs="+",
        type=int,
        default=[16, 64, 256, 1024, 4096],
        help="N for --accuracy",
    )
    parser.add_argument(
        "--contexts",
        dest="num_candidates",
        type=int,
        default=160,
        help="adversarial candidate contexts per N (--accuracy)",
    )
    parser.add_argument("--rounds", type=int, default=25, help="hill-climbing rounds (--accuracy)")
    return parser


def _time_orders(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype, lik: torch.Tensor
) -> None:
    """Time ``maxrl_weights`` on one B x N batch at each order (and kernel) and print rows."""
    num_groups, group_size = lik.shape
    log_space, validate = args.log_space, args.validate
    x = lik.log() if args.log_space else lik
    orders = args.orders or default_orders(group_size)
    kernels = ["fast", "exact"] if args.kernel == "both" else [args.kernel]
    for order in [t for t in orders if 1 <= t <= group_size]:
        for kernel in kernels if order == group_size else kernels[:1]:

            def call(x=x, order=order, kernel=kernel) -> None:
                with estimators.full_order_kernel(kernel):
                    maxrl_weights(x, order, log_space=log_space, validate=validate)

            times = time_call(call, device, args.warmup, args.repeats)
            median, best = statistics.median(times), min(times)
            rate = num_groups * group_size / best / 1e6
            with estimators.full_order_kernel(kernel):
                used = estimators.full_order_kernel_for(dtype)
            print(
                f"{device.type:<7}{f'{num_groups}x{group_size}':>11}{order:>7}  "
                f"{regime(order, group_size, used):<16}{median * 1e3:>11.2f}"
                f"{best * 1e3:>10.2f}{rate:>14.2f}"
            )


def _time_peers(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype, lik: torch.Tensor
) -> None:
    """Time the other group estimators on one B x N batch and print their rows."""
    num_groups, group_size = lik.shape
    for peer in ESTIMATOR_NAMES[1:]:
        rewards = (lik > 0.5).to(dtype) if peer == "maxrl-binary" else lik
        times = time_call(
            lambda peer=peer, rewards=rewards: group_weights(peer, rewards, validate=args.validate),
            device,
            args.warmup,
            args.repeats,
        )
        median, best = statistics.median(times), min(times)
        print(
            f"{device.type:<7}{f'{num_groups}x{group_size}':>11}{'-':>7}  "
            f"{peer:<16}{median * 1e3:>11.2f}{best * 1e3:>10.2f}"
            f"{num_groups * group_size / best / 1e6:>14.2f}"
        )


if __name__ == "__main__":
    main()
