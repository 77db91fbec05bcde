"""Benchmark suites: readable TOML files turned into a validated list of runs.

A suite file (``benchmarks/suites/NAME.toml``) has four parts::

    name = "quick"
    description = "What it shows."
    include = []                  # other suites whose experiments this one runs too

    [settings]                    # run settings shared by every experiment (see SETTINGS)
    seeds = [0, 1, 2]
    budget = 100_000              # rollouts per run, for every agent
    lr_grid = [1e-3, 3e-3, 1e-2]  # our agents' learning rates, chosen on validation runs

    [agents.maxrl-t4]             # optional: agents beyond the built-in ones (AGENTS)
    estimator = "maxrl"
    order = 4

    [[experiments]]               # one table of the report
    name = "regression"
    envs = [{ id = "MaxRLRegression-v0", kwargs = { task = "teacher-mlp", snr = 1.0 } }]
    agents = ["maxrl", "grpo", "reinforce", "supervised", "a2c"]
    sweep.env.snr = [10.0, 1.0]   # optional: env kwargs swept (cartesian product) ...
    sweep.rollouts = [4, 16]      # ... and run settings swept
    budget = 50_000               # optional: any [settings] key, for this experiment only

Every (experiment, env, sweep point, agent) is a *cell*. An SB3 agent runs its zoo-style
defaults once per seed. Each of our agents with more than one learning rate first runs
every rate on ``tune_seeds`` separate seeds (10_000, 10_001, ...), evaluated on the *train*
split (the envs have no third split, so the test split is never used to choose); the rate
with the best mean ``select_metric`` then runs on the reported ``seeds``, evaluated on the
test split.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Built-in agents: name -> spec. ``estimator`` runs ``agents.trainer``; ``sb3`` runs
#: ``agents.sb3_baselines``.
AGENTS: dict[str, dict[str, Any]] = {
    "maxrl": {"estimator": "maxrl"},
    "maxrl-binary": {"estimator": "maxrl-binary"},
    "reinforce": {"estimator": "reinforce"},
    "rloo": {"estimator": "rloo"},
    "grpo": {"estimator": "grpo"},
    "dr-grpo": {"estimator": "dr-grpo"},
    "supervised": {"estimator": "supervised"},
    "ppo": {"sb3": "PPO"},
    "a2c": {"sb3": "A2C"},
    "sac": {"sb3": "SAC"},
    "td3": {"sb3": "TD3"},
    "dqn": {"sb3": "DQN"},
}

#: Run settings and their defaults; any of them may be set in ``[settings]`` or in one
#: experiment. Those marked "ours" apply to our agents only.
SETTINGS: dict[str, Any] = {
    "seeds": [0, 1, 2],  # reported seeds
    "budget": 100_000,  # rollouts per run (all agents)
    "lr_grid": [1e-3, 3e-3, 1e-2],  # ours: learning rates tried
    "tune_seeds": 1,  # ours: validation runs per learning rate
    "tune_eval_contexts": 1024,  # ours: validation contexts scored in validation runs
    "eval_every": 10_000,  # rollouts between evaluations (all agents)
    "eval_samples": 64,  # samples per context in evaluation (all agents)
    "pass_k": 16,  # k of eval/pass@k
    "rollouts": 16,  # ours: rollouts N per context
    "contexts": 64,  # ours: contexts per step (ignored when rollouts_per_step is set)
    "rollouts_per_step": None,  # ours: contexts = max(1, rollouts_per_step // N)
    "order": None,  # ours: MaxRL order T (None: T = N)
    "hidden": [64, 64],  # ours: policy hidden widths
    "device": "auto",  # ours: torch device (SB3 runs on cpu)
    "select_metric": None,  # metric that picks the learning rate (None: by env, see below)
    "metrics": None,  # report columns (None: by env, see below)
    "target_fraction": 0.9,  # report: target = initial + fraction * (best final - initial)
}
#: Settings that ``sweep`` may vary (besides env kwargs under ``sweep.env``).
SWEEPABLE = ("rollouts", "contexts", "rollouts_per_step", "budget", "order", "hidden")
#: Settings that only concern our agents (an SB3 cell ignores them, so sweeping them does
#: not multiply SB3 runs).
OURS_ONLY = (
    "lr_grid",
    "tune_seeds",
    "tune_eval_contexts",
    "rollouts",
    "contexts",
    "rollouts_per_step",
    "order",
    "hidden",
    "device",
)
#: TrainConfig fields the runner sets itself (not allowed in an agent table).
MANAGED_FIELDS = (
    "env_id",
    "env_kwargs",
    "estimator",
    "seed",
    "lr",
    "budget",
    "log_dir",
    "run_name",
    "checkpoint",
    "resume",
    "progress",
    "eval_split",
    "eval_every",
    "eval_samples",
    "pass_k",
    "eval_contexts",
    "threads",
)
#: Seeds of validation runs start here, far from any reported seed.
TUNE_SEED_BASE = 10_000
#: Metrics where lower is better.
LOWER_IS_BETTER = ("eval/excess_mse",)
#: Roles: how the report groups agents (ratio columns compare to the best "baseline").
ROLES = ("maxrl", "baseline", "reference")

_SUITE_KEYS = ("name", "description", "include", "settings", "agents", "experiments")
_EXPERIMENT_KEYS = ("name", "description", "envs", "agents", "sweep")
_ENV_KEYS = ("id", "kwargs", "label")


class SuiteError(ValueError):
    """A suite file or a run setting is invalid; raised before anything runs."""


@dataclass(frozen=True)
class AgentSpec:
    """An agent: ours (``estimator`` plus TrainConfig overrides) or an SB3 algorithm.

    Attributes:
        name: Name used in run ids and the report.
        family: ``ours`` or ``sb3``.
        method: Estimator name or SB3 algorithm.
        params: Extra TrainConfig fields (ours) or ``num_envs``/``hyperparams`` (SB3).
        role: ``maxrl``, ``baseline`` or ``reference`` (the supervised ceiling).
        lr_grid: Learning rates (ours), overriding the settings' grid when set.
    """

    name: str
    family: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    role: str = "baseline"
    lr_grid: tuple[float, ...] | None = None


@dataclass(frozen=True)
class EnvSpec:
    """An environment of an experiment: registered id, kwargs and display labels.

    Attributes:
        id: Registered id.
        kwargs: Env keyword arguments (sweep values included).
        label: Display label with the swept kwargs, e.g. ``MaxRLRegression-v0 snr=0.1``.
        base: Display label without them (``label`` of the suite's env entry, or the id).
    """

    id: str
    kwargs: dict[str, Any]
    label: str
    base: str = ""


@dataclass
class Cell:
    """One (experiment, env, sweep point, agent) of a suite.

    A cell's runs share every setting but the seed (and, in validation, the learning rate).

    Attributes:
        suite: Suite name.
        experiment: Experiment name (prefixed by the included suite's name in ``full``).
        env: The env, with the sweep's env kwargs merged in.
        agent: The agent.
        settings: Resolved settings (defaults < suite < experiment < sweep point).
        sweep: The sweep point's values that apply to this agent, e.g. ``{"snr": 0.1}``.
        kind: Env kind (``regression``, ``classification``, ``tokens``).
        head: Likelihood head of regression-type envs (``gaussian``, ``laplace``,
            ``verifier``), else None.
    """

    suite: str
    experiment: str
    env: EnvSpec
    agent: AgentSpec
    settings: dict[str, Any]
    sweep: dict[str, Any]
    kind: str
    head: str | None

    @property
    def key(self) -> str:
        """A stable identifier of the cell (no seed, no learning rate)."""
        return _digest(self._identity())

    def _identity(self) -> dict[str, Any]:
        # Settings that only choose which runs exist, or how they are reported, stay out:
        # a run's id changes only with what it computes.
        ignored = ("seeds", "lr_grid", "tune_seeds", "select_metric", "metrics", "target_fraction")
        relevant = {
            k: v
            for k, v in self.settings.items()
            if k not in ignored and (self.agent.family == "ours" or k not in OURS_ONLY)
        }
        agent = self.agent
        return {
            "suite": self.suite,
            "experiment": self.experiment,
            "env_id": self.env.id,
            "env_kwargs": self.env.kwargs,
            "agent": {
                "name": agent.name,
                "family": agent.family,
                "method": agent.method,
                "params": agent.params,
            },
            "settings": relevant,
        }

    @property
    def lr_grid(self) -> list[float]:
        """Learning rates of this cell (ours); empty for SB3 (it keeps its default)."""
        if self.agent.family == "sb3":
            return []
        grid = self.agent.lr_grid if self.agent.lr_grid is not None else self.settings["lr_grid"]
        return [float(lr) for lr in grid]

    @property
    def needs_tuning(self) -> bool:
        """Whether validation runs pick the learning rate."""
        return len(self.lr_grid) > 1

    @property
    def select_metric(self) -> str:
        """Metric that chooses the learning rate and defines the report's target."""
        return self.settings["select_metric"] or default_metrics(self)[0]

    @property
    def metrics(self) -> list[str]:
        """Report columns."""
        return list(self.settings["metrics"] or default_metrics(self))

    def job(self, seed: int, lr: float | None, phase: str) -> Job:
        """The run of this cell for one seed and learning rate.

        Args:
            seed: Run seed.
            lr: Learning rate (ours) or None (SB3 default).
            phase: ``tune`` (validation run, validation split) or ``final`` (test split).
        """
        config = self.config(seed, lr, phase)
        identity = {**self._identity(), "seed": seed, "lr": lr, "phase": phase, "config": config}
        digest = _digest(identity)
        lr_part = f"lr{lr:g}" if lr is not None else "default"
        run_id = "__".join(
            [_slug(self.env.label), _slug(self.agent.name), phase, lr_part, f"s{seed}", digest[:10]]
        )
        return Job(
            run_id=run_id,
            suite=self.suite,
            experiment=self.experiment,
            cell=self.key,
            env_id=self.env.id,
            env_kwargs=dict(self.env.kwargs),
            env_label=self.env.label,
            env_base=self.env.base or self.env.label,
            kind=self.kind,
            head=self.head,
            agent=self.agent.name,
            family=self.agent.family,
            method=self.agent.method,
            role=self.agent.role,
            lr=lr,
            seed=seed,
            phase=phase,
            sweep=dict(self.sweep),
            select_metric=self.select_metric,
            columns=self.metrics,
            target_fraction=float(self.settings["target_fraction"]),
            config=config,
        )

    def config(self, seed: int, lr: float | None, phase: str) -> dict[str, Any]:
        """Keyword arguments of ``TrainConfig`` / ``SB3Config`` (paths left to the runner)."""
        s = self.settings
        split = "validation" if phase == "tune" else "test"
        common = {
            "env_id": self.env.id,
            "env_kwargs": dict(self.env.kwargs),
            "budget": int(s["budget"]),
            "seed": int(seed),
            "eval_every": int(s["eval_every"]),
            "eval_samples": int(s["eval_samples"]),
            "pass_k": int(s["pass_k"]),
            "eval_split": split,
        }
        if self.agent.family == "sb3":
            return {**common, "algo": self.agent.method, **copy.deepcopy(self.agent.params)}
        rollouts = int(s["rollouts"])
        contexts = int(s["contexts"])
        if s["rollouts_per_step"] is not None:
            per_context = 1 if self.agent.method == "supervised" else rollouts
            contexts = max(1, int(s["rollouts_per_step"]) // per_context)
        config = {
            **common,
            "estimator": self.agent.method,
            "lr": float(lr) if lr is not None else None,
            "rollouts": rollouts,
            "contexts": contexts,
            "order": s["order"] if self.agent.method == "maxrl" else None,
            "hidden": [int(h) for h in s["hidden"]],
            "device": s["device"],
            "eval_contexts": int(s["tune_eval_contexts"]) if phase == "tune" else None,
        }
        config.update(copy.deepcopy(self.agent.params))
        return config


@dataclass(frozen=True)
class Job:
    """One run: everything a worker needs, plus the labels the results row carries.

    ``config`` holds the keyword arguments of ``TrainConfig`` (``family == "ours"``) or
    ``SB3Config`` (``family == "sb3"``) without paths; the runner adds ``log_dir`` and
    ``run_name``.
    """

    run_id: str
    suite: str
    experiment: str
    cell: str
    env_id: str
    env_kwargs: dict[str, Any]
    env_label: str
    env_base: str
    kind: str
    head: str | None
    agent: str
    family: str
    method: str
    role: str
    lr: float | None
    seed: int
    phase: str
    sweep: dict[str, Any]
    select_metric: str
    columns: list[str]
    target_fraction: float
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what travels to workers and into result rows)."""
        return dataclasses.asdict(self)


@dataclass
class Suite:
    """A parsed suite.

    Attributes:
        name: Suite name (also the output directory name).
        description: What the suite shows.
        cells: Every cell, in file order.
        source: Path of the suite file.
    """

    name: str
    description: str
    cells: list[Cell]
    source: str

    def initial_jobs(self) -> list[Job]:
        """Validation runs of tuned cells and the reported runs of every other cell."""
        jobs: list[Job] = []
        for cell in self.cells:
            if cell.needs_tuning:
                tune = [TUNE_SEED_BASE + i for i in range(int(cell.settings["tune_seeds"]))]
                jobs += [cell.job(seed, lr, "tune") for lr in cell.lr_grid for seed in tune]
            else:
                lr = cell.lr_grid[0] if cell.lr_grid else None
                jobs += [cell.job(seed, lr, "final") for seed in cell.settings["seeds"]]
        return _unique(jobs)

    def final_jobs(self, cell: Cell, lr: float) -> list[Job]:
        """Reported runs of a tuned cell at the chosen learning rate."""
        return [cell.job(seed, lr, "final") for seed in cell.settings["seeds"]]

    def total_runs(self) -> int:
        """Runs in the whole suite (validation and reported)."""
        total = len(self.initial_jobs())
        return total + sum(len(c.settings["seeds"]) for c in self.cells if c.needs_tuning)


def _unique(jobs: Iterable[Job]) -> list[Job]:
    seen: dict[str, Job] = {}
    for job in jobs:
        seen.setdefault(job.run_id, job)
    return list(seen.values())


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")[:60] or "x"


def default_metrics(cell: Cell) -> list[str]:
    """Report metrics by env, the first one also selecting the learning rate.

    Regression-type envs with a Gaussian or Laplace head: ``eval/log_likelihood`` (the
    held-out marginal log-likelihood, a proper score of the whole predictive distribution)
    and ``eval/excess_mse`` (of the point prediction). Verifier heads and classification:
    ``eval/pass@1`` and ``eval/pass@k``, then the log-likelihood.
    """
    k = int(cell.settings["pass_k"])
    pass_k = [f"eval/pass@{k}"] if k > 1 else []
    if cell.kind == "classification":
        return ["eval/pass@1", *pass_k, "eval/log_likelihood"]
    if cell.head == "verifier":
        return ["eval/pass@1", *pass_k, "eval/log_likelihood", "eval/excess_mse"]
    return ["eval/log_likelihood", "eval/excess_mse", "eval/pass@1"]


def available_suites() -> list[str]:
    """Names of the suites shipped in ``benchmarks/suites``."""
    folder = resources.files("benchmarks") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _suite_text(name_or_path: str) -> tuple[str, str]:
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise SuiteError(f"suite file {name_or_path!r} does not exist")
        return path.read_text(encoding="utf-8"), str(path)
    resource = resources.files("benchmarks") / "suites" / f"{name_or_path}.toml"
    if not resource.is_file():
        raise SuiteError(
            f"suite={name_or_path!r} is not a known suite; allowed: "
            f"{', '.join(available_suites())} (or a path to a .toml file)"
        )
    return resource.read_text(encoding="utf-8"), str(resource)


def load_suite(
    name_or_path: str,
    overrides: dict[str, Any] | None = None,
    _stack: tuple[str, ...] = (),
) -> Suite:
    """Parse a suite and check every setting; nothing runs.

    Args:
        name_or_path: A shipped suite's name (``quick``) or a path to a TOML file.
        overrides: Settings forced on every experiment (e.g. ``{"seeds": [0]}`` from the
            command line); they win over the file.

    Returns:
        The suite with all cells resolved.

    Raises:
        SuiteError: Unknown suite, key, agent, env id, env kwarg or setting value.
    """
    text, source = _suite_text(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"suite file {source} is not valid TOML: {err}") from None
    name = data.get("name", Path(source).stem)
    where = f"suite {name!r} ({source})"
    _check_keys(data, _SUITE_KEYS, where)
    if name in _stack:
        raise SuiteError(f"{where} includes itself through {' -> '.join(_stack)}")
    settings = _merge_settings(dict(SETTINGS), data.get("settings", {}), f"{where} [settings]")
    agents = _agent_table(data.get("agents", {}), where)
    cells: list[Cell] = []
    includes = data.get("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise SuiteError(f"{where}: include={includes!r} must be a list of suite names")
    for included in includes:
        sub = load_suite(included, overrides, (*_stack, name))
        for cell in sub.cells:
            cell.suite = name
            cell.experiment = f"{sub.name}/{cell.experiment}"
        cells += sub.cells
    experiments = data.get("experiments", [])
    if not isinstance(experiments, list):
        raise SuiteError(f"{where}: experiments must be an array of tables ([[experiments]])")
    if not experiments and not includes:
        raise SuiteError(f"{where} has no [[experiments]] and no include")
    names = set()
    for index, experiment in enumerate(experiments):
        label = experiment.get("name", f"#{index}")
        if label in names:
            raise SuiteError(f"{where}: two experiments are named {label!r}")
        names.add(label)
        cells += _experiment_cells(name, experiment, settings, agents, overrides or {}, where)
    return Suite(
        name=name, description=str(data.get("description", "")), cells=cells, source=source
    )


def _check_keys(table: Any, allowed: Iterable[str], where: str) -> None:
    if not isinstance(table, dict):
        raise SuiteError(f"{where} must be a table, got {table!r}")
    allowed = tuple(allowed)
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(allowed)}")


def _merge_settings(base: dict[str, Any], update: dict[str, Any], where: str) -> dict[str, Any]:
    _check_keys(update, SETTINGS, where)
    merged = {**base, **copy.deepcopy(update)}
    _check_settings(merged, where)
    return merged


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_settings(s: dict[str, Any], where: str) -> None:
    def fail(key: str, allowed: str) -> None:
        raise SuiteError(f"{where}: {key}={s[key]!r} is invalid; allowed: {allowed}")

    seeds = s["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(_is_int(x) and x >= 0 for x in seeds):
        fail("seeds", "a non-empty list of integers >= 0")
    if len(set(seeds)) != len(seeds):
        fail("seeds", "distinct seeds")
    grid = s["lr_grid"]
    if (
        not isinstance(grid, list)
        or not grid
        or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0
            for x in grid
        )
    ):
        fail("lr_grid", "a non-empty list of numbers > 0")
    for key, minimum in [
        ("budget", 1),
        ("tune_seeds", 0),
        ("tune_eval_contexts", 1),
        ("eval_every", 0),
        ("eval_samples", 1),
        ("pass_k", 1),
        ("rollouts", 1),
        ("contexts", 1),
    ]:
        if not _is_int(s[key]) or s[key] < minimum:
            fail(key, f"an integer >= {minimum}")
    if s["pass_k"] > s["eval_samples"]:
        fail("pass_k", f"an integer <= eval_samples ({s['eval_samples']})")
    if s["rollouts_per_step"] is not None and (
        not _is_int(s["rollouts_per_step"]) or s["rollouts_per_step"] < 1
    ):
        fail("rollouts_per_step", "an integer >= 1 or absent")
    if s["order"] is not None and (not _is_int(s["order"]) or s["order"] < 1):
        fail("order", "an integer >= 1 or absent")
    hidden = s["hidden"]
    if not isinstance(hidden, list) or not all(_is_int(h) and h >= 1 for h in hidden):
        fail("hidden", "a list of integers >= 1")
    if not isinstance(s["device"], str):
        fail("device", "a device string such as 'auto' or 'cpu'")
    if s["select_metric"] is not None and not (
        isinstance(s["select_metric"], str) and s["select_metric"].startswith("eval/")
    ):
        fail("select_metric", "an eval/* tag such as 'eval/log_likelihood'")
    if s["metrics"] is not None and not (
        isinstance(s["metrics"], list)
        and s["metrics"]
        and all(isinstance(m, str) and m.startswith("eval/") for m in s["metrics"])
    ):
        fail("metrics", "a non-empty list of eval/* tags")
    fraction = s["target_fraction"]
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 < fraction <= 1
    ):
        fail("target_fraction", "a number in (0, 1]")


def _agent_table(table: Any, where: str) -> dict[str, AgentSpec]:
    specs = {name: _agent_spec(name, dict(spec), where) for name, spec in AGENTS.items()}
    _check_keys(table, list(table) if isinstance(table, dict) else [], f"{where} [agents]")
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise SuiteError(f"{where}: [agents.{name}] must be a table")
        specs[name] = _agent_spec(name, dict(spec), where)
    return specs


def _agent_spec(name: str, spec: dict[str, Any], where: str) -> AgentSpec:
    here = f"{where} [agents.{name}]"
    role = spec.pop("role", None)
    if role is not None and role not in ROLES:
        raise SuiteError(f"{here}: role={role!r} is invalid; allowed: {', '.join(ROLES)}")
    if ("estimator" in spec) == ("sb3" in spec):
        raise SuiteError(f"{here}: set exactly one of estimator (our trainer) or sb3 (algorithm)")
    if "sb3" in spec:
        from agents.sb3_baselines import SB3_ALGORITHMS

        algo = spec.pop("sb3")
        if algo not in SB3_ALGORITHMS:
            raise SuiteError(
                f"{here}: sb3={algo!r} is invalid; allowed: {', '.join(SB3_ALGORITHMS)}"
            )
        _check_keys(spec, ("num_envs", "hyperparams"), here)
        return AgentSpec(name, "sb3", algo, spec, role or "baseline")
    from agents.trainer import ESTIMATOR_NAMES, TrainConfig

    estimator = spec.pop("estimator")
    if estimator not in ESTIMATOR_NAMES:
        raise SuiteError(
            f"{here}: estimator={estimator!r} is invalid; allowed: {', '.join(ESTIMATOR_NAMES)}"
        )
    lr_grid = spec.pop("lr_grid", None)
    if lr_grid is not None:
        if (
            not isinstance(lr_grid, list)
            or not lr_grid
            or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in lr_grid
            )
        ):
            raise SuiteError(f"{here}: lr_grid={lr_grid!r} is invalid; allowed: numbers > 0")
        lr_grid = tuple(float(x) for x in lr_grid)
    allowed = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in MANAGED_FIELDS]
    _check_keys(spec, [*allowed, "lr_grid", "role"], here)
    default_role = (
        "maxrl"
        if estimator.startswith("maxrl")
        else "reference"
        if estimator == "supervised"
        else "baseline"
    )
    return AgentSpec(name, "ours", estimator, spec, role or default_role, lr_grid)


def _parse_env(entry: Any, where: str) -> EnvSpec:
    if isinstance(entry, str):
        entry = {"id": entry}
    _check_keys(entry, _ENV_KEYS, where)
    if "id" not in entry:
        raise SuiteError(f"{where}: an env entry needs an id, got {entry!r}")
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise SuiteError(f"{where}: kwargs={kwargs!r} must be a table")
    label = str(entry.get("label", "")) or str(entry["id"]).split(":")[-1]
    return EnvSpec(str(entry["id"]), dict(kwargs), label, label)


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _env_label(env: EnvSpec, extra: dict[str, Any]) -> str:
    parts = [f"{k}={_format_value(v)}" for k, v in extra.items()]
    return " ".join([env.base, *parts])


def _env_facts(env_id: str, kwargs: dict[str, Any], where: str) -> tuple[str, str | None]:
    key = json.dumps([env_id, kwargs], sort_keys=True, default=str)
    if key not in _ENV_FACTS:
        _ENV_FACTS[key] = _build_env_facts(env_id, kwargs, where)
    return _ENV_FACTS[key]


_ENV_FACTS: dict[str, tuple[str, str | None]] = {}


def _build_env_facts(env_id: str, kwargs: dict[str, Any], where: str) -> tuple[str, str | None]:
    from gymnasium.envs.registration import registry

    import maxrl_envs

    try:
        kind = maxrl_envs.env_kind(env_id)
        maxrl_envs.make_task(env_id, 1, 1, "train", "cpu", **kwargs)
    except (TypeError, ValueError) as err:
        raise SuiteError(f"{where}: env {env_id!r} with kwargs {kwargs!r}: {err}") from None
    merged = {**registry[env_id.split(":")[-1]].kwargs, **kwargs}
    head = None if kind == "classification" else str(merged.get("head", "gaussian"))
    return kind, head


def _experiment_cells(
    suite: str,
    experiment: Any,
    settings: dict[str, Any],
    agents: dict[str, AgentSpec],
    overrides: dict[str, Any],
    where: str,
) -> list[Cell]:
    if not isinstance(experiment, dict) or "name" not in experiment:
        raise SuiteError(f"{where}: each [[experiments]] entry needs a name")
    name = str(experiment["name"])
    here = f"{where} experiment {name!r}"
    local = {k: v for k, v in experiment.items() if k not in _EXPERIMENT_KEYS}
    _check_keys(local, SETTINGS, here)
    resolved = _merge_settings(settings, {**local, **overrides}, here)
    envs = experiment.get("envs")
    if not isinstance(envs, list) or not envs:
        raise SuiteError(f"{here}: envs must be a non-empty list of {{ id = ..., kwargs = ... }}")
    agent_names = experiment.get("agents")
    if not isinstance(agent_names, list) or not agent_names:
        raise SuiteError(f"{here}: agents must be a non-empty list of agent names")
    for agent in agent_names:
        if agent not in agents:
            raise SuiteError(
                f"{here}: agent {agent!r} is unknown; allowed: {', '.join(agents)} "
                "(or define it under [agents.NAME])"
            )
    sweep = experiment.get("sweep", {})
    _check_keys(sweep, ("env", *SWEEPABLE), f"{here} sweep")
    env_sweep = sweep.get("env", {})
    if not isinstance(env_sweep, dict):
        raise SuiteError(f"{here}: sweep.env must be a table of env kwarg -> list of values")
    setting_sweep = {k: v for k, v in sweep.items() if k != "env"}
    for key, values in [*env_sweep.items(), *setting_sweep.items()]:
        if not isinstance(values, list) or not values:
            raise SuiteError(f"{here}: sweep value for {key!r} must be a non-empty list")
    for key in setting_sweep:
        if key in overrides:
            setting_sweep[key] = [overrides[key]]
    cells = []
    env_points = _product(env_sweep)
    setting_points = _product(setting_sweep)
    for entry in envs:
        env = _parse_env(entry, here)
        for env_point in env_points:
            kwargs = {**env.kwargs, **env_point}
            kind, head = _env_facts(env.id, kwargs, here)
            spec = EnvSpec(env.id, kwargs, _env_label(env, env_point), env.base)
            for setting_point in setting_points:
                point_settings = _merge_settings(resolved, setting_point, here)
                for agent_name in agent_names:
                    agent = agents[agent_name]
                    applied = {
                        k: v
                        for k, v in setting_point.items()
                        if agent.family == "ours" or k not in OURS_ONLY
                    }
                    cells.append(
                        Cell(
                            suite=suite,
                            experiment=name,
                            env=spec,
                            agent=agent,
                            settings=point_settings,
                            sweep={**env_point, **applied},
                            kind=kind,
                            head=head,
                        )
                    )
    return _unique_cells(cells)


def _unique_cells(cells: list[Cell]) -> list[Cell]:
    seen: dict[str, Cell] = {}
    for cell in cells:
        seen.setdefault(cell.key, cell)
    return list(seen.values())


def _product(sweep: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(sweep)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(sweep[k] for k in keys))
    ]


def validate_suite(suite: Suite) -> int:
    """Build and check every run's config before anything runs.

    Our agents go through ``agents.trainer.validate_config`` once per cell and phase
    (validation runs, reported runs); SB3 agents through
    ``agents.sb3_baselines.validate_sb3_config`` once per cell. The runs of a cell differ
    only in seed and learning rate, which ``load_suite`` has checked by the same rules.

    Returns:
        The number of configs checked.

    Raises:
        SuiteError: The first invalid config, naming the experiment, env and agent.
    """
    from agents.sb3_baselines import SB3Config, validate_sb3_config
    from agents.trainer import validate_config

    checked = 0
    for cell in suite.cells:
        where = f"experiment {cell.experiment!r}, env {cell.env.label!r}, agent {cell.agent.name!r}"
        seed = int(cell.settings["seeds"][0])
        try:
            if cell.agent.family == "sb3":
                validate_sb3_config(SB3Config(**cell.config(seed, None, "final")))
                checked += 1
                continue
            # Runs of a cell differ only in seed and learning rate, whose rules the suite
            # checks already match (integers >= 0; finite numbers > 0): one config per phase.
            lr = cell.lr_grid[0]
            for phase in ("tune", "final") if cell.needs_tuning else ("final",):
                validate_config(train_config(cell.config(seed, lr, phase)))
                checked += 1
        except (TypeError, ValueError) as err:
            raise SuiteError(f"{where}: {err}") from None
    return checked


def train_config(config: dict[str, Any], **paths: Any) -> Any:
    """A ``TrainConfig`` from a job's config dict (lists become tuples where needed)."""
    from agents.trainer import TrainConfig

    data = {k: v for k, v in config.items() if v is not None or k in ("order", "eval_contexts")}
    data.update(paths)
    return TrainConfig.from_dict(data)
