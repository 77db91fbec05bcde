"""Gymnasium environments that turn supervised tasks into maximum-likelihood RL problems.

Importing the package registers the ids listed in ``maxrl_envs.registration``::

    import gymnasium, maxrl_envs
    env = gymnasium.make("MaxRLRegression-v0")

or, without the import, ``gymnasium.make("maxrl_envs:MaxRLRegression-v0")`` (Gymnasium
imports the module named before the colon; it has no plugin auto-loading).
"""

from maxrl_envs.core import ClassificationCore, Contexts, RegressionCore, Scores, TaskCore
from maxrl_envs.kinds import TASK_KINDS, Task, TaskKind, get_kind, register_kind
from maxrl_envs.registration import (
    PRESETS,
    EnvInfo,
    all_ids,
    describe_env,
    env_kind,
    make_task,
    register_env,
    register_envs,
)
from maxrl_envs.tokens import TokenCodec

register_envs()

__all__ = [
    "PRESETS",
    "TASK_KINDS",
    "ClassificationCore",
    "Contexts",
    "EnvInfo",
    "RegressionCore",
    "Scores",
    "Task",
    "TaskCore",
    "TaskKind",
    "TokenCodec",
    "all_ids",
    "describe_env",
    "env_kind",
    "get_kind",
    "make_task",
    "register_env",
    "register_envs",
    "register_kind",
]
__version__ = "0.1.0"
