"""Environment throughput: the native vector env against Gymnasium's SyncVectorEnv.

Prints env-steps per second (sub-env steps, i.e. ``num_envs`` per ``step`` call) for each env
id and size, measured after a warm-up with random actions generated before the clock starts:

    .venv/bin/python -m benchmarks.bench_envs
    .venv/bin/python -m benchmarks.bench_envs --sizes 16 256 4096 16384 --seconds 3 --sb3

``native`` is ``gymnasium.make_vec(id, num_envs=n)`` (the registered ``vector_entry_point``),
``sync`` is ``gymnasium.make_vec(id, num_envs=n, vectorization_mode="sync")`` (one Python env
per sub-env, NEXT_STEP autoreset; measured up to ``--sync-max`` sub-envs), and ``sb3`` (with
``--sb3``) is the Stable-Baselines3 adapter with VecMonitor, as SB3 algorithms see it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

import maxrl_envs
from maxrl_envs.sb3 import make_sb3_vec_env

#: Distinct pre-generated action batches cycled through during a measurement.
ACTION_BATCHES = 64


def actions_for(space: gym.Space, seed: int) -> list[np.ndarray]:
    space.seed(seed)
    return [space.sample() for _ in range(ACTION_BATCHES)]


def steps_per_second(
    step: Callable[[np.ndarray], object],
    actions: list[np.ndarray],
    num_envs: int,
    seconds: float,
    warmup: int,
) -> float:
    """Sub-env steps per second of ``step`` over at least ``seconds`` (after ``warmup`` calls)."""
    for i in range(warmup):
        step(actions[i % len(actions)])
    calls = 0
    start = time.perf_counter()
    while True:
        for action in actions:
            step(action)
        calls += len(actions)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * num_envs / elapsed


def measure(env_id: str, mode: str, num_envs: int, seconds: float, warmup: int, seed: int) -> float:
    if mode == "sb3":
        venv = make_sb3_vec_env(env_id, num_envs=num_envs, seed=seed)
        venv.reset()
        actions = actions_for(gym.vector.utils.batch_space(venv.action_space, num_envs), seed)
        rate = steps_per_second(venv.step, actions, num_envs, seconds, warmup)
    else:
        kwargs = {} if mode == "native" else {"vectorization_mode": mode}
        venv = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
        venv.reset(seed=seed)
        actions = actions_for(venv.action_space, seed)
        rate = steps_per_second(venv.step, actions, num_envs, seconds, warmup)
    venv.close()
    return rate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ids", nargs="+", default=["MaxRLRegression-v0", "MaxRLTokens-v0"], help="env ids"
    )
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=[16, 256, 4096], help="numbers of sub-envs"
    )
    parser.add_argument("--sync-max", type=int, default=256, help="largest SyncVectorEnv size")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per cell")
    parser.add_argument("--warmup", type=int, default=50, help="untimed step calls first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--sb3", action="store_true", help="also time the SB3 adapter")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    unknown = [env_id for env_id in args.ids if env_id not in maxrl_envs.all_ids()]
    if unknown:
        parser.error(f"unknown ids {unknown}; allowed: {', '.join(maxrl_envs.all_ids())}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"gymnasium {gym.__version__}, {args.seconds:g} s per cell after {args.warmup} warm-up "
        "steps"
    )
    modes = ["native", "sync"] + (["sb3"] if args.sb3 else [])
    header = f"{'env id':<24} {'num_envs':>8} " + " ".join(f"{m + ' steps/s':>16}" for m in modes)
    print(header)
    print("-" * len(header))
    for env_id in args.ids:
        for num_envs in args.sizes:
            cells = []
            for mode in modes:
                if mode == "sync" and num_envs > args.sync_max:
                    cells.append(f"{'-':>16}")
                    continue
                rate = measure(env_id, mode, num_envs, args.seconds, args.warmup, args.seed)
                cells.append(f"{rate:>16,.0f}")
            print(f"{env_id:<24} {num_envs:>8} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
