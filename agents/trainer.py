"""One training loop for every group estimator (and the supervised reference).

A step, all on one device with no host synchronization outside logging:

    ids      = core.sample_ids(B, generator)              # B contexts
    rollouts = policy.sample(x, N, generator)             # [B, N] rollouts and log m(z|x)
    scores   = core.score(contexts, prediction(rollouts)) # tokens are decoded first
    A        = estimator weights from the rewards         # [B, N], e.g. MaxRL of order T
    loss     = -(A.detach() * log_prob).mean()            # one backward pass, Adam step

``estimator="supervised"`` instead maximizes log m(z*|x) of the rollout z* that writes the
observed target (Gaussian NLL, cross-entropy on the label, or on ``codec.encode(y)``), the
"labels seen directly" ceiling. The x-axis of every curve is rollouts consumed: B * N per RL
step, B per supervised step (one label per context), one whole token sequence per rollout.

Runs are reproducible (one ``torch.Generator`` for all training randomness, a fresh one per
evaluation), logged to TensorBoard under ``log_dir/run_name``, checkpointed atomically at
every evaluation, resumable, and a finished run is never retrained.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents import estimators
from agents.evaluation import evaluate, log_metrics
from agents.policies import POLICY_KINDS, GaussianPolicy, Policy, TaskPolicy, make_policy
from maxrl_envs.core import SPLITS
from maxrl_envs.registration import env_kind, make_task, register_envs

# Idempotent; makes the ids available even where ``maxrl_envs`` was imported without its
# package ``__init__`` (e.g. a stale editable install that maps it as a namespace package).
register_envs()

#: Estimator names: the group estimators of ``agents.estimators`` plus ``supervised``.
ESTIMATOR_NAMES = ("maxrl", "maxrl-binary", "reinforce", "rloo", "grpo", "dr-grpo", "supervised")
#: Fewest rollouts per context each estimator accepts (leave-one-out / group statistics need 2).
MIN_ROLLOUTS = {name: 2 for name in ESTIMATOR_NAMES} | {"reinforce": 1, "supervised": 1}
#: Config fields that do not change what a run computes (ignored when a run is resumed).
RUNTIME_FIELDS = ("log_dir", "run_name", "checkpoint", "resume", "progress", "device", "threads")

CHECKPOINT = "checkpoint.pt"
FINAL = "final.json"
CONFIG = "config.json"


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    """Configuration of one training run; each field's help text is in its metadata."""

    env_id: str = field(
        default="MaxRLRegression-v0",
        metadata=_help("Registered maxrl_envs id, e.g. MaxRLRegression-v0, MaxRLTokens-v0."),
    )
    env_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata=_help("Keyword arguments of the env (e.g. {'snr': 10, 'task': 'linear'})."),
    )
    estimator: str = field(
        default="maxrl",
        metadata=_help(f"Gradient estimator; one of {', '.join(ESTIMATOR_NAMES)}."),
    )
    rollouts: int = field(default=16, metadata=_help("Rollouts N per context per step."))
    order: int | None = field(
        default=None,
        metadata=_help("MaxRL truncation order T in [1, N]; None means T = N (maxrl only)."),
    )
    contexts: int = field(default=64, metadata=_help("Contexts B per step."))
    budget: int = field(
        default=200_000,
        metadata=_help(
            "Total rollouts to consume (comparable with SB3 timesteps: one rollout is one "
            "env step of one sub-env; for MaxRLTokens one whole token sequence; for "
            "supervised one label). The run takes floor(budget / rollouts per step) steps."
        ),
    )
    lr: float = field(default=3e-3, metadata=_help("Adam learning rate."))
    hidden: tuple[int, ...] = field(default=(64, 64), metadata=_help("Hidden layer widths."))
    seed: int = field(default=0, metadata=_help("Seed of initialization, contexts and sampling."))
    device: str = field(
        default="auto", metadata=_help("Torch device: auto (CUDA when present), cpu, cuda, cuda:1.")
    )
    eval_every: int = field(
        default=20_000,
        metadata=_help("Evaluate and checkpoint every this many rollouts (0: only at the end)."),
    )
    eval_samples: int = field(default=64, metadata=_help("Samples M per held-out context."))
    pass_k: int = field(default=16, metadata=_help("k of eval/pass@k, in [1, eval_samples]."))
    log_dir: str | None = field(
        default="runs", metadata=_help("TensorBoard root; None disables logging and checkpoints.")
    )
    run_name: str | None = field(
        default=None, metadata=_help("Run directory name; default {env}__{estimator}__{seed}.")
    )
    checkpoint: bool = field(default=True, metadata=_help("Write checkpoints and final.json."))
    resume: bool = field(
        default=True,
        metadata=_help("Continue from the run directory's checkpoint; False starts over."),
    )
    progress: bool = field(default=False, metadata=_help("Show a tqdm progress bar."))
    eval_split: str = field(
        default="test",
        metadata=_help("Split evaluated: test, validation (model selection) or train."),
    )
    eval_contexts: int | None = field(
        default=None, metadata=_help("Evaluate on the first this many contexts (None: all).")
    )
    log_every: int = field(
        default=10, metadata=_help("Log training scalars every this many steps.")
    )
    policy: str = field(
        default="auto",
        metadata=_help("auto, gaussian, or binned (categorical over prediction bins; regression)."),
    )
    bins: int = field(default=51, metadata=_help("Prediction bins of policy=binned."))
    init_std: float = field(
        default=0.25,
        metadata=_help(
            "Initial Gaussian std in action units (actions in [-1, 1] map to +-prediction_range; "
            "0.25 is one target unit at the default range 4)."
        ),
    )
    state_dependent_std: bool = field(
        default=False, metadata=_help("Gaussian log-std from the network instead of a parameter.")
    )
    threads: int | None = field(
        default=None,
        metadata=_help(
            "torch CPU threads (torch.set_num_threads); None keeps torch's setting. Use 1 when "
            "several runs share a machine: oversubscribed threads slow CPU steps many-fold."
        ),
    )

    @property
    def rollouts_per_step(self) -> int:
        """Rollouts consumed by one step: B * N, or B for supervised."""
        return self.contexts * (1 if self.estimator == "supervised" else self.rollouts)

    @property
    def name(self) -> str:
        """The run name (``run_name`` or ``{env}__{estimator}__{seed}``)."""
        if self.run_name is not None:
            return self.run_name
        return f"{self.env_id.split(':', 1)[-1]}__{self.estimator}__{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        out = dataclasses.asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict`` (unknown keys raise ``ValueError``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; allowed: {sorted(names)}")
        data = dict(data)
        if "hidden" in data:
            data["hidden"] = tuple(data["hidden"])
        return cls(**data)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name}={value!r} is invalid; allowed: an integer {bound}")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise check the device exists.

    Raises:
        ValueError: Unknown device string, or a device this machine lacks.
    """
    allowed = "'auto', 'cpu', 'cuda', 'cuda:<index>'"
    if not isinstance(device, str):
        raise ValueError(f"device={device!r} is invalid; allowed: {allowed}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device={device!r} is not a torch device; allowed: {allowed}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} is not available (no CUDA); allowed: 'auto', 'cpu'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} is not available; allowed: cuda:0..cuda:"
                f"{torch.cuda.device_count() - 1}"
            )
    elif resolved.type != "cpu":
        raise ValueError(f"device={device!r} is not supported; allowed: {allowed}")
    return resolved


def validate_config(config: TrainConfig) -> None:
    """Check every field before anything runs.

    Raises:
        ValueError: Naming the field, its value and what is allowed.
    """
    c = config
    if c.estimator not in ESTIMATOR_NAMES:
        raise ValueError(
            f"estimator={c.estimator!r} is invalid; allowed: {', '.join(ESTIMATOR_NAMES)}"
        )
    _require_int("rollouts", c.rollouts, MIN_ROLLOUTS[c.estimator])
    _require_int("contexts", c.contexts, 1)
    if c.order is not None:
        if c.estimator != "maxrl":
            raise ValueError(
                f"order={c.order!r} is only used by estimator='maxrl' (got {c.estimator!r}); "
                "allowed: None"
            )
        _require_int("order", c.order, 1, c.rollouts)
    if not _is_int(c.budget) or c.budget < c.rollouts_per_step:
        per_step = "contexts" if c.estimator == "supervised" else "contexts * rollouts"
        raise ValueError(
            f"budget={c.budget!r} is smaller than one step; allowed: an integer >= "
            f"{c.rollouts_per_step} ({per_step} = rollouts consumed per step)"
        )
    if (
        isinstance(c.lr, bool)
        or not isinstance(c.lr, (int, float))
        or not (math.isfinite(c.lr) and c.lr > 0)
    ):
        raise ValueError(f"lr={c.lr!r} is invalid; allowed: a finite number > 0")
    if not isinstance(c.hidden, (tuple, list)) or not all(_is_int(h) and h >= 1 for h in c.hidden):
        raise ValueError(f"hidden={c.hidden!r} is invalid; allowed: a tuple of integers >= 1")
    _require_int("seed", c.seed, 0, 2**63 - 1)
    resolve_device(c.device)
    _require_int("eval_every", c.eval_every, 0)
    _require_int("eval_samples", c.eval_samples, 1)
    _require_int("pass_k", c.pass_k, 1, c.eval_samples)
    _require_int("log_every", c.log_every, 1)
    if c.eval_contexts is not None:
        _require_int("eval_contexts", c.eval_contexts, 1)
    if c.eval_split not in SPLITS:
        raise ValueError(f"eval_split={c.eval_split!r} is invalid; allowed: {', '.join(SPLITS)}")
    if c.log_dir is not None and not isinstance(c.log_dir, (str, os.PathLike)):
        raise ValueError(f"log_dir={c.log_dir!r} is invalid; allowed: a path or None")
    if c.run_name is not None and (
        not isinstance(c.run_name, str)
        or c.run_name in ("", ".", "..")
        or "/" in c.run_name
        or os.sep in c.run_name
    ):
        raise ValueError(f"run_name={c.run_name!r} is invalid; allowed: None or a plain file name")
    if c.policy not in POLICY_KINDS:
        raise ValueError(f"policy={c.policy!r} is invalid; allowed: {', '.join(POLICY_KINDS)}")
    _require_int("bins", c.bins, 2)
    if c.threads is not None:
        _require_int("threads", c.threads, 1)
    if (
        isinstance(c.init_std, bool)
        or not isinstance(c.init_std, (int, float))
        or not (math.isfinite(c.init_std) and c.init_std > 0)
    ):
        raise ValueError(f"init_std={c.init_std!r} is invalid; allowed: a finite number > 0")
    if not isinstance(c.env_kwargs, dict):
        raise ValueError(f"env_kwargs={c.env_kwargs!r} is invalid; allowed: a dict")
    if not isinstance(c.env_id, str):
        raise ValueError(f"env_id={c.env_id!r} is invalid; allowed: a registered maxrl_envs id")
    env_kind(c.env_id)  # raises ValueError naming env_id and the registered ids
    reserved = sorted({"device", "split", "num_groups", "group_size"} & set(c.env_kwargs))
    if reserved:
        raise ValueError(
            f"env_kwargs key(s) {reserved} are set by the trainer; allowed: the env's own "
            "keyword arguments (task, snr, head, ...)"
        )
    try:
        task = make_task(c.env_id, 1, 1, device="cpu", **c.env_kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"env_kwargs={c.env_kwargs!r} is invalid for env_id={c.env_id!r}: {err}"
        ) from None
    make_policy(task, tuple(c.hidden), kind=c.policy, init_std=float(c.init_std), bins=c.bins)
    if c.eval_contexts is None and task.core.num_contexts(c.eval_split) < 1:
        raise ValueError(f"eval_split={c.eval_split!r} has no contexts")


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json(path: Path, data: Any) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())

    _atomic_write(path, write)


class Trainer:
    """The training loop of one run (``train(config)`` is ``Trainer(config).run()``).

    Args:
        config: The run's configuration (validated here).

    Attributes:
        task: The ``GroupEpisodes`` (its ``core`` holds both splits).
        policy: The policy module; ``agent`` binds it to the task.
        optimizer: Adam over the policy's parameters.
        generator: The one generator of all training randomness (contexts and rollouts).
        step: Optimizer steps taken; ``rollouts`` = step * rollouts_per_step.
    """

    def __init__(self, config: TrainConfig) -> None:
        validate_config(config)
        self.config = config
        self.device = resolve_device(config.device)
        c = config
        if c.threads is not None:
            torch.set_num_threads(c.threads)
        self.task = make_task(
            c.env_id,
            c.contexts,
            max(c.rollouts, 1),
            split="train",
            device=str(self.device),
            **c.env_kwargs,
        )
        self.core = self.task.core
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            policy = make_policy(
                self.task,
                tuple(c.hidden),
                kind=c.policy,
                init_std=float(c.init_std),
                state_dependent_std=c.state_dependent_std,
                bins=c.bins,
            )
        self.policy: Policy = policy.to(self.device)
        self.agent = TaskPolicy(self.policy, self.task)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=c.lr)
        self.generator = self.core.make_generator(c.seed)
        self.eval_seed = c.seed + 1_000_003
        self.step = 0
        self.wall_time = 0.0
        self.supervised = c.estimator == "supervised"
        self.total_steps = c.budget // c.rollouts_per_step

    @property
    def rollouts(self) -> int:
        """Rollouts consumed so far."""
        return self.step * self.config.rollouts_per_step

    def weights(self, rewards: torch.Tensor, log_rewards: torch.Tensor) -> torch.Tensor:
        """Per-rollout weights A ``[B, N]`` of the configured estimator."""
        name = self.config.estimator
        # The estimators' value scan is a host sync; the core's scores are valid by
        # construction, so it runs on the first step only.
        validate = self.step == 0
        if name == "maxrl":
            # Log-space keeps Gaussian-head likelihoods that underflow float32 distinct.
            return estimators.group_weights(
                name, log_rewards, order=self.config.order, log_space=True, validate=validate
            )
        return estimators.group_weights(name, rewards, validate=validate)

    def train_step(self, with_stats: bool = True) -> dict[str, torch.Tensor]:
        """One optimizer step.

        Args:
            with_stats: Also compute the logged statistics (skipped between log steps).

        Returns:
            Detached scalar statistics keyed by tag (device tensors, no host sync); empty
            when ``with_stats`` is False.
        """
        c = self.config
        contexts = self.core.contexts(
            self.core.sample_ids(c.contexts, self.generator, "train"), "train", validate=False
        )
        stats: dict[str, torch.Tensor] = {}
        if self.supervised:
            loss = -self.policy.log_prob(contexts.obs, self.agent.labels(contexts)).mean()
        else:
            rollouts, prediction = self.agent.rollouts(contexts, c.rollouts, self.generator)
            # Input checks are host syncs: the policy's outputs are checked on the first step.
            scores = self.core.score(contexts, prediction, validate=self.step == 0)
            weights = self.weights(scores.reward, scores.log_reward)
            loss = -(weights.detach() * rollouts.log_prob).mean()
            if with_stats:
                log_reward = scores.log_reward
                stats["rollout/ep_rew_mean"] = scores.reward.mean()
                stats["train/entropy"] = rollouts.entropy.mean()
                stats["estimator/weight_mean"] = weights.mean()
                stats["estimator/weight_std"] = weights.std(unbiased=False)
                stats["estimator/no_signal_frac"] = (
                    (log_reward.amax(1) == log_reward.amin(1)).float().mean()
                )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        if with_stats:
            stats["train/loss"] = loss.detach()
            if isinstance(self.policy, GaussianPolicy) and not self.policy.state_dependent_std:
                stats["train/std"] = self.policy.std()
        return stats

    def evaluate(self) -> dict[str, float]:
        """Evaluate the current policy on the held-out split (fresh generator each time)."""
        c = self.config
        return evaluate(
            self.task,
            self.agent,
            num_samples=c.eval_samples,
            pass_k=c.pass_k,
            seed=self.eval_seed,
            split=c.eval_split,
            max_contexts=c.eval_contexts,
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bitwise: parameters, optimizer, RNG, counters."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
            "step": self.step,
            "rollouts": self.rollouts,
            "wall_time": self.wall_time,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        saved_on = state.get("generator_device", self.device.type)
        if saved_on == self.device.type:
            self.generator.set_state(state["generator"])
        else:
            # CPU and CUDA generators keep different states; continue with a fresh stream
            # derived from the seed and step (the run stays reproducible, not bitwise equal
            # to one that never changed device).
            warnings.warn(
                f"checkpoint was written on {saved_on!r}, resuming on {self.device.type!r}: "
                "the sampling stream is re-seeded",
                stacklevel=2,
            )
            self.generator.manual_seed(self.config.seed * 1_000_003 + int(state["step"]))
        self.step = int(state["step"])
        self.wall_time = float(state["wall_time"])

    def save_checkpoint(self, path: Path) -> None:
        """Write the state atomically (temp file + ``os.replace``)."""
        state = self.state_dict()
        _atomic_write(path, lambda tmp: torch.save(state, tmp))

    def run(self) -> dict[str, float]:
        """Train to the budget; see ``train``."""
        c = self.config
        run_dir = Path(c.log_dir) / c.name if c.log_dir is not None else None
        resumed = False
        if run_dir is not None:
            finished = _prepare_run_dir(run_dir, c)
            if finished is not None:
                return finished
            checkpoint = run_dir / CHECKPOINT
            if c.resume and checkpoint.exists():
                state = torch.load(checkpoint, map_location="cpu", weights_only=True)
                self.load_state_dict(state)
                resumed = True
            else:  # a fresh start: drop the events of an attempt that died before its checkpoint
                for path in run_dir.glob("events.out.tfevents.*"):
                    path.unlink()
        writer = None
        if run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir), purge_step=self.rollouts + 1 if resumed else None)
            if not resumed:
                _write_hparams(writer, c)
        try:
            return self._loop(run_dir, writer, resumed)
        finally:
            if writer is not None:
                writer.close()

    def _loop(self, run_dir: Path | None, writer: Any, resumed: bool) -> dict[str, float]:
        c = self.config
        per_step = c.rollouts_per_step
        checkpointing = run_dir is not None and c.checkpoint
        metrics: dict[str, float] = {}
        start = time.perf_counter()
        wall_start = self.wall_time
        if not resumed:
            metrics = self._eval_and_log(writer)
        next_eval = (self.rollouts // c.eval_every + 1) * c.eval_every if c.eval_every else None
        last_eval = self.rollouts if not resumed else -1
        progress = None
        if c.progress:
            from tqdm.auto import tqdm

            progress = tqdm(
                total=self.total_steps * per_step,
                initial=self.rollouts,
                unit="rollout",
                desc=c.name,
                dynamic_ncols=True,
            )
        log_time, log_rollouts = time.perf_counter(), self.rollouts
        try:
            while self.step < self.total_steps:
                log_now = (self.step + 1) % c.log_every == 0 or self.step + 1 == self.total_steps
                stats = self.train_step(with_stats=log_now)
                if progress is not None:
                    progress.update(per_step)
                if log_now:
                    # One host sync per logging step for all statistics.
                    flat = torch.stack(list(stats.values())).tolist()
                    values = dict(zip(stats, flat, strict=True))
                    now = time.perf_counter()
                    values["time/fps"] = (self.rollouts - log_rollouts) / max(now - log_time, 1e-9)
                    values["train/learning_rate"] = self.optimizer.param_groups[0]["lr"]
                    log_time, log_rollouts = now, self.rollouts
                    if writer is not None:
                        log_metrics(writer, values, self.rollouts)
                    if progress is not None:
                        progress.set_postfix(loss=f"{values['train/loss']:.3g}", refresh=False)
                if next_eval is not None and self.rollouts >= next_eval:
                    eval_start = time.perf_counter()
                    next_eval = (self.rollouts // c.eval_every + 1) * c.eval_every
                    self.wall_time = wall_start + eval_start - start
                    metrics = self._eval_and_log(writer)
                    last_eval = self.rollouts
                    if checkpointing:
                        self.save_checkpoint(run_dir / CHECKPOINT)  # type: ignore[operator]
                    log_time += time.perf_counter() - eval_start  # time/fps counts training only
        finally:
            if progress is not None:
                progress.close()
        if last_eval != self.rollouts:
            metrics = self._eval_and_log(writer)
        self.wall_time = wall_start + time.perf_counter() - start
        result = {**metrics, "rollouts": float(self.rollouts), "wall_time": self.wall_time}
        if checkpointing:
            self.save_checkpoint(run_dir / CHECKPOINT)  # type: ignore[operator]
            _write_json(run_dir / FINAL, {"metrics": result, "config": c.to_dict()})  # type: ignore[operator]
        return result

    def _eval_and_log(self, writer: Any) -> dict[str, float]:
        metrics = self.evaluate()
        if writer is not None:
            log_metrics(writer, metrics, self.rollouts)
            writer.flush()
        return metrics


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RUNTIME_FIELDS}


def _prepare_run_dir(run_dir: Path, config: TrainConfig) -> dict[str, float] | None:
    """Start over (``resume=False``), or check a stored run matches; return finished metrics."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not config.resume:
        for path in [run_dir / CHECKPOINT, run_dir / FINAL, run_dir / CONFIG]:
            path.unlink(missing_ok=True)
        for path in run_dir.glob("events.out.tfevents.*"):
            path.unlink()
    stored_path = run_dir / CONFIG
    if stored_path.exists():
        stored = _comparable(json.loads(stored_path.read_text()))
        current = _comparable(json.loads(json.dumps(config.to_dict())))  # as stored
        differ = sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))
        if differ:
            raise ValueError(
                f"run_name={config.name!r} in log_dir={str(config.log_dir)!r} holds a run with "
                f"different settings ({', '.join(differ)}); allowed: the same settings, another "
                "run_name, or resume=False to start over"
            )
    else:
        _write_json(stored_path, config.to_dict())
    final = run_dir / FINAL
    if config.resume and final.exists():
        return {k: float(v) for k, v in json.loads(final.read_text())["metrics"].items()}
    return None


def _write_hparams(writer: Any, config: TrainConfig) -> None:
    from torch.utils.tensorboard.summary import hparams

    data = config.to_dict()
    writer.add_text("config", "```json\n" + json.dumps(data, indent=2, sort_keys=True) + "\n```", 0)
    flat = {
        k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v, sort_keys=True)
        for k, v in data.items()
    }
    tags = ["eval/log_likelihood", "eval/excess_mse", "eval/pass@1", "eval/success_rate"]
    # Written into this run's own event file (add_hparams would start a sub-run directory).
    file_writer = writer._get_file_writer()
    for summary in hparams(flat, {tag: 0.0 for tag in tags}):
        file_writer.add_summary(summary)


def train(config: TrainConfig) -> dict[str, float]:
    """Train one run and return its final evaluation.

    With ``log_dir`` set, the run lives in ``log_dir/run_name``: TensorBoard events (x-axis:
    rollouts consumed), ``config.json``, ``checkpoint.pt`` (written atomically at every
    evaluation) and, once finished, ``final.json``. ``resume=True`` continues from the
    checkpoint (bitwise on CPU) and returns a finished run's ``final.json`` metrics without
    training; ``resume=False`` deletes the directory's run files and starts over.

    Args:
        config: The run's configuration.

    Returns:
        The final ``eval/*`` metrics (keys are the TensorBoard tags), plus ``rollouts``
        (consumed) and ``wall_time`` (seconds of training and evaluation, over all resumes).

    Raises:
        ValueError: An invalid config (see ``validate_config``) or a run directory holding
            a run with different settings.
    """
    return Trainer(config).run()


def load_policy(
    run_dir: str | os.PathLike[str], device: str = "cpu"
) -> tuple[TaskPolicy, TrainConfig]:
    """Rebuild a run's policy from its ``config.json`` and ``checkpoint.pt``.

    Args:
        run_dir: The run directory (``log_dir/run_name``).
        device: Device to load onto.

    Returns:
        The policy bound to its task (an ``EvalPolicy``) and the run's config.
    """
    run_dir = Path(run_dir)
    config = TrainConfig.from_dict(json.loads((run_dir / CONFIG).read_text()))
    config = dataclasses.replace(config, device=device)
    trainer = Trainer(config)
    state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    trainer.load_state_dict(state)
    return trainer.agent, config
