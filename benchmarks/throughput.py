"""Throughput of our trainer, its parts and the SB3 baselines, in one run on one machine.

``python -m benchmarks.throughput`` (console script ``maxrl-throughput``) measures, after a
warm-up and in one process:

- **trainer**: ``Trainer.train_step`` end to end (contexts, sampling, scoring, estimator,
  backward, Adam) in rollouts per second, on the regression, classification and token tasks,
  for ``maxrl`` (order T = N) and ``grpo``, at N = 16, 64 and 256 rollouts per context and
  several context batches B, plus the N = 4096, B = 256 row; ``--compile`` rows use
  ``TrainConfig.compile``; CUDA rows when a GPU is present (else marked *not measured*);
- **parts** of a step at N = 64, B = 1024 (milliseconds per call): the task core (sample
  ids, look up contexts, score), policy sampling, the estimator alone, backward + optimizer,
  and the estimator's share of the whole step;
- **SB3** PPO, A2C, SAC, TD3 (Box tasks) and DQN (discrete tasks) with the project's settings
  (``agents.sb3_baselines.SB3_BASELINES``) on the same tasks through the native adapter
  (``maxrl_envs.sb3.make_sb3_vec_env``): ``model.learn`` for a fixed number of collections
  after a warm-up, in rollouts (finished episodes) per second;
- **ratios** of our best MaxRL row (N = 16) to each SB3 algorithm, taken round by round;
- peak memory (process RSS from ``getrusage``; ``torch.cuda.max_memory_allocated`` per
  CUDA row) and the machine (CPU model and cores, GPU, torch and CUDA versions, load);
- with ``--kernel-compare``: the order-N MaxRL kernels side by side (the fast default and the
  exact quadrature it replaced for float32, ``agents.estimators.full_order_kernel``) on
  regression at N = 64, 256 (B = 1024) and 1024, 4096 (B = 256), end to end and the
  estimator alone, with its share of the step, in the default task and in a low-success
  regime (a Gaussian head 0.02 wide: mean likelihood ~0.015, where the exact kernel's node
  cutoff skips nothing).

Each round also records the load average, and each window the process's CPU time next to
its wall time (``cpu_s``), so figures from a loaded machine can be read as such.

Every measured system is timed in each of ``--repeats`` rounds, one window each, in an order
that rotates between rounds, so a noisy neighbour hits all of them alike; tables give the
median and the min-max of the rounds. ``--json FILE`` writes everything. Examples::

    python -m benchmarks.throughput                      # CPU defaults: a few minutes
    python -m benchmarks.throughput --quick --json q.json  # a few-second smoke run
    python -m benchmarks.throughput --tasks regression --estimators maxrl --no-sb3
    python -m benchmarks.throughput --devices cuda --json gpu.json   # GPU rows only
    python -m benchmarks.throughput --kernel-compare --tasks regression --group-sizes 16 64 \
        --no-compile --sb3 PPO --json k.json     # fast vs exact order-N kernel, PPO ratio

Timings belong to scripts like this one, never to tests. Use one torch thread (the default,
``--threads 1``) on a shared CPU: small networks run fastest that way.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents.cli import Parser
from benchmarks.jobs import limit_threads

#: Task name -> (env id, env kwargs): one id per task kind.
TASKS: dict[str, tuple[str, dict[str, Any]]] = {
    "regression": ("MaxRLRegression-v0", {}),
    "classification": ("MaxRLClassificationManyClass-v0", {}),
    "tokens": ("MaxRLTokens-v0", {}),
}
ESTIMATORS = ("maxrl", "grpo")
GROUP_SIZES = (16, 64, 256)
#: Context batches B on CPU: 64, 1024, and the B that makes 2^18 rollouts per step (2^16 for
#: tokens, whose rate is flat in B: its per-rollout network forwards dominate every size).
CPU_ROLLOUTS_PER_STEP = 1 << 18
CPU_ROLLOUTS_PER_STEP_TOKENS = 1 << 16
CPU_NUM_GROUPS = (64, 1024)
#: On CUDA: B such that B * N is 2^16, 2^20 and 2^22 rollouts per step.
CUDA_ROLLOUTS_PER_STEP = (1 << 16, 1 << 20, 1 << 22)
#: The large-group row: N = 4096 rollouts for each of B = 256 contexts (regression, maxrl).
BIG_GROUP = (256, 4096)
#: Parts are timed at this (B, N) (T = N for maxrl).
PARTS_AT = (1024, 64)
PARTS = ("core", "sampling", "estimator", "backward_optimizer")
#: Collections (SB3's rollout/update cycles) per timed window, per algorithm.
SB3_WINDOW_COLLECTIONS = {"PPO": 1, "A2C": 16, "SAC": 32, "TD3": 32, "DQN": 16}
#: Our row the SB3 ratios refer to: MaxRL at this N, the B with the best median.
RATIO_GROUP_SIZE = 16
#: The targets of the performance issue, checked at the end.
TARGET_ROLLOUTS_PER_S = 1e6
TARGET_RATIO_PPO = 1000.0
TARGET_ESTIMATOR_SHARE = 0.10
#: --kernel-compare: (B, N) of the regression rows, maxrl with T = N.
KERNEL_SIZES = ((1024, 64), (1024, 256), (256, 1024), (256, 4096))
#: The regimes of --kernel-compare: env kwargs of MaxRLRegression-v0. ``low-success`` is a
#: Gaussian head 0.02 wide: likelihoods ~U(0, 0.02)-like, lambda = sum l - max l below the
#: exact kernel's cutoff, so that kernel integrates over all ceil(N/2) nodes.
KERNEL_REGIMES: dict[str, dict[str, Any]] = {"default": {}, "low-success": {"head_scale": 0.02}}
KERNEL_CHOICES = ("fast", "exact")
#: Exact-kernel rows skipped unless --slow-exact: one step takes 15-40 s on one thread.
SLOW_EXACT = {("low-success", 4096)}
#: The order-N kernel issue's targets, judged on the fast kernel's default-regime rows:
#: estimator share at most 15% at (B, N) = (1024, 64); rollouts/s at least 4M at
#: (1024, 256) and 3M at (256, 4096).
KERNEL_TARGETS = {
    "estimator_share": ((1024, 64), 0.15),
    "rollouts_per_s_n256": ((1024, 256), 4e6),
    "rollouts_per_s_n4096": ((256, 4096), 3e6),
}
SCHEMA = 1


# --------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model and cores, GPU, library versions, torch threads and load average."""
    import gymnasium
    import numpy as np

    try:
        import stable_baselines3

        sb3_version = stable_baselines3.__version__
    except ImportError:  # pragma: no cover - a dependency of the project
        sb3_version = None
    cuda = torch.cuda.is_available()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
        "stable_baselines3": sb3_version,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine, as printed at the top of the table."""
    gpu = f"GPU {info['gpu']}" if info["gpu"] else "no GPU"
    load = info.get("load_average")
    load_text = f", load {load[0]:.1f}" if load else ""
    return (
        f"{info['cpu']}, {info['cpu_count']} cores ({info['cpu_usable']} usable), {gpu}, "
        f"torch {info['torch']} (CUDA {info['cuda'] or 'none'}), "
        f"{info['torch_threads']} torch thread(s), Python {info['python']}, "
        f"SB3 {info['stable_baselines3']}{load_text}"
    )


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (``getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


# --------------------------------------------------------------------------------------------
# Measured systems
# --------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Measurement:
    """One measured system: a warm-up, then one timed window per round.

    Attributes:
        kind: ``trainer``, ``part`` or ``sb3``.
        key: What it is (task, estimator, sizes, device, ...): the JSON row's identity.
        unit: What ``samples`` count: ``rollouts/s`` or ``ms`` (per call).
        setup: Builds the system and warms it up (None: nothing to measure).
        window: One timed window: returns (units done, seconds).
        samples: One value per round (rollouts/s, or ms per call).
        wall: Wall-clock seconds of each window (what the cell costs per round).
        cpu: CPU seconds this process used in each window (``time.process_time``).
        inner: Kernel rows: seconds per step spent in the estimator, per window.
        status: ``measured``, or why not (``not measured: ...``, ``failed: ...``).
        memory: Peak memory after the warm-up (``rss_mib``; ``cuda_mib`` on a GPU).
    """

    kind: str
    key: dict[str, Any]
    unit: str
    setup: Callable[[], Callable[[], tuple[float, float]]] | None = None
    window: Callable[[], tuple[float, float]] | None = None
    samples: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    inner: list[float] = field(default_factory=list)
    status: str = "measured"
    memory: dict[str, float | None] = field(default_factory=dict)

    def label(self) -> str:
        """A short name for progress messages."""
        return " ".join(f"{k}={v}" for k, v in self.key.items() if k != "env_id")


def _trainer_config(
    task: str, estimator: str, num_groups: int, group_size: int, device: str, compile: bool
) -> Any:
    from agents.trainer import MAX_BUDGET, MAX_STEPS, TrainConfig

    env_id, env_kwargs = TASKS[task]
    return TrainConfig(
        env_id=env_id,
        env_kwargs=dict(env_kwargs),
        estimator=estimator,
        num_groups=num_groups,
        group_size=group_size,
        # The largest budget the trainer accepts: steps are timed, the run never ends.
        budget=min(MAX_BUDGET, MAX_STEPS * num_groups * group_size),
        device=device,
        log_dir=None,
        compile=compile,
    )


def trainer_setup(
    config: Any,
    seconds: float,
    warmup: int,
    kernel: str = "auto",
    estimator_seconds: list[float] | None = None,
) -> Callable[[], tuple[float, float]]:
    """Build a trainer, take ``warmup`` steps; return its window (steps for >= ``seconds``).

    Args:
        config: The run's config.
        seconds: Minimum length of a window.
        warmup: Untimed steps first.
        kernel: The order-N MaxRL kernel the steps use (``full_order_kernel``).
        estimator_seconds: If given, each window appends to it the seconds its steps spent
            in the estimator call (``objective.weights``, timed inside the step).
    """
    from agents.estimators import full_order_kernel
    from agents.trainer import Trainer

    trainer = Trainer(config)
    device = trainer.device
    spent = [0.0]
    if estimator_seconds is not None:
        weights = trainer.objective.weights

        def timed_weights(*args: Any, **kwargs: Any) -> torch.Tensor:
            start = time.perf_counter()
            out = weights(*args, **kwargs)
            _sync(device)
            spent[0] += time.perf_counter() - start
            return out

        trainer.objective.weights = timed_weights  # the step calls it through the instance
    with full_order_kernel(kernel):
        for _ in range(max(1, warmup)):  # the first step also runs the one-time input checks
            trainer.train_step(with_stats=False)
    _sync(device)
    per_step = config.rollouts_per_step

    def window() -> tuple[float, float]:
        steps, start = 0, time.perf_counter()
        spent[0] = 0.0
        with full_order_kernel(kernel):
            while True:
                trainer.train_step(with_stats=False)
                steps += 1
                if time.perf_counter() - start >= seconds:
                    break
        _sync(device)
        elapsed = time.perf_counter() - start
        if estimator_seconds is not None:
            estimator_seconds.append(spent[0] / steps)
        return steps * per_step, elapsed

    return window


class StepParts:
    """The parts of one training step, each callable on its own (timed section only).

    Args:
        config: The trainer config whose step is split.
        warmup: Training steps taken first (the policy is then a trained one's).
    """

    def __init__(self, config: Any, warmup: int) -> None:
        from agents.trainer import Trainer

        self.trainer = trainer = Trainer(config)
        for _ in range(max(1, warmup)):
            trainer.train_step(with_stats=False)
        self.config = config
        self.device = trainer.device
        core = trainer.core
        self.contexts = core.contexts(
            core.sample_ids(config.num_groups, trainer.generator, "train"), "train", validate=False
        )
        with torch.no_grad():
            _, prediction = trainer.agent.rollouts(
                self.contexts, config.group_size, trainer.generator
            )
        self.prediction = prediction
        self.scores = core.score(self.contexts, prediction, validate=False)
        _sync(self.device)

    def _timed(self, fn: Callable[[], object]) -> float:
        _sync(self.device)
        start = time.perf_counter()
        fn()
        _sync(self.device)
        return time.perf_counter() - start

    def core(self) -> float:
        """sample_ids + contexts + score (of a fixed prediction tensor)."""
        t, c = self.trainer, self.config

        def run() -> None:
            ids = t.core.sample_ids(c.num_groups, t.generator, "train")
            contexts = t.core.contexts(ids, "train", validate=False)
            t.core.score(contexts, self.prediction, validate=False)

        return self._timed(run)

    def sampling(self) -> float:
        """N rollouts per context with their log-probabilities (the graph is built)."""
        t, c = self.trainer, self.config
        return self._timed(lambda: t.agent.rollouts(self.contexts, c.group_size, t.generator))

    def estimator(self) -> float:
        """The estimator's weights from the step's scores."""
        t, c = self.trainer, self.config
        return self._timed(
            lambda: t.objective.weights(self.scores, {"order": c.order}, compiled=c.compile)
        )

    def backward_optimizer(self) -> float:
        """loss.backward() and the Adam step (the loss's graph is built untimed)."""
        t, c = self.trainer, self.config
        rollouts, _ = t.agent.rollouts(self.contexts, c.group_size, t.generator)
        weights = t.objective.weights(self.scores, {"order": c.order}, compiled=c.compile)
        loss = -(weights.detach() * rollouts.log_prob).mean()

        def run() -> None:
            t.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t.optimizer.step()

        return self._timed(run)


def calls_window(call: Callable[[], float], seconds: float) -> Callable[[], tuple[float, float]]:
    """A window of calls of ``call`` (which returns its own timed seconds) for >= ``seconds``."""

    def window() -> tuple[float, float]:
        calls, busy, start = 0, 0.0, time.perf_counter()
        while True:
            busy += call()
            calls += 1
            if time.perf_counter() - start >= seconds:
                return calls, busy

    return window


def sb3_setup(
    task: str, algo: str, collections: int, warmup_collections: int, rounds: int
) -> Callable[[], tuple[float, float]]:
    """Build an SB3 model on the native adapter and warm it up; return its window.

    The model uses the project's settings (``resolved_settings``/``run_settings``); the
    replay buffer of off-policy algorithms holds every transition of the benchmark. The
    warm-up runs past ``learning_starts`` so windows include gradient steps. A window is
    ``model.learn`` for ``collections`` collections; its units are finished episodes.
    """
    from agents.sb3_baselines import (
        SB3Config,
        env_facts,
        get_baseline,
        run_settings,
        steps_per_collect,
    )
    from maxrl_envs.sb3 import make_sb3_vec_env

    env_id, env_kwargs = TASKS[task]
    _, _, episode_length = env_facts(env_id, env_kwargs)
    probe = SB3Config(env_id=env_id, env_kwargs=dict(env_kwargs), algo=algo)
    num_envs = run_settings(probe)["num_envs"]
    per_collect = steps_per_collect(algo, num_envs, run_settings(probe)["hyperparams"])
    baseline = get_baseline(algo)
    learning_starts = 0
    if not baseline.on_policy:
        learning_starts = int(baseline.hyperparams.get("learning_starts", 100))
    warmup_steps = max(warmup_collections * per_collect, learning_starts + 2 * per_collect)
    window_steps = collections * per_collect
    budget = (warmup_steps + (rounds + 1) * window_steps) // episode_length + 1
    settings = run_settings(dataclasses.replace(probe, budget=budget))
    env = make_sb3_vec_env(env_id, num_envs, seed=0, **env_kwargs)
    model = baseline.algorithm_class()(
        "MlpPolicy", env, device="cpu", seed=0, **settings["hyperparams"]
    )
    model.learn(total_timesteps=warmup_steps, reset_num_timesteps=False)

    def window() -> tuple[float, float]:
        before = int(model.num_timesteps)
        start = time.perf_counter()
        model.learn(total_timesteps=window_steps, reset_num_timesteps=False)
        elapsed = time.perf_counter() - start
        return (int(model.num_timesteps) - before) / episode_length, elapsed

    return window


def sb3_algos(task: str, wanted: Sequence[str] | None) -> list[str]:
    """The registered SB3 baselines that support ``task``'s action space (in ``wanted``)."""
    from agents.sb3_baselines import SB3_BASELINES, env_facts

    env_id, env_kwargs = TASKS[task]
    _, family, _ = env_facts(env_id, env_kwargs)
    names = [b.algo for b in SB3_BASELINES.values() if family in b.families]
    return [n for n in names if wanted is None or n in wanted]


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What to measure (see ``build_parser`` for the meaning of each setting)."""

    tasks: list[str]
    estimators: list[str]
    group_sizes: list[int]
    cpu_num_groups: list[int]
    cpu_rollouts_per_step: int
    cuda_rollouts_per_step: list[int]
    devices: list[str]
    big_group: bool
    parts_at: tuple[int, int]
    compile: bool
    sb3: list[str] | None
    sb3_tasks: list[str]
    sb3_scale: float
    seconds: float
    repeats: int
    warmup: int
    quick: bool = False
    kernel_compare: bool = False
    kernel_sizes: list[tuple[int, int]] = field(default_factory=lambda: list(KERNEL_SIZES))
    slow_exact: bool = False


def _num_groups(plan: Plan, task: str, group_size: int, device: str) -> list[int]:
    if device == "cuda":
        wanted = [max(1, total // group_size) for total in plan.cuda_rollouts_per_step]
    else:
        total = plan.cpu_rollouts_per_step
        if task == "tokens" and total == CPU_ROLLOUTS_PER_STEP:
            total = CPU_ROLLOUTS_PER_STEP_TOKENS
        wanted = [*plan.cpu_num_groups, max(1, total // group_size)]
    return sorted(set(wanted))


def _unavailable(device: str, compiled: bool) -> str | None:
    """Why a (device, compile) combination cannot be measured here, or None."""
    from agents.compile import unavailable_reason

    if device == "cuda" and not torch.cuda.is_available():
        return "not measured: no CUDA device"
    if compiled:
        reason = unavailable_reason(device)
        if reason is not None:
            return f"not measured: torch.compile unavailable ({reason})"
    return None


def _trainer_cell(
    plan: Plan,
    task: str,
    estimator: str,
    num_groups: int,
    group_size: int,
    device: str,
    compiled: bool,
    note: str | None = None,
) -> Measurement:
    """A trainer row (``note``: why it is not measured, if it is not)."""
    key = {
        "task": task,
        "env_id": TASKS[task][0],
        "estimator": estimator,
        "group_size": group_size,
        "num_groups": num_groups,
        "rollouts_per_step": num_groups * group_size,
        "device": device,
        "compile": compiled,
    }
    cell = Measurement("trainer", key, "rollouts/s")
    status = _unavailable(device, compiled) or note
    if status:
        cell.status = status
    else:
        config = _trainer_config(task, estimator, num_groups, group_size, device, compiled)
        cell.setup = lambda: trainer_setup(config, plan.seconds, plan.warmup)
    return cell


def _part_cells(
    plan: Plan, task: str, estimator: str, device: str, compiled: bool
) -> list[Measurement]:
    """The parts of one step; compiled steps differ only in their estimator part."""
    num_groups, group_size = plan.parts_at
    status = _unavailable(device, compiled)
    shared: dict[str, StepParts] = {}
    cells = []
    for part in ("estimator",) if compiled else PARTS:
        key = {
            "task": task,
            "env_id": TASKS[task][0],
            "estimator": estimator,
            "group_size": group_size,
            "num_groups": num_groups,
            "device": device,
            "compile": compiled,
            "part": part,
        }
        cell = Measurement("part", key, "ms")
        if status:
            cell.status = status
        else:
            config = _trainer_config(task, estimator, num_groups, group_size, device, compiled)

            def setup(config: Any = config, part: str = part) -> Callable[[], tuple[float, float]]:
                if "parts" not in shared:  # one trainer serves every part of the step
                    shared["parts"] = StepParts(config, plan.warmup)
                return calls_window(getattr(shared["parts"], part), plan.seconds)

            cell.setup = setup
        cells.append(cell)
    return cells


def build_cells(plan: Plan) -> list[Measurement]:
    """Every cell of the plan, unmeasured; CUDA cells are marked when no GPU is present."""
    cells: list[Measurement] = []
    for device in plan.devices:
        for task in plan.tasks:
            for estimator in plan.estimators:
                for group_size in plan.group_sizes:
                    for num_groups in _num_groups(plan, task, group_size, device):
                        cells.append(
                            _trainer_cell(
                                plan, task, estimator, num_groups, group_size, device, False
                            )
                        )
            if plan.compile and "maxrl" in plan.estimators:
                for group_size in plan.group_sizes:  # the larger batches of the eager rows
                    for num_groups in _num_groups(plan, task, group_size, device)[-2:]:
                        cells.append(
                            _trainer_cell(plan, task, "maxrl", num_groups, group_size, device, True)
                        )
        if "regression" in plan.tasks and "maxrl" in plan.estimators:
            num_groups, group_size = BIG_GROUP
            note = None if plan.big_group else "not measured: skipped (--quick, --no-big-group)"
            for compiled in (False, True) if plan.compile else (False,):
                cells.append(
                    _trainer_cell(
                        plan, "regression", "maxrl", num_groups, group_size, device, compiled, note
                    )
                )
    for device in plan.devices:
        for task in plan.tasks:
            for estimator in plan.estimators:
                cells += _part_cells(plan, task, estimator, device, False)
                if plan.compile and estimator == "maxrl":
                    cells += _part_cells(plan, task, estimator, device, True)
    if plan.kernel_compare:
        cells += _kernel_cells(plan)
    if plan.sb3 is None or plan.sb3:
        for task in plan.sb3_tasks:
            for algo in sb3_algos(task, plan.sb3):
                collections = max(1, round(SB3_WINDOW_COLLECTIONS.get(algo, 4) * plan.sb3_scale))
                key = {"task": task, "env_id": TASKS[task][0], "algo": algo, "device": "cpu"}
                cell = Measurement("sb3", key, "rollouts/s")
                cell.setup = lambda task=task, algo=algo, collections=collections: sb3_setup(
                    task, algo, collections, 1, plan.repeats
                )
                cells.append(cell)
    return cells


# --------------------------------------------------------------------------------------------
# The order-N kernels side by side (--kernel-compare)
# --------------------------------------------------------------------------------------------


def _kernel_cells(plan: Plan) -> list[Measurement]:
    """End-to-end cells for each regime, (B, N) and kernel; the estimator timed in the step.

    The estimator's time is measured inside the same steps (``objective.weights`` wrapped
    with a timer), so its share is of the very steps whose rate is reported: the exact
    kernel's cost depends on the data (its node cutoff), so a separate call on other scores
    would not be comparable.
    """
    cells = []
    for regime, env_kwargs in KERNEL_REGIMES.items():
        for num_groups, group_size in plan.kernel_sizes:
            config = dataclasses.replace(
                _trainer_config("regression", "maxrl", num_groups, group_size, "cpu", False),
                env_kwargs=dict(env_kwargs),
            )
            for kernel in KERNEL_CHOICES:
                key = {
                    "regime": regime,
                    "env_kwargs": dict(env_kwargs),
                    "group_size": group_size,
                    "num_groups": num_groups,
                    "kernel": kernel,
                    "device": "cpu",
                }
                cell = Measurement("kernel", key, "rollouts/s")
                if kernel == "exact" and (regime, group_size) in SLOW_EXACT and not plan.slow_exact:
                    cell.status = "not measured: one step takes 15-40 s (--slow-exact)"
                else:
                    cell.setup = lambda config=config, kernel=kernel, cell=cell: trainer_setup(
                        config, plan.seconds, plan.warmup, kernel, cell.inner
                    )
                cells.append(cell)
    return cells


def derive_kernels(cells: list[Measurement]) -> list[dict[str, Any]]:
    """Per regime and (B, N): each kernel's rate, estimator time and share; the speed-ups.

    Per window: the estimator's ms per step and its share of the step (estimator seconds
    over step seconds, both from the same steps); speed-ups are paired by round (fast over
    exact rollouts/s, exact over fast estimator ms).
    """
    rows = []
    seen = []
    for cell in _find(cells, "kernel", kernel="fast"):
        k = cell.key
        what = (k["regime"], k["num_groups"], k["group_size"])
        if what in seen:
            continue
        seen.append(what)
        regime, b, n = what
        row: dict[str, Any] = {"regime": regime, "num_groups": b, "group_size": n}
        of = {
            c.key["kernel"]: c
            for c in _find(cells, "kernel", regime=regime, num_groups=b, group_size=n)
        }
        est_ms: dict[str, list[float]] = {}
        for kernel in KERNEL_CHOICES:
            c = of[kernel]
            step_s = [b * n / rate for rate in c.samples]
            est_ms[kernel] = [1e3 * s for s in c.inner]
            row[kernel] = {
                "rollouts_per_s": summary(c.samples),
                "estimator_ms": summary(est_ms[kernel]),
                "share": summary([e / s for e, s in zip(c.inner, step_s, strict=False)]),
                "cpu_per_wall": summary(
                    [cpu / wall for cpu, wall in zip(c.cpu, c.wall, strict=False) if wall > 0]
                ),
                "status": c.status,
            }
        fast, exact = of["fast"], of["exact"]
        row["step_speedup"] = (
            _paired(fast, exact, lambda x, y: x / y) if exact.samples and fast.samples else None
        )
        pairs = [e / f for e, f in zip(est_ms["exact"], est_ms["fast"], strict=False) if f > 0]
        row["estimator_speedup"] = summary(pairs)
        rows.append(row)
    return rows


def kernel_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """:data:`KERNEL_TARGETS` against the fast kernel's default-regime medians."""
    out = {}
    for name, ((b, n), target) in KERNEL_TARGETS.items():
        row = next(
            (
                r
                for r in rows
                if (r["regime"], r["num_groups"], r["group_size"]) == ("default", b, n)
            ),
            None,
        )
        stat = None
        if row is not None:
            stat = row["fast"]["share" if name == "estimator_share" else "rollouts_per_s"]
        value = stat["median"] if stat else None
        met = None
        if value is not None:
            met = value <= target if name == "estimator_share" else value >= target
        out[name] = {"num_groups": b, "group_size": n, "target": target, "value": value, "met": met}
    return out


def render_kernels(rows: list[dict[str, Any]]) -> list[str]:
    """The printed comparison table and the kernel issue's targets."""
    lines = [
        "",
        "Order-N kernel, fast (default for float32) vs exact: regression, maxrl T = N, CPU",
        f"{'regime':<12}{'N':>6}{'B':>6}  {'kernel':<6}{'rollouts/s':>11}  {'min-max':<15}"
        f"{'estimator ms':>13}{'share':>7}{'cpu/wall':>9}{'step x':>8}{'est x':>8}",
        "(estimator ms per step and its share, timed inside the same steps; step x, est x: how\n"
        "many times faster the fast kernel is, paired by round)",
    ]

    def med(s: dict[str, Any] | None, fmt: Callable[[float], str]) -> str:
        return fmt(s["median"]) if s else "-"

    for row in rows:
        for kernel in KERNEL_CHOICES:
            v = row[kernel]
            rate = v["rollouts_per_s"]
            spread = f"{_rate(rate['min'])}-{_rate(rate['max'])}" if rate else v["status"][:15]
            speed = ""
            if kernel == "fast":
                speed = f"{med(row['step_speedup'], lambda x: f'{x:.1f}x'):>8}"
                speed += f"{med(row['estimator_speedup'], lambda x: f'{x:.0f}x'):>8}"
            lines.append(
                f"{row['regime']:<12}{row['group_size']:>6}{row['num_groups']:>6}  {kernel:<6}"
                f"{med(rate, _rate):>11}  {spread:<15}"
                f"{med(v['estimator_ms'], lambda x: f'{x:.3g}'):>13}"
                f"{med(v['share'], lambda x: f'{x:.0%}'):>7}"
                f"{med(v['cpu_per_wall'], lambda x: f'{x:.0%}'):>9}{speed}"
            )
    lines.append("Targets (fast kernel, default regime):")
    for name, t in kernel_targets(rows).items():
        flag = "n/a" if t["met"] is None else "met" if t["met"] else "MISSED"
        if t["value"] is None:
            shown = "-"
        elif name == "estimator_share":
            shown = f"{t['value']:.0%} (<= {t['target']:.0%})"
        else:
            shown = f"{_rate(t['value'])} (>= {_rate(t['target'])})"
        lines.append(f"  {name} at B = {t['num_groups']}, N = {t['group_size']}: {shown} [{flag}]")
    return lines


# --------------------------------------------------------------------------------------------
# Running and summarizing
# --------------------------------------------------------------------------------------------


def _load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def run_cells(cells: list[Measurement], repeats: int, log: Callable[[str], None]) -> list[Any]:
    """Warm every cell up (alone, recording its memory), then time them round-robin.

    Returns:
        The load averages at the start of each round.
    """
    loads: list[Any] = []
    for i, cell in enumerate(cells):
        if cell.setup is None:
            continue
        log(f"[warm-up {i + 1}/{len(cells)}] {cell.kind} {cell.label()}")
        device = torch.device(cell.key.get("device", "cpu"))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            cell.window = cell.setup()
        except (RuntimeError, MemoryError, ValueError) as err:  # OOM included
            cell.status = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
            log(f"  {cell.status}")
            continue
        cell.memory = {
            "rss_mib": round(peak_rss_mib(), 1),
            "cuda_mib": round(torch.cuda.max_memory_allocated(device) / (1 << 20), 1)
            if device.type == "cuda"
            else None,
        }
    live = [cell for cell in cells if cell.window is not None]
    for r in range(repeats):
        log(f"[round {r + 1}/{repeats}] {len(live)} systems, load {_load()}")
        loads.append(_load())
        shift = (r * max(1, len(live) // repeats)) % max(1, len(live))
        for cell in live[shift:] + live[:shift]:
            if cell.status != "measured":
                continue
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                units, seconds = cell.window()  # type: ignore[misc]
            except (RuntimeError, MemoryError) as err:
                cell.status = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
                log(f"  {cell.label()}: {cell.status}")
                continue
            cell.wall.append(time.perf_counter() - start)
            cell.cpu.append(time.process_time() - cpu_start)
            if cell.unit == "ms":
                cell.samples.append(1e3 * seconds / units)
            else:
                cell.samples.append(units / seconds)
    for cell in cells:
        if cell.status == "measured" and not cell.samples:
            cell.status = "not measured"

    return loads


def summary(samples: Sequence[float]) -> dict[str, Any] | None:
    """Median, min, max and quartiles of the rounds (None without samples)."""
    if not samples:
        return None
    values = sorted(samples)
    quartiles = (
        statistics.quantiles(values, n=4, method="inclusive")
        if len(values) > 1
        else [values[0]] * 3
    )
    return {
        "median": statistics.median(values),
        "min": values[0],
        "max": values[-1],
        "q1": quartiles[0],
        "q3": quartiles[2],
        "n": len(values),
        "samples": list(samples),
    }


def _find(cells: list[Measurement], kind: str, **key: Any) -> list[Measurement]:
    return [c for c in cells if c.kind == kind and all(c.key.get(k) == v for k, v in key.items())]


def _paired(
    a: Measurement, b: Measurement, fn: Callable[[float, float], float]
) -> dict[str, Any] | None:
    pairs = [fn(x, y) for x, y in zip(a.samples, b.samples, strict=False)]
    return summary(pairs)


def derive(cells: list[Measurement], plan: Plan) -> dict[str, Any]:
    """Estimator shares, ratios to SB3 and the issue's targets from the measured cells."""
    shares = _estimator_shares(cells, plan)
    ratios = _sb3_ratios(cells)
    targets = _targets(cells, plan, shares, ratios)
    return {"estimator_share": shares, "ratios": ratios, "targets": targets}


def _estimator_shares(cells: list[Measurement], plan: Plan) -> list[dict[str, Any]]:
    """Per estimator part: its share of a trainer step at the plan's (B, N), paired by sample."""
    shares = []
    b, n = plan.parts_at
    for part in _find(cells, "part", part="estimator"):
        step = _find(
            cells,
            "trainer",
            task=part.key["task"],
            estimator=part.key["estimator"],
            group_size=n,
            num_groups=b,
            device=part.key["device"],
            compile=part.key["compile"],
        )
        row = {k: part.key[k] for k in ("task", "estimator", "group_size", "num_groups")}
        row.update(device=part.key["device"], compile=part.key["compile"], share=None)
        if step and part.samples and step[0].samples:
            # share of a step = estimator ms / step ms, with step ms = rollouts / rate
            per_step = b * n

            def share(ms: float, rate: float, per_step: int = per_step) -> float:
                return (ms / 1e3) / (per_step / rate)

            row["share"] = _paired(part, step[0], share)
        elif not step:
            row["note"] = "no trainer row at this (B, N) and compile setting"
        shares.append(row)
    return shares


def _sb3_ratios(cells: list[Measurement]) -> list[dict[str, Any]]:
    """Per SB3 row and device/compile setting: our best MaxRL rate over SB3's, paired."""
    ratios = []
    for sb3 in _find(cells, "sb3"):
        task = sb3.key["task"]
        for device, compiled in (("cpu", False), ("cpu", True), ("cuda", False), ("cuda", True)):
            ours = [
                c
                for c in _find(
                    cells,
                    "trainer",
                    task=task,
                    estimator="maxrl",
                    group_size=RATIO_GROUP_SIZE,
                    device=device,
                    compile=compiled,
                )
                if c.samples
            ]
            if (device, compiled) != ("cpu", False) and not ours:
                continue
            row = {"task": task, "algo": sb3.key["algo"], "device": device, "compile": compiled}
            row.update(ours=None, ratio=None)
            if ours and sb3.samples:
                best = max(ours, key=lambda c: statistics.median(c.samples))
                row["ours"] = {k: best.key[k] for k in ("estimator", "group_size", "num_groups")}
                row["ratio"] = _paired(best, sb3, lambda x, y: x / y)
            ratios.append(row)
    return ratios


def _best_rate(
    cells: list[Measurement], compiled: bool
) -> tuple[float | None, dict[str, Any] | None]:
    """The best median MaxRL regression rate on CPU and its row key (None, None: no row)."""
    rows = [
        c
        for c in _find(cells, "trainer", task="regression", estimator="maxrl", device="cpu")
        if c.samples and c.key["compile"] == compiled
    ]
    if not rows:
        return None, None
    best = max(rows, key=lambda c: statistics.median(c.samples))
    return statistics.median(best.samples), best.key


def _ppo_ratio(ratios: list[dict[str, Any]], compiled: bool) -> float | None:
    """The median ratio to SB3 PPO on CPU regression (None: not measured)."""
    rows = [
        r["ratio"]["median"]
        for r in ratios
        if (r["task"], r["algo"], r["device"], r["compile"])
        == ("regression", "PPO", "cpu", compiled)
        and r["ratio"]
    ]
    return rows[0] if rows else None


def _maxrl_shares(shares: list[dict[str, Any]], compiled: bool) -> dict[str, float]:
    """Task -> median CPU share of the MaxRL estimator in a step."""
    return {
        s["task"]: s["share"]["median"]
        for s in shares
        if s["estimator"] == "maxrl"
        and s["compile"] == compiled
        and s["device"] == "cpu"
        and s["share"]
    }


def _at_least(value: float | None, target: float) -> bool | None:
    """Whether ``value`` reaches ``target`` (None: not measured)."""
    return None if value is None else value >= target


def _at_most(values: dict[str, float], target: float) -> bool | None:
    """Whether every value stays at or below ``target`` (None: none measured)."""
    return all(v <= target for v in values.values()) if values else None


def _big_group_target(cells: list[Measurement]) -> dict[str, Any]:
    """Whether the big (B, N) step ran on CPU, with its status and resident memory."""
    big = _find(
        cells,
        "trainer",
        task="regression",
        estimator="maxrl",
        group_size=BIG_GROUP[1],
        num_groups=BIG_GROUP[0],
        device="cpu",
        compile=False,
    )
    return {
        "num_groups": BIG_GROUP[0],
        "group_size": BIG_GROUP[1],
        "status": big[0].status if big else "absent",
        "rss_mib": big[0].memory.get("rss_mib") if big else None,
        "met": bool(big and big[0].samples) if big and big[0].setup else None,
    }


def _targets(
    cells: list[Measurement], plan: Plan, shares: list[dict[str, Any]], ratios: list[dict[str, Any]]
) -> dict[str, Any]:
    """The issue's targets: rollouts/s, ratio to PPO, estimator share and the big group."""
    b, n = plan.parts_at
    rate, where = _best_rate(cells, False)
    rate_compiled, where_compiled = _best_rate(cells, True)
    ppo, ppo_compiled = _ppo_ratio(ratios, False), _ppo_ratio(ratios, True)
    eager_shares, compiled_shares = _maxrl_shares(shares, False), _maxrl_shares(shares, True)
    # "met" judges the default eager step; the *_compiled entries report compile=True
    return {
        "maxrl_rollouts_per_s": {
            "target": TARGET_ROLLOUTS_PER_S,
            "value": rate,
            "row": where,
            "met": _at_least(rate, TARGET_ROLLOUTS_PER_S),
            "value_compiled": rate_compiled,
            "row_compiled": where_compiled,
            "met_compiled": _at_least(rate_compiled, TARGET_ROLLOUTS_PER_S),
        },
        "ratio_vs_ppo": {
            "target": TARGET_RATIO_PPO,
            "value": ppo,
            "met": _at_least(ppo, TARGET_RATIO_PPO),
            "value_compiled": ppo_compiled,
            "met_compiled": _at_least(ppo_compiled, TARGET_RATIO_PPO),
        },
        "estimator_share": {
            "target": TARGET_ESTIMATOR_SHARE,
            "at": {"num_groups": b, "group_size": n, "order": "T = N"},
            "value": eager_shares,
            "met": _at_most(eager_shares, TARGET_ESTIMATOR_SHARE),
            "value_compiled": compiled_shares,
            "met_compiled": _at_most(compiled_shares, TARGET_ESTIMATOR_SHARE),
        },
        "big_group": _big_group_target(cells),
    }


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def _cell_text(cell: Measurement) -> tuple[str, str]:
    if not cell.samples:
        return cell.status, ""
    s = summary(cell.samples)
    assert s is not None
    if cell.unit == "ms":
        return f"{s['median']:.3g}", f"{s['min']:.3g}-{s['max']:.3g}"
    return _rate(s["median"]), f"{_rate(s['min'])}-{_rate(s['max'])}"


def render(result: dict[str, Any], cells: list[Measurement]) -> str:
    """The printed tables."""
    lines = [
        f"# {result['machine_line']}",
        f"# {result['date']}  {result['command']}",
        f"# median and min-max of {result['settings']['repeats']} round-robin rounds, "
        f"windows of >= {result['settings']['seconds']:g} s after warm-up",
        "",
        *_render_trainer(cells),
        *_render_parts(result, cells),
        *_render_sb3(cells),
        *_render_ratios(result),
    ]
    if result.get("kernel_comparison"):
        lines += render_kernels(result["kernel_comparison"])
    if result.get("round_loads"):
        loads = ", ".join(f"{load[0]:.1f}" for load in result["round_loads"] if load)
        lines += ["", f"Load average (1 min) at the start of each round: {loads}"]
    lines += _render_targets(result)
    return "\n".join(lines)


def _render_trainer(cells: list[Measurement]) -> list[str]:
    """The end-to-end trainer table; unmeasured sizes grouped one line per reason."""
    lines = [
        "Our trainer, end to end (rollouts/s)",
        f"{'task':<15}{'estimator':<10}{'dev':<5}{'cmp':<4}{'N':>6}{'B':>7}{'per step':>10}"
        f"{'median':>10}  {'min-max':<17}{'RSS MiB':>8}{'CUDA MiB':>9}",
    ]
    unmeasured: dict[tuple, list[Measurement]] = {}
    for cell in _find(cells, "trainer"):
        k = cell.key
        if not cell.samples and cell.status.startswith("not measured"):
            # one line per (task, estimator, device, compile) and reason, e.g. no CUDA device
            what = (k["task"], k["estimator"], k["device"], k["compile"], cell.status)
            unmeasured.setdefault(what, []).append(cell)
            continue
        row = (
            f"{k['task']:<15}{k['estimator']:<10}{k['device']:<5}{'y' if k['compile'] else '':<4}"
            f"{k['group_size']:>6}{k['num_groups']:>7}{k['rollouts_per_step']:>10,}"
        )
        if not cell.samples:
            lines.append(f"{row}  {cell.status}")
            continue
        median, spread = _cell_text(cell)
        rss, cuda = cell.memory.get("rss_mib"), cell.memory.get("cuda_mib")
        lines.append(
            f"{row}{median:>10}  {spread:<17}{rss or '':>8}{'' if cuda is None else cuda:>9}"
        )
    for (task, estimator, device, compiled, status), group in unmeasured.items():
        sizes = ", ".join(f"{c.key['num_groups']}x{c.key['group_size']}" for c in group)
        lines.append(
            f"{task:<15}{estimator:<10}{device:<5}{'y' if compiled else '':<4}"
            f"  B x N = {sizes}: {status}"
        )
    return lines


def _render_parts(result: dict[str, Any], cells: list[Measurement]) -> list[str]:
    """The table of a step's parts (ms per call) with the estimator's share; none if unmeasured."""
    parts = _find(cells, "part")
    if not parts:
        return []
    b, n = result["settings"]["parts_at"]
    lines = [
        "",
        f"Parts of a step at B = {b}, N = {n} (ms per call; maxrl with T = N)",
        f"{'task':<15}{'estimator':<10}{'dev':<5}{'cmp':<4}"
        + "".join(f"{p:>22}" for p in PARTS)
        + f"{'estimator share':>17}",
    ]
    groups: dict[tuple, dict[str, Measurement]] = {}
    for cell in parts:
        k = cell.key
        groups.setdefault((k["task"], k["estimator"], k["device"], k["compile"]), {})[k["part"]] = (
            cell
        )
    shares = {
        (s["task"], s["estimator"], s["device"], s["compile"]): s for s in result["estimator_share"]
    }
    for (task, estimator, device, compiled), by_part in groups.items():
        row = f"{task:<15}{estimator:<10}{device:<5}{'y' if compiled else '':<4}"
        if not any(cell.samples for cell in by_part.values()):
            lines.append(f"{row}  {next(iter(by_part.values())).status}")
            continue
        for part in PARTS:
            cell = by_part.get(part)
            if cell is None:
                row += f" {'-':>21}"
            elif cell.samples:
                median, spread = _cell_text(cell)
                row += f" {median + ' (' + spread + ')':>21}"
            else:
                row += f" {cell.status[:20]:>21}"
        share = shares.get((task, estimator, device, compiled), {}).get("share")
        row += f"{share['median']:>17.0%}" if share else f"{'-':>17}"
        lines.append(row)
    return lines


def _render_sb3(cells: list[Measurement]) -> list[str]:
    """The SB3 rollouts/s table (none without SB3 rows)."""
    sb3 = _find(cells, "sb3")
    if not sb3:
        return []
    lines = ["", "SB3 with the project's settings (rollouts/s)"]
    lines.append(f"{'task':<15}{'algo':<6}{'median':>10}  {'min-max':<17}")
    for cell in sb3:
        median, spread = _cell_text(cell)
        lines.append(f"{cell.key['task']:<15}{cell.key['algo']:<6}{median:>10}  {spread:<17}")
    return lines


def _render_ratios(result: dict[str, Any]) -> list[str]:
    """The table of our best MaxRL rate over SB3's (none without ratios)."""
    if not result["ratios"]:
        return []
    lines = [
        "",
        f"Ratio: our best MaxRL row at N = {RATIO_GROUP_SIZE} / SB3 on CPU (paired by round)",
        f"{'task':<15}{'algo':<6}{'ours on':<8}{'cmp':<4}{'B':>7}{'median':>11}  min-max",
    ]
    for row in result["ratios"]:
        head = f"{row['task']:<15}{row['algo']:<6}{row['device']:<8}"
        head += f"{'y' if row['compile'] else '':<4}"
        if row["ratio"] is None:
            lines.append(f"{head}  not measured")
            continue
        r = row["ratio"]
        lines.append(
            f"{head}{row['ours']['num_groups']:>7}"
            f"{r['median']:>10,.0f}x  {r['min']:,.0f}-{r['max']:,.0f}x"
        )
    return lines


def _met(flag: bool | None) -> str:
    """A target's verdict word: met, MISSED or n/a."""
    return "n/a" if flag is None else "met" if flag else "MISSED"


def _both(v: dict[str, Any], text: Callable[[Any], str]) -> str:
    """A target's eager value and verdict, then the compile=True ones when measured."""
    out = f"{text(v['value'])} [{_met(v['met'])}]"
    if v.get("value_compiled"):
        out += f"; compile=True: {text(v['value_compiled'])} [{_met(v['met_compiled'])}]"
    return out


def _render_targets(result: dict[str, Any]) -> list[str]:
    """The lines of the issue's targets with their verdicts."""
    t = result["targets"]
    quick = " (--quick: tiny sizes, not representative)" if result["settings"]["quick"] else ""
    lines = ["", f"Targets{quick}"]
    lines.append(
        "  MaxRL regression >= 1M rollouts/s (best B, 1 thread): "
        + _both(t["maxrl_rollouts_per_s"], lambda x: _rate(x) if x else "-")
    )
    lines.append(
        "  >= 1000x SB3 PPO (regression): "
        + _both(t["ratio_vs_ppo"], lambda x: f"{x:,.0f}x" if x else "-")
    )
    v = t["estimator_share"]
    at = f"B = {v['at']['num_groups']}, N = {v['at']['group_size']}, T = N"
    lines.append(
        f"  estimator <= 10% of a step ({at}): "
        + _both(v, lambda x: ", ".join(f"{task} {share:.0%}" for task, share in x.items()) or "-")
    )
    v = t["big_group"]
    rss = f", peak RSS {v['rss_mib']:.0f} MiB" if v["rss_mib"] else ""
    verdict = _met(v["met"])
    lines.append(
        f"  N = 4096 at B = 256 without running out of memory: {v['status']}{rss} [{verdict}]"
    )
    return lines


def cell_record(cell: Measurement) -> dict[str, Any]:
    """The JSON row of a cell."""
    return {
        **cell.key,
        "unit": cell.unit,
        "status": cell.status,
        "stats": summary(cell.samples),
        "memory": cell.memory,
        "window_s": [round(w, 3) for w in cell.wall],
        "cpu_s": [round(c, 3) for c in cell.cpu],
        **({"estimator_s_per_step": [round(s, 6) for s in cell.inner]} if cell.inner else {}),
    }


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = Parser(prog="maxrl-throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write all results to FILE")
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--estimators", nargs="+", default=list(ESTIMATORS))
    parser.add_argument("--group-sizes", nargs="+", type=int, default=list(GROUP_SIZES))
    parser.add_argument(
        "--num-groups",
        nargs="+",
        type=int,
        default=list(CPU_NUM_GROUPS),
        help="CPU context batches B (plus the B of --rollouts-per-step)",
    )
    parser.add_argument(
        "--rollouts-per-step",
        type=int,
        default=CPU_ROLLOUTS_PER_STEP,
        help=f"also the CPU B with B * N = this (tokens: {CPU_ROLLOUTS_PER_STEP_TOKENS} if unset)",
    )
    parser.add_argument(
        "--cuda-rollouts-per-step",
        nargs="+",
        type=int,
        default=list(CUDA_ROLLOUTS_PER_STEP),
        help="CUDA batches: B * N = each of these",
    )
    parser.add_argument(
        "--devices",
        nargs="+",
        choices=["cpu", "cuda"],
        default=["cpu", "cuda"],
        help="cuda rows are marked 'not measured' without a GPU",
    )
    parser.add_argument(
        "--no-big-group", action="store_true", help=f"skip the N = {BIG_GROUP[1]} row"
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="skip the TrainConfig.compile rows"
    )
    parser.add_argument("--sb3", nargs="+", default=None, help="SB3 algorithms (default: all)")
    parser.add_argument("--no-sb3", action="store_true", help="skip SB3")
    parser.add_argument(
        "--sb3-tasks",
        nargs="+",
        choices=list(TASKS),
        default=None,
        help="default: those of --tasks",
    )
    parser.add_argument("--seconds", type=float, default=0.25, help="minimum seconds per window")
    parser.add_argument("--repeats", type=int, default=5, help="round-robin rounds")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per trainer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    parser.add_argument(
        "--kernel-compare",
        action="store_true",
        help="also time the fast and the exact order-N kernel side by side (regression)",
    )
    parser.add_argument(
        "--kernel-sizes",
        nargs="+",
        default=None,
        help="BxN pairs for --kernel-compare (default: "
        + " ".join(f"{b}x{n}" for b, n in KERNEL_SIZES)
        + ")",
    )
    parser.add_argument(
        "--slow-exact",
        action="store_true",
        help="also the exact kernel's low-success N = 4096 rows (15-40 s per step)",
    )
    return parser


def make_plan(args: argparse.Namespace) -> Plan:
    """The plan of a parsed command line (``--quick`` shrinks every dimension)."""
    if args.quick:
        return Plan(
            tasks=args.tasks,
            estimators=args.estimators,
            group_sizes=[16],
            cpu_num_groups=[64],
            cpu_rollouts_per_step=64 * 16,
            cuda_rollouts_per_step=[1 << 16],
            devices=args.devices,
            big_group=False,
            parts_at=(64, 16),
            compile=False,
            sb3=["PPO", "SAC", "DQN"] if args.sb3 is None and not args.no_sb3 else args.sb3,
            sb3_tasks=["regression", "classification"],
            sb3_scale=0.1,
            seconds=0.01,
            repeats=2,
            warmup=1,
            quick=True,
            kernel_compare=args.kernel_compare,
            kernel_sizes=[(16, 16), (4, 64)],
        )
    return Plan(
        tasks=args.tasks,
        estimators=args.estimators,
        group_sizes=args.group_sizes,
        cpu_num_groups=args.num_groups,
        cpu_rollouts_per_step=args.rollouts_per_step,
        cuda_rollouts_per_step=args.cuda_rollouts_per_step,
        devices=args.devices,
        big_group=not args.no_big_group,
        parts_at=PARTS_AT,
        compile=not args.no_compile,
        sb3=[] if args.no_sb3 else args.sb3,
        sb3_tasks=args.sb3_tasks or args.tasks,
        sb3_scale=1.0,
        seconds=args.seconds,
        repeats=args.repeats,
        warmup=args.warmup,
        kernel_compare=args.kernel_compare,
        kernel_sizes=_kernel_sizes(args.kernel_sizes),
        slow_exact=args.slow_exact,
    )


def _kernel_sizes(texts: Sequence[str] | None) -> list[tuple[int, int]]:
    """``BxN`` texts as (B, N) pairs (default :data:`KERNEL_SIZES`)."""
    if texts is None:
        return list(KERNEL_SIZES)
    sizes = []
    for text in texts:
        try:
            b, n = (int(part) for part in text.lower().split("x"))
        except ValueError:
            b = n = 0
        if b < 1 or n < 2:
            raise SystemExit(f"--kernel-sizes: {text!r} must be BxN with B >= 1, N >= 2")
        sizes.append((b, n))
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the tables; write ``--json``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    limit_threads(args.threads)
    if args.no_sb3:
        args.sb3 = []
    plan = make_plan(args)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    info = machine_info()
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    cells = build_cells(plan)
    loads = run_cells(cells, plan.repeats, log)
    info_end = {"load_average_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "date": started_at,
        "command": "python -m benchmarks.throughput " + shlex.join(argv),
        "machine": {**info, **info_end},
        "machine_line": machine_line(info),
        "settings": {
            **{k: v for k, v in dataclasses.asdict(plan).items()},
            "threads": torch.get_num_threads(),
        },
        "trainer": [cell_record(c) for c in _find(cells, "trainer")],
        "parts": [cell_record(c) for c in _find(cells, "part")],
        "sb3": [cell_record(c) for c in _find(cells, "sb3")],
        "kernels": [cell_record(c) for c in _find(cells, "kernel")],
        "round_loads": loads,
        "memory": {
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "cuda_max_memory_allocated_mib": round(torch.cuda.max_memory_allocated() / (1 << 20), 1)
            if torch.cuda.is_available()
            else None,
        },
    }
    result.update(derive(cells, plan))
    result["kernel_comparison"] = derive_kernels(cells)
    result["kernel_targets"] = kernel_targets(result["kernel_comparison"])
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(render(result, cells), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
