"""The agent-family table: what suites, jobs, the runner and the report ask of an agent.

An agent family is a way to train an agent: ``ours`` (``agents.trainer``, one agent per
objective), ``sb3`` (``agents.sb3_baselines``, one per SB3 algorithm), or a plugin's. A
suite's agent table names its family by the key it sets (``estimator = "maxrl"``,
``sb3 = "PPO"``, or the plugin's key); every question that depends on the family is a
field of its ``AgentFamily`` here, not a ``family == ...`` branch at the caller:

- ``parse``: the agent table of an agent of this family, checked, as an ``AgentSpec``;
- ``config``: the run config of a suite cell (``Cell.config``), plain JSON data whose
  digest is part of the run id;
- ``validate`` and ``train``: what ``validate_suite`` and a worker (``benchmarks.jobs``)
  call;
- ``rollouts_per_step``, ``unused_settings`` and ``ignored_settings``: how a run spends
  its budget, which suite settings its configs do not take, and which settings its
  results do not depend on (the report merges runs that differ only in those);
- ``cost_family`` and ``model_seconds``: its rough cost estimate (``benchmarks.suite``).

The built-in families (``ours`` and ``sb3``) register when ``benchmarks.suite`` is
imported; a plugin module (a suite's ``imports``) calls ``register_agent_family``. See
docs/contributing.md, "Adding an agent family".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from maxrl_envs import validation as v


def _none(*_: Any) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class AgentFamily:
    """One way to train agents, as suites and the runner use it.

    Attributes:
        name: The family's name (``AgentSpec.family`` and the results rows' ``family``).
        key: The agent-table key that names an agent's method and selects this family
            (``estimator`` for ours, ``sb3`` for SB3).
        parse: ``parse(name, spec, here, role, framing) -> AgentSpec``: an agent table
            (with ``key``, ``role`` and ``framing`` removed) checked, raising ``SuiteError``
            with ``here`` in the message.
        builtin_agents: ``() -> {agent name: agent table}``: the agents every suite knows.
        method_names: ``() -> names``: the methods an agent name may say it runs (lower
            case), so that an agent named after one runs it.
        config: ``config(cell, seed, lr, phase) -> dict``: a run's config (no paths).
        validate: ``validate(config)``: raises ``ValueError`` on a config that cannot run.
        train: ``train(config, paths, threads) -> metrics``: trains (resuming, never
            retraining a finished run) in the run directory ``paths`` names (``log_dir``,
            ``run_name``) and returns the final metrics (``eval/*`` tags, ``rollouts``,
            ``wall_time``; with early stopping ``selected_rollouts``).
        usual_lr: ``usual_lr(method) -> float``: the centre of the learning-rate grid when
            the agent sets no ``lr``.
        rollouts_per_step: ``rollouts_per_step(config, method) -> int``: rollouts one
            optimizer step consumes (an estimate for families that do not step evenly).
        unused_settings: ``() -> names``: suite settings this family's configs do not take
            (sweeping them does not multiply its runs; they stay out of its run ids).
        ignored_settings: ``ignored_settings(method) -> names``: settings a run's result
            does not depend on although its config may hold them (e.g. the supervised
            objectives ignore N).
        cost_family: ``cost_family(job) -> str``: the name ``COST_SCALE`` calibrates by.
        model_seconds: ``model_seconds(job, episode_length, evaluation) -> float``: the
            uncalibrated cost model of a run, given the env steps per rollout and the
            seconds of its evaluations.
        queue_first: Queue this family's runs before the others (the slow ones first).
        default_device: The device of a run whose config names none (provenance).
        line_style: Matplotlib line style of its curves in reports (None: by the agent's
            role, solid or dotted for references; SB3's are dashed).
    """

    name: str
    key: str
    parse: Callable[..., Any]
    config: Callable[..., dict[str, Any]]
    validate: Callable[[dict[str, Any]], None]
    train: Callable[[dict[str, Any], dict[str, Any], int], Mapping[str, float]]
    usual_lr: Callable[[str], float]
    rollouts_per_step: Callable[[dict[str, Any], str], int]
    model_seconds: Callable[..., float]
    cost_family: Callable[[Any], str]
    builtin_agents: Callable[[], dict[str, dict[str, Any]]] = dict
    method_names: Callable[[], tuple[str, ...]] = tuple
    unused_settings: Callable[[], tuple[str, ...]] = _none
    ignored_settings: Callable[[str], tuple[str, ...]] = _none
    queue_first: bool = False
    default_device: str = "cpu"
    line_style: str | None = None


#: Family name -> family, in registration order (``ours`` and ``sb3`` first).
AGENT_FAMILIES: dict[str, AgentFamily] = {}


def register_agent_family(family: AgentFamily) -> AgentFamily:
    """Add an agent family for suites (its ``key`` in an agent table selects it).

    Raises:
        ValueError: A taken name, or a key another family uses.
    """
    for other in AGENT_FAMILIES.values():
        if other.key == family.key and other.name != family.name:
            raise ValueError(
                f"key={family.key!r} is taken by agent family {other.name!r}; allowed: a key "
                f"no family uses (taken: {', '.join(f.key for f in AGENT_FAMILIES.values())})"
            )
    return v.register_unique(AGENT_FAMILIES, family.name, family, "agent family")


def get_family(name: Any) -> AgentFamily:
    """The registered family called ``name``; ``ValueError`` listing the names otherwise."""
    v.check_choice("family", name, AGENT_FAMILIES)
    return AGENT_FAMILIES[name]


def ignored_settings(family: str, method: str) -> tuple[str, ...]:
    """Settings the runs of ``method`` (of ``family``) do not depend on.

    The settings its configs do not take plus those its results ignore: e.g.
    ``("group_size",)`` for our ``supervised`` and ``supervised-ml`` objectives (one label
    per context, whatever N is). The report merges rows that differ only in these.
    """
    entry = get_family(family)
    return (*entry.unused_settings(), *entry.ignored_settings(method))


__all__ = [
    "AGENT_FAMILIES",
    "AgentFamily",
    "get_family",
    "ignored_settings",
    "register_agent_family",
]
