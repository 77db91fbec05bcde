"""Wall time of ``maxrl_weights`` for several B x N shapes and orders T, after a warm-up.

Each row times one call on a ``[B, N]`` batch of likelihoods (a mix of easy and hard
contexts, exact 0s and 1s included) and names the algorithm that order takes (see
``docs/estimators.md``)::

    python benchmarks/bench_estimators.py                        # CPU, float32, default grid
    python benchmarks/bench_estimators.py --device cuda          # or: --device all
    python benchmarks/bench_estimators.py --shapes 2x4096 --orders 1 2048 4096 --threads 1

Cells report the median and the best of ``--repeats`` calls; on a shared machine the best is
the less disturbed figure. ``--validate`` includes the input scan (a host sync on GPU).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from agents.estimators import ESTIMATOR_NAMES, group_weights, maxrl_weights

DEFAULT_SHAPES = ("256x16", "64x256", "8x1024", "2x4096")


def regime(order: int, rollouts: int) -> str:
    """The algorithm ``maxrl_weights`` uses for order T at N rollouts."""
    if order == 1:
        return "T=1 (no omega)"
    if order == rollouts:
        return "quadrature"
    if 2 * order <= rollouts + 2:
        return "forward peel"
    return "two-sided peel"


def default_orders(rollouts: int) -> list[int]:
    """T = 1, 2, 8, N/4, N/2, N/2 + 2, 3N/4, N - 1, N, deduplicated and clipped to [1, N]."""
    n = rollouts
    wanted = (1, 2, 8, n // 4, n // 2, n // 2 + 2, 3 * n // 4, n - 1, n)
    return sorted({t for t in wanted if 1 <= t <= n})


def likelihood_batch(
    contexts: int, rollouts: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Likelihoods u^p with p from 1/4 (easy) to 16 (hard) per context, 5% exact 0s and 1s."""
    g = torch.Generator().manual_seed(contexts * 100_003 + rollouts)
    u = torch.rand(contexts, rollouts, generator=g, dtype=torch.float64)
    power = torch.logspace(-2, 4, contexts, base=2, dtype=torch.float64)[:, None]
    lik = u**power
    lik[torch.rand(contexts, rollouts, generator=g) < 0.05] = 0.0
    lik[torch.rand(contexts, rollouts, generator=g) < 0.05] = 1.0
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
    contexts, rollouts = (int(part) for part in text.lower().split("x"))
    if contexts < 1 or rollouts < 1:
        raise argparse.ArgumentTypeError(f"shape {text!r}: B and N must be >= 1")
    return contexts, rollouts


def main(argv: list[str] | None = None) -> None:
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
    parser.add_argument("--peers", action="store_true", help="also time the other estimators")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes = args.shapes or [parse_shape(s) for s in DEFAULT_SHAPES]
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]
    dtype = getattr(torch, args.dtype)

    print(
        f"torch {torch.__version__}, {args.dtype}, CPU threads {torch.get_num_threads()}, "
        f"log_space={args.log_space}, validate={args.validate}, "
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
        for contexts, rollouts in shapes:
            lik = likelihood_batch(contexts, rollouts, device, dtype)
            x = lik.log() if args.log_space else lik
            orders = args.orders or default_orders(rollouts)
            for order in [t for t in orders if 1 <= t <= rollouts]:
                times = time_call(
                    lambda x=x, order=order: maxrl_weights(
                        x, order, log_space=args.log_space, validate=args.validate
                    ),
                    device,
                    args.warmup,
                    args.repeats,
                )
                median, best = statistics.median(times), min(times)
                rate = contexts * rollouts / best / 1e6
                print(
                    f"{device.type:<7}{f'{contexts}x{rollouts}':>11}{order:>7}  "
                    f"{regime(order, rollouts):<16}{median * 1e3:>11.2f}{best * 1e3:>10.2f}"
                    f"{rate:>14.2f}"
                )
            if args.peers:
                for peer in ESTIMATOR_NAMES[1:]:
                    rewards = (lik > 0.5).to(dtype) if peer == "maxrl-binary" else lik
                    times = time_call(
                        lambda peer=peer, rewards=rewards: group_weights(
                            peer, rewards, validate=args.validate
                        ),
                        device,
                        args.warmup,
                        args.repeats,
                    )
                    median, best = statistics.median(times), min(times)
                    print(
                        f"{device.type:<7}{f'{contexts}x{rollouts}':>11}{'-':>7}  "
                        f"{peer:<16}{median * 1e3:>11.2f}{best * 1e3:>10.2f}"
                        f"{contexts * rollouts / best / 1e6:>14.2f}"
                    )
        print(f"({name}: {label})")


if __name__ == "__main__":
    main()
