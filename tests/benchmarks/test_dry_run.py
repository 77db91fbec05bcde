"""--dry-run lists only the runs a rerun would start, and says how many are finished."""

from __future__ import annotations

from pathlib import Path

from benchmarks.results import RESULTS_FILE, append_row, read_rows
from benchmarks.run import main


def _keep(results_dir: Path, keep) -> list[dict]:
    path = results_dir / RESULTS_FILE
    rows = read_rows(path)
    path.unlink()
    for row in rows:
        if keep(row):
            append_row(path, row)
    return [row for row in rows if not keep(row)]


def test_dry_run_of_a_finished_suite_lists_nothing(tiny_copy, capsys) -> None:
    suite, results_dir = tiny_copy
    before = (results_dir / RESULTS_FILE).read_bytes()
    assert main([str(suite), "--out", str(results_dir.parent), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 runs are finished" in out and "0 would run now" in out
    assert " seed=" not in out and "nothing to run" in out
    assert (results_dir / RESULTS_FILE).read_bytes() == before  # read only


def test_dry_run_lists_the_missing_runs_only(tiny_copy, capsys) -> None:
    suite, results_dir = tiny_copy
    out_dir = str(results_dir.parent)
    # One reported SB3 run lost: only it would run.
    (lost,) = _keep(results_dir, lambda r: not (r["agent"] == "a2c-small" and r["seed"] == 1))
    assert main([str(suite), "--out", out_dir, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "5 of 6 runs are finished" in out and "1 would run now" in out
    listed = [line for line in out.splitlines() if " seed=" in line]
    assert listed == [f"  final main | {lost['env_label']} | a2c-small lr={lost['lr']:g} seed=1"]
    # A validation run of maxrl lost: it would run, and the cell's reported runs wait for it.
    _keep(
        results_dir,
        lambda r: not (r["agent"] == "maxrl" and r["phase"] == "tune" and r["lr"] == 0.03),
    )
    assert main([str(suite), "--out", out_dir, "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = [line for line in out.splitlines() if " seed=" in line]
    assert len(listed) == 2 and "tune" in listed[0] and "maxrl lr=0.03" in listed[0]
    assert "plus 2 reported runs at the learning rates chosen on validation" in out
    assert "2 of 6 runs are finished" in out
