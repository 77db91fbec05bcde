"""Results as data: the tidy table and rliable's layout round-trip the committed rows."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import stats
from benchmarks.export import to_rliable
from benchmarks.report import main as report_main
from benchmarks.report import normalized_score
from benchmarks.results import RESULTS_FILE, latest_rows, read_rows, to_frame

pd = pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "results" / "low-snr-offpolicy"


@pytest.fixture(scope="module")
def committed_rows() -> list[dict]:
    return list(latest_rows(read_rows(COMMITTED / RESULTS_FILE)).values())


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_frame_holds_every_metric_of_every_committed_row(committed_rows) -> None:
    frame = to_frame(COMMITTED)
    expected = {
        (row["run_id"], metric): float(value)
        for row in committed_rows
        for metric, value in row["metrics"].items()
    }
    got = {(r.run_id, r.metric): r.value for r in frame.itertuples()}
    assert len(frame) == len(expected) == len(got)
    assert got.keys() == expected.keys()
    assert all(_same(got[key], value) for key, value in expected.items())
    # Labels come along: one seed, agent and sweep value per run, as in its row.
    by_id = {row["run_id"]: row for row in committed_rows}
    first = frame.iloc[0]
    row = by_id[first.run_id]
    assert (first.agent, first.seed, first["sweep.snr"]) == (
        row["agent"],
        row["seed"],
        row["sweep"]["snr"],
    )
    # Committed rows predate provenance: its columns are there, empty.
    assert frame.git_commit.isna().all()


def test_curve_frame_holds_every_evaluation(committed_rows) -> None:
    frame = to_frame(COMMITTED, curves=True)
    assert len(frame) == sum(len(v) for row in committed_rows for _, v in row["curve"])
    row = committed_rows[7]
    mine = frame[(frame.run_id == row["run_id"]) & (frame.metric == row["select_metric"])]
    assert list(mine.rollouts) == [float(x) for x, _ in row["curve"]]
    assert list(mine.value) == [float(v[row["select_metric"]]) for _, v in row["curve"]]


def test_rliable_scores_are_the_normalized_final_rows_of_the_report() -> None:
    scores, tasks = to_rliable(COMMITTED, return_tasks=True)
    frame = to_frame(COMMITTED)
    rows = {row["run_id"]: row for row in read_rows(COMMITTED / RESULTS_FILE)}
    final = frame[(frame.phase == "final") & (frame.metric == frame.select_metric)]
    final = final.assign(task=final.experiment + ": " + final.env_label)
    assert len(tasks) == 3 and set(scores) == set(final.agent)
    for agent, matrix in scores.items():
        assert matrix.shape == (5, len(tasks))
        for j, task in enumerate(tasks):
            mine = final[(final.agent == agent) & (final.task == task)]
            expected = [
                normalized_score(r.metric, r.value, rows[r.run_id]["references"])
                for r in mine.sort_values("seed").itertuples()
            ]
            np.testing.assert_allclose(matrix[:, j], expected[: matrix.shape[0]])
    # ... and they are the committed report's aggregate inputs: its IQM column.
    report = (COMMITTED / "report.md").read_text(encoding="utf-8")
    for agent, matrix in scores.items():
        quoted = re.search(rf"^\| {agent} \| ([0-9.]+) \[", report, re.M)
        assert quoted and f"{float(stats.iqm(matrix)):.3g}" == quoted.group(1)


def test_report_cli_writes_the_csv(tiny_copy, tmp_path: Path, capsys) -> None:
    _, results_dir = tiny_copy
    out = tmp_path / "tables" / "rows.csv"
    assert report_main([str(results_dir), "--csv", str(out)]) == 0
    written = pd.read_csv(out)
    frame = to_frame(results_dir)
    assert len(written) == len(frame) > 0
    np.testing.assert_allclose(written.value, frame.value)
    assert list(written.columns) == list(frame.columns)
    assert report_main([str(results_dir), str(results_dir), "--csv", str(out)]) == 2
    assert "--csv is for one directory" in capsys.readouterr().err


def test_frame_without_pandas_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"maxrl-bench\[data\]"):
        to_frame(COMMITTED)
