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
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents.callbacks import TrainerCallback, as_callback, write_hparams
from agents.compile import unavailable_reason
from agents.evaluation import evaluate, log_metrics
from agents.exact import no_exact_form_reason
from agents.objectives import Objective, StepInputs, get_objective, objective_names
from agents.policies import (
    POLICY_KINDS,
    GaussianPolicy,
    Policy,
    TaskPolicy,
    check_policy_choice,
    make_policy,
)
from agents.protocol import (
    Best,
    CheckpointSelector,
    EvalSettings,
    RunSettings,
    check_selection,
    resolve_select_metric,
)
from agents.runs import CorruptFileError, RunDirectory, atomic_write
from maxrl_envs import validation as v
from maxrl_envs.core import SPLITS
from maxrl_envs.kinds import Task
from maxrl_envs.registration import describe_env, make_task, register_envs

# Idempotent; makes the ids available even where ``maxrl_envs`` was imported without its
# package ``__init__`` (e.g. a stale editable install that maps it as a namespace package).
register_envs()

#: Config fields that do not change what a run computes (ignored when a run is resumed).
RUNTIME_FIELDS = (
    "log_dir",
    "run_name",
    "checkpoint",
    "resume",
    "progress",
    "device",
    "threads",
    "compile",
)
#: Env keywords the trainer sets itself.
RESERVED_ENV_KWARGS = ("device", "split", "num_groups", "group_size", "kind")

#: Largest budget (rollouts): about 29 hours at the fastest rate measured here, 9.44M
#: rollouts/s (docs/performance.md); a larger one is an exponent typo, not a run that ends.
MAX_BUDGET = 10**12
#: Most optimizer steps a run may take: a step costs at least ~0.3 ms (about 1-3 ms for the
#: smallest step on the project's CPU), so 10**8 steps are 8 hours to days.
MAX_STEPS = 10**8

#: Largest learning rate: Adam moves every parameter by about lr per step, so 1e6 is already
#: far past divergence; 1e300 overflowed float32 inside Adam with a bare RuntimeError.
MAX_LR = 1e6
#: Bytes every rollout of a step holds at least (action, log-probability, rewards and
#: likelihoods in float32, weights in float64): the floor of ``check_memory``'s estimate.
BYTES_PER_ROLLOUT = 32

CHECKPOINT = "checkpoint.pt"
#: What every trainer checkpoint holds (``Trainer.state_dict``).
CHECKPOINT_KEYS = frozenset(
    {"policy", "optimizer", "generator", "step", "rollouts", "wall_time", "config"}
)


def _field(default: Any, help: str, check: v.Rule | None = None, factory: Any = None) -> Any:
    """A dataclass field carrying its help text and validation rule."""
    metadata = {"help": help, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Configuration of one training run; each field carries its help text and rule.

    N (``group_size``) is the number of rollouts per context and B (``num_groups``) the
    number of contexts per step, as in ``gymnasium.make_vec(..., group_size=N)``.
    """

    env_id: str = _field(
        "MaxRLRegression-v0",
        "Registered maxrl_envs id, e.g. MaxRLRegression-v0, MaxRLTokens-v0.",
        v.check_str,
    )
    env_kwargs: dict[str, Any] = _field(
        None,
        "Keyword arguments of the env (e.g. {'snr': 10, 'task': 'linear'}).",
        v.mapping(),
        factory=dict,
    )
    estimator: str = _field(
        "maxrl",
        "Objective: a registered estimator (maxrl, maxrl-binary, maxrl-loo, reinforce, "
        "reinforce-mean, rloo, grpo, dr-grpo, ...), supervised (density of the label) or "
        "supervised-ml (exact maximum likelihood of the scored quantity).",
        v.choice(lambda: objective_names()),
    )
    group_size: int = _field(16, "Rollouts N per context per step.", v.integer(1))
    order: int | None = _field(
        None,
        "MaxRL truncation order T in [1, N]; None means T = N (estimators with an order only).",
        v.optional(v.integer(1)),
    )
    num_groups: int = _field(64, "Contexts B per step.", v.integer(1))
    budget: int = _field(
        200_000,
        "Total rollouts to consume (comparable with SB3 timesteps: one rollout is one env step "
        "of one sub-env; for MaxRLTokens one whole token sequence; for supervised one label). "
        "The run takes floor(budget / rollouts per step) steps; at most 10**12 rollouts and "
        "10**8 steps (MAX_BUDGET, MAX_STEPS: runs that could not finish are refused).",
        v.integer(1, MAX_BUDGET),
    )
    lr: float = _field(
        3e-3,
        "Adam learning rate, in (0, 1e6] (Adam moves each parameter by about lr per step; far "
        "larger rates overflow float32).",
        v.number(minimum=0.0, strict_minimum=True, maximum=MAX_LR),
    )
    hidden: tuple[int, ...] = _field((64, 64), "Hidden layer widths.", v.int_list(1))
    seed: int = _field(
        0, "Seed of initialization, contexts and sampling, in [0, 2**32 - 1].", v.seed()
    )
    device: str = _field(
        "auto", "Torch device: auto (CUDA when present), cpu, cuda, cuda:1.", v.device()
    )
    eval_every: int = _field(
        20_000,
        "Evaluate and checkpoint every this many rollouts (0: only at the end).",
        v.integer(0),
    )
    eval_samples: int = _field(64, "Samples M per held-out context.", v.integer(1))
    pass_k: int = _field(16, "k of eval/pass@k, in [1, eval_samples].", v.integer(1))
    log_dir: str | None = _field(
        "runs", "TensorBoard root; None disables logging and checkpoints.", v.optional(v.path())
    )
    run_name: str | None = _field(
        None, "Run directory name; default {env}__{estimator}__{seed}.", v.optional(v.file_name())
    )
    checkpoint: bool = _field(True, "Write checkpoints and final.json.", v.boolean())
    resume: bool = _field(
        True, "Continue from the run directory's checkpoint; False starts over.", v.boolean()
    )
    progress: bool = _field(False, "Show a tqdm progress bar.", v.boolean())
    eval_split: str = _field(
        "test", "Split evaluated: test, validation (model selection) or train.", v.choice(SPLITS)
    )
    eval_contexts: int | None = _field(
        None, "Evaluate on the first this many contexts (None: all).", v.optional(v.integer(1))
    )
    early_stopping: bool = _field(
        False,
        "Report the checkpoint with the best select_metric on the validation split (checked "
        "at every evaluation) instead of the last one.",
        v.boolean(),
    )
    select_metric: str | None = _field(
        None,
        "eval/* tag that selects checkpoints; None: the task's default (log-likelihood for "
        "Gaussian and Laplace heads, pass@1 otherwise).",
        v.optional(v.check_str),
    )
    select_contexts: int | None = _field(
        1024,
        "Validation contexts scored to select checkpoints (None: all).",
        v.optional(v.integer(1)),
    )
    log_every: int = _field(10, "Log training scalars every this many steps.", v.integer(1))
    policy: str = _field(
        "auto",
        "auto, gaussian, or binned (categorical over prediction bins; regression).",
        v.choice(POLICY_KINDS),
    )
    bins: int = _field(51, "Prediction bins of policy=binned.", v.integer(2))
    init_std: float = _field(
        0.25,
        "Initial Gaussian std in action units (actions in [-1, 1] map to +-prediction_range; "
        "0.25 is one target unit at the default range 4).",
        v.positive(),
    )
    state_dependent_std: bool = _field(
        False, "Gaussian log-std from the network instead of a parameter.", v.boolean()
    )
    threads: int | None = _field(
        1,
        "torch CPU threads of this process (torch.set_num_threads); 1 is the fastest for the "
        "small networks here, and several runs sharing a machine each need 1 (oversubscribed "
        "threads slow CPU steps many-fold); None keeps torch's setting. At most 1024 (torch "
        "starts that many OpenMP threads: 10**6 exhausted the memory).",
        v.optional(v.integer(1, 1024)),
    )
    compile: bool = _field(
        False,
        "Fast kernels: torch.compile the MaxRL T = N quadrature (product form in float64) "
        "and use Adam's fused kernel. Same math as the default eager step, equal to rounding "
        "but not bitwise; needs a C++ compiler (CPU) or Triton (CUDA).",
        v.boolean(),
    )

    @property
    def run_settings(self) -> RunSettings:
        """The settings every agent's run shares (``agents.protocol.RunSettings``)."""
        return RunSettings.of(self)

    @property
    def eval_settings(self) -> EvalSettings:
        """How the run is evaluated and selected (``agents.protocol.EvalSettings``)."""
        return EvalSettings.of(self)

    @property
    def objective(self) -> Objective:
        """The objective named by ``estimator``."""
        return get_objective(self.estimator)

    @property
    def rollouts_per_step(self) -> int:
        """Rollouts consumed by one step: B * N, or B for supervised."""
        return self.num_groups * self.objective.rollouts_per_context(self.group_size)

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
        if isinstance(data.get("hidden"), list):
            data["hidden"] = tuple(data["hidden"])
        return cls(**data)


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise check the device exists.

    Raises:
        ValueError: Unknown device string, or a device this machine lacks.
    """
    return v.check_device(device, allow_auto=True)


def validate_config(config: TrainConfig) -> None:
    """Check every field, then the rules that tie fields together, before anything runs.

    Per-field rules live on the fields (``TrainConfig``); the env's keyword arguments are
    checked from the kind's signature without building data.

    Raises:
        ValueError: Naming the field, its value and what is allowed.
    """
    v.check_fields(config)
    c = config
    objective = c.objective
    if c.group_size < objective.min_group_size:
        raise ValueError(
            f"group_size={c.group_size!r} is too small for estimator={c.estimator!r}; "
            f"allowed: an integer >= {objective.min_group_size}"
        )
    objective.check_params({"order": c.order})
    if c.order is not None and c.order > c.group_size:
        raise ValueError(
            f"order={c.order!r} is invalid; allowed: an integer in [1, {c.group_size}] "
            f"(group_size={c.group_size})"
        )
    if c.budget < c.rollouts_per_step:
        per_step = (
            "num_groups" if objective.rollouts_per_context(2) == 1 else "num_groups * group_size"
        )
        raise ValueError(
            f"budget={c.budget!r} is smaller than one step; allowed: an integer >= "
            f"{c.rollouts_per_step} ({per_step} = rollouts consumed per step)"
        )
    if c.budget // c.rollouts_per_step > MAX_STEPS:
        raise ValueError(
            f"budget={c.budget!r} takes {c.budget // c.rollouts_per_step} steps of "
            f"{c.rollouts_per_step} rollouts; allowed: at most {MAX_STEPS} steps (MAX_STEPS: "
            "a step costs at least ~0.3 ms, so more could not finish in days), i.e. budget <= "
            f"{MAX_STEPS * c.rollouts_per_step + c.rollouts_per_step - 1} at this "
            "num_groups and group_size"
        )
    c.eval_settings.check()
    reserved = sorted(set(RESERVED_ENV_KWARGS) & set(c.env_kwargs))
    if reserved:
        raise ValueError(
            f"env_kwargs key(s) {reserved} are set by the trainer; allowed: the env's own "
            "keyword arguments (task, snr, head, ...)"
        )
    try:
        info = describe_env(c.env_id, **c.env_kwargs)
    except ValueError as err:
        raise ValueError(
            f"env_kwargs={c.env_kwargs!r} is invalid for env_id={c.env_id!r}: {err}"
        ) from None
    check_policy_choice(info.rollout_space, c.policy)
    check_memory(c, info)
    if c.select_metric is not None:
        why = no_exact_form_reason(info.rollout_space)
        check_selection(c.select_metric, c.pass_k, info.kind.numeric, not why, c.env_id, why)


def check_memory(config: TrainConfig, info: Any) -> None:
    """Refuse a run whose policy or step could not fit in this machine's memory.

    A lower bound, computed before anything is allocated: the policy's parameters with their
    gradients and Adam's two moments (16 bytes each), and ``BYTES_PER_ROLLOUT`` per rollout
    of a step and of one evaluated context's samples. Sizes past it (``group_size = 2**31``,
    ``hidden = (2**20, 2**20)``, ``bins = 2**31``, ``eval_samples = 2**31``) once failed
    inside torch's allocator with a bare ``RuntimeError`` or ``MemoryError``.

    Raises:
        ValueError: Naming the fields that set the size, the bytes needed and the memory.
    """
    memory = v.physical_memory()
    if memory is None:
        return
    c = config
    shape = getattr(info.spec, "shape", None)
    obs_dim = int(getattr(shape, "dim", 1))
    space = info.rollout_space
    if c.policy == "binned":
        out = c.bins
    elif hasattr(space, "n"):
        out = int(space.n)
    elif hasattr(space, "nvec"):
        out = int(sum(int(n) for n in space.nvec.reshape(-1)))
    else:
        out = 2
    widths = [obs_dim, *c.hidden, out]
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    parts = {
        "hidden, bins / classes (the policy's parameters, gradients and Adam moments)": (
            16 * params
        ),
        "num_groups * group_size (one step's rollouts)": (
            BYTES_PER_ROLLOUT * c.rollouts_per_step * info.episode_length
        ),
        "eval_samples (one held-out context's samples, scored at once)": (
            BYTES_PER_ROLLOUT * c.eval_samples * info.episode_length
        ),
    }
    need = sum(parts.values())
    if need > memory:
        what, _ = max(parts.items(), key=lambda item: item[1])
        raise ValueError(
            f"num_groups={c.num_groups}, group_size={c.group_size}, hidden={tuple(c.hidden)}"
            + (f", bins={c.bins}" if c.policy == "binned" else "")
            + f", eval_samples={c.eval_samples}"
            + f" would need at least {need / 2**30:.1f} GiB, mostly for {what}; allowed: at "
            f"most this machine's memory, {memory / 2**30:.1f} GiB"
        )


def select_metric(config: TrainConfig, task: Task) -> str:
    """The metric that selects checkpoints: ``config.select_metric`` or the task's default.

    The default names the log-likelihood tag evaluation reports: ``eval/log_likelihood``,
    or ``eval/log_likelihood_mc`` for a token tree too large for the exact enumeration
    (``agents.exact.no_exact_form_reason``). The run records it in ``final.json``.
    """
    if config.select_metric is not None:
        return config.select_metric
    head = getattr(task.core, "head", None)
    exact = not no_exact_form_reason(task.rollout_space())
    return resolve_select_metric(None, task.kind.numeric, head, config.pass_k, exact)


class Trainer:
    """The training loop of one run (``train(config)`` is ``Trainer(config).run()``).

    Args:
        config: The run's configuration (validated here).
        callbacks: ``agents.callbacks.TrainerCallback`` instances called at every step,
            evaluation and at the end (None: none).

    Attributes:
        task: The task (kind, core with every split, codec).
        objective: What a step optimizes (an estimator, or supervised).
        policy: The policy module; ``agent`` binds it to the task.
        optimizer: Adam over the policy's parameters.
        generator: The one generator of all training randomness (contexts and rollouts).
        step: Optimizer steps taken; ``rollouts_done`` = step * rollouts_per_step.
    """

    def __init__(
        self,
        config: TrainConfig,
        callbacks: TrainerCallback | list[TrainerCallback] | None = None,
    ) -> None:
        validate_config(config)
        self.callback = as_callback(callbacks)
        self.config = config
        self.device = resolve_device(config.device)
        c = config
        if c.threads is not None:
            torch.set_num_threads(c.threads)
        self.task = make_task(c.env_id, device=str(self.device), **c.env_kwargs)
        self.core = self.task.core
        self.objective = c.objective
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
        if c.compile:
            reason = unavailable_reason(self.device)
            if reason is not None:
                raise ValueError(
                    f"compile=True cannot run on {self.device}: {reason}; allowed: compile=False"
                )
        # fused=None is Adam's default (for-each kernels), the bitwise reference.
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=c.lr, fused=True if c.compile else None
        )
        self.generator = self.core.make_generator(c.seed)
        self.eval_seed = c.seed + 1_000_003
        self.step = 0
        self.wall_time = 0.0
        self.total_steps = c.budget // c.rollouts_per_step
        self.select_metric = select_metric(c, self.task)
        #: Early stopping: the best evaluation on validation so far (``selector.best``).
        self.selector = CheckpointSelector(c.early_stopping, self.select_metric)

    @property
    def best(self) -> Best | None:
        """Early stopping: the best evaluation on validation so far (None before one)."""
        return self.selector.best

    @property
    def rollouts_done(self) -> int:
        """Rollouts consumed so far."""
        return self.step * self.config.rollouts_per_step

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
            self.core.sample_ids(c.num_groups, self.generator, "train"), "train", validate=False
        )
        loss, stats = self.objective.loss(
            StepInputs(
                agent=self.agent,
                contexts=contexts,
                group_size=c.group_size,
                generator=self.generator,
                params={"order": c.order},
                validate=self.step == 0,
                with_stats=with_stats,
                compiled=c.compile,
            )
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

    def evaluate(
        self, split: str | None = None, max_contexts: int | None | str = "config"
    ) -> dict[str, float]:
        """Evaluate the current policy (fresh generator each time).

        Args:
            split: Split to score; default ``eval_split``.
            max_contexts: Contexts to score; default ``eval_contexts``.
        """
        c = self.config
        return evaluate(
            self.task,
            self.agent,
            eval_samples=c.eval_samples,
            pass_k=c.pass_k,
            seed=self.eval_seed,
            split=c.eval_split if split is None else split,
            max_contexts=c.eval_contexts if max_contexts == "config" else max_contexts,
        )

    def track_best(self, metrics: dict[str, float]) -> float | None:
        """Early stopping: score the policy on validation; keep it if it is the best so far.

        Args:
            metrics: This evaluation's metrics on ``eval_split`` (reused when that split is
                the validation split scored on the same contexts).

        Returns:
            The validation value of ``select_metric`` (None without early stopping).
        """
        c = self.config
        if not c.early_stopping:
            return None
        if c.eval_split == "validation" and c.eval_contexts == c.select_contexts:
            value = metrics[self.select_metric]
        else:
            value = self.evaluate("validation", c.select_contexts)[self.select_metric]
        self.selector.offer(value, self.rollouts_done, self.policy)
        return value

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bitwise: parameters, optimizer, RNG, counters, config."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
            "step": self.step,
            "rollouts": self.rollouts_done,
            "wall_time": self.wall_time,
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "best": None
            if self.best is None
            else {
                "value": self.best.value,
                "rollouts": self.best.rollouts,
                "policy": self.best.policy,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # a runtime choice, not the checkpoint's
            group["fused"] = True if self.config.compile else None
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
        if self.config.early_stopping and "best" not in state:
            raise KeyError("'best': the checkpoint of an early-stopping run must record it")
        best = state.get("best")
        if best is not None:
            self.selector.best = Best(
                float(best["value"]), int(best["rollouts"]), dict(best["policy"])
            )

    def save_checkpoint(self, path: Path) -> None:
        """Write the state atomically (temp file + ``os.replace``)."""
        state = self.state_dict()
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def run_directory(self) -> RunDirectory | None:
        """The run's directory lifecycle (None when ``log_dir`` is None)."""
        c = self.config
        if c.log_dir is None:
            return None
        return RunDirectory(
            Path(c.log_dir) / c.name,
            c.to_dict(),
            ignore=RUNTIME_FIELDS,
            checkpoint=CHECKPOINT,
            checkpoint_config=checkpoint_config,
            restart_hint="--no-resume (resume=False)",
        )

    def run(self) -> dict[str, float]:
        """Train to the budget; see ``train``."""
        c = self.config
        directory = self.run_directory()
        resumed = False
        if directory is not None:
            check_log_dir(c.log_dir, directory.path)
            record = directory.prepare(c.resume)
            if record is not None:
                return {k: float(val) for k, val in record["metrics"].items()}
            if c.resume and directory.checkpoint.exists():
                state = load_checkpoint(directory.checkpoint)
                try:
                    self.load_state_dict(state)
                except (KeyError, RuntimeError, TypeError, ValueError) as err:
                    problem = f"does not fit this run's policy: {type(err).__name__}: {err}"
                    raise CorruptFileError(directory.checkpoint, problem) from None
                resumed = True
            else:  # a fresh start: drop the events of an attempt that died before its checkpoint
                for path in directory.path.glob("events.out.tfevents.*"):
                    path.unlink()
        writer = None
        if directory is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(
                str(directory.path), purge_step=self.rollouts_done + 1 if resumed else None
            )
            if not resumed:
                text = json.dumps(c.to_dict(), indent=2, sort_keys=True)
                writer.add_text("config", f"```json\n{text}\n```", 0)
        try:
            return self._loop(directory, writer, resumed)
        finally:
            if writer is not None:
                writer.close()

    def _loop(self, directory: RunDirectory | None, writer: Any, resumed: bool) -> dict[str, float]:
        c = self.config
        per_step = c.rollouts_per_step
        checkpointing = directory is not None and c.checkpoint
        metrics: dict[str, float] = {}
        start = time.perf_counter()
        wall_start = self.wall_time
        self.callback.on_start(self)
        if not resumed:
            metrics = self._eval_and_log(writer)
        done = self.rollouts_done
        next_eval = (done // c.eval_every + 1) * c.eval_every if c.eval_every else None
        last_eval = done if not resumed else -1
        progress = None
        if c.progress:
            from tqdm.auto import tqdm

            progress = tqdm(
                total=self.total_steps * per_step,
                initial=done,
                unit="rollout",
                desc=c.name,
                dynamic_ncols=True,
            )
        log_time, log_rollouts = time.perf_counter(), done
        try:
            while self.step < self.total_steps:
                log_now = (self.step + 1) % c.log_every == 0 or self.step + 1 == self.total_steps
                stats = self.train_step(with_stats=log_now)
                if progress is not None:
                    progress.update(per_step)
                values: dict[str, float] = {}
                if log_now:
                    # One host sync per logging step for all statistics.
                    flat = torch.stack(list(stats.values())).tolist()
                    values = dict(zip(stats, flat, strict=True))
                    now = time.perf_counter()
                    values["time/fps"] = (self.rollouts_done - log_rollouts) / max(
                        now - log_time, 1e-9
                    )
                    values["train/learning_rate"] = self.optimizer.param_groups[0]["lr"]
                    log_time, log_rollouts = now, self.rollouts_done
                    if writer is not None:
                        log_metrics(writer, values, self.rollouts_done)
                    if progress is not None:
                        progress.set_postfix(loss=f"{values['train/loss']:.3g}", refresh=False)
                self.callback.on_step(self, self.rollouts_done, values)
                if next_eval is not None and self.rollouts_done >= next_eval:
                    eval_start = time.perf_counter()
                    next_eval = (self.rollouts_done // c.eval_every + 1) * c.eval_every
                    self.wall_time = wall_start + eval_start - start
                    metrics = self._eval_and_log(writer)
                    last_eval = self.rollouts_done
                    if checkpointing:
                        self.save_checkpoint(directory.checkpoint)  # type: ignore[union-attr]
                    log_time += time.perf_counter() - eval_start  # time/fps counts training only
        finally:
            if progress is not None:
                progress.close()
        if last_eval != self.rollouts_done:
            metrics = self._eval_and_log(writer)
        metrics = self.selector.selected(self.policy, self.evaluate) or metrics
        self.wall_time = wall_start + time.perf_counter() - start
        result = {
            **metrics,
            "rollouts": float(self.rollouts_done),
            "wall_time": self.wall_time,
        }
        if writer is not None:
            write_hparams(writer, c.to_dict(), result, self.rollouts_done)
        if checkpointing:
            self.save_checkpoint(directory.checkpoint)  # type: ignore[union-attr]
            record = {"metrics": result, "select_metric": self.select_metric}
            directory.write_final(record)  # type: ignore[union-attr]
        self.callback.on_end(self, result)
        return result

    def _eval_and_log(self, writer: Any) -> dict[str, float]:
        metrics = self.evaluate()
        value = self.track_best(metrics)
        if writer is not None:
            log_metrics(writer, metrics, self.rollouts_done)
            if value is not None:
                writer.add_scalar(self.selector.tag, value, self.rollouts_done)
            writer.flush()
        self.callback.on_evaluation(self, self.rollouts_done, metrics)
        return metrics


def check_log_dir(log_dir: Any, run_dir: Path) -> None:
    """Refuse a ``log_dir`` that cannot hold the run directory, before anything is written.

    Missing directories are created later (parents too); a path through an existing file
    cannot be.

    Raises:
        ValueError: Naming ``log_dir`` and the file in the way.
    """
    for path in (run_dir, *run_dir.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise ValueError(
                    f"log_dir={str(log_dir)!r} is invalid: {path} is not a directory; "
                    "allowed: a directory, or a path whose missing directories can be created"
                )
            return


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a trainer checkpoint (on the CPU).

    Raises:
        CorruptFileError: The file is empty, truncated or not a checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, OSError, ValueError) as err:  # torch's truncated-zip errors
        raise CorruptFileError(path, f"{type(err).__name__}: {err}") from None
    except Exception as err:  # noqa: BLE001 - unpickling garbage raises anything
        raise CorruptFileError(path, f"{type(err).__name__}: {err}") from None
    if not isinstance(state, dict):
        raise CorruptFileError(path, "not a maxrl-bench trainer checkpoint")
    missing = sorted(CHECKPOINT_KEYS - set(state))
    if missing:
        raise CorruptFileError(path, f"not a whole maxrl-bench trainer checkpoint: no {missing}")
    if not isinstance(state["config"], str):
        raise CorruptFileError(path, "its config is not JSON text")
    return state


def checkpoint_config(path: Path) -> dict[str, Any] | None:
    """The config a trainer checkpoint carries (for resuming without ``config.json``)."""
    state = load_checkpoint(path)
    try:
        config = json.loads(state["config"])
    except json.JSONDecodeError as err:
        raise CorruptFileError(path, f"its config is not valid JSON: {err.msg}") from None
    if not isinstance(config, dict):
        raise CorruptFileError(path, "its config is not a JSON object")
    return config


def train(
    config: TrainConfig, callbacks: TrainerCallback | list[TrainerCallback] | None = None
) -> dict[str, float]:
    """Train one run and return its final evaluation.

    With ``log_dir`` set, the run lives in ``log_dir/run_name`` (``agents.runs``):
    TensorBoard events (x-axis: rollouts consumed), ``config.json``, ``checkpoint.pt``
    (written atomically at every evaluation, carrying the config too) and, once finished,
    ``final.json``. ``resume=True`` continues from the checkpoint (bitwise on CPU) and
    returns a finished run's ``final.json`` metrics without training; a stored run with other
    settings is refused. ``resume=False`` deletes the directory's run files and starts over.

    Args:
        config: The run's configuration.
        callbacks: ``agents.callbacks.TrainerCallback`` instances (a user's logger): called
            at the start, after every step and evaluation, and at the end. A finished run
            that ``resume=True`` returns without training calls none of them.

    Returns:
        The final ``eval/*`` metrics (keys are the TensorBoard tags), plus ``rollouts``
        (consumed) and ``wall_time`` (seconds of training and evaluation, over all resumes).

    Raises:
        ValueError: An invalid config (see ``validate_config``) or a run directory holding
            a run with different settings.
    """
    return Trainer(config, callbacks).run()


def load_policy(
    run_dir: str | Path, device: str = "cpu", *, selected: bool = True
) -> tuple[TaskPolicy, TrainConfig]:
    """Rebuild a run's policy from its ``config.json`` and ``checkpoint.pt``.

    With early stopping the run reports the validation-best policy, so that is the one
    loaded (its metrics are ``final.json``'s); without early stopping, or before any
    evaluation had a finite score, the last one.

    Args:
        run_dir: The run directory (``log_dir/run_name``).
        device: Device to load onto.
        selected: Load the early-stopping selection when there is one; False loads the last
            policy.

    Returns:
        The policy bound to its task (an ``EvalPolicy``) and the run's config.

    Raises:
        CorruptFileError: The checkpoint cannot be read or does not fit the config; with
            early stopping, it has no ``best`` entry, or ``final.json`` reports a selection
            the checkpoint does not hold.
    """
    from agents.runs import FINAL, read_json

    run_dir = Path(run_dir)
    config = TrainConfig.from_dict(read_json(run_dir / "config.json"))
    config = dataclasses.replace(config, device=device)
    trainer = Trainer(config)
    path = run_dir / CHECKPOINT
    state = load_checkpoint(path)
    try:
        trainer.load_state_dict(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        problem = f"does not fit this run's policy: {type(err).__name__}: {err}"
        raise CorruptFileError(path, problem) from None
    if config.early_stopping:
        final = run_dir / FINAL
        reported = read_json(final).get("metrics", {}) if final.exists() else {}
        chosen = reported.get("selected_rollouts") if isinstance(reported, dict) else None
        held = None if trainer.best is None else trainer.best.rollouts
        if chosen is not None and (held is None or float(chosen) != held):
            raise CorruptFileError(
                path,
                f"{final} reports the policy selected at {chosen} rollouts, the checkpoint "
                f"holds {'no selection' if held is None else f'the one at {held}'}",
            )
        if selected and trainer.best is not None:
            trainer.policy.load_state_dict(trainer.best.policy)
    return trainer.agent, config
