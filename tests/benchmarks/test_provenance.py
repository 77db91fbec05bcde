"""Provenance in new rows and suite.json; committed records do not churn when nothing changed."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agents.runs import read_json
from benchmarks import provenance
from benchmarks.results import RESULTS_FILE, read_rows
from benchmarks.run import SUITE_FILE, main

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"python", "packages", "git_commit", "git_dirty", "platform", "device", "threads"}


def _check(record: dict, device: str, threads: int) -> None:
    assert set(record) == FIELDS
    assert set(record["packages"]) == set(provenance.PACKAGES)
    for name in ("torch", "gymnasium", "stable-baselines3", "numpy"):
        assert record["packages"][name], name
    assert record["python"].count(".") == 2
    assert record["device"] == device and record["threads"] == threads


def test_new_rows_and_suite_json_carry_provenance(tiny_run: Path) -> None:
    rows = read_rows(tiny_run / RESULTS_FILE)
    assert rows
    for row in rows:
        _check(row["provenance"], "cpu", 1)
    meta = read_json(tiny_run / SUITE_FILE)
    _check(meta["provenance"], "cpu", 1)
    commit = meta["provenance"]["git_commit"]
    assert commit is None or len(commit) == 40


def test_git_commit_is_none_outside_a_checkout(tmp_path: Path) -> None:
    provenance.git_state.cache_clear()
    try:
        assert provenance.git_state(str(tmp_path)) == (None, None)
        # A copy inside another repository (a venv in some project) is not that project.
        _git(tmp_path, "init", "-q")
        _git(
            tmp_path,
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "x",
            "--allow-empty",
        )
        (tmp_path / "site-packages").mkdir()
        provenance.git_state.cache_clear()
        assert provenance.git_state(str(tmp_path / "site-packages")) == (None, None)
        commit, dirty = provenance.git_state(str(tmp_path))
        assert len(commit) == 40 and dirty is False
    finally:
        provenance.git_state.cache_clear()
    assert provenance.package_version("no-such-distribution-x") is None


def test_sb3_runs_write_the_hparams_record_with_pass_at_k(tiny_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    row = next(r for r in read_rows(tiny_run / RESULTS_FILE) if r["family"] == "sb3")
    events = EventAccumulator(str(tiny_run / row["run_dir"]), size_guidance={"scalars": 0})
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["algo"].string_value == "A2C"
    assert json.loads(start.session_start_info.hparams["hyperparams"].string_value)["n_steps"] == 8
    (event,) = events.Scalars("hparam/pass@4")
    assert event.value == pytest.approx(row["metrics"]["eval/pass@4"])


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
    ).stdout


def test_a_rerun_that_runs_nothing_changes_no_committed_file(tmp_path: Path, monkeypatch) -> None:
    """A copy of a committed suite, rerun as its suite.json says: every file stays as it was."""
    suite = "low-snr-offpolicy"
    copy = tmp_path / "docs" / "results" / suite
    # The committed files only (a checkout may hold gitignored plots/ or a .lock there).
    shutil.copytree(
        ROOT / "docs" / "results" / suite, copy, ignore=shutil.ignore_patterns("plots", ".*")
    )
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "committed")
    command = read_json(copy / SUITE_FILE)["command"].split()
    assert command[:4] == ["python", "-m", "benchmarks.run", suite]
    # As committed (--out docs/results), with other flags: the report keeps the recorded ones.
    monkeypatch.chdir(tmp_path)
    assert main([suite, "--out", "docs/results", "--no-progress", "--workers", "1"]) == 0
    assert _git(tmp_path, "status", "--porcelain", "--untracked-files=no") == ""
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.name in before} == before
    assert {"suite.json", "report.md", "results.jsonl.gz"} <= before.keys()
    assert filecmp.cmp(copy / SUITE_FILE, ROOT / "docs" / "results" / suite / SUITE_FILE, False)
