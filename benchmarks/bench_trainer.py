"""Throughput of the trainer's step (rollouts per second), after a warm-up.

Times ``Trainer.train_step`` (sample contexts, N rollouts per context, score, estimator
weights, one backward pass, Adam) without evaluation or logging statistics, for several
context batch sizes B at N rollouts per context::

    python benchmarks/bench_trainer.py                       # B = 64..1024, N = 16, CPU
    python benchmarks/bench_trainer.py --env MaxRLTokens-v0 --estimators maxrl grpo
    python benchmarks/bench_trainer.py --device cuda --contexts 1024 16384 262144

Each cell reports the median and the best of ``--repeats`` timed windows: on a shared
machine the best is the less disturbed figure.
"""

from __future__ import annotations

import argparse
import time

import torch

from agents.trainer import TrainConfig, Trainer


def measure(config: TrainConfig, seconds: float, warmup: int, repeats: int) -> list[float]:
    """Rollouts per second of ``repeats`` timed windows of ``seconds / repeats`` each."""
    trainer = Trainer(config)
    for _ in range(warmup):
        trainer.train_step(with_stats=False)
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    rates = []
    for _ in range(repeats):
        sync()
        steps, start = 0, time.perf_counter()
        while True:
            trainer.train_step(with_stats=False)
            steps += 1
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / repeats:
                rates.append(steps * config.rollouts_per_step / elapsed)
                break
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MaxRLRegression-v0")
    parser.add_argument("--estimators", nargs="+", default=["maxrl", "grpo", "supervised"])
    parser.add_argument("--contexts", nargs="+", type=int, default=[64, 128, 256, 512, 1024])
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per cell")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows per cell")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"# {args.env}, N = {args.rollouts}, device {args.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'estimator':<12} {'B':>8} {'median/s':>12} {'best/s':>12}")
    for estimator in args.estimators:
        for contexts in args.contexts:
            config = TrainConfig(
                env_id=args.env,
                estimator=estimator,
                contexts=contexts,
                rollouts=args.rollouts,
                budget=10**12,
                device=args.device,
                log_dir=None,
            )
            rates = sorted(measure(config, args.seconds, args.warmup, args.repeats))
            median, best = rates[len(rates) // 2], rates[-1]
            print(f"{estimator:<12} {contexts:>8} {median:>12,.0f} {best:>12,.0f}", flush=True)


if __name__ == "__main__":
    main()
