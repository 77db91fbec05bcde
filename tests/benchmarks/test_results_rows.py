"""Result rows: atomic appends, torn-line tolerance, latest row per run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from benchmarks.results import (
    RESULTS_FILE,
    append_row,
    encode_row,
    finished_ids,
    latest_rows,
    main,
    packed_path,
    read_rows,
)


def test_append_and_read_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "results.jsonl"
    rows = [{"run_id": f"r{i}", "status": "ok", "metrics": {"eval/x": i / 3}} for i in range(3)]
    for row in rows:
        append_row(path, row)
    assert read_rows(path) == rows
    assert path.read_bytes().count(b"\n") == 3


def test_one_line_per_row_even_with_newlines_in_values(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    append_row(path, {"run_id": "a", "error": "line one\nline two", "status": "failed"})
    assert len(path.read_bytes().splitlines()) == 1
    assert read_rows(path)[0]["error"] == "line one\nline two"


def test_non_finite_floats_are_strict_json(tmp_path: Path) -> None:
    line = encode_row({"run_id": "a", "x": float("nan"), "y": [float("inf")]})
    data = json.loads(line)  # would fail on NaN tokens with a strict parser
    assert data["x"] == "nan" and data["y"] == ["inf"]
    assert b"NaN" not in line


def test_torn_last_line_is_ignored_and_next_append_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    append_row(path, {"run_id": "a", "status": "ok"})
    append_row(path, {"run_id": "b", "status": "ok"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])  # cut the second row mid-line
    assert [r["run_id"] for r in read_rows(path)] == ["a"]
    append_row(path, {"run_id": "c", "status": "ok"})
    assert [r["run_id"] for r in read_rows(path)] == ["a", "c"]


def test_append_is_a_single_write_on_an_append_fd(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "results.jsonl"
    calls: list[tuple[int, int]] = []
    real_write, real_open = os.write, os.open
    flags_seen: list[int] = []

    def spy_open(file, flags, *args):
        flags_seen.append(flags)
        return real_open(file, flags, *args)

    def spy_write(fd, data):
        calls.append((fd, len(data)))
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "write", spy_write)
    append_row(path, {"run_id": "a", "payload": "x" * 10_000})
    assert len(calls) == 1 and calls[0][1] == path.stat().st_size
    assert flags_seen and flags_seen[0] & os.O_APPEND


def test_latest_row_wins_and_finished_ids(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    append_row(path, {"run_id": "a", "status": "failed", "error": "boom"})
    append_row(path, {"run_id": "b", "status": "ok", "metrics": {"eval/x": 1.0}})
    append_row(path, {"run_id": "a", "status": "ok", "metrics": {"eval/x": 1.0}})
    latest = latest_rows(read_rows(path))
    assert latest["a"]["status"] == "ok"
    assert finished_ids(path) == {"a", "b"}
    assert read_rows(tmp_path / "missing.jsonl") == []


def test_packed_rows_are_read_first_and_a_resume_appends_beside_them(tmp_path) -> None:
    import gzip

    from benchmarks.results import pack_rows, packed_path, read_rows

    path = tmp_path / "results.jsonl"
    for i in range(3):
        append_row(path, {"run_id": f"r{i}", "value": i})
    packed = pack_rows(tmp_path)
    assert packed == packed_path(path) and not path.exists()
    assert [r["run_id"] for r in read_rows(path)] == ["r0", "r1", "r2"]
    first = packed.read_bytes()
    append_row(path, {"run_id": "r3", "value": 3})  # a resumed sweep writes the plain file
    assert [r["run_id"] for r in read_rows(path)] == ["r0", "r1", "r2", "r3"]
    pack_rows(tmp_path)
    assert len(gzip.decompress(packed.read_bytes()).splitlines()) == 4
    assert packed.read_bytes() != first and not path.exists()
    # The same rows always pack to the same bytes (no timestamp in the gzip header).
    again = pack_rows(tmp_path)
    assert again.read_bytes() == packed.read_bytes()


def test_pack_waits_for_no_one_a_held_lock_refuses_and_changes_nothing(tmp_path, capsys) -> None:
    """Packing takes the runner's lock: it cannot lose a row a running suite appends."""
    from benchmarks.results import LockedError, ResultsLock, main, pack_rows, packed_path

    path = tmp_path / "results.jsonl"
    append_row(path, {"run_id": "r0", "value": 0})
    before = path.read_bytes()
    with ResultsLock(tmp_path):  # a runner in the middle of a suite
        with pytest.raises(
            LockedError, match=f"in use by another maxrl-bench runner \\(pid {os.getpid()} on "
        ):
            pack_rows(tmp_path)
        assert main(["pack", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is in use by another maxrl-bench runner" in err
    assert "Traceback" not in err
    assert path.read_bytes() == before and not packed_path(path).exists()
    # Released: packing goes through, and leaves the lock free for the next runner.
    assert main(["pack", str(tmp_path)]) == 0
    assert packed_path(path).exists() and not path.exists()
    with ResultsLock(tmp_path):
        pass


def test_a_runner_started_while_packing_names_the_pack(tmp_path, monkeypatch) -> None:
    from benchmarks import results as results_module
    from benchmarks.results import LockedError, ResultsLock, pack_rows

    append_row(tmp_path / "results.jsonl", {"run_id": "r0"})
    real = results_module.read_rows
    seen = []

    def read_while_packing(path):
        with pytest.raises(LockedError, match="packing rows") as info:
            ResultsLock(tmp_path)
        seen.append(str(info.value))
        return real(path)

    monkeypatch.setattr(results_module, "read_rows", read_while_packing)
    pack_rows(tmp_path)
    assert len(seen) == 1 and "or use another --out" in seen[0]


def test_pack_names_a_missing_or_empty_directory(tmp_path, capsys) -> None:
    from benchmarks.results import main, pack_rows

    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="results_dir=.*nope.* is not a directory"):
        pack_rows(missing)
    assert not missing.exists()  # not created by the lock
    with pytest.raises(FileNotFoundError, match="holds neither results.jsonl nor"):
        pack_rows(tmp_path)
    assert not (tmp_path / "results.jsonl.gz").exists()
    assert main(["pack"]) == 2
    assert "benchmarks.results: error: the following arguments are required: RESULTS_DIR" in (
        capsys.readouterr().err
    )
    assert main(["pack", str(missing)]) == 2
    assert "error: results_dir=" in capsys.readouterr().err


def test_pack_from_the_command_line_reads_sys_argv(tmp_path, monkeypatch, capsys) -> None:
    """``python -m benchmarks.results pack DIR`` calls ``main()`` with no arguments."""
    append_row(tmp_path / RESULTS_FILE, {"run_id": "a", "status": "ok"})
    monkeypatch.setattr(sys, "argv", ["python -m benchmarks.results", "pack", str(tmp_path)])
    assert main() == 0
    assert [row["run_id"] for row in read_rows(tmp_path / RESULTS_FILE)] == ["a"]
    assert not (tmp_path / RESULTS_FILE).exists() and packed_path(tmp_path / RESULTS_FILE).exists()
