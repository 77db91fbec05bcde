"""Result rows: one JSON line per finished (or failed) run, appended atomically.

A results file is JSON lines. ``append_row`` writes one complete line with a single
``os.write`` on a file descriptor opened with ``O_APPEND`` and then ``fsync``s it, so a
process killed at any moment leaves either the whole row or none of it. A torn last line can
still appear if the machine itself dies mid-write (or the file is truncated by hand);
``read_rows`` ignores any line that does not parse, and the next append starts a new line
so a torn tail never corrupts the following row.

Several rows may share a ``run_id`` (a failed run that was retried later); ``latest_rows``
keeps the last row of each run.

One process at a time may change a results directory: the runner and ``pack_rows``
(``python -m benchmarks.results pack DIR``) both hold its ``ResultsLock``.
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

    Packing holds the results directory's ``ResultsLock``, the lock a runner holds while it
    appends rows, so it never races a running suite: a row appended between reading the
    plain file and removing it would be lost. Every row (packed and plain) is written to a
    new gzip file that replaces the old one; only then is the plain file removed, so a crash
    leaves the rows in one of the two. A runner resuming the suite reads both and appends
    new rows to the plain file.

    Args:
        results_dir: A suite's results directory (``OUT/SUITE``) holding
            ``results.jsonl`` and/or ``results.jsonl.gz``.

    Returns:
        The packed file.

    Raises:
        FileNotFoundError: ``results_dir`` is not a directory, or holds no rows file.
        LockedError: A runner (or another pack) holds the directory (the message names it).
        OSError: The directory cannot be written.
    """
    from agents.runs import atomic_write

    folder = Path(results_dir)
    path = folder / RESULTS_FILE
    packed = packed_path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"results_dir={str(results_dir)!r} is not a directory; allowed: a suite's results "
            "directory (OUT/SUITE)"
        )
    with ResultsLock(folder, task="packing rows", hint="then pack again"):
        if not path.exists() and not packed.exists():
            raise FileNotFoundError(
                f"results_dir={str(results_dir)!r} holds neither {RESULTS_FILE} nor "
                f"{packed.name}; allowed: a suite's results directory (OUT/SUITE)"
            )
        rows = read_rows(path)
        data = b"".join(encode_row(row) for row in rows)
        # mtime 0: the same rows always pack to the same bytes (no spurious diffs).
        atomic_write(packed, lambda tmp: tmp.write_bytes(gzip.compress(data, 9, mtime=0)))
        path.unlink(missing_ok=True)
    return packed


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


def plain(err: BaseException) -> str:
    """An error as a sentence: an ``OSError``'s message without its ``[Errno N]`` prefix."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror + (f": {err.filename}" if err.filename is not None else "")
    return str(err)


class LockedError(RuntimeError):
    """Another runner holds a results directory."""


class ResultsLock:
    """An exclusive lock on a suite's results directory, held while a runner uses it.

    ``fcntl.flock`` on ``.lock`` inside the directory: the OS releases it when the process
    exits, however it dies, so a killed runner never blocks the next one. The holder writes
    its pid, host and start time into the file, so a second runner can name it.

    Args:
        results_dir: The directory (created if needed; must be writable).
        task: What the holder is doing, written into the stamp (e.g. ``packing rows``).
        hint: The way out offered when another process holds the lock.

    Raises:
        LockedError: Another process holds the lock (the message names it).
        OSError: The directory cannot be created or written (a read-only ``--out``).
    """

    FILE = ".lock"

    def __init__(
        self,
        results_dir: str | os.PathLike[str],
        *,
        task: str = "",
        hint: str = "or use another --out",
    ) -> None:
        import fcntl
        import platform
        import tempfile
        from datetime import datetime, timezone

        results_dir = Path(results_dir)
        self.path = results_dir / self.FILE
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
            # The runner creates files in the directory (rows, run directories, temporary
            # files of atomic writes): prove it can, even where .lock itself is writable.
            probe, probe_path = tempfile.mkstemp(prefix=".write-test-", dir=results_dir)
            os.close(probe)
            os.unlink(probe_path)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise OSError(
                err.errno,
                f"the results directory {results_dir} is not writable ({err.strerror}); "
                "choose another --out",
            ) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 512, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(self.fd)
            raise LockedError(
                f"{results_dir} is in use by another maxrl-bench runner ({holder}); wait for "
                f"it to finish or stop it, {hint}"
            ) from None
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        text = f"pid {os.getpid()} on {platform.node()}, started {stamp}"
        if task:
            text += f", {task}"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text.encode("utf-8"), 0)

    def __enter__(self) -> ResultsLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Unlock (closing the descriptor releases the lock)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


USAGE = "usage: python -m benchmarks.results pack RESULTS_DIR [RESULTS_DIR ...]"


def to_frame(path: str | os.PathLike[str], curves: bool = False) -> Any:
    """A pandas DataFrame of a results directory, one row per run and metric.

    See ``benchmarks.export.to_frame`` (pandas is the optional extra ``maxrl-bench[data]``).
    """
    from benchmarks.export import to_frame as frame

    return frame(path, curves=curves)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.results pack DIR [DIR ...]``: pack each directory's rows.

    Returns:
        0 when every directory was packed, 2 on bad input (one line, with the usage) or a
        directory in use (as the runner: nothing of that directory changed).
    """
    import sys

    from agents.cli import Parser

    parser = Parser(
        prog="python -m benchmarks.results",
        usage=USAGE.removeprefix("usage: "),
        description="Pack each results directory's rows into results.jsonl.gz.",
    )
    parser.add_argument("command", choices=["pack"], help="the only command: pack")
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", help="a suite's output")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    for folder in args.results_dirs:
        try:
            print(pack_rows(folder))
        except (OSError, LockedError) as err:
            print(f"error: {plain(err)}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
