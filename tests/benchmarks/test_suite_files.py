"""Suites: parsing, expansion into runs, deterministic run ids, and errors before running."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.estimators import ESTIMATOR_NAMES
from benchmarks.suite import (
    TUNE_SEED_BASE,
    SuiteError,
    available_suites,
    load_suite,
    validate_suite,
)

SHIPPED = (
    "quick",
    "classification",
    "low-snr",
    "low-snr-heads",
    "low-snr-offpolicy",
    "tokens",
    "full",
)
#: The second edition's suites (docs/protocol.md), not (yet) part of ``full``.
SECOND_EDITION = ("low-snr-2", "heads-2", "classification-2", "hard-contexts")


BASE_SETTINGS = {
    "seeds": "[0]",
    "budget": "1024",
    "group_size": "4",
    "num_groups": "8",
    "lr_grid": "[1e-2]",
}


def suite_text(
    agents: str = '["maxrl"]',
    envs: str = '[{ id = "MaxRLRegression-v0" }]',
    settings: str = "",
    extra: str = "",
) -> str:
    """A one-experiment suite; ``settings`` lines ("key = value") replace the base ones."""
    merged = dict(BASE_SETTINGS)
    for line in filter(None, settings.splitlines()):
        key, value = (part.strip() for part in line.split("=", 1))
        merged[key] = value
    lines = "\n".join(f"{k} = {v}" for k, v in merged.items())
    return f"""
name = "t"
[settings]
{lines}
{extra}
[[experiments]]
name = "e"
envs = {envs}
agents = {agents}
"""


def write_suite(folder: Path, text: str, name: str = "t") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str):
    return load_suite(str(write_suite(tmp_path, text)))


def test_shipped_suites_are_listed() -> None:
    assert set(SHIPPED) | set(SECOND_EDITION) <= set(available_suites())


@pytest.mark.parametrize("name", SECOND_EDITION)
def test_second_edition_suites_follow_the_protocol(name: str) -> None:
    """At least 5 seeds, a five-point grid, SB3 only in low-snr-2, within ~2 h by the model."""
    from benchmarks.suite import estimate_suite_seconds

    suite = load_suite(name)
    assert all(len(cell.settings["seeds"]) >= 5 for cell in suite.cells)
    assert {cell.settings["lr_points"] for cell in suite.cells} == {5}
    families = {cell.agent.family for cell in suite.cells}
    assert families == ({"ours", "sb3"} if name == "low-snr-2" else {"ours"})
    assert {"maxrl-loo", "supervised-ml"} & {c.agent.name for c in suite.cells}
    assert estimate_suite_seconds(suite) / 2 < 120 * 60


def test_hard_contexts_sweeps_n_to_1024_in_both_framings_on_the_hard_env() -> None:
    suite = load_suite("hard-contexts")
    assert {cell.env.id for cell in suite.cells} == {"MaxRLHardContexts-v0"}
    assert {cell.settings["group_size"] for cell in suite.cells} == {4, 16, 64, 256, 1024}
    assert {cell.framing for cell in suite.cells} == {"rollouts", "steps"}
    agents = {cell.agent.name for cell in suite.cells}
    assert {"maxrl-binary", "grpo", "reinforce", "supervised-ml"} <= agents
    assert {cell.select_metric for cell in suite.cells} == {"eval/log_likelihood"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_suites_load(name: str) -> None:
    suite = load_suite(name)
    assert suite.cells and suite.total_runs() >= len(suite.cells)
    families = {cell.agent.family for cell in suite.cells}
    # Classification compares estimators with the cross-entropy reference only.
    assert families == ({"ours"} if name == "classification" else {"ours", "sb3"}), name
    if name not in ("quick", "full"):  # the study's suites: at least 5 seeds per cell
        assert all(len(cell.settings["seeds"]) >= 5 for cell in suite.cells), name


@pytest.mark.parametrize("name", [n for n in SHIPPED if n not in ("quick", "full")])
def test_study_suites_fit_the_time_limit_by_the_cost_model(name: str) -> None:
    from benchmarks.suite import estimate_suite_seconds

    # About 90 minutes of wall time with --workers 2 (the cost model is rough; the measured
    # time of each suite is in docs/results.md).
    assert estimate_suite_seconds(load_suite(name)) / 2 < 90 * 60, name


def test_cost_model_reads_episode_length_from_the_kind_table_not_the_kind_name() -> None:
    import dataclasses

    from benchmarks.suite import estimate_seconds
    from maxrl_envs import describe_env

    jobs = load_suite("tokens").initial_jobs()
    for family in ("sb3", "ours"):
        job = next(j for j in jobs if j.family == family and j.kind == "tokens")
        digits = describe_env(job.env_id, **job.env_kwargs).episode_length
        assert digits > 1
        renamed = dataclasses.replace(job, kind="my-tokens")  # a plugin kind, same episodes
        assert estimate_seconds(renamed) == estimate_seconds(job)
        longer = dataclasses.replace(job, env_kwargs={**job.env_kwargs, "num_digits": 2 * digits})
        one_step = dataclasses.replace(
            job, env_id="MaxRLRegression-v0", env_kwargs={}, kind="regression"
        )
        if family == "sb3":  # SB3 pays per env step: twice the digits, twice the steps
            assert estimate_seconds(longer) > estimate_seconds(job)
        assert estimate_seconds(one_step) < estimate_seconds(job)


def test_quick_suite_validates_and_has_a_real_comparison() -> None:
    suite = load_suite("quick")
    assert validate_suite(suite) > 0
    agents = {cell.agent.name for cell in suite.cells}
    assert {"maxrl", "grpo", "reinforce", "supervised"} <= agents
    assert agents & {"ppo", "a2c"}
    assert len({cell.env.label for cell in suite.cells}) >= 2
    assert len(suite.cells[0].settings["seeds"]) >= 2


def test_full_includes_every_other_suite() -> None:
    full = load_suite("full")
    experiments = {cell.experiment.split("/")[0] for cell in full.cells}
    assert experiments == set(SHIPPED) - {"full", "quick"}


def test_low_snr_suites_sweep_snr_heads_noise_and_sigma() -> None:
    cells = [
        c
        for name in ("low-snr", "low-snr-heads", "low-snr-offpolicy")
        for c in load_suite(name).cells
    ]
    assert {0.01, 0.1, 1.0, 10.0} <= {cell.sweep.get("snr") for cell in cells}
    assert {"gaussian", "laplace", "verifier"} <= {cell.head for cell in cells}
    assert {0.0, 2.0} <= {cell.env.kwargs.get("heteroscedastic", 0.0) for cell in cells}
    assert {False, True} <= {cell.settings["state_dependent_std"] for cell in cells}
    algos = {cell.agent.method for cell in cells if cell.agent.family == "sb3"}
    assert {"PPO", "A2C", "SAC", "TD3"} <= algos
    estimators = {cell.agent.method for cell in cells if cell.agent.family == "ours"}
    assert set(ESTIMATOR_NAMES) | {"supervised"} <= estimators
    orders = {cell.settings["order"] or cell.agent.params.get("order") for cell in cells}
    assert 4 in orders


def test_classification_spans_n_4_to_256_in_both_framings() -> None:
    suite = load_suite("classification")
    ns = {cell.settings["group_size"] for cell in suite.cells}
    assert min(ns) == 4 and max(ns) == 256
    assert {cell.framing for cell in suite.cells} == {"rollouts", "steps"}
    labels = {cell.env.id for cell in suite.cells}
    assert "MaxRLClassificationThousandClass-v0" in labels


def test_tokens_pairs_each_token_task_with_its_direct_twin() -> None:
    suite = load_suite("tokens")
    kinds = {cell.kind for cell in suite.cells}
    assert kinds == {"regression", "tokens"}
    direct = {c.env.label for c in suite.cells if c.kind == "regression"}
    tokens = {c.env.label for c in suite.cells if c.kind == "tokens"}
    assert direct == tokens


def test_jobs_are_deterministic_and_distinct(tmp_path: Path, tiny_suite_text: str) -> None:
    suite_a = load_suite(str(write_suite(tmp_path / "a", tiny_suite_text)))
    suite_b = load_suite(str(write_suite(tmp_path / "b", tiny_suite_text)))
    ids_a = [job.run_id for job in suite_a.initial_jobs()]
    assert ids_a == [job.run_id for job in suite_b.initial_jobs()]
    assert len(set(ids_a)) == len(ids_a)
    tuned = [cell for cell in suite_a.cells if cell.needs_tuning]
    assert len(tuned) == 1
    tune = [job for job in suite_a.initial_jobs() if job.phase == "tune"]
    assert {job.seed for job in tune} == {TUNE_SEED_BASE}
    assert {job.config["eval_split"] for job in tune} == {"validation"}
    final = suite_a.final_jobs(tuned[0], 0.01)
    assert [job.seed for job in final] == [0, 1]
    assert {job.config["eval_split"] for job in final} == {"test"}
    assert {job.lr for job in final} == {0.01}
    other = suite_a.final_jobs(tuned[0], 0.03)
    assert not {j.run_id for j in final} & {j.run_id for j in other}


def test_changing_a_kwarg_changes_the_run_id(tmp_path: Path) -> None:
    base = load_text(tmp_path / "a", suite_text())
    changed = load_text(
        tmp_path / "b", suite_text(envs='[{ id = "MaxRLRegression-v0", kwargs = { snr = 2.0 } }]')
    )
    assert base.initial_jobs()[0].run_id != changed.initial_jobs()[0].run_id


def test_sweep_expands_env_kwargs_and_settings(tmp_path: Path) -> None:
    text = (
        suite_text(agents='["maxrl", "a2c"]')
        + "sweep.env.snr = [1.0, 0.1]\nsweep.rollouts = [4, 8]\n"  # the old name of group_size
    )
    suite = load_text(tmp_path, text)
    ours = [c for c in suite.cells if c.agent.family == "ours"]
    sb3 = [c for c in suite.cells if c.agent.family == "sb3"]
    assert len(ours) == 4 and len(sb3) == 2
    assert {(c.env.kwargs["snr"], c.settings["group_size"]) for c in ours} == {
        (1.0, 4),
        (1.0, 8),
        (0.1, 4),
        (0.1, 8),
    }
    assert {c.env.label for c in sb3} == {"MaxRLRegression-v0 snr=1", "MaxRLRegression-v0 snr=0.1"}


def test_rollouts_per_step_sets_num_groups(tmp_path: Path) -> None:
    text = suite_text(agents='["maxrl", "supervised"]', settings="rollouts_per_step = 64")
    suite = load_text(tmp_path, text)
    contexts = {c.agent.name: c.config(0, 0.01, "final")["num_groups"] for c in suite.cells}
    assert contexts == {"maxrl": 16, "supervised": 64}


def test_custom_agent_overrides_trainconfig_fields(tmp_path: Path) -> None:
    extra = '[agents.maxrl-t2]\nestimator = "maxrl"\norder = 2\nlr_grid = [0.1]\n'
    suite = load_text(tmp_path, suite_text(agents='["maxrl-t2"]', extra=extra))
    cell = suite.cells[0]
    assert cell.lr_grid == [0.1] and cell.agent.role == "maxrl"
    assert cell.config(0, 0.1, "final")["order"] == 2
    assert validate_suite(suite) == 1


def test_an_agents_own_n_feeds_the_derived_b_and_budget(tmp_path: Path) -> None:
    """Agent-table settings apply before the suite derives num_groups and budget."""
    extra = '[agents.maxrl-n8]\nestimator = "maxrl"\nrollouts = 8\n'  # alias of group_size
    agents = '["maxrl", "maxrl-n8"]'
    text = suite_text(agents=agents, settings="rollouts_per_step = 64", extra=extra)
    configs = {c.agent.name: c.config(0, 0.01, "final") for c in load_text(tmp_path, text).cells}
    assert (configs["maxrl"]["group_size"], configs["maxrl"]["num_groups"]) == (4, 16)
    assert (configs["maxrl-n8"]["group_size"], configs["maxrl-n8"]["num_groups"]) == (8, 8)
    # Equal optimizer steps: 1024 // (8 x 4) = 32 steps, of 8 x 8 rollouts for maxrl-n8.
    text = suite_text(agents=agents, settings='framing = "steps"', extra=extra)
    configs = {c.agent.name: c.config(0, 0.01, "final") for c in load_text(tmp_path, text).cells}
    assert configs["maxrl"]["budget"] == 32 * 8 * 4
    assert configs["maxrl-n8"]["budget"] == 32 * 8 * 8


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("budget", "10", "a setting every agent shares"),
        ("eval_every", "10", "a setting every agent shares"),
        ("early_stopping", "false", "a setting every agent shares"),
        ("eval_samples", "4", "a setting every agent shares"),
        ("pass_k", "2", "a setting every agent shares"),
        ("steps", "10", "a suite setting"),
        ("evaluations", "5", "a suite setting"),
        ("rollouts_per_step", "64", "a suite setting"),
        ("tune_budget", "512", "a suite setting"),
        ("seeds", "[1]", "a suite setting"),
    ],
)
@pytest.mark.parametrize("agent", ['estimator = "maxrl"', 'sb3 = "PPO"'])
def test_an_agent_table_cannot_set_suite_settings(
    tmp_path: Path, key: str, value: str, why: str, agent: str
) -> None:
    extra = f"[agents.x]\n{agent}\n{key} = {value}\n"
    text = suite_text(agents='["x"]', extra=extra)
    message = (
        rf"\[agents\.x\]: agent 'x' sets {key}=.*, but {key} is {why}.*; set it in "
        r"\[settings\] or in an \[\[experiments\]\] table instead"
    )
    with pytest.raises(SuiteError, match=message):
        load_text(tmp_path, text)


@pytest.mark.parametrize(
    ("agent", "settings", "message"),
    [
        (
            'estimator = "maxrl"\nnum_groups = 4',
            "rollouts_per_step = 64",
            "agent 'x' sets num_groups=4, but rollouts_per_step=64 derives num_groups here",
        ),
        (
            'estimator = "maxrl"\ngroup_size = 8',
            "",
            "agent 'x' sets group_size=8, which this experiment sweeps",
        ),
        (
            'sb3 = "PPO"\nhyperparams = { learning_rate = 0.001 }',
            "",
            "agent 'x' sets hyperparams.learning_rate=0.001, which its learning-rate grid would "
            "replace; set lr",
        ),
    ],
)
def test_agent_settings_that_would_be_ignored_are_refused(
    tmp_path: Path, agent: str, settings: str, message: str
) -> None:
    text = suite_text(agents='["x"]', settings=settings, extra=f"[agents.x]\n{agent}\n")
    text += "sweep.group_size = [4, 16]\n"
    with pytest.raises(SuiteError, match=message.replace("(", r"\(")):
        load_text(tmp_path, text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"agents": '["nope"]'}, "agent 'nope' is unknown"),
        ({"agents": '[{ name = "grpo" }]'}, "agents entries must be agent names"),
        ({"envs": '[{ id = "NoSuchEnv-v0" }]'}, "NoSuchEnv-v0"),
        ({"envs": '[{ id = "MaxRLRegression-v0", kwargs = { snrr = 1.0 } }]'}, "snrr"),
        ({"envs": '[{ id = "MaxRLRegression-v0", kwargs = { snr = -1.0 } }]'}, "snr=-1.0"),
        ({"settings": "seeds = []"}, "seeds=[]"),
        ({"settings": "tune_seeds = -1"}, "tune_seeds=-1"),
        ({"settings": "lr_grid = [0.0]"}, "lr_grid"),
        ({"settings": "bugdet = 10"}, "bugdet"),
        ({"settings": "pass_k = 128"}, "pass_k=128"),
        ({"extra": '[agents.x]\nsb3 = "PPO"\nestimator = "maxrl"'}, "exactly one"),
        ({"extra": '[agents.x]\nsb3 = "TRPO"'}, "sb3='TRPO'"),
        ({"extra": '[agents.x]\nestimator = "ppo"'}, "estimator='ppo'"),
        ({"extra": '[agents.x]\nestimator = "maxrl"\nlog_dir = "/tmp"'}, "log_dir"),
    ],
)
def test_bad_suites_fail_on_load(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(SuiteError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_text(tmp_path, suite_text(**kwargs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # An SB3 algorithm that does not support the action space.
        ({"agents": '["dqn"]'}, "algo='DQN' does not support the box action space"),
        (
            {"agents": '["sac"]', "envs": '[{ id = "MaxRLClassification-v0" }]'},
            "algo='SAC' does not support the discrete action space",
        ),
        (
            {"agents": '["td3"]', "envs": '[{ id = "MaxRLTokens-v0" }]'},
            "algo='TD3' does not support the discrete",
        ),
        # Budgets smaller than one step / one update.
        ({"settings": "budget = 16"}, "budget=16"),
        ({"agents": '["ppo"]', "settings": "budget = 512"}, "smaller than one PPO update"),
        ({"agents": '["a2c"]', "settings": "budget = 8"}, "smaller than one A2C update"),
        # A bad SB3 hyperparameter and a bad TrainConfig field value.
        (
            {"extra": '[agents.p]\nsb3 = "PPO"\nhyperparams = { n_stepz = 8 }', "agents": '["p"]'},
            "n_stepz",
        ),
        ({"settings": 'device = "tpu"'}, "device='tpu'"),
        ({"settings": "order = 9"}, "order=9"),
    ],
)
def test_bad_runs_fail_validation(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(SuiteError, match=message):  # when loading, or when validating
        validate_suite(load_text(tmp_path, suite_text(**kwargs)))


def test_unknown_suite_lists_the_shipped_ones() -> None:
    with pytest.raises(SuiteError, match="quick"):
        load_suite("no-such-suite")


def test_tiny_suite_text_is_valid(tmp_path: Path, tiny_suite_text: str) -> None:
    suite = load_suite(str(write_suite(tmp_path, tiny_suite_text)))
    # maxrl: 2 rates x (tune, final); a2c-small: its one rate, final only.
    assert validate_suite(suite) == 5


def test_sb3_validation_runs_are_checked_at_every_grid_point(tmp_path: Path) -> None:
    """An SB3 setting that breaks only the tuning runs fails before anything runs."""
    # PPO updates every 16 x 64 = 1024 env steps: budget 1024 is one update, 512 none.
    suite = load_text(tmp_path, suite_text(agents='["ppo"]', settings="tune_budget = 512"))
    (cell,) = suite.cells
    assert cell.needs_tuning and cell.lr_grid == pytest.approx([1e-4, 3e-4, 9e-4])
    with pytest.raises(
        SuiteError,
        match=r"agent 'ppo', validation run at lr=0\.0001: budget=512 rollouts is smaller "
        "than one PPO update",
    ):
        validate_suite(suite)
    # Valid: every rate of the grid, as a validation run and as a reported run.
    suite = load_text(tmp_path, suite_text(agents='["ppo"]', settings="tune_budget = 1024"))
    assert validate_suite(suite) == 3 * 2


WORD_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "seven": 7, "nine": 9}


@pytest.mark.parametrize("name", [n for n in SHIPPED + SECOND_EDITION if n != "full"])
def test_suite_descriptions_state_their_own_settings(name: str) -> None:
    """A description's "N-point grid" and "S steps of B contexts" match the settings."""
    import re

    suite = load_suite(name)
    text = " ".join(suite.description.split())
    grids = re.findall(r"(\w+)-point (?:learning-rate )?grid", text)
    assert grids, "every shipped suite says which grid its agents pick from"
    points = {int(cell.settings["lr_points"]) for cell in suite.cells}
    assert {WORD_NUMBERS[word] for word in grids} == points
    for steps, contexts in re.findall(r"(\d+) steps of (\d+) contexts", text):
        framed = [cell for cell in suite.cells if cell.settings["framing"] == "steps"]
        assert framed and {(c.rl_steps(), int(c.settings["num_groups"])) for c in framed} == {
            (int(steps), int(contexts))
        }


def test_no_stale_wording_about_untuned_sb3_or_removed_suites() -> None:
    root = Path(__file__).resolve().parents[2]
    files = ["benchmarks/suite.py", "benchmarks/run.py", "docs/benchmarks.md"]
    files += [f"benchmarks/suites/{name}.toml" for name in SHIPPED + SECOND_EDITION]
    for path in files:
        text = " ".join((root / path).read_text(encoding="utf-8").split())
        for stale in ("rollout-scaling", "need none", "needing no validation", "once per seed"):
            assert stale not in text, (path, stale)


def test_agent_family_table_answers_what_the_report_and_runner_ask() -> None:
    """Ours and SB3 from one table: ignored settings (the report's), keys, queue order."""
    from benchmarks.families import AGENT_FAMILIES, get_family, ignored_settings
    from benchmarks.suite import SB3, _ours_only

    assert list(AGENT_FAMILIES)[:2] == ["ours", "sb3"]
    # What the report asks (report.rows.ignored_settings): the supervised objectives ignore N.
    for method in ("supervised", "supervised-ml"):
        assert ignored_settings("ours", method) == ("group_size",)
    assert ignored_settings("ours", "maxrl") == ()
    assert ignored_settings("sb3", "PPO") == _ours_only() and "group_size" in _ours_only()
    assert SB3.queue_first and not get_family("ours").queue_first
    assert (
        get_family("sb3").rollouts_per_step(
            {"env_id": "MaxRLRegression-v0", "algo": "PPO", "num_envs": 4}, "PPO"
        )
        == 4 * 64
    )
    assert (
        get_family("ours").rollouts_per_step({"group_size": 8, "num_groups": 3}, "supervised") == 3
    )
    with pytest.raises(ValueError, match="family='nope' is not supported; allowed: 'ours', 'sb3'"):
        get_family("nope")
