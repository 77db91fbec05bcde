"""Gymnasium environments that turn supervised tasks into maximum-likelihood RL problems.

Importing the package registers the ids listed in ``maxrl_envs.registration``::

    import gymnasium, maxrl_envs
    env = gymnasium.make("MaxRLRegression-v0")
"""

from maxrl_envs.core import ClassificationCore, Contexts, RegressionCore, Scores, TaskCore
from maxrl_envs.registration import PRESETS, all_ids, env_kind, make_task, register_envs
from maxrl_envs.tokens import TokenCodec

register_envs()

__all__ = [
    "PRESETS",
    "ClassificationCore",
    "Contexts",
    "RegressionCore",
    "Scores",
    "TaskCore",
    "TokenCodec",
    "all_ids",
    "env_kind",
    "make_task",
    "register_envs",
]
__version__ = "0.1.0"
