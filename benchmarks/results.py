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

Hostile or damaged files: nothing here follows a symbolic link (``.lock``,
``results.jsonl`` and ``results.jsonl.gz`` that are links are refused, naming them); a row
that is not a well-formed result (``row_problem``) never counts and never replaces a good
row of the same run; a damaged ``results.jsonl.gz`` is a ``CorruptRowsError`` naming it,
and ``python -m benchmarks.results repair DIR`` keeps every row still readable from it.
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

from agents.runs import (
    LinkError,
    NotRegularFileError,
    json_safe,
    metrics_problem,
    refuse_irregular,
    refuse_link,
)

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
    fd = _open_nofollow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
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


def _open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never follows a symbolic link at ``path`` (``LinkError`` instead).

    A folder, pipe or device there is a ``NotRegularFileError``.
    """
    refuse_link(path)
    refuse_irregular(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as err:
        if err.errno == errno.ELOOP or os.path.islink(path):
            raise LinkError(path) from None
        raise
    import stat

    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFileError(path)
    return fd


def packed_path(path: str | os.PathLike[str]) -> Path:
    """Where a results file's packed (gzip) rows live: ``results.jsonl.gz`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".gz")


class CorruptRowsError(ValueError):
    """A packed results file (``results.jsonl.gz``) is damaged: truncated or not gzip.

    Attributes:
        path: The damaged file.
        readable: The rows still readable from it (before the damage).
    """

    def __init__(self, path: Path, problem: str, readable: list[dict[str, Any]]) -> None:
        folder = path.parent
        super().__init__(
            f"{path} is corrupt ({problem}; {len(readable)} rows readable before the damage); "
            f"to keep them run `python -m benchmarks.results repair {folder}` (the damaged "
            f"file is kept as {path.name}.corrupt), then rerun the command"
        )
        self.path = path
        self.readable = readable


def _gunzip_salvage(raw: bytes) -> tuple[bytes, str | None]:
    """Decompress gzip data as far as it goes: (bytes recovered, problem or None).

    Chunk by chunk; the chunk that fails is fed again byte by byte from the state before
    it, so every byte that decompresses before the damage is kept.
    """
    import zlib

    if not raw:
        return b"", "empty file"
    out: list[bytes] = []
    data = raw
    chunk = 1 << 14
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        for start in range(0, len(data), chunk):
            saved = inflater.copy()
            try:
                out.append(inflater.decompress(data[start : start + chunk]))
            except zlib.error as err:
                for index in range(start, min(start + chunk, len(data))):
                    try:
                        out.append(saved.decompress(data[index : index + 1]))
                    except zlib.error:
                        break
                return b"".join(out), f"not a whole gzip file: {err}"
            if inflater.eof:
                break
        if not inflater.eof:
            out.append(inflater.flush())
            return b"".join(out), "truncated gzip file"
        data = inflater.unused_data
    return b"".join(out), None


def read_rows(path: str | os.PathLike[str], *, salvage: bool = False) -> list[dict[str, Any]]:
    """Read every complete row of a results file, in file order.

    The packed rows (``results.jsonl.gz``, see ``pack_rows``) come first, then the plain
    file's. Lines that do not parse as a JSON object (a torn last line) are skipped. Missing
    files read as no rows.

    Args:
        path: The results file (``results.jsonl``).
        salvage: Keep the rows readable from a damaged ``results.jsonl.gz`` instead of
            raising.

    Raises:
        CorruptRowsError: ``results.jsonl.gz`` is truncated or not gzip (naming it, with the
            rows readable before the damage), unless ``salvage``.
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    packed = packed_path(path)
    refuse_irregular(packed)
    refuse_irregular(path)
    if packed.exists():
        data, problem = _gunzip_salvage(packed.read_bytes())
        readable = _parse_lines(data.splitlines())
        if problem and not salvage:
            raise CorruptRowsError(packed, problem, readable)
        rows += readable
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


def _refuse_linked_rows(folder: Path) -> None:
    """Refuse a results directory whose rows files or lock are symbolic links."""
    for name in (ResultsLock.FILE, RESULTS_FILE, RESULTS_FILE + ".gz"):
        refuse_link(folder / name)


def pack_rows(results_dir: str | os.PathLike[str]) -> Path:
    """Move a suite's rows into ``results.jsonl.gz`` (for committing them), atomically.

    Packing holds the results directory's ``ResultsLock``, the lock a runner holds while it
    appends rows, so it never races a running suite: a row appended between reading the
    plain file and removing it would be lost. Every row (packed and plain) is written to a
    new gzip file that replaces the old one; only then is the plain file removed, so a crash
    leaves the rows in one of the two. A runner resuming the suite reads both and appends
    new rows to the plain file. Packing is idempotent: a row stored twice (a pack killed
    between its gzip write and its delete leaves both files) is packed once.

    Args:
        results_dir: A suite's results directory (``OUT/SUITE``) holding
            ``results.jsonl`` and/or ``results.jsonl.gz``.

    Returns:
        The packed file.

    Raises:
        FileNotFoundError: ``results_dir`` is not a directory, or holds no rows file.
        LockedError: A runner (or another pack) holds the directory (the message names it).
        CorruptRowsError: ``results.jsonl.gz`` is damaged (see ``repair_rows``).
        OSError: The directory cannot be written, or a rows file is a symbolic link.
    """
    folder = Path(results_dir)
    path = folder / RESULTS_FILE
    packed = packed_path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"results_dir={str(results_dir)!r} is not a directory; allowed: a suite's results "
            "directory (OUT/SUITE)"
        )
    _refuse_linked_rows(folder)
    with ResultsLock(folder, task="packing rows", hint="then pack again", way_out=PACK_WAY_OUT):
        if not path.exists() and not packed.exists():
            raise FileNotFoundError(
                f"results_dir={str(results_dir)!r} holds neither {RESULTS_FILE} nor "
                f"{packed.name}; allowed: a suite's results directory (OUT/SUITE)"
            )
        rows = read_rows(path)
        # A pack killed between its gzip write and its delete left every plain row in both
        # files: each distinct row is packed once, in first-seen order.
        data = b"".join(dict.fromkeys(encode_row(row) for row in rows))
        _write_packed(packed, data)
        path.unlink(missing_ok=True)
    return packed


#: What pack suggests when the results directory cannot be written.
PACK_WAY_OUT = "make it writable, or copy the directory somewhere writable and pack the copy"


def _write_packed(packed: Path, data: bytes) -> None:
    from agents.runs import atomic_write

    # mtime 0: the same rows always pack to the same bytes (no spurious diffs).
    atomic_write(packed, lambda tmp: tmp.write_bytes(gzip.compress(data, 9, mtime=0)))


def repair_rows(results_dir: str | os.PathLike[str]) -> tuple[Path, int]:
    """Keep the readable rows of a damaged ``results.jsonl.gz``; set the damaged file aside.

    Under the directory's lock: the damaged file is renamed ``results.jsonl.gz.corrupt``
    (kept), and a new ``results.jsonl.gz`` holds every row still readable from it. The plain
    ``results.jsonl`` is left as it is. Runs whose rows were lost run again on the next
    sweep.

    Returns:
        (the damaged file's new name, rows kept).

    Raises:
        FileNotFoundError: No ``results.jsonl.gz`` there.
        ValueError: The packed file is not damaged (nothing to repair).
        LockedError, OSError: As ``pack_rows``.
    """
    folder = Path(results_dir)
    packed = packed_path(folder / RESULTS_FILE)
    if not packed.is_file():
        raise FileNotFoundError(f"{packed} does not exist; nothing to repair")
    _refuse_linked_rows(folder)
    with ResultsLock(folder, task="repairing rows", hint="then repair again", way_out=PACK_WAY_OUT):
        data, problem = _gunzip_salvage(packed.read_bytes())
        if problem is None:
            raise ValueError(f"{packed} is readable; nothing to repair")
        rows = _parse_lines(data.splitlines())
        # Keep the damaged file under a second name first, then replace it: a repair killed
        # at any moment leaves the damaged file in place (repair again) or both files.
        aside = _keep_copy(packed)
        _write_packed(packed, b"".join(dict.fromkeys(encode_row(row) for row in rows)))
    return aside, len(rows)


def _keep_copy(path: Path) -> Path:
    """A second name for ``path``: ``<name>.corrupt[-k]`` (a hard link, else a copy)."""
    import shutil

    target = path.with_name(path.name + ".corrupt")
    k = 1
    while os.path.lexists(target):
        k += 1
        target = path.with_name(f"{path.name}.corrupt-{k}")
    try:
        os.link(path, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(path, target, follow_symlinks=False)
    return target


#: Phases of a row: validation runs (``tune``) and reported runs (``final``).
PHASES = ("tune", "final")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def row_problem(row: Any) -> str | None:
    """What makes a row unusable as a result (None for a well-formed row).

    A row needs a ``run_id`` and a ``status`` of ``ok`` or ``failed``; an ``ok`` row needs
    metrics that are numbers (``agents.runs.metrics_problem``) including its
    ``select_metric`` and every report column it lists; the labels the report groups by are
    strings, the seed an integer, the learning rate a number or null, and the curve a list of
    ``[rollouts, {tag: value}]`` pairs. Fields a row does not have are not required, except
    those a reported (``final``) row is grouped by: ``experiment``, ``env_label``, ``agent``.
    """
    if not isinstance(row, dict):
        return "not a JSON object"
    run_id = row.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        return f"run_id is {run_id!r}, not a run id"
    status = row.get("status")
    if status not in (OK, FAILED):
        return f"status is {status!r}; allowed: {OK!r}, {FAILED!r}"
    phase = row.get("phase")
    if "phase" in row and phase not in PHASES:
        return f"phase is {phase!r}; allowed: {', '.join(map(repr, PHASES))}"
    required = ("experiment", "env_label", "agent") if phase == "final" else ()
    for key in ("experiment", "env_label", "env_base", "agent", "family", "role", "cell"):
        if key in required and key not in row:
            return f"no {key!r}"
        if key in row and not isinstance(row[key], str):
            return f"{key} is {row[key]!r}, not a string"
    for key in ("select_metric",):
        if key in row and not isinstance(row[key], str):
            return f"{key} is {row[key]!r}, not a metric name"
    if "seed" in row and not (isinstance(row["seed"], int) and not isinstance(row["seed"], bool)):
        return f"seed is {row['seed']!r}, not an integer"
    if row.get("lr") is not None and not _is_number(row["lr"]):
        return f"lr is {row['lr']!r}, not a number"
    for key in ("sweep", "references", "config"):
        if key in row and not isinstance(row[key], dict):
            return f"{key} is {row[key]!r}, not an object"
    columns = row.get("columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        return f"columns is {columns!r}, not a list of metric names"
    curve = row.get("curve", [])
    if not isinstance(curve, list) or not all(
        isinstance(p, list) and len(p) == 2 and _is_number(p[0]) and isinstance(p[1], dict)
        for p in curve
    ):
        return f"curve is {str(curve)[:40]}, not a list of [rollouts, {{tag: value}}] pairs"
    metrics = row.get("metrics", {})
    if status == OK:
        problem = metrics_problem(metrics)
        if problem:
            return problem
        wanted = [row.get("select_metric"), *columns]
        missing = [m for m in wanted if isinstance(m, str) and m not in metrics]
        if missing:
            return f"metric {missing[0]!r} is missing"
    elif not isinstance(metrics, dict):
        return f"metrics is {metrics!r}, not an object"
    return None


def latest_rows(
    rows: Iterable[dict[str, Any]], skipped: list[tuple[dict[str, Any], str]] | None = None
) -> dict[str, dict[str, Any]]:
    """The last well-formed row of each ``run_id`` (later rows replace earlier ones).

    A malformed row (``row_problem``) never counts and never replaces a good row; it is
    appended, with its problem, to ``skipped`` when given.
    """
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        problem = row_problem(row)
        if problem is not None:
            if skipped is not None:
                skipped.append((row, problem))
            continue
        run_id = row["run_id"]
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

        way_out: What to do when the directory cannot be written.

    Raises:
        LockedError: Another process holds the lock (the message names it).
        LinkError: ``.lock`` is a symbolic link (never followed).
        OSError: The directory cannot be created or written (a read-only ``--out``).
    """

    FILE = ".lock"

    def __init__(
        self,
        results_dir: str | os.PathLike[str],
        *,
        task: str = "",
        hint: str = "or use another --out",
        way_out: str = "choose another --out",
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
            self.fd = _open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
        except (LinkError, NotRegularFileError):
            raise
        except OSError as err:
            raise OSError(
                err.errno,
                f"the results directory {results_dir} is not writable ({err.strerror}); {way_out}",
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


USAGE = (
    "usage: python -m benchmarks.results pack RESULTS_DIR [RESULTS_DIR ...]  (or: repair "
    "RESULTS_DIR ..., to keep the readable rows of a damaged results.jsonl.gz)"
)


def to_frame(path: str | os.PathLike[str], curves: bool = False) -> Any:
    """A pandas DataFrame of a results directory, one row per run and metric.

    See ``benchmarks.export.to_frame`` (pandas is the optional extra ``maxrl-bench[data]``).
    """
    from benchmarks.export import to_frame as frame

    return frame(path, curves=curves)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.results pack DIR [DIR ...]``: pack each directory's rows.

    ``repair DIR [DIR ...]`` keeps the readable rows of a damaged ``results.jsonl.gz``
    (``repair_rows``).

    Returns:
        0 when every directory was packed (repaired), 2 on bad input (one line, with the
        usage), a damaged or linked file, or a directory in use (as the runner: nothing of that
        directory changed).
    """
    import sys

    from agents.cli import Parser

    parser = Parser(
        prog="python -m benchmarks.results",
        usage=USAGE.removeprefix("usage: "),
        description="Pack each results directory's rows into results.jsonl.gz, or repair a "
        "damaged one (keep its readable rows).",
    )
    parser.add_argument("command", choices=["pack", "repair"], help="pack or repair")
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", help="a suite's output")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    for folder in args.results_dirs:
        try:
            if args.command == "pack":
                print(pack_rows(folder))
            else:
                aside, kept = repair_rows(folder)
                print(
                    f"{packed_path(Path(folder) / RESULTS_FILE)}: kept {kept} rows; the "
                    f"damaged file is {aside}"
                )
        except (OSError, LockedError, ValueError) as err:
            print(f"error: {plain(err)}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
