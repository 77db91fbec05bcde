"""Result rows: one JSON line per finished (or failed) run, appended atomically.

A results file is JSON lines. ``append_row`` writes one complete line with a single
``os.write`` on a file descriptor opened with ``O_APPEND`` and then ``fsync``s it, so a
process killed at any moment leaves either the whole row or none of it. A torn last line can
still appear if the machine itself dies mid-write (or the file is truncated by hand);
``read_rows`` ignores any line that does not parse, and the next append starts a new line
so a torn tail never corrupts the following row.

Several rows may share a ``run_id`` (a failed run that was retried later); ``latest_rows``
keeps the last row of each run.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agents.runs import json_safe

#: Name of the results file inside a suite's output directory.
RESULTS_FILE = "results.jsonl"
#: Row status of a run that finished and reported its metrics.
OK = "ok"
#: Row status of a run that raised (the row carries ``error``).
FAILED = "failed"


def slug(text: str, limit: int | None = 60) -> str:
    """A file-name-safe form of a label (letters, digits and ``.=+-``; others become ``_``)."""
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")[:limit] or "x"


def encode_row(row: dict[str, Any]) -> bytes:
    """Serialize a row as one UTF-8 JSON line (keys sorted, no embedded newline)."""
    text = json.dumps(json_safe(row), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8")


def append_row(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one row to a JSON-lines file atomically and durably.

    The whole line goes out in one ``os.write`` on an ``O_APPEND`` descriptor (appends of a
    regular file are not interleaved with other appenders), followed by ``fsync``. If the
    file does not end with a newline (a torn tail), a newline is written first so the new
    row stays parseable. If the write fails or is short (a full disk), the file is cut back
    to its previous length, so it never keeps part of a row, and ``OSError`` says why.

    Args:
        path: The results file; created with its parent directory if missing.
        row: A JSON-serializable mapping.

    Raises:
        OSError: The row could not be written (e.g. "no space left on device"); the file
            is as it was before the call.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_row(row)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and _last_byte(path) != b"\n":
            data = b"\n" + data
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        except OSError as err:
            os.ftruncate(fd, size)
            if err.errno == errno.ENOSPC:
                raise OSError(
                    errno.ENOSPC, f"no space left on device while appending a row to {path}"
                ) from err
            raise
    finally:
        os.close(fd)


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def packed_path(path: str | os.PathLike[str]) -> Path:
    """Where a results file's packed (gzip) rows live: ``results.jsonl.gz`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".gz")


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read every complete row of a results file, in file order.

    The packed rows (``results.jsonl.gz``, see ``pack_rows``) come first, then the plain
    file's. Lines that do not parse as a JSON object (a torn last line) are skipped. Missing
    files read as no rows.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    packed = packed_path(path)
    if packed.exists():
        with gzip.open(packed, "rb") as handle:
            rows += _parse_lines(handle)
    if path.exists():
        with open(path, "rb") as handle:
            rows += _parse_lines(handle)
    return rows


def _parse_lines(lines: Iterable[bytes]) -> list[dict[str, Any]]:
    rows = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def pack_rows(results_dir: str | os.PathLike[str]) -> Path:
    """Move a suite's rows into ``results.jsonl.gz`` (for committing them), atomically.

    Every row (packed and plain) is written to a new gzip file that replaces the old one;
    only then is the plain file removed, so a crash leaves the rows in one of the two. A
    runner resuming the suite reads both and appends new rows to the plain file.

    Returns:
        The packed file.
    """
    from agents.runs import atomic_write

    path = Path(results_dir) / RESULTS_FILE
    rows = read_rows(path)
    data = b"".join(encode_row(row) for row in rows)
    packed = packed_path(path)
    # mtime 0: the same rows always pack to the same bytes (no spurious diffs).
    atomic_write(packed, lambda tmp: tmp.write_bytes(gzip.compress(data, 9, mtime=0)))
    path.unlink(missing_ok=True)
    return packed


if __name__ == "__main__":  # python -m benchmarks.results pack DIR [DIR ...]
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "pack":
        print("usage: python -m benchmarks.results pack RESULTS_DIR [RESULTS_DIR ...]")
        raise SystemExit(2)
    for folder in sys.argv[2:]:
        print(pack_rows(folder))


def latest_rows(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row of each ``run_id`` (later rows replace earlier ones)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        run_id = row.get("run_id")
        if isinstance(run_id, str):
            latest.pop(run_id, None)
            latest[run_id] = row
    return latest


def finished_ids(path: str | os.PathLike[str]) -> set[str]:
    """Run ids whose latest row has status ``ok``."""
    return {rid for rid, row in latest_rows(read_rows(path)).items() if row.get("status") == OK}
