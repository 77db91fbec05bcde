"""Benchmark suites: readable TOML files turned into a validated list of runs.

A suite file (``benchmarks/suites/NAME.toml``) has four parts::

    name = "quick"
    description = "What it shows."
    include = []                  # other suites whose experiments this one runs too

    imports = []                  # optional: modules to import first (plugins that
                                  # register estimators, task kinds or env ids)

    [settings]                    # run settings shared by every experiment (see SETTINGS)
    seeds = [0, 1, 2]
    budget = 100_000              # rollouts per run, for every agent
    lr_grid = [1e-3, 3e-3, 1e-2]  # our agents' learning rates, chosen on validation runs

    [agents.maxrl-t4]             # optional: agents beyond the built-in ones (agent_table)
    estimator = "maxrl"
    order = 4

    [[experiments]]               # one table of the report
    name = "regression"
    envs = [{ id = "MaxRLRegression-v0", kwargs = { task = "teacher-mlp", snr = 1.0 } }]
    agents = ["maxrl", "grpo", "reinforce", "supervised", "a2c"]
    sweep.env.snr = [10.0, 1.0]   # optional: env kwargs swept (cartesian product) ...
    sweep.group_size = [4, 16]    # ... and run settings swept
    budget = 50_000               # optional: any [settings] key, for this experiment only

Built-in agents: every registered estimator (``agents.estimators``) and ``supervised`` run on
our trainer under their own name; ``ppo``, ``a2c``, ``sac``, ``td3`` and ``dqn`` are SB3's.
N is ``group_size`` and B ``num_groups``, as everywhere; the older keys ``rollouts`` and
``contexts`` are read as aliases.

Every (experiment, env, sweep point, agent) is a *cell*. Every agent, ours and SB3's, is
tuned by the same protocol: its ``lr_points`` learning rates spaced by ``lr_ratio`` around
its usual value (SB3: the algorithm's zoo-style default; ours: an explicit ``lr_grid``
instead, when set). An agent with more than one rate first runs every rate on
``tune_seeds`` separate seeds (10_000, 10_001, ...), evaluated on the validation split (the
test split is never used to choose); the rate with the best mean ``select_metric`` then runs
on the reported ``seeds``, evaluated on the test split.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import itertools
import json
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from agents.evaluation import default_metrics as _default_metrics
from agents.evaluation import metric_tags
from benchmarks.families import AGENT_FAMILIES, AgentFamily, get_family, register_agent_family
from benchmarks.results import slug
from maxrl_envs import validation as v
from maxrl_envs.heads import get_head

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Older names of settings, read as aliases (the report labels both N and B).
SETTING_ALIASES = {"rollouts": "group_size", "contexts": "num_groups"}

#: Settings that belong to the suite (how runs are chosen and reported), with defaults.
SUITE_SETTINGS: dict[str, Any] = {
    "seeds": [0, 1, 2, 3, 4],  # reported seeds
    "lr_points": 3,  # learning rates tried per agent, centred on its usual value ...
    "lr_ratio": 3.0,  # ... spaced by this factor: usual * ratio^(i - (points - 1) / 2)
    "lr_grid": None,  # ours: an explicit list of rates instead (e.g. one shared rate)
    "tune_seeds": 2,  # validation runs per learning rate (every agent)
    "tune_budget": None,  # rollouts of a validation run (None: budget)
    "tune_eval_contexts": 1024,  # validation contexts scored (tuning and early stopping)
    "framing": "rollouts",  # "rollouts": equal rollouts; "steps": equal optimizer steps
    "steps": None,  # optimizer steps of a "steps" framing (None: budget // (B * N))
    "evaluations": None,  # evaluations per run (sets eval_every = budget // evaluations)
    "rollouts_per_step": None,  # ours: num_groups = max(1, rollouts_per_step // N)
    "select_metric": None,  # metric that picks the learning rate (None: by env, see below)
    "metrics": None,  # report columns (None: by env, see below)
    "target_fraction": 0.9,  # report: target = initial + fraction * (best final - initial)
}
#: Settings passed to every run (our TrainConfig fields of the same name; those SB3Config
#: also has apply to SB3 runs too), with the suite's defaults. Their rules are the fields'.
RUN_SETTINGS: dict[str, Any] = {
    "budget": 100_000,  # rollouts per run (all agents)
    "eval_every": 10_000,  # rollouts between evaluations (all agents)
    "eval_samples": 64,  # samples per context in evaluation (all agents)
    "pass_k": 16,  # k of eval/pass@k
    "group_size": 16,  # ours: rollouts N per context
    "num_groups": 64,  # ours: contexts B per step (ignored when rollouts_per_step is set)
    "order": None,  # ours: MaxRL order T (None: T = N)
    "hidden": [64, 64],  # ours: policy hidden widths
    "state_dependent_std": False,  # ours: Gaussian log-std from the network
    "device": "auto",  # ours: torch device (SB3 runs on cpu)
    "early_stopping": True,  # report the validation-best checkpoint (every agent)
}
#: Run settings an agent table may set for one of our agents (e.g. ``order = 4``). They
#: apply before the suite derives ``num_groups`` and ``budget`` from them.
AGENT_SETTINGS = ("group_size", "num_groups", "order", "hidden", "state_dependent_std", "device")
#: Run settings every agent shares: the equal budget and evaluation of the protocol, some
#: derived per cell (``budget`` from ``framing``/``steps``/``tune_budget``, ``eval_every``
#: from ``evaluations``). Only ``[settings]`` or an experiment may set them.
SHARED_SETTINGS = tuple(name for name in RUN_SETTINGS if name not in AGENT_SETTINGS)
#: Framings of "equal": the same rollouts per run, or the same optimizer steps.
FRAMINGS = ("rollouts", "steps")
#: Every setting and its default; any of them may be set in ``[settings]`` or in one
#: experiment.
SETTINGS: dict[str, Any] = {**SUITE_SETTINGS, **RUN_SETTINGS}
#: Settings that ``sweep`` may vary (besides env kwargs under ``sweep.env``).
SWEEPABLE = (
    "group_size",
    "num_groups",
    "rollouts_per_step",
    "budget",
    "steps",
    "order",
    "hidden",
    "state_dependent_std",
)
#: TrainConfig fields the runner sets itself (not allowed in an agent table).
MANAGED_FIELDS = (
    "env_id",
    "env_kwargs",
    "estimator",
    "seed",
    "lr",
    "log_dir",
    "run_name",
    "checkpoint",
    "resume",
    "progress",
    "eval_split",
    "eval_contexts",
    "select_metric",
    "select_contexts",
    "threads",
    *RUN_SETTINGS,
)


def _ours_only() -> tuple[str, ...]:
    """Settings that concern only our agents.

    The suite's tuning settings and the run settings SB3Config does not have: an SB3 cell
    ignores them, so sweeping them does not multiply SB3 runs.
    """
    from agents.sb3_baselines import SB3Config

    sb3 = {f.name for f in dataclasses.fields(SB3Config)} - {"device"}
    tuning = ("lr_grid", "rollouts_per_step")
    return (*tuning, *(name for name in RUN_SETTINGS if name not in sb3))


#: Seeds of validation runs start here, far from any reported seed.
TUNE_SEED_BASE = 10_000
#: Roles: how the report groups agents (ratio columns compare to the best "baseline").
ROLES = ("maxrl", "baseline", "reference")

_SUITE_KEYS = ("name", "description", "include", "imports", "settings", "agents", "experiments")
_EXPERIMENT_KEYS = ("name", "description", "envs", "agents", "sweep")
_ENV_KEYS = ("id", "kwargs", "label")


class SuiteError(ValueError):
    """A suite file or a run setting is invalid; raised before anything runs."""


@dataclass(frozen=True)
class AgentSpec:
    """An agent: ours (``estimator`` plus TrainConfig overrides) or an SB3 algorithm.

    Attributes:
        name: Name used in run ids and the report.
        family: Its agent family (``benchmarks.families``): ``ours``, ``sb3`` or a plugin's.
        method: Estimator name, SB3 algorithm, or what a plugin family's key names.
        params: Extra TrainConfig fields (ours) or ``num_envs``/``hyperparams`` (SB3).
        role: ``maxrl``, ``baseline`` or ``reference`` (the supervised ceiling).
        lr_grid: Learning rates (ours), overriding the settings' grid when set.
        framing: ``rollouts`` or ``steps`` for this agent, overriding the experiment's
            (e.g. the supervised reference at equal optimizer steps).
        binary_method: Ours only: the estimator used instead of ``method`` on envs whose
            rewards are binary (classification kinds and verifier heads), e.g.
            ``maxrl-binary`` for an agent whose ``method`` is ``maxrl`` (the agent-table
            key ``estimator_binary``). None: ``method`` everywhere.
    """

    name: str
    family: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    role: str = "baseline"
    lr_grid: tuple[float, ...] | None = None
    framing: str | None = None
    binary_method: str | None = None

    def for_env(self, binary_rewards: bool) -> AgentSpec:
        """The agent as it runs on an env: ``binary_method`` replaces ``method`` there."""
        if self.binary_method is None or not binary_rewards:
            return self
        return dataclasses.replace(self, method=self.binary_method, binary_method=None)

    @property
    def usual_lr(self) -> float:
        """The learning rate the agent's grid is centred on.

        Its own ``lr``, else its family's usual rate for its method (the SB3 baseline's
        default, ``TrainConfig``'s).
        """
        if "lr" in self.params:
            return float(self.params["lr"])
        return get_family(self.family).usual_lr(self.method)


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
        kind: Env kind name (``regression``, ``classification``, ``tokens``, ...).
        head: Likelihood head of numeric envs (``gaussian``, ``laplace``, ``verifier``),
            else None.
        numeric: Whether predictions are numbers (regression metrics apply).
    """

    suite: str
    experiment: str
    env: EnvSpec
    agent: AgentSpec
    settings: dict[str, Any]
    sweep: dict[str, Any]
    kind: str
    head: str | None
    numeric: bool = True

    @property
    def key(self) -> str:
        """A stable identifier of the cell (no seed, no learning rate)."""
        return _digest(self._identity())

    def _identity(self) -> dict[str, Any]:
        # Settings that only choose which runs exist, or how they are reported, stay out:
        # a run's id changes only with what it computes.
        ignored = (
            "seeds",
            "lr_grid",
            "lr_points",
            "lr_ratio",
            "tune_seeds",
            "tune_budget",
            "select_metric",
            "metrics",
            "target_fraction",
        )
        unused = get_family(self.agent.family).unused_settings()
        relevant = {k: v for k, v in self.settings.items() if k not in ignored and k not in unused}
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
        """Learning rates of this cell.

        Every agent, ours and SB3, gets ``lr_points`` rates around its usual value spaced by
        ``lr_ratio`` (the same protocol); an explicit ``lr_grid`` (the agent's, or the
        settings') replaces that for the families that take it (ours).
        """
        if "lr_grid" not in get_family(self.agent.family).unused_settings():
            grid = self.agent.lr_grid or self.settings["lr_grid"]
            if grid:
                return [float(lr) for lr in grid]
        points, ratio = int(self.settings["lr_points"]), float(self.settings["lr_ratio"])
        usual = self.agent.usual_lr
        return [float(f"{usual * ratio ** (i - (points - 1) / 2):.6g}") for i in range(points)]

    @property
    def framing(self) -> str:
        """``rollouts`` (equal rollouts per run) or ``steps`` (equal optimizer steps)."""
        return self.agent.framing or str(self.settings["framing"])

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
            [slug(self.env.label), slug(self.agent.name), phase, lr_part, f"s{seed}", digest[:10]]
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
        """The run's config, by its family (``AgentFamily.config``); paths left to the runner.

        Keyword arguments of ``TrainConfig`` (ours: every run setting, ``RUN_SETTINGS``, by
        name), ``SB3Config`` (the run settings it has) or a plugin family's config.
        """
        return get_family(self.agent.family).config(self, seed, lr, phase)

    def common_config(self, seed: int, phase: str) -> dict[str, Any]:
        """The config fields every family's run shares: env, seed, split and selection."""
        s = self.settings
        return {
            "env_id": self.env.id,
            "env_kwargs": dict(self.env.kwargs),
            "seed": int(seed),
            "eval_split": "validation" if phase == "tune" else "test",
            "select_metric": self.select_metric,
            "select_contexts": int(s["tune_eval_contexts"]),
        }

    def rl_rollouts_per_step(self) -> int:
        """Rollouts one step of a policy-gradient agent takes at this cell's B and N."""
        s = self.settings
        if s["rollouts_per_step"] is not None:
            n = int(s["group_size"])
            return max(1, int(s["rollouts_per_step"]) // n) * n
        return int(s["num_groups"]) * int(s["group_size"])

    def rl_steps(self) -> int:
        """Optimizer steps of the "steps" framing.

        ``steps`` when set, else a policy-gradient agent's steps at this cell's budget.
        """
        if self.settings["steps"] is not None:
            return int(self.settings["steps"])
        return max(1, int(self.settings["budget"]) // self.rl_rollouts_per_step())


@dataclass(frozen=True)
class Job:
    """One run: everything a worker needs, plus the labels the results row carries.

    ``config`` is its family's run config (``AgentFamily.config``: the keyword arguments
    of ``TrainConfig`` for ours, of ``SB3Config`` for SB3) without paths; the worker adds
    ``log_dir`` and ``run_name``.
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
        imports: Modules imported before anything runs (in the driver and every worker).
    """

    name: str
    description: str
    cells: list[Cell]
    source: str
    imports: list[str] = field(default_factory=list)

    def initial_jobs(self) -> list[Job]:
        """Validation runs of tuned cells and the reported runs of every other cell."""
        jobs: list[Job] = []
        for cell in self.cells:
            if cell.needs_tuning:
                tune = [TUNE_SEED_BASE + i for i in range(int(cell.settings["tune_seeds"]))]
                jobs += [cell.job(seed, lr, "tune") for lr in cell.lr_grid for seed in tune]
            else:
                lr = cell.lr_grid[0]
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


def default_metrics(cell: Cell) -> list[str]:
    """Report metrics of a cell's env (``agents.evaluation.default_metrics``)."""
    return _default_metrics(cell.numeric, cell.head, int(cell.settings["pass_k"]))


def available_suites() -> list[str]:
    """Names of the suites shipped in ``benchmarks/suites``."""
    folder = resources.files("benchmarks") / "suites"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _suite_text(name_or_path: Any) -> tuple[str, str]:
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path.strip() or "\x00" in name_or_path:
        raise SuiteError(
            f"suite={name_or_path!r} is invalid; allowed: a shipped suite's name "
            f"({', '.join(available_suites())}) or a path to a .toml file"
        )
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise SuiteError(f"suite file {name_or_path!r} does not exist")
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError:
            raise SuiteError(
                f"suite file {name_or_path!r} is not UTF-8 text; allowed: a TOML file"
            ) from None
        except OSError as err:
            raise SuiteError(f"suite file {name_or_path!r} cannot be read: {err}") from None
    resource = resources.files("benchmarks") / "suites" / f"{name_or_path}.toml"
    if not resource.is_file():
        raise SuiteError(
            f"suite={name_or_path!r} is not a known suite; allowed: "
            f"{', '.join(available_suites())} (or a path to a .toml file)"
        )
    return resource.read_text(encoding="utf-8"), str(resource)


def load_suite(
    name_or_path: str | os.PathLike[str],
    overrides: dict[str, Any] | None = None,
    _stack: tuple[str, ...] = (),
    *,
    plugins: bool = True,
) -> Suite:
    """Parse a suite and check every setting; nothing runs.

    A suite file is code: its ``imports`` and any env id written ``module:Id`` import
    Python modules. With ``plugins=False`` (``maxrl-bench --dry-run`` without
    ``--import-plugins``) nothing is imported: a suite that would need to is refused with a
    ``SuiteError`` saying so.

    Args:
        name_or_path: A shipped suite's name (``quick``) or a path to a TOML file.
        overrides: Settings forced on every experiment (e.g. ``{"seeds": [0]}`` from the
            command line); they win over the file.
        plugins: Import the suite's plugin modules (``imports``, ``module:Id`` env ids).

    Returns:
        The suite with all cells resolved.

    Raises:
        SuiteError: Unknown suite, key, agent, env id, env kwarg or setting value.
    """
    data, name, source = _parse_suite(name_or_path)
    where = f"suite {name!r} ({source})"
    _check_keys(data, _SUITE_KEYS, where)
    if name in _stack:
        raise SuiteError(f"{where} includes itself through {' -> '.join(_stack)}")
    imports = _suite_imports(data, where, plugins)
    settings = _merge_settings(dict(SETTINGS), data.get("settings", {}), f"{where} [settings]")
    agents = _agent_table(data.get("agents", {}), where)
    includes = data.get("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise SuiteError(f"{where}: include={includes!r} must be a list of suite names")
    cells: list[Cell] = []
    for included in includes:
        sub = load_suite(included, overrides, (*_stack, name), plugins=plugins)
        imports = [*imports, *sub.imports]
        for cell in sub.cells:
            cell.suite = name
            cell.experiment = f"{sub.name}/{cell.experiment}"
        cells += sub.cells
    experiments = data.get("experiments", [])
    if not isinstance(experiments, list):
        raise SuiteError(f"{where}: experiments must be an array of tables ([[experiments]])")
    if not experiments and not includes:
        raise SuiteError(f"{where} has no [[experiments]] and no include")
    cells += _own_cells(name, experiments, settings, agents, overrides or {}, where, plugins)
    return Suite(
        name=name,
        description=str(data.get("description", "")),
        cells=cells,
        source=source,
        imports=list(dict.fromkeys(imports)),
    )


def _parse_suite(name_or_path: str | os.PathLike[str]) -> tuple[dict[str, Any], str, str]:
    """Read and parse a suite's TOML; return its data, checked name and source."""
    text, source = _suite_text(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"suite file {source} is not valid TOML: {err}") from None
    name = data.get("name", Path(source).stem)
    try:
        v.check_file_name("name", name)
    except ValueError as err:
        raise SuiteError(
            f"suite file {source}: {err} (the name is the results folder inside --out)"
        ) from None
    return data, name, source


def _suite_imports(data: dict[str, Any], where: str, plugins: bool) -> list[str]:
    """Check the suite's ``imports`` list and import its modules (refused without plugins)."""
    imports = data.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise SuiteError(f"{where}: imports={imports!r} must be a list of module names")
    if imports and not plugins:
        raise SuiteError(_plugin_refusal(where, f"imports = {imports!r}"))
    import_plugins(imports, where)
    return imports


def _own_cells(
    name: str,
    experiments: list[Any],
    settings: dict[str, Any],
    agents: dict[str, AgentSpec],
    overrides: dict[str, Any],
    where: str,
    plugins: bool,
) -> list[Cell]:
    """The cells of a suite's own ``[[experiments]]`` (each a table with a unique name)."""
    cells: list[Cell] = []
    names = set()
    for index, experiment in enumerate(experiments):
        if not isinstance(experiment, dict):
            raise SuiteError(f"{where}: [[experiments]] entry #{index} must be a table")
        label = experiment.get("name", f"#{index}")
        if label in names:
            raise SuiteError(f"{where}: two experiments are named {label!r}")
        names.add(label)
        cells += _experiment_cells(
            name, experiment, settings, agents, overrides, where, plugins=plugins
        )
    return cells


#: How a refused plugin import says the way on (the runner's flag, the library's argument).
PLUGIN_FLAG = "--import-plugins (load_suite(..., plugins=True))"


def _plugin_refusal(where: str, what: str) -> str:
    return (
        f"{where}: {what} would import code, and this check imports nothing; pass "
        f"{PLUGIN_FLAG} to import it (a suite file is code: only do so for a suite you trust)"
    )


def import_plugins(modules: Iterable[str], where: str = "imports") -> None:
    """Import modules that register estimators, task kinds or env ids (a suite's ``imports``).

    Raises:
        SuiteError: A module that cannot be imported, with the import error.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - any failure of a plugin is the suite's error
            raise SuiteError(
                f"{where}: cannot import {module!r}: {type(err).__name__}: {err}"
            ) from None


def _check_keys(table: Any, allowed: Iterable[str], where: str) -> None:
    if not isinstance(table, dict):
        raise SuiteError(f"{where} must be a table, got {table!r}")
    allowed = tuple(allowed)
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(allowed)}")


def _canonical(table: dict[str, Any]) -> dict[str, Any]:
    """Rename alias keys (``rollouts``, ``contexts``) to their canonical names."""
    out = {}
    for key, value in table.items():
        name = SETTING_ALIASES.get(key, key)
        if name in out:
            raise SuiteError(f"both {key!r} and its canonical name {name!r} are set")
        out[name] = value
    return out


def _merge_settings(base: dict[str, Any], update: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(update, dict):
        raise SuiteError(f"{where} must be a table, got {update!r}")
    try:
        update = _canonical(update)
    except SuiteError as err:
        raise SuiteError(f"{where}: {err}") from None
    _check_keys(update, [*SETTINGS, *SETTING_ALIASES], where)
    merged = {**base, **copy.deepcopy(update)}
    _check_settings(merged, where)
    return merged


def _check_settings(s: dict[str, Any], where: str) -> None:
    """Check merged settings.

    Run settings by the ``TrainConfig`` field rules, suite settings here, and the rules that
    tie them together.
    """
    _check_run_settings(s, where)
    _check_seeds(s, where)
    _check_lr_settings(s, where)
    for key in ("tune_budget", "steps", "evaluations"):
        if s[key] is not None and (not v.is_int(s[key]) or s[key] < 1):
            _fail(s, where, key, "an integer >= 1, or absent")
    if s["framing"] not in FRAMINGS:
        _fail(s, where, "framing", " or ".join(map(repr, FRAMINGS)))
    _check_tune_settings(s, where)
    if s["pass_k"] > s["eval_samples"]:
        _fail(s, where, "pass_k", f"an integer <= eval_samples ({s['eval_samples']})")
    if s["rollouts_per_step"] is not None and (
        not v.is_int(s["rollouts_per_step"]) or s["rollouts_per_step"] < 1
    ):
        _fail(s, where, "rollouts_per_step", "an integer >= 1 or absent")
    _check_metric_settings(s, where)
    fraction = s["target_fraction"]
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 < fraction <= 1
    ):
        _fail(s, where, "target_fraction", "a number in (0, 1]")


def _fail(s: dict[str, Any], where: str, key: str, allowed: str) -> NoReturn:
    """Raise the ``SuiteError`` of an invalid setting ``key``, naming what is allowed."""
    raise SuiteError(f"{where}: {key}={s[key]!r} is invalid; allowed: {allowed}")


def _check_run_settings(s: dict[str, Any], where: str) -> None:
    """Check the run settings by the ``TrainConfig`` field rules."""
    from agents.trainer import TrainConfig

    for key in RUN_SETTINGS:
        rule = v.field_rule(TrainConfig, key)
        try:
            if rule is not None:
                rule(key, s[key])
        except ValueError as err:
            raise SuiteError(f"{where}: {err}") from None


def _check_seeds(s: dict[str, Any], where: str) -> None:
    """Check ``seeds``: a non-empty list of distinct valid seeds."""
    seeds = s["seeds"]
    if not isinstance(seeds, list) or not seeds:
        _fail(s, where, "seeds", f"a non-empty list of integers in [0, {v.SEED_MAX}]")
    for seed in seeds:  # every seed, each a run of ours or SB3's (both keep 32 bits)
        try:
            v.check_seed("seeds entry", seed)
        except ValueError as err:
            raise SuiteError(f"{where}: seeds={seeds!r} is invalid: {err}") from None
    if len(set(seeds)) != len(seeds):
        _fail(s, where, "seeds", "distinct seeds")


def _check_lr_settings(s: dict[str, Any], where: str) -> None:
    """Check the learning-rate search settings ``lr_grid``, ``lr_points`` and ``lr_ratio``."""
    grid = s["lr_grid"]
    if grid is not None:
        if not isinstance(grid, list) or not grid:
            _fail(s, where, "lr_grid", "a non-empty list of numbers > 0, or absent")
        for lr in grid:
            try:
                v.check_positive("lr_grid entry", lr)
            except ValueError:
                _fail(s, where, "lr_grid", "a non-empty list of finite numbers > 0, or absent")
    if not v.is_int(s["lr_points"]) or s["lr_points"] < 1:
        _fail(s, where, "lr_points", "an integer >= 1")
    if (
        isinstance(s["lr_ratio"], bool)
        or not isinstance(s["lr_ratio"], (int, float))
        or not (math.isfinite(s["lr_ratio"]) and s["lr_ratio"] > 1)
    ):
        _fail(s, where, "lr_ratio", "a finite number > 1")


def _check_tune_settings(s: dict[str, Any], where: str) -> None:
    """Check ``tune_seeds`` and ``tune_eval_contexts`` against the learning-rate grid."""
    # A grid of several rates needs validation runs to choose from; one rate needs none.
    minimum_tune = 1 if s["lr_points"] > 1 or len(s["lr_grid"] or []) > 1 else 0
    for key, minimum in [("tune_seeds", minimum_tune), ("tune_eval_contexts", 1)]:
        if not v.is_int(s[key]) or s[key] < minimum:
            why = " (a learning-rate grid is chosen on validation runs)" if minimum else ""
            _fail(s, where, key, f"an integer >= {minimum}{why}")
    most_tune = v.SEED_MAX - TUNE_SEED_BASE + 1  # validation seeds are 10_000, 10_001, ...
    if s["tune_seeds"] > most_tune:
        _fail(
            s,
            where,
            "tune_seeds",
            f"an integer <= {most_tune} (validation seeds {TUNE_SEED_BASE}, ... "
            f"must stay <= {v.SEED_MAX})",
        )


def _check_metric_settings(s: dict[str, Any], where: str) -> None:
    """Check ``select_metric`` and ``metrics`` against the tags evaluation reports."""
    known = metric_tags(s["pass_k"])
    if s["select_metric"] is not None and s["select_metric"] not in known:
        _fail(s, where, "select_metric", f"one of {', '.join(known)}")
    if s["metrics"] is not None and not (
        isinstance(s["metrics"], list)
        and s["metrics"]
        and all(m in known or _is_bin_tag(m, s["pass_k"]) for m in s["metrics"])
    ):
        _fail(
            s,
            where,
            "metrics",
            f"a non-empty list of {', '.join(known)} or per-difficulty-bin tags "
            f"eval/bin<b>/log_likelihood, eval/bin<b>/pass@1, eval/bin<b>/pass@{s['pass_k']} "
            "(envs with difficulty levels, e.g. MaxRLHardContexts-v0)",
        )


def _is_bin_tag(tag: Any, pass_k: int) -> bool:
    """Whether ``tag`` is a per-difficulty-bin metric (``agents.evaluation.bin_tags``)."""
    import re

    match = re.fullmatch(r"eval/bin(\d+)/(log_likelihood|log_likelihood_mc|pass@\d+)", str(tag))
    return bool(match) and match.group(2) in (
        "log_likelihood",
        "log_likelihood_mc",
        "pass@1",
        f"pass@{pass_k}",
    )


def builtin_agents() -> dict[str, dict[str, Any]]:
    """Agents every suite knows: each family's built-in agents (``AgentFamily.builtin_agents``).

    Objectives run on our trainer under their own name; SB3 baselines are named in lower
    case (``ppo``, ``a2c``, ...).
    """
    agents: dict[str, dict[str, Any]] = {}
    for family in AGENT_FAMILIES.values():
        agents.update(family.builtin_agents())
    return agents


def _ours_agents() -> dict[str, dict[str, Any]]:
    """Our built-in agents: every registered objective, and three protocol variants."""
    from agents.objectives import objective_names

    ours: dict[str, dict[str, Any]] = {name: {"estimator": name} for name in objective_names()}
    # The supervised reference at the optimizer steps of the policy-gradient agents.
    ours["supervised-steps"] = {"estimator": "supervised", "framing": "steps"}
    ours["supervised-ml-steps"] = {"estimator": "supervised-ml", "framing": "steps"}
    # MaxRL as the protocol runs it: the paper's binary estimator where rewards are binary,
    # the generalized one (b = 1) on continuous likelihoods.
    ours["maxrl-auto"] = {"estimator": "maxrl", "estimator_binary": "maxrl-binary"}
    return ours


def _sb3_agents() -> dict[str, dict[str, Any]]:
    """SB3's built-in agents: every registered baseline, named in lower case."""
    from agents.sb3_baselines import SB3_BASELINES

    return {algo.lower(): {"sb3": algo} for algo in SB3_BASELINES}


def _agent_table(table: Any, where: str) -> dict[str, AgentSpec]:
    specs = {name: _agent_spec(name, dict(spec), where) for name, spec in builtin_agents().items()}
    _check_keys(table, list(table) if isinstance(table, dict) else [], f"{where} [agents]")
    for name, spec in table.items():
        if not isinstance(spec, dict):
            raise SuiteError(f"{where}: [agents.{name}] must be a table")
        specs[name] = _agent_spec(name, dict(spec), where)
    return specs


def _check_agent_name(name: str, method: str, here: str) -> None:
    """Refuse an agent whose name says another estimator or algorithm than it runs.

    The name is what the report shows: ``[agents.grpo] estimator = "maxrl"``, or
    ``grpo-fast`` running MaxRL, would report MaxRL's numbers as GRPO's. A name that is a
    registered estimator or SB3 algorithm (any family's ``method_names``), or starts with
    one and ``-``, must run it.
    """
    lowered, own = name.lower(), method.lower()
    known = [m for family in AGENT_FAMILIES.values() for m in family.method_names()]
    said = [k for k in known if lowered == k or lowered.startswith(k + "-")]
    if not said:
        return
    says = max(said, key=len)
    if says == own or (lowered.startswith(own) and len(own) >= len(says)):
        return
    raise SuiteError(
        f"{here}: agent {name!r} runs {method!r}, but its name says {says!r} (the report "
        f"shows the name); name it after what it runs (e.g. {own}-{lowered})"
    )


def _agent_spec(name: str, spec: dict[str, Any], where: str) -> AgentSpec:
    here = f"{where} [agents.{name}]"
    try:
        spec = _canonical(spec)
    except SuiteError as err:
        raise SuiteError(f"{here}: {err}") from None
    _check_not_per_agent(name, spec, here)
    role = spec.pop("role", None)
    if role is not None and role not in ROLES:
        raise SuiteError(f"{here}: role={role!r} is invalid; allowed: {', '.join(ROLES)}")
    framing = spec.pop("framing", None)
    if framing is not None and framing not in FRAMINGS:
        raise SuiteError(
            f"{here}: framing={framing!r} is invalid; allowed: {', '.join(map(repr, FRAMINGS))}"
        )
    if "lr" in spec:
        try:
            v.check_positive("lr", spec["lr"])
        except ValueError as err:
            raise SuiteError(
                f"{here}: {err} (the centre of the agent's learning-rate grid)"
            ) from None
    chosen = [family for family in AGENT_FAMILIES.values() if family.key in spec]
    if len(chosen) != 1:
        keys = ", ".join(f"{f.key} ({f.name})" for f in AGENT_FAMILIES.values())
        raise SuiteError(f"{here}: set exactly one of {keys}")
    return chosen[0].parse(name, spec, here, role, framing)


def _parse_sb3_agent(
    name: str, spec: dict[str, Any], here: str, role: str | None, framing: str | None
) -> AgentSpec:
    """An SB3 agent table (``sb3 = "PPO"``, ``num_envs``, ``hyperparams``, ``lr``)."""
    from agents.sb3_baselines import SB3_BASELINES

    algo = spec.pop("sb3")
    if algo not in SB3_BASELINES:
        raise SuiteError(f"{here}: sb3={algo!r} is invalid; allowed: {', '.join(SB3_BASELINES)}")
    _check_agent_name(name, algo, here)
    _check_keys(spec, ("num_envs", "hyperparams", "lr"), here)
    hyperparams = spec.get("hyperparams", {})
    if isinstance(hyperparams, dict) and "learning_rate" in hyperparams:
        raise SuiteError(
            f"{here}: agent {name!r} sets hyperparams.learning_rate="
            f"{hyperparams['learning_rate']!r}, which its learning-rate grid would "
            "replace; set lr (the centre of the grid) instead"
        )
    return AgentSpec(name, "sb3", algo, spec, role or "baseline", framing=framing)


def _parse_ours_agent(
    name: str, spec: dict[str, Any], here: str, role: str | None, framing: str | None
) -> AgentSpec:
    """One of our agents (``estimator = ...`` plus ``TrainConfig`` fields)."""
    from agents.objectives import get_objective
    from agents.trainer import TrainConfig

    estimator = spec.pop("estimator")
    binary_method = spec.pop("estimator_binary", None)
    try:
        objective = get_objective(estimator)
    except ValueError as err:
        raise SuiteError(f"{here}: {err}") from None
    if binary_method is not None:
        try:
            get_objective(binary_method)
        except ValueError as err:
            message = str(err).replace("estimator=", "estimator_binary=", 1)
            raise SuiteError(f"{here}: {message}") from None
    _check_agent_name(name, str(estimator), here)
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
    _check_keys(spec, [*allowed, "lr", "lr_grid", "role", *AGENT_SETTINGS], here)
    return AgentSpec(
        name,
        "ours",
        estimator,
        spec,
        role or objective.role,
        lr_grid,
        framing=framing,
        binary_method=binary_method,
    )


def _check_not_per_agent(name: str, spec: dict[str, Any], here: str) -> None:
    """Refuse suite settings in an agent table, naming the agent, the key and where it goes.

    ``[settings]`` and experiments set them for every agent, and the suite derives some of
    them per cell (``budget``, ``eval_every``, ``num_groups``): an agent's own value would
    silently bypass that.
    """
    for key in spec:
        if key in SHARED_SETTINGS:
            why = (
                "a setting every agent shares (equal budgets and the same evaluation and "
                "early stopping for all; budget and eval_every are derived from framing, "
                "steps, tune_budget and evaluations)"
            )
        elif key in SUITE_SETTINGS and key not in ("lr_grid", "framing"):
            why = "a suite setting (it chooses, tunes or reports the runs of every agent)"
        else:
            continue
        raise SuiteError(
            f"{here}: agent {name!r} sets {key}={spec[key]!r}, but {key} is {why}; set it in "
            "[settings] or in an [[experiments]] table instead"
        )


def _check_agent_settings(cell: Cell, sweep: Iterable[str], where: str) -> None:
    """An agent's own N, B, ... must not contradict what the experiment derives or sweeps.

    ``rollouts_per_step`` derives B per agent, so an agent's own ``num_groups`` would be
    ignored; a swept setting the agent fixes would label its runs with values they never
    used.
    """
    agent = cell.agent
    if "num_groups" in agent.params and cell.settings["rollouts_per_step"] is not None:
        raise SuiteError(
            f"{where}: agent {agent.name!r} sets num_groups={agent.params['num_groups']!r}, "
            f"but rollouts_per_step={cell.settings['rollouts_per_step']!r} derives num_groups "
            "here; drop one of them"
        )
    fixed = sorted(set(agent.params) & set(sweep))
    if fixed:
        raise SuiteError(
            f"{where}: agent {agent.name!r} sets {fixed[0]}={agent.params[fixed[0]]!r}, which "
            "this experiment sweeps; drop it from the agent table or from sweep"
        )


def _parse_env(entry: Any, where: str, plugins: bool = True) -> EnvSpec:
    if isinstance(entry, str):
        entry = {"id": entry}
    _check_keys(entry, _ENV_KEYS, where)
    if "id" not in entry:
        raise SuiteError(f"{where}: an env entry needs an id, got {entry!r}")
    env_id = str(entry["id"])
    if ":" in env_id and not plugins and env_id.split(":")[0] not in sys.modules:
        raise SuiteError(_plugin_refusal(where, f"env id {env_id!r}"))
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise SuiteError(f"{where}: kwargs={kwargs!r} must be a table")
    label = str(entry.get("label", "")) or str(entry["id"]).split(":")[-1]
    return EnvSpec(str(entry["id"]), dict(kwargs), label, label)


def _check_distinct_envs(envs: list[EnvSpec], where: str) -> None:
    """Refuse two env entries that are one environment, or that share a label.

    Cells are identified by the environment (id and kwargs), so two labels of one
    environment would merge and one label vanish; the report groups by label, so two
    environments under one label would be reported as one.
    """
    by_env: dict[str, EnvSpec] = {}
    by_label: dict[str, EnvSpec] = {}
    for env in envs:
        identity = json.dumps([env.id, env.kwargs], sort_keys=True, default=str)
        if identity in by_env:
            first = by_env[identity]
            raise SuiteError(
                f"{where}: env entries {first.label!r} and {env.label!r} are the same "
                f"environment ({env.id} with kwargs {env.kwargs!r}); list it once"
            )
        if env.label in by_label:
            first = by_label[env.label]
            raise SuiteError(
                f"{where}: two env entries are labelled {env.label!r} ({first.id} with kwargs "
                f"{first.kwargs!r}, and {env.id} with kwargs {env.kwargs!r}); give each its own "
                "label"
            )
        by_env[identity] = by_label[env.label] = env


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _env_label(env: EnvSpec, extra: dict[str, Any]) -> str:
    parts = [f"{k}={_format_value(v)}" for k, v in extra.items()]
    return " ".join([env.base, *parts])


def _env_facts(env_id: str, kwargs: dict[str, Any], where: str) -> tuple[str, str | None, bool]:
    """(kind name, head, numeric) of an env, checked without building its data."""
    import maxrl_envs

    try:
        info = maxrl_envs.describe_env(env_id, **kwargs)
    except (TypeError, ValueError) as err:
        raise SuiteError(f"{where}: env {env_id!r} with kwargs {kwargs!r}: {err}") from None
    return info.kind.name, info.head, info.kind.numeric


def _experiment_cells(
    suite: str,
    experiment: Any,
    settings: dict[str, Any],
    agents: dict[str, AgentSpec],
    overrides: dict[str, Any],
    where: str,
    *,
    plugins: bool = True,
) -> list[Cell]:
    name = _experiment_name(experiment, where)
    here = f"{where} experiment {name!r}"
    local = {key: value for key, value in experiment.items() if key not in _EXPERIMENT_KEYS}
    resolved = _merge_settings(settings, {**local, **overrides}, here)
    envs = experiment.get("envs")
    if not isinstance(envs, list) or not envs:
        raise SuiteError(f"{here}: envs must be a non-empty list of {{ id = ..., kwargs = ... }}")
    agent_names = _experiment_agents(experiment, agents, here)
    env_sweep, setting_sweep = _experiment_sweep(experiment, overrides, here)
    cells = []
    env_points = _product(env_sweep)
    setting_points = _product(setting_sweep)
    parsed = [_parse_env(entry, here, plugins) for entry in envs]
    _check_distinct_envs(parsed, here)
    for env in parsed:
        for env_point in env_points:
            kwargs = {**env.kwargs, **env_point}
            kind, head, numeric = _env_facts(env.id, kwargs, here)
            spec = EnvSpec(env.id, kwargs, _env_label(env, env_point), env.base)
            for setting_point in setting_points:
                point_settings = _merge_settings(resolved, setting_point, here)
                for agent_name in agent_names:
                    # Binary rewards: classification kinds and binary heads (the verifier).
                    agent = agents[agent_name].for_env(not numeric or get_head(head).binary)
                    unused = get_family(agent.family).unused_settings()
                    applied = {k: v for k, v in setting_point.items() if k not in unused}
                    cell = Cell(
                        suite=suite,
                        experiment=name,
                        env=spec,
                        agent=agent,
                        settings=point_settings,
                        sweep={**env_point, **applied},
                        kind=kind,
                        head=head,
                        numeric=numeric,
                    )
                    _check_tuning(cell, here)
                    _check_agent_settings(cell, setting_sweep, here)
                    cells.append(cell)
    return _unique_cells(cells)


def _experiment_name(experiment: Any, where: str) -> str:
    """The experiment's checked name (a folder of logs/ and a plot's file name)."""
    if not isinstance(experiment, dict) or "name" not in experiment:
        raise SuiteError(f"{where}: each [[experiments]] entry needs a name")
    name = experiment["name"]
    try:
        # The name is a folder under logs/ and a plot's file name.
        v.check_file_name("name", name)
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise ValueError(
                f"name={name!r} is invalid; allowed: a plain file name (no control characters)"
            )
    except ValueError as err:
        raise SuiteError(f"{where} [[experiments]]: {err} (it names a folder of logs/)") from None
    return name


def _experiment_agents(
    experiment: dict[str, Any], agents: dict[str, AgentSpec], here: str
) -> list[str]:
    """The experiment's ``agents`` list, each a known agent name."""
    agent_names = experiment.get("agents")
    if not isinstance(agent_names, list) or not agent_names:
        raise SuiteError(f"{here}: agents must be a non-empty list of agent names")
    for agent in agent_names:
        if not isinstance(agent, str):
            raise SuiteError(
                f"{here}: agents entries must be agent names (strings); got {agent!r} "
                "(define an agent's settings under [agents.NAME] and list NAME here)"
            )
        if agent not in agents:
            raise SuiteError(
                f"{here}: agent {agent!r} is unknown; allowed: {', '.join(agents)} "
                "(or define it under [agents.NAME])"
            )
    return agent_names


def _experiment_sweep(
    experiment: dict[str, Any], overrides: dict[str, Any], here: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The experiment's env-kwarg sweep and setting sweep (overridden settings pinned)."""
    sweep = experiment.get("sweep", {})
    _check_keys(sweep, ("env", *SWEEPABLE, *SETTING_ALIASES), f"{here} sweep")
    env_sweep = sweep.get("env", {})
    if not isinstance(env_sweep, dict):
        raise SuiteError(f"{here}: sweep.env must be a table of env kwarg -> list of values")
    setting_sweep = _canonical({key: values for key, values in sweep.items() if key != "env"})
    for key, values in [*env_sweep.items(), *setting_sweep.items()]:
        if not isinstance(values, list) or not values:
            raise SuiteError(f"{here}: sweep value for {key!r} must be a non-empty list")
    for key in setting_sweep:
        if key in overrides:
            setting_sweep[key] = [overrides[key]]
    return env_sweep, setting_sweep


def _check_tuning(cell: Cell, where: str) -> None:
    """A cell with several learning rates needs validation runs to choose one.

    The settings check this for the settings' own grid; an agent's ``lr_grid`` is only
    known per cell. Without validation runs the reported runs would never be queued.
    """
    tune_seeds = cell.settings["tune_seeds"]
    if cell.needs_tuning and tune_seeds < 1:
        grid = ", ".join(f"{lr:g}" for lr in cell.lr_grid)
        raise SuiteError(
            f"{where}: agent {cell.agent.name!r} has {len(cell.lr_grid)} learning rates "
            f"({grid}) but tune_seeds={tune_seeds!r}; allowed: tune_seeds >= 1 (a "
            "learning-rate grid is chosen on validation runs), or a single rate"
        )


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

    Every agent, ours and SB3's, is checked at every point of its learning-rate grid, in
    every phase it runs: validation runs (``tune``: the validation split, ``tune_budget``)
    and reported runs (``final``, at any rate validation may choose), by its family's
    ``validate`` (ours: ``agents.trainer.validate_config``, SB3's:
    ``agents.sb3_baselines.validate_sb3_config``). The runs of one (cell, phase, rate)
    differ only in seed, which ``load_suite`` has checked by the same rules.

    Returns:
        The number of configs checked.

    Raises:
        SuiteError: The first invalid config, naming the experiment, env, agent, phase and
            learning rate.
    """
    checked = 0
    for cell in suite.cells:
        where = f"experiment {cell.experiment!r}, env {cell.env.label!r}, agent {cell.agent.name!r}"
        seeds = {"tune": TUNE_SEED_BASE, "final": int(cell.settings["seeds"][0])}
        phases = ("tune", "final") if cell.needs_tuning else ("final",)
        for phase in phases:
            for lr in cell.lr_grid:
                config = cell.config(seeds[phase], lr, phase)
                try:
                    get_family(cell.agent.family).validate(config)
                except (TypeError, ValueError) as err:
                    run = "validation run" if phase == "tune" else "reported run"
                    raise SuiteError(f"{where}, {run} at lr={lr:g}: {err}") from None
                checked += 1
    return checked


def train_config(config: dict[str, Any], **paths: Any) -> Any:
    """A ``TrainConfig`` from a job's config dict (lists become tuples where needed)."""
    from agents.trainer import TrainConfig

    data = {
        key: value
        for key, value in config.items()
        if value is not None or key in ("order", "eval_contexts")
    }
    data.update(paths)
    return TrainConfig.from_dict(data)


#: Rough single-thread costs of one run on the project's 2-core CPU (measured on the quick
#: suite): our trainer's seconds per optimizer step and per rollout, and SB3's env steps per
#: second. Only the ETA and ``--list`` use them; they say "rough" wherever they are shown.
OURS_STEP_SECONDS = 1.2e-3
OURS_ROLLOUT_SECONDS = 5e-8  # fitted with COST_SCALE below (the fast T = N kernel, #16)
SB3_STEPS_PER_SECOND = {"PPO": 3500.0, "A2C": 6000.0, "SAC": 300.0, "TD3": 400.0, "DQN": 1500.0}
#: Evaluations: seconds per scored sample (contexts x samples), with early stopping's
#: validation scoring counted in.
EVAL_SAMPLE_SECONDS = 2e-7
#: A worker's fixed cost per run: building the task, TensorBoard files, reading curves back.
RUN_OVERHEAD_SECONDS = 1.5


#: Calibration of the cost model per agent family (``cost_family``): measured CPU seconds
#: over the model's seconds, fitted on the committed study rows by
#: ``python -m benchmarks.calibrate`` (docs/benchmarks.md, "Cost estimates"). The model's
#: shape (steps, rollouts, evaluations) stays; these factors make its totals match. Our two
#: main families' factors were chosen with our model (:func:`_ours_model_seconds`) to fit the
#: suites' recorded totals (the per-run fit leaves out the driver's share of a suite's CPU time).
COST_SCALE = {
    "ours:categorical": 1.9,
    "ours:numeric": 0.9,
    "ours:sequence": 0.81,
    "sb3:A2C": 0.52,
    "sb3:PPO": 0.48,
    "sb3:SAC": 0.22,
    "sb3:TD3": 0.34,
}
#: The factor of a family without committed rows (e.g. DQN).
DEFAULT_COST_SCALE = 0.4


def cost_family(job: Job) -> str:
    """The agent family a run's cost is calibrated by.

    ``sb3:<algorithm>`` or, for ours, the env's shape (read from the kind table, not the
    kind's name, so a plugin kind of the same shape costs the same): ``ours:sequence``
    (token episodes of several steps, e.g. ``tokens``), ``ours:numeric`` (one numeric
    action, ``regression``) or ``ours:categorical`` (one discrete action,
    ``classification``); a plugin family's own (``AgentFamily.cost_family``).
    """
    return get_family(job.family).cost_family(job)


def _sb3_cost_family(job: Job) -> str:
    return f"sb3:{job.method}"


def _ours_cost_family(job: Job) -> str:
    from maxrl_envs import describe_env

    info = describe_env(job.env_id, **job.env_kwargs)
    if info.episode_length > 1:
        return "ours:sequence"
    return "ours:numeric" if info.kind.numeric else "ours:categorical"


def estimate_seconds(job: Job) -> float:
    """A rough CPU-seconds estimate of one run (for ETAs and ``--list``), not a promise.

    The cost model (:func:`model_seconds`) times its family's ``COST_SCALE``.
    """
    return COST_SCALE.get(cost_family(job), DEFAULT_COST_SCALE) * model_seconds(job)


def model_seconds(job: Job) -> float:
    """The uncalibrated cost model of one run: steps, rollouts and evaluations, in seconds."""
    config = job.config
    budget = int(config.get("budget", 0))  # 0: a family without a budget (evaluation only)
    evals = 2 + (budget // int(config["eval_every"]) if config.get("eval_every") else 0)
    samples = (
        1500 * int(config.get("eval_samples", 64)) * (2 if config.get("early_stopping") else 1)
    )
    evaluation = evals * samples * EVAL_SAMPLE_SECONDS
    # Env steps per rollout, from the kind table (token kinds write num_digits steps).
    from maxrl_envs import describe_env

    episode_length = describe_env(job.env_id, **job.env_kwargs).episode_length
    return get_family(job.family).model_seconds(job, episode_length, evaluation)


def _sb3_model_seconds(job: Job, episode_length: int, evaluation: float) -> float:
    """SB3: env steps at the algorithm's measured rate, plus its evaluations (weighted 20x)."""
    rate = SB3_STEPS_PER_SECOND.get(job.method, 1000.0)
    steps = int(job.config["budget"]) * episode_length
    return steps / rate + 20 * evaluation + RUN_OVERHEAD_SECONDS


def _ours_model_seconds(job: Job, episode_length: int, evaluation: float) -> float:
    """Ours: optimizer steps and rollouts (token kinds cost about 4x per step).

    Evaluations and the run's fixed overhead are not charged: with heads-2 (3,125-step runs of
    about 4 s) and hard-contexts (2,000 steps of up to 65,536 rollouts) beside the first
    edition's 97-step runs, a search over the committed suites' recorded totals (weights 0,
    0.1, 0.3 and 1 for that fixed part; rollout costs 5e-8 to 1.5e-6 s; factors 0.05-1.95)
    fitted best with weight 0: every timed suite within 0.72-1.40x, hard-contexts at 0.78x
    of its rows' run time x 0.756.
    """
    config = job.config
    budget = int(config["budget"])
    per_step = _ours_rollouts_per_step(config, job.method)
    steps = budget // max(per_step, 1)
    tokens = 4.0 if episode_length > 1 else 1.0
    del evaluation  # not charged (see above); the family protocol passes it to every model
    return tokens * (steps * OURS_STEP_SECONDS + budget * OURS_ROLLOUT_SECONDS)


def estimate_suite_seconds(suite: Suite) -> float:
    """Rough CPU-seconds of a whole suite (validation runs and reported runs)."""
    total = sum(estimate_seconds(job) for job in suite.initial_jobs())
    for cell in suite.cells:
        if cell.needs_tuning:
            job = cell.job(int(cell.settings["seeds"][0]), cell.lr_grid[0], "final")
            total += len(cell.settings["seeds"]) * estimate_seconds(job)
    return total


# --------------------------------------------------------------------------------------------
# The built-in agent families (benchmarks.families): our trainer and SB3
# --------------------------------------------------------------------------------------------


def _ours_config(cell: Cell, seed: int, lr: float | None, phase: str) -> dict[str, Any]:
    """Keyword arguments of ``TrainConfig``: every run setting (``RUN_SETTINGS``), by name."""
    from agents.objectives import get_objective

    s = cell.settings
    tune = phase == "tune"
    common = cell.common_config(seed, phase)
    rl_steps = cell.rl_steps()
    objective = get_objective(cell.agent.method)
    run = {k: copy.deepcopy(s[k]) for k in RUN_SETTINGS}
    if "order" not in objective.params:
        run["order"] = None
    params = copy.deepcopy(cell.agent.params)
    params.pop("lr", None)
    # The agent's own N, B, ... first: num_groups and budget are derived from them.
    run.update({k: params.pop(k) for k in AGENT_SETTINGS if k in params})
    per_context = objective.rollouts_per_context(int(run["group_size"]))
    if s["rollouts_per_step"] is not None:
        run["num_groups"] = max(1, int(s["rollouts_per_step"]) // per_context)
    if cell.framing == "steps":
        run["budget"] = rl_steps * int(run["num_groups"]) * per_context
    if tune and s["tune_budget"] is not None:
        run["budget"] = int(s["tune_budget"])
    if s["evaluations"] is not None:
        run["eval_every"] = max(1, int(run["budget"]) // int(s["evaluations"]))
    config = {
        **common,
        **run,
        "estimator": cell.agent.method,
        "lr": float(lr) if lr is not None else None,
        "eval_contexts": int(s["tune_eval_contexts"]) if tune else None,
    }
    config.update(params)  # the agent's other TrainConfig fields (policy, init_std, ...)
    return config


def _sb3_config(cell: Cell, seed: int, lr: float | None, phase: str) -> dict[str, Any]:
    """Keyword arguments of ``SB3Config``: the run settings it has, by name."""
    s = cell.settings
    tune = phase == "tune"
    common = cell.common_config(seed, phase)
    rl_steps = cell.rl_steps()
    shared = {k: copy.deepcopy(s[k]) for k in RUN_SETTINGS if k not in _ours_only()}
    params = copy.deepcopy(cell.agent.params)
    params.pop("lr", None)
    if cell.framing == "steps":  # the rollouts of our RL agents at this cell's B, N
        shared["budget"] = rl_steps * cell.rl_rollouts_per_step()
    if tune and s["tune_budget"] is not None:
        shared["budget"] = int(s["tune_budget"])
    if s["evaluations"] is not None:
        shared["eval_every"] = max(1, int(shared["budget"]) // int(s["evaluations"]))
    if lr is not None:
        hyper = dict(params.get("hyperparams", {}))
        hyper["learning_rate"] = float(lr)
        params["hyperparams"] = hyper
    return {**common, **shared, "algo": cell.agent.method, **params}


def _ours_validate(config: dict[str, Any]) -> None:
    from agents.trainer import validate_config

    validate_config(train_config(config))


def _sb3_validate(config: dict[str, Any]) -> None:
    from agents.sb3_baselines import SB3Config, validate_sb3_config

    validate_sb3_config(SB3Config(**config))


def _ours_train(config: dict[str, Any], paths: dict[str, Any], threads: int) -> dict[str, float]:
    from agents.trainer import train

    runtime = {"resume": True, "progress": False, "checkpoint": True, "threads": threads}
    return train(train_config(config, **paths, **runtime))


def _sb3_train(config: dict[str, Any], paths: dict[str, Any], threads: int) -> dict[str, float]:
    from agents.sb3_baselines import SB3Config, train_sb3

    return train_sb3(SB3Config(**config, **paths, resume=True, progress=False))


def _ours_usual_lr(method: str) -> float:
    from agents.trainer import TrainConfig

    return float(TrainConfig().lr)


def _sb3_usual_lr(method: str) -> float:
    from agents.sb3_baselines import get_baseline

    return float(get_baseline(method).hyperparams.get("learning_rate", 3e-4))


def _ours_rollouts_per_step(config: dict[str, Any], method: str) -> int:
    """B * N, or B for an objective with one label per context (``supervised``)."""
    from agents.objectives import get_objective

    per_context = get_objective(method).rollouts_per_context(int(config["group_size"]))
    return int(config["num_groups"]) * per_context


def _sb3_rollouts_per_step(config: dict[str, Any], method: str) -> int:
    """Rollouts of one collection (``num_envs * n_steps`` or ``train_freq``), one update."""
    from agents.sb3_baselines import SB3Config, resolved_settings, steps_per_collect

    sb3 = SB3Config(**config)
    num_envs, hyperparams = resolved_settings(sb3)
    return steps_per_collect(sb3.algo, num_envs, hyperparams)


def _ours_ignored(method: str) -> tuple[str, ...]:
    from agents.objectives import get_objective

    return tuple(get_objective(method).ignored_settings)


def _ours_methods() -> tuple[str, ...]:
    from agents.objectives import objective_names

    return tuple(objective_names())


def _sb3_methods() -> tuple[str, ...]:
    from agents.sb3_baselines import SB3_BASELINES

    return tuple(algo.lower() for algo in SB3_BASELINES)


OURS = register_agent_family(
    AgentFamily(
        name="ours",
        key="estimator",
        parse=_parse_ours_agent,
        config=_ours_config,
        validate=_ours_validate,
        train=_ours_train,
        usual_lr=_ours_usual_lr,
        rollouts_per_step=_ours_rollouts_per_step,
        model_seconds=_ours_model_seconds,
        cost_family=_ours_cost_family,
        builtin_agents=_ours_agents,
        method_names=_ours_methods,
        ignored_settings=_ours_ignored,
        default_device="auto",
    )
)
SB3 = register_agent_family(
    AgentFamily(
        name="sb3",
        key="sb3",
        parse=_parse_sb3_agent,
        config=_sb3_config,
        validate=_sb3_validate,
        train=_sb3_train,
        usual_lr=_sb3_usual_lr,
        rollouts_per_step=_sb3_rollouts_per_step,
        model_seconds=_sb3_model_seconds,
        cost_family=_sb3_cost_family,
        builtin_agents=_sb3_agents,
        method_names=_sb3_methods,
        unused_settings=_ours_only,
        queue_first=True,
        line_style="--",
    )
)
