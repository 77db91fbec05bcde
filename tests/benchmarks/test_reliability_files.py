"""Second round of attacks on files, results and reports: links never followed, no code run by
a dry run, stale or malformed rows never counted, damaged files and odd names named.

Cheap by design: one short training run (the sweep that sets aside a bad ``final.json``);
everything else fails, or is built by hand, before anything trains.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from test_reliability import MINI_SUITE, read_only, write_mini

from agents.runs import (
    CorruptFileError,
    LinkError,
    RunDirectory,
    atomic_write_json,
    atomic_write_text,
)
from benchmarks import results as results_module
from benchmarks.jobs import execute_job, run_dir
from benchmarks.report import build_points, build_report, mean_ci
from benchmarks.report import main as report_main
from benchmarks.results import (
    RESULTS_FILE,
    CorruptRowsError,
    append_row,
    latest_rows,
    pack_rows,
    read_rows,
)
from benchmarks.run import build_parser, main, suite_meta
from benchmarks.suite import SuiteError, load_suite

METRIC = "eval/log_likelihood"
PRECIOUS = b"precious bytes outside the output directory\n"


def precious(tmp_path: Path) -> Path:
    """A file outside every output directory that a followed link would damage."""
    target = tmp_path / "elsewhere" / "precious.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(PRECIOUS)
    return target


def row(run_id: str, seed: int, value: float, **extra) -> dict:
    """A final ok row of agent ``maxrl`` (cell ``c``) with a two-point curve."""
    base = {
        "run_id": run_id,
        "cell": "c",
        "experiment": "e",
        "env_label": "env",
        "env_base": "env",
        "agent": "maxrl",
        "role": "maxrl",
        "family": "ours",
        "lr": 0.01,
        "seed": seed,
        "phase": "final",
        "status": "ok",
        "sweep": {},
        "select_metric": METRIC,
        "columns": [METRIC],
        "target_fraction": 0.9,
        "metrics": {METRIC: value},
        "curve": [[0, {METRIC: -3.0}], [100, {METRIC: value}]],
    }
    base.update(extra)
    return base


def results_dir_with(folder: Path, rows: list[dict], seeds: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for item in rows:
        append_row(folder / RESULTS_FILE, item)
    meta = {"suite": "s", "experiments": ["e"], "cells": {"c": {"seeds": list(range(seeds))}}}
    (folder / "suite.json").write_text(json.dumps(meta))
    return folder


# --------------------------------------------------------------------------------------------
# 1. No write follows a symbolic link
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [".lock", "results.jsonl", "results.jsonl.gz", "suite.json", "report.md", "logs"]
)
def test_the_runner_refuses_a_linked_entry_and_leaves_its_target(
    tmp_path: Path, capsys, name: str
) -> None:
    target = precious(tmp_path)
    suite = write_mini(tmp_path)
    results_dir = tmp_path / "out" / "mini"
    results_dir.mkdir(parents=True)
    (results_dir / name).symlink_to(target if name != "logs" else target.parent)
    code = main([str(suite), "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{results_dir / name} is a symbolic link" in err and "Traceback" not in err
    assert target.read_bytes() == PRECIOUS
    assert sorted(p.name for p in target.parent.iterdir()) == ["precious.txt"]
    assert not (results_dir / "logs").is_dir() or name == "logs"


def test_append_row_and_atomic_writes_refuse_links(tmp_path: Path) -> None:
    target = precious(tmp_path)
    for path in (tmp_path / "results.jsonl", tmp_path / "dangling.jsonl"):
        path.symlink_to(target if path.name == "results.jsonl" else tmp_path / "nowhere")
        with pytest.raises(LinkError, match="is a symbolic link"):
            append_row(path, {"run_id": "a", "status": "failed"})
    (tmp_path / "final.json").symlink_to(target)
    with pytest.raises(LinkError, match="final.json is a symbolic link"):
        atomic_write_json(tmp_path / "final.json", {"metrics": {}})
    # A planted temporary file of the atomic write is removed, never written through.
    (tmp_path / f".report.md.tmp{os.getpid()}").symlink_to(target)
    atomic_write_text(tmp_path / "report.md", "text")
    assert (tmp_path / "report.md").read_text() == "text"
    assert target.read_bytes() == PRECIOUS and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("name", ["config.json", "final.json", "checkpoint.pt", "run"])
def test_a_run_directory_entry_that_is_a_link_is_refused(tmp_path: Path, name: str) -> None:
    target = precious(tmp_path)
    folder = tmp_path / "logs" / "run"
    folder.parent.mkdir(parents=True)
    if name == "run":
        folder.symlink_to(target.parent, target_is_directory=True)
    else:
        folder.mkdir()
        (folder / name).symlink_to(target)
    directory = RunDirectory(folder, {"lr": 0.1})
    with pytest.raises(LinkError, match="is a symbolic link"):
        directory.prepare(resume=True)
    assert target.read_bytes() == PRECIOUS
    assert sorted(p.name for p in target.parent.iterdir()) == ["precious.txt"]


def test_a_linked_experiment_folder_fails_the_run_and_writes_nothing_outside(
    tmp_path: Path,
) -> None:
    target = precious(tmp_path)
    suite = load_suite(write_mini(tmp_path))
    job = suite.initial_jobs()[0].to_dict()
    results_dir = tmp_path / "out"
    folder = run_dir(results_dir, job).parent
    folder.parent.mkdir(parents=True)
    folder.symlink_to(target.parent, target_is_directory=True)
    result = execute_job(job, str(results_dir))
    assert result["status"] == "failed" and "is a symbolic link" in result["error"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["precious.txt"]


@pytest.mark.parametrize("name", [".lock", "results.jsonl", "results.jsonl.gz"])
def test_pack_refuses_linked_rows_files(tmp_path: Path, capsys, name: str) -> None:
    target = precious(tmp_path)
    results_dir = results_dir_with(tmp_path / "r", [row("a", 0, -1.0)])
    if name == "results.jsonl":
        (results_dir / name).unlink()
    (results_dir / name).symlink_to(target)
    assert results_module.main(["pack", str(results_dir)]) == 2
    assert f"{results_dir / name} is a symbolic link" in capsys.readouterr().err
    assert target.read_bytes() == PRECIOUS


@pytest.mark.parametrize("name", ["report.md", "plots", "plots/curves_e.png"])
def test_the_report_refuses_a_linked_report_or_plot(tmp_path: Path, capsys, name: str) -> None:
    target = precious(tmp_path)
    results_dir = results_dir_with(tmp_path / "r", [row(f"a{s}", s, -1.0 - s) for s in range(3)])
    (results_dir / "plots").mkdir(exist_ok=name != "plots")
    if name == "plots":
        (results_dir / "plots").rmdir()
    (results_dir / name).symlink_to(target if name != "plots" else target.parent)
    assert report_main([str(results_dir)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert target.read_bytes() == PRECIOUS
    assert sorted(p.name for p in target.parent.iterdir()) == ["precious.txt"]


@pytest.mark.parametrize("kind", ["folder", "pipe"])
@pytest.mark.parametrize("name", [".lock", "results.jsonl", "results.jsonl.gz", "suite.json"])
def test_a_folder_or_pipe_where_a_file_belongs_is_named_and_never_blocks(
    tmp_path: Path, capsys, name: str, kind: str
) -> None:
    suite = write_mini(tmp_path)
    results_dir = tmp_path / "out" / "mini"
    results_dir.mkdir(parents=True)
    if name == "suite.json":  # the report reads it; the runner replaces it
        append_row(results_dir / RESULTS_FILE, row("a", 0, -1.0))
    (results_dir / name).mkdir() if kind == "folder" else os.mkfifo(results_dir / name)
    if name == "suite.json":
        assert report_main([str(results_dir)]) == 2
        assert "suite.json is corrupt (not a regular file" in capsys.readouterr().err
        return
    code = main([str(suite), "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1"])
    assert code == 2
    assert f"{results_dir / name} is not a regular file" in capsys.readouterr().err
    assert not (results_dir / "logs").exists()


@pytest.mark.parametrize("name", ["logs", "plots"])
def test_a_file_where_a_folder_belongs_is_named(tmp_path: Path, capsys, name: str) -> None:
    suite = write_mini(tmp_path)
    results_dir = tmp_path / "out" / "mini"
    results_dir.mkdir(parents=True)
    (results_dir / name).write_text("x")
    assert main([str(suite), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert f"{results_dir / name} is not a folder" in capsys.readouterr().err
    assert not (results_dir / RESULTS_FILE).exists()


# --------------------------------------------------------------------------------------------
# 2. Trust: a dry run imports nothing unless asked
# --------------------------------------------------------------------------------------------


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module that writes a marker file when imported: (module name, marker path)."""
    name = f"marker_plugin_{abs(hash(str(tmp_path))) % 10**8}"
    marker = tmp_path / "imported.txt"
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    yield name, marker
    sys.modules.pop(name, None)


@pytest.mark.parametrize("how", ["imports", "module-id"])
def test_a_dry_run_imports_no_plugin(tmp_path: Path, capsys, plugin, how: str) -> None:
    module, marker = plugin
    text = MINI_SUITE
    if how == "imports":
        text = text.replace('description = "', f'imports = ["{module}"]\ndescription = "', 1)
    else:
        text = text.replace('id = "MaxRLRegression-v0"', f'id = "{module}:MaxRLRegression-v0"')
    suite = write_mini(tmp_path, text)
    out = tmp_path / "out"
    assert main([str(suite), "--dry-run", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--import-plugins" in err and "would import code" in err
    assert not marker.exists() and module not in sys.modules and not out.exists()
    # Asked explicitly, the dry run imports the plugin and validates the suite.
    assert main([str(suite), "--dry-run", "--import-plugins", "--out", str(out)]) == 0
    assert marker.read_text() == "ran" and not out.exists()


def test_the_help_states_the_trust_model(capsys) -> None:
    text = " ".join(build_parser().format_help().split())
    assert "suite files and results directories are code" in text
    assert "--dry-run imports nothing unless --import-plugins" in text
    with pytest.raises(SystemExit):
        report_main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "imports nothing from DIR" in out and "pickle" in out


# --------------------------------------------------------------------------------------------
# 3. Stale final rows of an earlier sweep
# --------------------------------------------------------------------------------------------

STALE_SUITE = MINI_SUITE.replace("seeds = [0, 1]", "seeds = [0, 1, 2]").replace(
    "lr_grid = [1e-2]", "lr_grid = [1e-2, 3e-2]\ntune_seeds = 1"
)
#: How the second sweep differs from the first; in each, the first chose 0.03, it 0.01.
CHANGES = {
    "lr_grid": ("lr_grid = [1e-2, 3e-2]", "lr_grid = [3e-3, 1e-2]"),
    "select_metric": ("tune_seeds = 1", 'tune_seeds = 1\nselect_metric = "eval/excess_mse"'),
    "tune_budget": ("tune_seeds = 1", "tune_seeds = 1\ntune_budget = 64"),
}


def sweep_rows(suite, tune_values: dict[float, float], chosen: float, finals: list[float]):
    """Rows of one sweep: validation rows scoring ``tune_values``, finals at ``chosen``."""
    (cell,) = suite.cells
    rows = []
    for job in suite.initial_jobs():
        value = tune_values.get(job.lr, -9.0)
        rows.append({**job.to_dict(), "status": "ok", "metrics": {m: value for m in job.columns}})
    for job, value in zip(suite.final_jobs(cell, chosen), finals, strict=True):
        metrics = {m: value for m in job.columns}
        rows.append({**job.to_dict(), "status": "ok", "metrics": metrics, "curve": []})
    return rows


@pytest.mark.parametrize("change", list(CHANGES))
def test_an_interrupted_sweep_counts_only_its_own_final_rows(tmp_path: Path, change: str) -> None:
    old_text, new_text = STALE_SUITE, STALE_SUITE.replace(*CHANGES[change])
    old = load_suite(write_mini(tmp_path / "old", old_text))
    new = load_suite(write_mini(tmp_path / "new", new_text))
    assert old.cells[0].key == new.cells[0].key  # the cell key ignores the change
    # excess_mse is lower-is-better: score 0.03 best under log_likelihood, 0.01 under mse.
    first = sweep_rows(old, {0.01: -2.0, 0.03: -1.0}, 0.03, [-1.9, -2.0, -2.1])
    second_scores = {0.01: -1.0, 0.003: -2.0} if change == "lr_grid" else {0.01: -3.0}
    if change == "select_metric":
        second_scores = {0.01: -1.0, 0.03: 5.0}  # mse: 0.01 is lower
    if change == "tune_budget":
        second_scores = {0.01: -1.0, 0.03: -2.0}
    second = sweep_rows(new, second_scores, 0.01, [-1.5, -1.55, -1.6])
    results_dir = tmp_path / "out"
    results_dir.mkdir()
    for item in [*first, *second]:
        append_row(results_dir / RESULTS_FILE, item)
    # The second sweep was interrupted: suite.json as written when it started.
    atomic_write_json(results_dir / "suite.json", suite_meta(new, "cmd"))
    report = build_report(results_dir, plots=False)
    (point,) = report.experiments["main"]
    result = point.agents["maxrl"]
    assert [r["lr"] for r in result.rows] == [0.01] * 3
    assert result.seeds_text() == "3"
    assert result.summary(METRIC).mean == pytest.approx(-1.55)


# --------------------------------------------------------------------------------------------
# 4. Missing or malformed metrics
# --------------------------------------------------------------------------------------------

BAD_METRICS = {
    "empty": {},
    "string": "x",
    "null": None,
    "values-not-numbers": {METRIC: "abc"},
    "a-boolean": {METRIC: True},
}


@pytest.mark.parametrize("case", list(BAD_METRICS))
def test_a_final_json_with_bad_metrics_is_a_corrupt_file(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    config = {"lr": 0.1}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "final.json").write_text(json.dumps({"metrics": BAD_METRICS[case]}))
    with pytest.raises(CorruptFileError, match=r"final.json is corrupt \(.*metric"):
        RunDirectory(folder, config).prepare(resume=True)


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One mini run trained to the end: (its job, the results directory)."""
    root = tmp_path_factory.mktemp("finished")
    job = load_suite(write_mini(root)).initial_jobs()[0].to_dict()
    results_dir = root / "out"
    assert execute_job(job, str(results_dir))["status"] == "ok"
    return job, results_dir


@pytest.mark.parametrize("metrics", [{}, {"rollouts": 128.0}], ids=["empty", "no-select-metric"])
def test_a_sweep_sets_aside_a_final_json_without_its_metrics_and_reruns(
    finished_job, tmp_path: Path, metrics: dict
) -> None:
    job, original = finished_job
    results_dir = tmp_path / "out"
    shutil.copytree(original, results_dir)
    final = run_dir(results_dir, job) / "final.json"
    record = json.loads(final.read_text())
    final.write_text(json.dumps({**record, "metrics": metrics}))
    result = execute_job(job, str(results_dir))
    assert result["status"] == "ok", result.get("error")
    assert job["select_metric"] in result["metrics"] and set(job["columns"]) <= set(
        result["metrics"]
    )
    assert "final.json is corrupt" in result["recovered"][0]
    assert (final.parent / "final.json.corrupt").exists()


@pytest.mark.parametrize(
    "bad",
    [
        {"status": "OK"},
        {"metrics": {}},
        {"metrics": "x"},
        {"metrics": None},
        {"metrics": {METRIC: "abc"}},
        {"metrics": {"other": 1.0}},
        {"curve": "zz"},
        {"experiment": None},
        {"seed": "1"},
    ],
    ids=["status-OK", "empty", "string", "null", "abc", "no-metric", "curve", "exp", "seed"],
)
def test_a_malformed_row_never_replaces_a_good_one_and_is_listed(tmp_path: Path, bad: dict) -> None:
    good = [row(f"r{s}", s, -1.0 - s) for s in range(3)]
    spoiled = {**row("r2", 2, -9.0), **bad}
    results_dir = results_dir_with(tmp_path / "r", [*good, spoiled])
    skipped: list = []
    latest = latest_rows(read_rows(results_dir / RESULTS_FILE), skipped)
    assert latest["r2"]["metrics"] == {METRIC: -3.0} and len(skipped) == 1
    text = build_report(results_dir, plots=False).markdown
    assert "## Rows left out" in text and "- row r2: " in text
    assert "| env | maxrl | 0.01 | 3 | **-2 ± 2.5** |" in text


def test_a_missing_seed_shows_of_how_many(tmp_path: Path) -> None:
    results_dir = results_dir_with(
        tmp_path / "r",
        [row("r0", 0, -1.0), row("r1", 1, -2.0), {**row("r2", 2, -3.0), "metrics": {}}],
    )
    assert report_main([str(results_dir)]) == 0
    text = (results_dir / "report.md").read_text()
    assert "| env | maxrl | 0.01 | 2 of 3 | **-1.5 ± 6.4** |" in text
    points = build_points([row("a", 0, -1.0), {**row("b", 1, -2.0), "status": "failed"}])
    result = points["e"][0].agents["maxrl"]
    result.expected = 3
    assert result.seeds_text() == "1 of 3, 1 failed"


# --------------------------------------------------------------------------------------------
# 5. Suite files that say one thing and run another
# --------------------------------------------------------------------------------------------

AGENT = "[agents.{name}]\n{what}\n\n[[experiments]]"
SAYS_ANOTHER = {
    "builtin-name": (
        AGENT.format(name="grpo", what='estimator = "maxrl"'),
        "grpo",
        "its name says",
    ),
    "prefixed-name": (
        AGENT.format(name="reinforce-fast", what='estimator = "maxrl"'),
        "reinforce-fast",
        "its name says 'reinforce'",
    ),
    "sb3-name": (AGENT.format(name="ppo-big", what='sb3 = "A2C"'), "ppo-big", "its name says"),
    "binary-name": (
        AGENT.format(name="maxrl-binary-x", what='estimator = "maxrl"'),
        "maxrl-binary-x",
        "its name says 'maxrl-binary'",
    ),
}


@pytest.mark.parametrize("case", list(SAYS_ANOTHER))
def test_an_agent_named_after_another_estimator_is_refused(tmp_path: Path, case: str) -> None:
    table, name, message = SAYS_ANOTHER[case]
    text = MINI_SUITE.replace("[[experiments]]", table).replace('["maxrl"]', f'["{name}"]')
    with pytest.raises(SuiteError, match=message):
        load_suite(write_mini(tmp_path, text))


ENV = '{{ id = "MaxRLRegression-v0", kwargs = {{ {kwargs} }}, label = "{label}" }}'
POOLS = "num_contexts = 64, num_test_contexts = 16, num_validation_contexts = 16"
ODD_SUITES = {
    "labels-of-one-env": (
        [ENV.format(kwargs=POOLS, label="a"), ENV.format(kwargs=POOLS, label="b")],
        "main",
        "are the same environment",
    ),
    "one-label-two-envs": (
        [ENV.format(kwargs=POOLS, label="a"), ENV.format(kwargs=POOLS + ", snr = 0.5", label="a")],
        "main",
        "two env entries are labelled 'a'",
    ),
    "experiment-dotdot": (None, "..", "a plain file name"),
    "experiment-dot": (None, ".", "a plain file name"),
    "experiment-slash": (None, "a/../../b", "a plain file name"),
    "experiment-empty": (None, "", "a plain file name"),
    "experiment-newline": (None, "a\\nb", "no control characters"),
}


@pytest.mark.parametrize("case", list(ODD_SUITES))
def test_odd_environments_and_experiment_names_are_refused(
    tmp_path: Path, capsys, case: str
) -> None:
    envs, experiment, message = ODD_SUITES[case]
    text = MINI_SUITE.replace('name = "main"', f'name = "{experiment}"')
    if envs:
        start = text.index("envs = [")
        end = text.index("\n", start)
        text = text[:start] + f"envs = [{', '.join(envs)}]" + text[end:]
    suite = write_mini(tmp_path, text)
    with pytest.raises(SuiteError, match=message):
        load_suite(suite)
    out = tmp_path / "out"
    assert main([str(suite), "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("name", ["..", ".", "", "a/../../b", "..\\..\\x"])
def test_a_run_directory_never_leaves_logs(tmp_path: Path, name: str) -> None:
    for job in ({"experiment": name, "run_id": "r"}, {"experiment": "e", "run_id": name}):
        folder = run_dir(tmp_path, job)
        assert folder.resolve().is_relative_to((tmp_path / "logs").resolve())
        assert len(folder.relative_to(tmp_path / "logs").parts) == 2


# --------------------------------------------------------------------------------------------
# 6. A damaged results.jsonl.gz
# --------------------------------------------------------------------------------------------


def damaged_pack(folder: Path, how: str) -> tuple[Path, int]:
    """A packed results directory of 40 rows, then damaged; (dir, rows still readable)."""
    results_dir = results_dir_with(folder, [row(f"r{i}", i % 3, -1.0 - i) for i in range(40)])
    pack_rows(results_dir)
    packed = results_dir / "results.jsonl.gz"
    data = packed.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "garbage": b"\x89PNG\r\n\x1a\n" + os.urandom(64),
        "empty": b"",
        "bad-crc": data[:-8] + bytes(8),
    }[how]
    packed.write_bytes(damaged)
    # Truncated: some rows of the first half (-1: more than none, fewer than all 40).
    readable = {"truncated": -1, "garbage": 0, "empty": 0, "bad-crc": 40}[how]
    return results_dir, readable


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "bad-crc"])
def test_a_damaged_packed_file_is_named_and_its_readable_rows_kept(
    tmp_path: Path, capsys, how: str
) -> None:
    results_dir, readable = damaged_pack(tmp_path / "out" / "mini", how)
    packed = results_dir / "results.jsonl.gz"
    with pytest.raises(CorruptRowsError) as caught:
        read_rows(results_dir / RESULTS_FILE)
    kept = len(caught.value.readable)
    assert kept == readable or (readable == -1 and 0 < kept < 40)
    suite = write_mini(tmp_path)
    runner = [str(suite), "--out", str(tmp_path / "out"), "--no-progress"]
    for command in (
        lambda: main(runner),
        lambda: report_main([str(results_dir)]),
        lambda: results_module.main(["pack", str(results_dir)]),
    ):
        assert command() == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{packed} is corrupt (" in err[0]
        assert f"python -m benchmarks.results repair {results_dir}" in err[0]
    assert results_module.main(["repair", str(results_dir)]) == 0
    assert (results_dir / "results.jsonl.gz.corrupt").exists()
    assert len(read_rows(results_dir / RESULTS_FILE)) == kept
    assert report_main([str(results_dir)]) == 0


# --------------------------------------------------------------------------------------------
# 7. Malformed suite.json, malformed rows, huge values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        ({"run_ids": 5}, "run_ids"),
        ({"cells": {"k": 5}}, "cells"),
        ({"cells": [1, 2]}, "cells"),
        ({"cells": {"c": {"seeds": "0"}}}, "seeds"),
        ({"cells": {"c": {"seeds": [0], "final_ids": [[0.1, 5]]}}}, "final_ids"),
        ({"agents": 5}, "agents"),
        ({"experiments": "e"}, "experiments"),
        ({"command": 5}, "command"),
    ],
    ids=["run_ids", "cell-5", "cells-list", "seeds", "final_ids", "agents", "exps", "command"],
)
def test_a_malformed_suite_json_is_named(tmp_path: Path, capsys, meta: dict, field: str) -> None:
    results_dir = results_dir_with(tmp_path / "r", [row(f"r{s}", s, -1.0) for s in range(3)])
    (results_dir / "suite.json").write_text(json.dumps({"suite": "s", **meta}))
    assert report_main([str(results_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{results_dir / 'suite.json'} is corrupt (" in err and f"'{field}'" in err
    assert not (results_dir / "report.md").exists()


@pytest.mark.parametrize("value", [-1e300, 1e308, -1.7e308])
def test_a_huge_finite_metric_is_reported(tmp_path: Path, value: float) -> None:
    results_dir = results_dir_with(
        tmp_path / "r", [row("r0", 0, value), row("r1", 1, value / 2), row("r2", 2, -1.0)]
    )
    assert report_main([str(results_dir)]) == 0
    mean, half = mean_ci([value, value / 2, -1.0])
    assert mean == pytest.approx(value / 3 + value / 6 - 1.0 / 3)
    assert half > 0
    assert f"{mean:.4g}" in (results_dir / "report.md").read_text()


# --------------------------------------------------------------------------------------------
# 8. pack: no flag it lacks, idempotent after a kill between its write and its delete
# --------------------------------------------------------------------------------------------


def test_pack_on_a_read_only_directory_offers_a_way_out_it_has(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    results_dir = results_dir_with(tmp_path / "r", [row("a", 0, -1.0)])
    before = (results_dir / RESULTS_FILE).read_bytes()
    with read_only(results_dir, monkeypatch):
        assert results_module.main(["pack", str(results_dir)]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and "--out" not in err and "pack the copy" in err
    assert (results_dir / RESULTS_FILE).read_bytes() == before


def test_pack_after_a_kill_between_its_write_and_its_delete_stores_each_row_once(
    tmp_path: Path,
) -> None:
    rows = [row(f"r{i}", i, -1.0 - i) for i in range(5)]
    results_dir = results_dir_with(tmp_path / "r", rows)
    plain = (results_dir / RESULTS_FILE).read_bytes()
    pack_rows(results_dir)
    (results_dir / RESULTS_FILE).write_bytes(plain)  # the delete never happened
    packed = pack_rows(results_dir)
    stored = gzip.decompress(packed.read_bytes()).splitlines()
    assert len(stored) == 5 and [json.loads(x)["run_id"] for x in stored] == [
        f"r{i}" for i in range(5)
    ]
    again = packed.read_bytes()
    pack_rows(results_dir)
    assert packed.read_bytes() == again  # packing twice changes nothing


def test_a_repair_killed_before_its_write_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results_dir, _ = damaged_pack(tmp_path / "r", "bad-crc")
    damaged = (results_dir / "results.jsonl.gz").read_bytes()

    def killed(*args) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(results_module, "_write_packed", killed)
        with pytest.raises(KeyboardInterrupt):
            results_module.repair_rows(results_dir)
    # The damaged file is still in place (and a copy kept): repairing again keeps all 40 rows.
    assert (results_dir / "results.jsonl.gz").read_bytes() == damaged
    assert results_module.repair_rows(results_dir)[1] == 40
    assert len(read_rows(results_dir / RESULTS_FILE)) == 40
