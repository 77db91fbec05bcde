"""The ``>>>`` examples in the env docstrings run, so the documentation cannot go stale."""

from __future__ import annotations

import doctest

import pytest

import maxrl_envs.envs
import maxrl_envs.sb3
import maxrl_envs.vector

MODULES = [maxrl_envs.envs, maxrl_envs.vector, maxrl_envs.sb3]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert results.attempted > 0
    assert results.failed == 0


def test_every_registered_env_class_has_an_example():
    for cls in (
        maxrl_envs.envs.RegressionEnv,
        maxrl_envs.envs.ClassificationEnv,
        maxrl_envs.envs.TokensEnv,
        maxrl_envs.vector.MaxRLVectorEnv,
        maxrl_envs.sb3.SB3VecEnv,
    ):
        assert ">>>" in (cls.__doc__ or ""), cls.__name__
