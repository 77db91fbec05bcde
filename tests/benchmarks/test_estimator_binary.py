"""Suites pick an agent's binary estimator on binary-reward envs (estimator_binary, maxrl-auto)."""

from __future__ import annotations

import pytest

from benchmarks.suite import SuiteError, load_suite

SUITE = """
name = "binary-choice"
description = "t"

[settings]
seeds = [0]
budget = 4096
lr_grid = [1e-2]
num_groups = 2

[agents.mine]
estimator = "maxrl-loo"
estimator_binary = "{binary}"

[[experiments]]
name = "e"
envs = [{{ id = "MaxRLRegression-v0" }}, {{ id = "MaxRLVerifier-v0" }},
        {{ id = "MaxRLHardContexts-v0" }}, {{ id = "MaxRLClassification-v0" }}]
agents = ["mine", "maxrl-auto", "supervised-ml"]
sweep.group_size = [4, 1024]
"""


def test_binary_estimator_is_chosen_per_env(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(binary="maxrl-binary"))
    suite = load_suite(path)
    methods = {
        (c.env.id, c.agent.name, c.settings["group_size"]): c.agent.method for c in suite.cells
    }
    for n in (4, 1024):
        assert methods["MaxRLRegression-v0", "mine", n] == "maxrl-loo"
        assert methods["MaxRLRegression-v0", "maxrl-auto", n] == "maxrl"
        for env in ("MaxRLVerifier-v0", "MaxRLHardContexts-v0", "MaxRLClassification-v0"):
            assert methods[env, "mine", n] == "maxrl-binary"
            assert methods[env, "maxrl-auto", n] == "maxrl-binary"
        assert methods["MaxRLHardContexts-v0", "supervised-ml", n] == "supervised-ml"
    job = next(c for c in suite.cells if c.agent.method == "maxrl-binary").job(0, 1e-2, "final")
    assert job.config["estimator"] == "maxrl-binary" and job.method == "maxrl-binary"


def test_unknown_binary_estimator_is_named(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SUITE.format(binary="maxrl-nope"))
    with pytest.raises(SuiteError, match=r"\[agents.mine\].*estimator_binary='maxrl-nope'"):
        load_suite(path)


def test_per_bin_metrics_may_be_report_columns(tmp_path):
    base = SUITE.format(binary="maxrl-binary").replace(
        "num_groups = 2",
        'num_groups = 2\nmetrics = ["eval/log_likelihood", "eval/bin0/pass@16", '
        '"eval/bin8/log_likelihood", "eval/bin3/pass@1"]',
    )
    path = tmp_path / "s.toml"
    path.write_text(base)
    assert load_suite(path).cells[0].metrics[1] == "eval/bin0/pass@16"
    path.write_text(base.replace("eval/bin0/pass@16", "eval/bin0/pass@3"))
    with pytest.raises(SuiteError, match=r"metrics=.*per-difficulty-bin tags"):
        load_suite(path)
