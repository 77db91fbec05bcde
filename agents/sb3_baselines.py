"""Stable-Baselines3 baselines on the native vector env, evaluated like our agents.

``train_sb3`` trains one SB3 algorithm (PPO, A2C, SAC, TD3 on Box tasks; PPO, A2C, DQN on
discrete ones) on ``maxrl_envs.sb3.make_sb3_vec_env`` with ``device="cpu"``, at a budget
counted in rollouts: one finished episode of one sub-env is one rollout, which is one env
step for the one-step tasks and ``num_digits`` env steps for ``MaxRLTokens-v0``. Every
``eval_every`` rollouts a callback runs ``agents.evaluation.evaluate`` on a fresh task of the
same id and kwargs and writes its metrics with ``agents.evaluation.log_metrics`` at
x = rollouts consumed, the x-axis of our trainer, so ``tensorboard --logdir`` overlays both.
SB3's own tags (``train/*``, ``rollout/*``, ``time/*``) go to the same run directory at its
own x-axis, ``num_timesteps`` (env steps).

Hyperparameters are "zoo-style" defaults, one setting per algorithm (``SB3_BASELINES``),
overridable per run with ``hyperparams``; the learning rate is ``SB3Config.lr`` (the
benchmark suites tune it on the same grid protocol as our agents). The run directory
``log_dir/run_name`` holds the TensorBoard events, an atomic checkpoint (``checkpoint/``:
model, replay buffer for off-policy algorithms, the early-stopping best policy, state)
written at the first collection boundary after every evaluation (never mid-collection), and
``final.json`` once the run is done; the checkpoint is then deleted (a replay buffer can be
large), unlike our trainer's ``checkpoint.pt``. A rerun with ``resume=True`` returns
``final.json`` without training, or continues from the checkpoint bitwise: the checkpoint
also holds every random state (torch's, numpy's, Python's, the action space's) and the env's
(its context stream and the episodes in progress), so a run killed and resumed ends with the
metrics and curve of the run that was never interrupted (``random_state``).

>>> config = SB3Config(env_id="MaxRLRegression-v0", algo="A2C", budget=2048)
>>> validate_sb3_config(config)  # raises ValueError on a bad setting
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.protocol import (
    Best,
    CheckpointSelector,
    EvalSettings,
    RunSettings,
    check_selection,
    resolve_select_metric,
)
from agents.runs import (
    CorruptFileError,
    RunDirectory,
    atomic_replace_dir,
    atomic_write_text,
    json_safe,
    read_json,
    recover_dir,
)
from maxrl_envs import validation as v
from maxrl_envs.core import SPLITS


@dataclass(frozen=True)
class SB3Baseline:
    """A registered SB3 baseline: the algorithm and the project's settings for it.

    Attributes:
        algo: Name (the SB3 class name, e.g. ``PPO``); suites call the agent ``algo.lower()``.
        families: Action spaces it supports: ``box`` and/or ``discrete``.
        on_policy: Collects ``n_steps`` per sub-env between updates (else a replay buffer).
        num_envs: Sub-envs.
        hyperparams: Constructor keyword arguments (overridable per run).
        algorithm: The class (None: ``getattr(stable_baselines3, algo)``).
    """

    algo: str
    families: tuple[str, ...]
    on_policy: bool
    num_envs: int = 16
    hyperparams: dict[str, Any] = field(default_factory=dict)
    algorithm: type | None = None

    def algorithm_class(self) -> type:
        """The SB3 algorithm class."""
        if self.algorithm is not None:
            return self.algorithm
        import stable_baselines3

        return getattr(stable_baselines3, self.algo)


#: Algorithm name -> baseline. ``register_sb3_baseline`` adds to it.
SB3_BASELINES: dict[str, SB3Baseline] = {}


def register_sb3_baseline(baseline: SB3Baseline) -> SB3Baseline:
    """Add an SB3 baseline for runs (``SB3Config.algo``) and suites (agent ``algo.lower()``).

    Raises:
        ValueError: A taken name or an unknown action-space family.
    """
    if not set(baseline.families) <= {"box", "discrete"} or not baseline.families:
        raise ValueError(f"families={baseline.families!r} must be 'box' and/or 'discrete'")
    return v.register_unique(SB3_BASELINES, baseline.algo, baseline, "SB3 baseline")


# Zoo-style defaults. On-policy algorithms use 16 sub-envs; PPO collects 16 x 64 = 1024
# rollouts per update with minibatches of 256 (rl-baselines3-zoo's setting for small MLP
# tasks), A2C keeps SB3's defaults (n_steps 5, RMSprop, lr 7e-4). Off-policy algorithms keep
# SB3's defaults; their replay buffer is capped at the budget (it then holds every
# transition, as 1e6 would).
for _baseline in (
    SB3Baseline(
        "PPO",
        ("box", "discrete"),
        on_policy=True,
        hyperparams={
            "learning_rate": 3e-4,
            "n_steps": 64,
            "batch_size": 256,
            "n_epochs": 10,
            "gamma": 0.99,
            "gae_lambda": 0.95,
            "clip_range": 0.2,
            "ent_coef": 0.0,
        },
    ),
    SB3Baseline(
        "A2C",
        ("box", "discrete"),
        on_policy=True,
        hyperparams={"learning_rate": 7e-4, "n_steps": 5, "gamma": 0.99, "ent_coef": 0.0},
    ),
    SB3Baseline(
        "SAC",
        ("box",),
        on_policy=False,
        hyperparams={
            "learning_rate": 3e-4,
            "batch_size": 256,
            "learning_starts": 100,
            "train_freq": 1,
            "gradient_steps": 1,
            "gamma": 0.99,
        },
    ),
    SB3Baseline(
        "TD3",
        ("box",),
        on_policy=False,
        hyperparams={
            "learning_rate": 1e-3,
            "batch_size": 256,
            "learning_starts": 100,
            "train_freq": 1,
            "gradient_steps": 1,
            "gamma": 0.99,
        },
    ),
    SB3Baseline(
        "DQN",
        ("discrete",),
        on_policy=False,
        hyperparams={
            "learning_rate": 1e-4,
            "batch_size": 32,
            "learning_starts": 100,
            "train_freq": 4,
            "target_update_interval": 10_000,
            "exploration_fraction": 0.1,
            "exploration_final_eps": 0.05,
            "gamma": 0.99,
        },
    ),
):
    register_sb3_baseline(_baseline)


def get_baseline(algo: Any) -> SB3Baseline:
    """The registered baseline called ``algo``; ``ValueError`` listing the names otherwise."""
    v.check_choice("algo", algo, SB3_BASELINES)
    return SB3_BASELINES[algo]


#: Constructor arguments the runner sets itself and ``hyperparams`` may not override.
_MANAGED = ("policy", "env", "device", "seed", "tensorboard_log", "verbose", "_init_setup_model")
FINAL_FILE = "final.json"
CHECKPOINT_DIR = "checkpoint"
#: Config fields that do not change what a run computes (not compared on resume).
RUNTIME_FIELDS = ("log_dir", "run_name", "resume", "progress", "device")


def _rule(check: v.Rule, default: Any = None, factory: Any = None) -> Any:
    metadata = {"check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


#: Largest SB3 budget (rollouts): about a day at SB3's fastest measured rate here, 11k
#: rollouts/s (A2C, docs/performance.md); a larger one could not finish.
MAX_SB3_BUDGET = 10**9


@dataclass
class SB3Config:
    """One SB3 baseline run.

    Attributes:
        env_id: A registered maxrl_envs id.
        env_kwargs: Env keyword arguments (override the id's registered defaults).
        algo: ``PPO``, ``A2C``, ``SAC``, ``TD3`` (Box actions) or ``PPO``, ``A2C``, ``DQN``
            (discrete actions).
        budget: Total rollouts (finished episodes over all sub-envs). SB3 checks it only
            between collections (``num_envs * n_steps`` env steps on-policy,
            ``num_envs * train_freq`` off-policy), so the run takes the budget rounded down
            to whole collections; the result's ``rollouts`` says how many were used. At
            most ``MAX_SB3_BUDGET``.
        seed: Seed of the model and the env, in [0, 2**32 - 1].
        num_envs: Sub-envs; None uses the baseline's (``SB3_BASELINES``).
        hyperparams: Constructor keyword arguments merged over the baseline's.
        eval_every: Evaluate and checkpoint every this many rollouts (and always at 0 and
            at the end; 0: only then).
        eval_samples: Samples per context in evaluation (M).
        pass_k: k of ``eval/pass@k``.
        eval_split: ``test`` (report), ``validation`` (model selection) or ``train``.
        eval_seed: Seed of the evaluation sampler; None uses ``seed``.
        early_stopping: Report the checkpoint with the best ``select_metric`` on the
            validation split (checked at every evaluation) instead of the last one, as our
            trainer does.
        select_metric: The ``eval/*`` tag that selects checkpoints (None: the task's default).
        select_contexts: Validation contexts scored for the selection (None: all).
        log_dir: Parent directory of the run directory.
        run_name: Run directory name; None gives ``{env_id}__{algo}__{seed}``.
        resume: Return a finished run's ``final.json`` or continue from its checkpoint.
        progress: Show SB3's progress bar.
        device: Torch device of the model; SB3 advises ``cpu`` for MLP policies.
    """

    env_id: str = _rule(v.check_str, "MaxRLRegression-v0")
    env_kwargs: dict[str, Any] = _rule(v.mapping(), factory=dict)
    algo: str = _rule(v.choice(lambda: tuple(SB3_BASELINES)), "PPO")
    budget: int = _rule(v.integer(1, MAX_SB3_BUDGET), 100_000)
    seed: int = _rule(v.seed(), 0)
    num_envs: int | None = _rule(v.optional(v.integer(1)), None)
    hyperparams: dict[str, Any] = _rule(v.mapping(), factory=dict)
    eval_every: int = _rule(v.integer(0), 10_000)
    eval_samples: int = _rule(v.integer(1), 64)
    pass_k: int = _rule(v.integer(1), 16)
    eval_split: str = _rule(v.choice(SPLITS), "test")
    eval_seed: int | None = _rule(v.optional(v.seed()), None)
    early_stopping: bool = _rule(v.boolean(), False)
    select_metric: str | None = _rule(v.optional(v.check_str), None)
    select_contexts: int | None = _rule(v.optional(v.integer(1)), 1024)
    log_dir: str = _rule(v.path(), "runs")
    run_name: str | None = _rule(v.optional(v.file_name()), None)
    resume: bool = _rule(v.boolean(), True)
    progress: bool = _rule(v.boolean(), False)
    device: str = _rule(v.device(allow_auto=False), "cpu")

    @property
    def name(self) -> str:
        """The run directory name."""
        return self.run_name or f"{self.env_id}__{self.algo}__{self.seed}"

    @property
    def run_settings(self) -> RunSettings:
        """The settings every agent's run shares (``agents.protocol.RunSettings``)."""
        return RunSettings.of(self)

    @property
    def eval_settings(self) -> EvalSettings:
        """How the run is evaluated and selected (``agents.protocol.EvalSettings``)."""
        return EvalSettings.of(self)


def resolved_settings(config: SB3Config) -> tuple[int, dict[str, Any]]:
    """Sub-env count and constructor keyword arguments after defaults and overrides."""
    baseline = get_baseline(config.algo)
    num_envs = int(config.num_envs if config.num_envs is not None else baseline.num_envs)
    hyperparams = {**baseline.hyperparams, **dict(config.hyperparams)}
    return num_envs, hyperparams


def env_facts(env_id: str, env_kwargs: dict[str, Any]) -> tuple[str, str, int]:
    """Kind name, action-space family (``box``/``discrete``) and episode length of an env.

    Checked from the kind's keyword signature, without building the env's data.

    Raises:
        ValueError: Unknown env id or keyword argument.
    """
    from gymnasium import spaces

    import maxrl_envs

    info = maxrl_envs.describe_env(env_id, **env_kwargs)
    family = "box" if isinstance(info.step_action_space, spaces.Box) else "discrete"
    return info.kind.name, family, info.episode_length


def steps_per_collect(algo: str, num_envs: int, hyperparams: dict[str, Any]) -> int:
    """Env steps SB3 collects between two checks of the budget (one update's worth).

    On-policy: ``num_envs * n_steps``; off-policy: ``num_envs * train_freq`` (in steps).
    """
    if get_baseline(algo).on_policy:
        return num_envs * int(hyperparams.get("n_steps", 1))
    freq = hyperparams.get("train_freq", 1)
    steps = freq if isinstance(freq, int) else freq[0] if freq[-1] == "step" else 1
    return num_envs * max(1, int(steps))


def budget_steps(config: SB3Config) -> int:
    """Env steps a run takes: the budget rounded down to whole collections.

    SB3 stops only between collections, so like our trainer (which takes
    floor(budget / rollouts per step) steps) a run never exceeds its budget.
    """
    num_envs, hyperparams = resolved_settings(config)
    _, _, episode_length = env_facts(config.env_id, config.env_kwargs)
    per_collect = steps_per_collect(config.algo, num_envs, hyperparams)
    return (config.budget * episode_length // per_collect) * per_collect


def _hp_callable_or(rule: v.Rule) -> v.Rule:
    """A rule that also takes a callable (SB3's schedules of ``learning_rate``, ...)."""
    return lambda name, value: value if callable(value) else rule(name, value)


def _hp_class(base: str) -> v.Rule:
    def rule(name: str, value: Any) -> Any:
        if not isinstance(value, type):
            raise ValueError(f"{name}={value!r} must be a class ({base}), given in Python")
        return value

    return rule


def _hp_train_freq(name: str, value: Any) -> Any:
    if v.is_int(value) and int(value) >= 1:
        return value
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and v.is_int(value[0])
        and int(value[0]) >= 1
        and value[1] in ("step", "episode")
    ):
        return value
    raise ValueError(
        f"{name}={value!r} is invalid; allowed: an integer >= 1 (steps) or [n, 'step'] / "
        "[n, 'episode'] with an integer n >= 1"
    )


def _hp_gradient_steps(name: str, value: Any) -> Any:
    if v.is_int(value) and (int(value) >= 1 or int(value) == -1):
        return value
    raise ValueError(f"{name}={value!r} is invalid; allowed: an integer >= 1, or -1")


def _hp_entropy(name: str, value: Any) -> Any:
    """SAC's ``ent_coef``: a number >= 0, ``'auto'`` or ``'auto_<initial value > 0>'``."""
    if value == "auto":
        return value
    if isinstance(value, str) and value.startswith("auto_"):
        try:
            if float(value.removeprefix("auto_")) > 0:
                return value
        except ValueError:
            pass
    elif (
        not isinstance(value, (bool, str))
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    ):
        return value
    raise ValueError(
        f"{name}={value!r} is invalid; allowed: a finite number >= 0, 'auto', or 'auto_<x>' "
        "with an initial value x > 0"
    )


def _hp_target_entropy(name: str, value: Any) -> Any:
    if value == "auto":
        return value
    try:
        return v.check_number(name, value)
    except ValueError:
        raise ValueError(
            f"{name}={value!r} is invalid; allowed: 'auto' or a finite number"
        ) from None


def _hp_action_noise(name: str, value: Any) -> Any:
    from stable_baselines3.common.noise import ActionNoise

    if value is None or isinstance(value, ActionNoise):
        return value
    raise ValueError(f"{name}={value!r} is invalid; allowed: None or an SB3 ActionNoise object")


#: Rules of the SB3 constructor arguments (the values SB3 itself would only reject mid-run,
#: or never: ``n_steps = 0`` divided by zero, ``gamma = "x"`` failed in the first update).
HYPERPARAM_RULES: dict[str, v.Rule] = {
    "learning_rate": _hp_callable_or(v.number(minimum=0.0, strict_minimum=True, maximum=1e6)),
    "n_steps": v.integer(1),
    "batch_size": v.integer(1),
    "n_epochs": v.integer(1),
    "gamma": v.number(minimum=0.0, maximum=1.0),
    "gae_lambda": v.number(minimum=0.0, maximum=1.0),
    "clip_range": _hp_callable_or(v.positive()),
    "clip_range_vf": v.optional(_hp_callable_or(v.positive())),
    "normalize_advantage": v.boolean(),
    "vf_coef": v.number(minimum=0.0),
    "max_grad_norm": v.positive(),
    "rms_prop_eps": v.positive(),
    "use_rms_prop": v.boolean(),
    "use_sde": v.boolean(),
    "use_sde_at_warmup": v.boolean(),
    "sde_sample_freq": v.integer(-1),
    "target_kl": v.optional(v.positive()),
    "stats_window_size": v.integer(1),
    "buffer_size": v.integer(1),
    "learning_starts": v.integer(0),
    "tau": v.number(minimum=0.0, maximum=1.0, strict_minimum=True),
    "train_freq": _hp_train_freq,
    "gradient_steps": _hp_gradient_steps,
    "optimize_memory_usage": v.boolean(),
    "target_update_interval": v.integer(1),
    "exploration_fraction": v.number(minimum=0.0, maximum=1.0),
    "exploration_initial_eps": v.number(minimum=0.0, maximum=1.0),
    "exploration_final_eps": v.number(minimum=0.0, maximum=1.0),
    "policy_delay": v.integer(1),
    "target_policy_noise": v.number(minimum=0.0),
    "target_noise_clip": v.number(minimum=0.0),
    "target_entropy": _hp_target_entropy,
    "action_noise": _hp_action_noise,
    "replay_buffer_class": v.optional(_hp_class("an SB3 ReplayBuffer subclass")),
    "rollout_buffer_class": v.optional(_hp_class("an SB3 RolloutBuffer subclass")),
    "replay_buffer_kwargs": v.optional(v.mapping()),
    "rollout_buffer_kwargs": v.optional(v.mapping()),
}
#: ``ent_coef`` is a plain number on-policy, a number or ``'auto'`` for SAC.
_ENT_COEF_RULES: dict[str, v.Rule] = {"SAC": _hp_entropy}


def _hp_net_arch(name: str, value: Any, heads: tuple[str, ...]) -> None:
    def widths(label: str, part: Any) -> None:
        if not isinstance(part, (list, tuple)) or not all(
            v.is_int(w) and int(w) >= 1 for w in part
        ):
            raise ValueError(
                f"{label}={part!r} is invalid; allowed: a list of layer widths (integers >= 1)"
                + (f", or a table of them keyed by {', '.join(heads)}" if heads else "")
            )

    if isinstance(value, dict) and heads:
        unknown = sorted(set(value) - set(heads))
        if unknown:
            raise ValueError(
                f"{name} keys {unknown} are invalid; allowed: {', '.join(heads)} "
                "(each a list of layer widths)"
            )
        for key, part in value.items():
            widths(f"{name}[{key!r}]", part)
    else:
        widths(name, value)


def _check_policy_kwargs(algo: str, value: Any) -> None:
    """``policy_kwargs``: the MlpPolicy's own keywords, with ``net_arch`` checked in full."""
    name = "hyperparams['policy_kwargs']"
    if value is None:
        return
    v.mapping()(name, value)
    cls = get_baseline(algo).algorithm_class()
    policy = getattr(cls, "policy_aliases", {}).get("MlpPolicy")
    if policy is not None:
        params = inspect.signature(policy.__init__).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            managed = ("self", "observation_space", "action_space", "lr_schedule")
            allowed = sorted(n for n in params if n not in managed)
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise ValueError(
                    f"{name} key(s) {unknown} are not {algo} MlpPolicy arguments; allowed: "
                    f"{', '.join(allowed)}"
                )
    heads = {"PPO": ("pi", "vf"), "A2C": ("pi", "vf"), "SAC": ("pi", "qf"), "TD3": ("pi", "qf")}
    rules: dict[str, v.Rule] = {
        "activation_fn": _hp_class("a torch.nn.Module subclass such as torch.nn.ReLU"),
        "ortho_init": v.boolean(),
        "log_std_init": v.number(),
        "full_std": v.boolean(),
        "use_expln": v.boolean(),
        "squash_output": v.boolean(),
        "share_features_extractor": v.boolean(),
        "normalize_images": v.boolean(),
        "n_critics": v.integer(1),
        "clip_mean": v.positive(),
        "optimizer_class": _hp_class("a torch.optim.Optimizer subclass"),
        "optimizer_kwargs": v.optional(v.mapping()),
        "features_extractor_class": _hp_class("an SB3 BaseFeaturesExtractor subclass"),
        "features_extractor_kwargs": v.optional(v.mapping()),
    }
    for key, item in value.items():
        label = f"{name}[{key!r}]"
        if key == "net_arch":
            if item is not None:
                _hp_net_arch(label, item, heads.get(algo, ()))
        elif key in rules:
            rules[key](label, item)


def check_hyperparams(algo: str, hyperparams: dict[str, Any], num_envs: int) -> None:
    """Check the values of an SB3 algorithm's constructor arguments before anything runs.

    Each known argument has a rule (``HYPERPARAM_RULES``; ``policy_kwargs`` down to its
    ``net_arch``), and the rules that tie them together are SB3's own assertions, asked here
    instead of at the first update. Arguments of a registered algorithm that the table does
    not know pass unchecked.

    Raises:
        ValueError: Naming ``hyperparams['key']``, the value and what is allowed.
    """
    for key, value in hyperparams.items():
        name = f"hyperparams[{key!r}]"
        if key == "policy_kwargs":
            _check_policy_kwargs(algo, value)
            continue
        rule = _ENT_COEF_RULES.get(algo, v.number()) if key == "ent_coef" else None
        rule = rule or HYPERPARAM_RULES.get(key)
        if rule is not None:
            rule(name, value)
    freq = hyperparams.get("train_freq")
    if isinstance(freq, (list, tuple)) and freq[1] == "episode" and num_envs != 1:
        raise ValueError(
            f"hyperparams['train_freq']={freq!r} counts episodes, which SB3 allows with one "
            f"sub-env only (num_envs={num_envs}); allowed: [n, 'step'], or num_envs = 1"
        )
    if algo == "PPO" and hyperparams.get("normalize_advantage", True):
        batch = hyperparams.get("batch_size", 64)
        if batch < 2:
            raise ValueError(
                f"hyperparams['batch_size']={batch!r} is invalid for PPO with advantage "
                "normalization; allowed: an integer >= 2 (or normalize_advantage = false)"
            )
        if num_envs * hyperparams.get("n_steps", 2048) < 2:
            raise ValueError(
                f"hyperparams['n_steps']={hyperparams.get('n_steps', 2048)!r} with "
                f"num_envs={num_envs} collects {num_envs * hyperparams.get('n_steps', 2048)} "
                "step(s) per update; allowed: n_steps * num_envs >= 2 for PPO's advantage "
                "normalization"
            )


def validate_sb3_config(config: SB3Config) -> None:
    """Check a config before anything runs.

    Raises:
        ValueError: Unknown algorithm, env id, env kwarg or hyperparameter; an algorithm
            that does not support the env's action space (DQN on Box, SAC/TD3 on discrete);
            a budget smaller than one update; bad evaluation settings.
    """
    v.check_fields(config)
    algo = config.algo
    kind, family, episode_length = env_facts(config.env_id, config.env_kwargs)
    if family not in get_baseline(algo).families:
        allowed = [b.algo for b in SB3_BASELINES.values() if family in b.families]
        raise ValueError(
            f"algo={algo!r} does not support the {family} action space of "
            f"{config.env_id!r} ({kind}); allowed for it: {', '.join(allowed)}"
        )
    num_envs, hyperparams = resolved_settings(config)
    v.check_int("num_envs", num_envs, 1)
    params = inspect.signature(get_baseline(algo).algorithm_class().__init__).parameters
    allowed_names = sorted(n for n in params if n not in (*_MANAGED, "self", "kwargs"))
    for name in hyperparams:
        if name in _MANAGED or name not in params:
            raise ValueError(
                f"hyperparams key {name!r} is not a {algo} argument the runner accepts; "
                f"allowed: {', '.join(allowed_names)}"
            )
    check_hyperparams(algo, hyperparams, num_envs)
    per_collect = steps_per_collect(algo, num_envs, hyperparams)
    if config.budget * episode_length < per_collect:
        what = "n_steps" if get_baseline(algo).on_policy else "train_freq"
        raise ValueError(
            f"budget={config.budget!r} rollouts is smaller than one {algo} update of "
            f"{per_collect} env steps ({num_envs} sub-envs x {what}="
            f"{hyperparams.get(what, 1)}, {episode_length} step(s) per rollout); raise budget "
            "or lower num_envs"
        )
    memory = v.physical_memory()
    import maxrl_envs

    obs_dim = int(
        getattr(maxrl_envs.describe_env(config.env_id, **config.env_kwargs).spec.shape, "dim", 1)
    )
    batch = 16 * num_envs * obs_dim  # the vector env's batched bounds and observations
    if memory is not None and batch > memory:
        raise ValueError(
            f"num_envs={num_envs} with observations of {obs_dim} values would need at least "
            f"{batch / 2**30:.1f} GiB; allowed: at most this machine's memory, "
            f"{memory / 2**30:.1f} GiB"
        )
    need = 32 * config.eval_samples * episode_length  # bytes of one context's samples, at least
    if memory is not None and need > memory:
        raise ValueError(
            f"eval_samples={config.eval_samples} would need at least {need / 2**30:.1f} GiB to "
            f"score one context's samples; allowed: at most this machine's memory, "
            f"{memory / 2**30:.1f} GiB"
        )
    config.eval_settings.check()
    if config.select_metric is not None:
        from maxrl_envs import get_kind

        exact = has_exact_form(config.algo, config.env_id, config.env_kwargs)
        why = "" if exact else f"{algo}'s log-likelihood has no exact form on it"
        if not exact and episode_length > 1:
            why = f"{algo}'s token tree is too large to enumerate exactly"
        numeric = get_kind(kind).numeric
        check_selection(config.select_metric, config.pass_k, numeric, exact, config.env_id, why)


def has_exact_form(algo: str, env_id: str, env_kwargs: dict[str, Any]) -> bool:
    """Whether evaluation reports the exact ``eval/log_likelihood`` for this algorithm and env.

    False (``eval/log_likelihood_mc`` instead) for an actor-critic algorithm on a token tree
    above ``agents.exact.MAX_SEQUENCES`` sequences, or a policy class ``SB3Policy`` has no
    exact form for (``agents.evaluation.sb3_exact_form``). Decided without building data.
    """
    import maxrl_envs
    from agents.evaluation import sb3_exact_form

    cls = get_baseline(algo).algorithm_class()
    policy_class = getattr(cls, "policy_aliases", {}).get("MlpPolicy")
    if not isinstance(policy_class, type):
        return False
    return sb3_exact_form(policy_class, maxrl_envs.describe_env(env_id, **env_kwargs))


class _Checkpoint:
    """Model (and replay buffer) plus a state file, swapped in as one directory."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / CHECKPOINT_DIR
        # A save killed between its two renames leaves only the previous checkpoint aside.
        recover_dir(self.path, lambda folder: (folder / "state.json").exists())

    def exists(self) -> bool:
        return (self.path / "state.json").exists() and (self.path / "model.zip").exists()

    def save(
        self, model: Any, state: dict[str, Any], replay: bool, best: dict[str, Any] | None = None
    ) -> None:
        def fill(folder: Path) -> None:
            model.save(folder / "model.zip")
            if replay:
                model.save_replay_buffer(folder / "replay.pkl")
            if best is not None:
                import torch

                torch.save(best, folder / "best.pt")
            text = json.dumps(json_safe(state), allow_nan=False)
            atomic_write_text(folder / "state.json", text)

        atomic_replace_dir(self.path, fill)

    def state(self) -> dict[str, Any]:
        return read_json(self.path / "state.json")


def checkpoint_config(path: Path) -> dict[str, Any] | None:
    """The config an SB3 checkpoint folder carries (for resuming without ``config.json``)."""
    state_path = path / "state.json"
    if not state_path.exists():
        return None
    config = read_json(state_path).get("config")
    return config if isinstance(config, dict) else None


def _make_callback_class() -> type:
    from stable_baselines3.common.callbacks import BaseCallback

    class EvalCheckpointCallback(BaseCallback):
        """Evaluate every ``eval_every`` rollouts, log at x = rollouts, then checkpoint.

        The evaluation runs at the env step where the count is reached, possibly in the
        middle of a collection. The checkpoint waits for the next safe point, the start of
        the next collection: by then SB3 has stored the collection's transitions and trained
        on them, so ``num_timesteps`` is a whole number of collections and a resumed run
        loses no data and keeps to the budget. A mid-collection checkpoint would drop the
        partial rollout buffer (on-policy) or the step's transition and update (off-policy)
        and, resumed, run past the budget by the partial collection.
        """

        def __init__(self, run: _Run) -> None:
            super().__init__(verbose=0)
            self.run = run
            self.pending = False

        def _on_training_start(self) -> None:
            if not self.run.curve:
                self.run.evaluate(self.model)

        def _on_step(self) -> bool:
            if self.run.rollouts(self.model) >= self.run.next_eval:
                self.run.evaluate(self.model)
                self.pending = True
            return True

        def _on_rollout_start(self) -> None:
            if self.pending:
                self.run.checkpoint(self.model)
                self.pending = False

    return EvalCheckpointCallback


class _Run:
    """State of one SB3 run: evaluation task, writer, curve and checkpoints."""

    def __init__(
        self, config: SB3Config, run_dir: Path, episode_length: int, settings: dict[str, Any]
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        import maxrl_envs

        self.config = config
        self.run_dir = run_dir
        self.episode_length = episode_length
        self.settings = settings
        self.task = maxrl_envs.make_task(config.env_id, device="cpu", **config.env_kwargs)
        self.writer = SummaryWriter(log_dir=str(run_dir))
        self.curve: list[list[Any]] = []
        self.next_eval: float = 0
        self.elapsed = 0.0
        self.started = time.perf_counter()
        self.store = _Checkpoint(run_dir)
        self.off_policy = not get_baseline(config.algo).on_policy
        self.select_metric = _select_metric(config, self.task)
        #: Early stopping: the best evaluation on validation so far (``selector.best``).
        self.selector = CheckpointSelector(config.early_stopping, self.select_metric)

    def rollouts(self, model: Any) -> int:
        return int(model.num_timesteps) // self.episode_length

    def score(self, model: Any, split: str, max_contexts: int | None) -> dict[str, float]:
        from agents.evaluation import SB3Policy, evaluate

        was_training = model.policy.training
        model.policy.set_training_mode(False)
        metrics = evaluate(
            self.task,
            SB3Policy(model, self.task),
            eval_samples=self.config.eval_samples,
            pass_k=self.config.pass_k,
            seed=self.config.seed if self.config.eval_seed is None else self.config.eval_seed,
            split=split,
            max_contexts=max_contexts,
        )
        model.policy.set_training_mode(was_training)
        return metrics

    def evaluate(self, model: Any) -> dict[str, float]:
        from agents.evaluation import log_metrics

        step = self.rollouts(model)
        metrics = self.score(model, self.config.eval_split, None)
        log_metrics(self.writer, metrics, step)
        if self.config.early_stopping:
            value = self.score(model, "validation", self.config.select_contexts)[self.select_metric]
            self.writer.add_scalar(self.selector.tag, value, step)
            self.selector.offer(value, step, model.policy)
        self.writer.flush()
        if self.curve and self.curve[-1][0] == step:
            self.curve[-1] = [step, metrics]
        else:
            self.curve.append([step, metrics])
        every = self.config.eval_every
        self.next_eval = (step // every + 1) * every if every else math.inf
        return metrics

    def wall_time(self) -> float:
        return self.elapsed + time.perf_counter() - self.started

    def checkpoint(self, model: Any) -> None:
        best = self.selector.best
        state = {
            "num_timesteps": int(model.num_timesteps),
            "curve": self.curve,
            "next_eval": self.next_eval,
            "wall_time": self.wall_time(),
            "config": self.settings,
            "best": None if best is None else [best.value, best.rollouts],
            "random_state": random_state(model),
        }
        self.store.save(
            model, state, replay=self.off_policy, best=None if best is None else best.policy
        )

    def restore(self, cls: type, env: Any) -> Any:
        """Load the checkpoint's model, replay buffer and state.

        Raises:
            CorruptFileError: A file of the checkpoint cannot be read, naming it.
        """
        state_path = self.store.path / "state.json"
        state = self.store.state()
        try:
            self.curve = [[int(step), _floats(metrics)] for step, metrics in state["curve"]]
            self.next_eval = float(state["next_eval"])
            self.elapsed = float(state["wall_time"])
            if self.config.early_stopping and "best" not in state:
                raise KeyError("'best' (early stopping is on)")
            best = state.get("best")
            best_head = None if best is None else (float(best[0]), int(best[1]))
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise CorruptFileError(state_path, f"{type(err).__name__}: {err}") from None
        model = _load_part(
            self.store.path / "model.zip",
            lambda path: cls.load(
                path, env=env, device=self.config.device, force_reset="random_state" not in state
            ),
        )
        if getattr(model, "use_sde", False):
            warnings.warn(
                "use_sde=True: SB3 draws the gSDE noise before the checkpoint of a collection "
                "and again after a resume, so this resumed run is not bitwise the uninterrupted "
                "one",
                stacklevel=2,
            )
        if "random_state" in state:
            try:
                restore_random_state(model, env, state["random_state"])
            except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
                problem = f"its random_state cannot be restored: {type(err).__name__}: {err}"
                raise CorruptFileError(state_path, problem) from None
        else:
            warnings.warn(
                f"{state_path} predates exact SB3 resumes (no random_state): the run continues "
                "from a re-seeded env and will not equal an uninterrupted run bitwise",
                stacklevel=2,
            )
        replay = self.store.path / "replay.pkl"
        if self.off_policy and replay.exists():
            _load_part(replay, model.load_replay_buffer)
        if best_head is not None:
            import torch

            policy = _load_part(
                self.store.path / "best.pt",
                lambda path: torch.load(path, map_location="cpu", weights_only=True),
            )
            self.selector.best = Best(*best_head, policy)
        return model

    def selected_metrics(self, model: Any) -> dict[str, float]:
        """Test metrics of the best checkpoint on validation (early stopping), or {}."""
        selected = self.selector.selected(
            model.policy, lambda: self.score(model, self.config.eval_split, None)
        )
        return selected or {}


def _tensor_text(tensor: Any) -> str:
    import base64

    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _text_tensor(text: str) -> Any:
    import base64

    import numpy as np
    import torch

    data = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    return torch.from_numpy(data.copy())


def _native_env(env: Any) -> Any:
    """The native ``MaxRLVectorEnv`` under SB3's wrappers (``VecMonitor(SB3VecEnv(...))``)."""
    adapter = getattr(env, "venv", env)
    return adapter, adapter.venv


def random_state(model: Any) -> dict[str, Any]:
    """Every random state an SB3 run continues from, as JSON (taken at a collection boundary).

    torch's, numpy's and Python's global generators (SB3 samples actions with torch's,
    minibatches and replay samples with numpy's), the action space's generator (SB3's random
    warm-up actions, DQN's exploration) and the env's: its context stream and the episodes in
    progress (a token episode may be mid-way at a collection boundary). With these and the
    observation SB3 holds (``model.zip`` keeps it), a resumed run is bitwise the run that was
    never interrupted.
    """
    import random

    import numpy as np
    import torch

    _, native = _native_env(model.get_env())
    legacy = np.random.get_state()
    episodes = native.episodes
    written = episodes._written
    state = {
        "torch": _tensor_text(torch.get_rng_state()),
        "numpy": [legacy[0], legacy[1].tolist(), *legacy[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "action_space": model.action_space.np_random.bit_generator.state,
        "env_np_random": native.np_random.bit_generator.state,
        "env_generator": _tensor_text(native._generator.get_state()),
        "context_ids": episodes.contexts.ids.tolist(),
        "position": episodes.position,
        "written": None if written is None else written.tolist(),
    }
    if torch.device(model.device).type == "cuda":
        state["cuda"] = _tensor_text(torch.cuda.get_rng_state(model.device))
    return state


def restore_random_state(model: Any, env: Any, state: dict[str, Any]) -> None:
    """Put back what ``random_state`` took, after ``cls.load`` (which reseeds everything)."""
    import random

    import numpy as np
    import torch

    adapter, native = _native_env(env)
    env.reset()  # builds the wrappers' episode counters; the env's state is replaced below
    native.np_random.bit_generator.state = state["env_np_random"]
    native._generator.set_state(_text_tensor(state["env_generator"]))
    episodes = native.episodes
    ids = torch.as_tensor(state["context_ids"], dtype=torch.long, device=native.core.device)
    episodes.begin(ids)
    episodes.position = int(state["position"])
    if state["written"] is not None:
        assert episodes._written is not None
        episodes._written.copy_(torch.as_tensor(state["written"], dtype=episodes._written.dtype))
    expected = adapter._numpy(episodes.observation()).astype(np.float32, copy=False)
    if model._last_obs is None or not np.array_equal(model._last_obs, expected):
        raise ValueError("the env's restored episodes do not give the observation SB3 holds")
    torch.set_rng_state(_text_tensor(state["torch"]))
    if "cuda" in state:
        torch.cuda.set_rng_state(_text_tensor(state["cuda"]), model.device)
    name, key, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    model.action_space.np_random.bit_generator.state = state["action_space"]


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Metrics read back from JSON: ``"nan"``/``"inf"`` strings (``json_safe``) as floats."""
    return {str(k): float(val) for k, val in dict(metrics).items()}


def _load_part(path: Path, load: Any) -> Any:
    """``load(path)``, with any failure of a missing, truncated or garbled file named."""
    if not path.exists():
        raise CorruptFileError(path, "missing from the checkpoint")
    try:
        return load(path)
    except Exception as err:  # noqa: BLE001 - a truncated zip or pickle raises anything
        raise CorruptFileError(path, f"{type(err).__name__}: {err}") from None


def _select_metric(config: SB3Config, task: Any) -> str:
    """The metric that selects checkpoints: ``config.select_metric`` or the task's default.

    The default names the log-likelihood tag evaluation reports (``eval/log_likelihood_mc``
    where ``has_exact_form`` is False); ``final.json`` records it.
    """
    if config.select_metric is not None:
        return config.select_metric
    head = getattr(task.core, "head", None)
    exact = has_exact_form(config.algo, config.env_id, config.env_kwargs)
    return resolve_select_metric(None, task.kind.numeric, head, config.pass_k, exact)


def read_final(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``final.json`` of a finished run directory, or None."""
    path = Path(run_dir) / FINAL_FILE
    return read_json(path) if path.exists() else None


def run_settings(config: SB3Config) -> dict[str, Any]:
    """What a run computes: the config with its resolved sub-envs and hyperparameters."""
    num_envs, hyperparams = resolved_settings(config)
    _, _, episode_length = env_facts(config.env_id, config.env_kwargs)
    if not get_baseline(config.algo).on_policy:
        hyperparams.setdefault(
            "buffer_size", max(1, min(1_000_000, config.budget * episode_length))
        )
    return {**asdict(config), "num_envs": num_envs, "hyperparams": hyperparams}


def train_sb3(config: SB3Config) -> dict[str, float]:
    """Train one SB3 baseline and return its final evaluation.

    The run directory follows ``agents.runs.RunDirectory``: a stored run with other settings
    (budget, env kwargs, hyperparameters, ...) is refused, a finished one is returned
    without training, an interrupted one continues from its checkpoint.

    Args:
        config: The run; validated first.

    Returns:
        The last evaluation's metrics keyed by TensorBoard tag (``eval/log_likelihood``,
        ``eval/pass@1``, ...), plus ``rollouts`` (consumed) and ``wall_time`` (seconds,
        summed over resumed segments).
    """
    validate_sb3_config(config)
    settings = run_settings(config)
    directory = RunDirectory(
        Path(config.log_dir) / config.name,
        settings,
        ignore=RUNTIME_FIELDS,
        checkpoint=CHECKPOINT_DIR,
        checkpoint_config=checkpoint_config,
    )
    record = directory.prepare(config.resume)
    if record is not None:  # non-finite values come back from their strings, as floats
        try:
            return _floats(record["metrics"])
        except (TypeError, ValueError) as err:
            problem = f"a metric is not a number: {err}"
            raise CorruptFileError(directory.final_path, problem) from None
    run_dir = directory.path

    from stable_baselines3.common.logger import configure

    from maxrl_envs.sb3 import make_sb3_vec_env

    _, _, episode_length = env_facts(config.env_id, config.env_kwargs)
    num_envs, hyperparams = settings["num_envs"], dict(settings["hyperparams"])
    env = make_sb3_vec_env(config.env_id, num_envs, config.seed, **config.env_kwargs)
    cls = get_baseline(config.algo).algorithm_class()
    run = _Run(config, run_dir, episode_length, directory.config)
    try:
        if config.resume and run.store.exists():
            model = run.restore(cls, env)
        else:
            model = cls("MlpPolicy", env, device=config.device, seed=config.seed, **hyperparams)
            text = json.dumps(directory.config, indent=2, sort_keys=True)
            run.writer.add_text("config", f"```json\n{text}\n```", 0)
        model.set_logger(configure(str(run_dir), ["tensorboard"]))
        total = budget_steps(config)
        remaining = max(0, total - int(model.num_timesteps))
        callback = _make_callback_class()(run)
        if remaining:
            model.learn(
                total_timesteps=remaining,
                callback=callback,
                reset_num_timesteps=False,
                progress_bar=config.progress,
                log_interval=_log_interval(config, total, num_envs, hyperparams),
            )
        if not run.curve or run.curve[-1][0] != run.rollouts(model):
            run.evaluate(model)
        metrics = dict(run.curve[-1][1])
        metrics.update(run.selected_metrics(model))
        metrics["rollouts"] = float(run.rollouts(model))
        metrics["wall_time"] = run.wall_time()
        from agents.callbacks import write_hparams

        # TensorBoard's HParams tab: the run's settings beside its final metrics (pass@k too).
        write_hparams(run.writer, directory.config, metrics, run.rollouts(model))
        directory.write_final(
            {"metrics": metrics, "curve": run.curve, "select_metric": run.select_metric}
        )
        shutil.rmtree(run.store.path, ignore_errors=True)
        return metrics
    finally:
        run.writer.close()
        env.close()


def _log_interval(
    config: SB3Config, total_steps: int, num_envs: int, hyperparams: dict[str, Any]
) -> int:
    """SB3's own logging cadence (``learn(log_interval=...)``): about 100 logs per run.

    On-policy algorithms count updates (A2C's default of 100 would log only a few times in
    a short run); off-policy ones count episodes, which here end at every step of every
    sub-env, so their default (4) would log at every step.
    """
    if get_baseline(config.algo).on_policy:
        updates = total_steps // steps_per_collect(config.algo, num_envs, hyperparams)
        return max(1, updates // 100)
    return max(1, config.budget // 100)


__all__ = [
    "SB3_BASELINES",
    "SB3Baseline",
    "SB3Config",
    "get_baseline",
    "read_final",
    "register_sb3_baseline",
    "resolved_settings",
    "train_sb3",
    "validate_sb3_config",
]
