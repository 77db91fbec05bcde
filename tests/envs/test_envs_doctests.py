"""The ``>>>`` examples in the env docstrings run, so the documentation cannot go stale."""

from __future__ import annotations

import doctest

import pytest

import maxrl_envs.envs
import maxrl_envs.kinds
import maxrl_envs.sb3
import maxrl_envs.vector

MODULES = [maxrl_envs.envs, maxrl_envs.kinds, maxrl_envs.vector, maxrl_envs.sb3]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert results.attempted > 0
    assert results.failed == 0


def test_every_registered_kind_and_env_class_has_an_example():
    kinds = [type(kind) for kind in maxrl_envs.kinds.TASK_KINDS.values()]
    for cls in (
        *kinds,
        maxrl_envs.envs.MaxRLEnv,
        maxrl_envs.vector.MaxRLVectorEnv,
        maxrl_envs.sb3.SB3VecEnv,
    ):
        assert ">>>" in (cls.__doc__ or ""), cls.__name__
