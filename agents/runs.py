"""One run-directory lifecycle for every agent, and the project's atomic file writes.

A run directory ``log_dir/run_name`` holds a run's TensorBoard events, ``config.json`` (the
settings that decide what it computes), a checkpoint written atomically at every evaluation,
and ``final.json`` once the run is done. Our trainer (``agents.trainer``) and the
Stable-Baselines3 runner (``agents.sb3_baselines``) both go through ``RunDirectory``:

- ``prepare(resume)`` starts over (``resume=False``), or checks that the stored run was made
  with the same settings, from ``config.json`` or, when that file is gone, from the config
  ``final.json`` records or the checkpoint carries; a mismatch is refused with the fields
  that differ. A finished run's metrics are returned without training again.
- ``save_checkpoint`` and ``write_final`` replace their files atomically, so a run killed at
  any moment leaves the previous checkpoint or the new one, never half of one.

Atomic writes: ``atomic_write`` writes a temporary file in the same directory, flushes and
fsyncs it, then ``os.replace``s it over the target (a directory variant swaps a whole
folder). Every file this project writes goes through one of them.

Links: no writer follows a symbolic link. A target, temporary file or run directory that
is a link is refused with ``LinkError`` naming it (a link planted in a results directory,
which travels in git, must not redirect a write outside it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

CONFIG = "config.json"
FINAL = "final.json"


# --------------------------------------------------------------------------------------------
# Atomic writes and safe JSON
# --------------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """Replace non-finite floats by their strings (``"nan"``, ``"inf"``) so JSON stays strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


#: Free bytes below which a failed write is blamed on a full disk (writers such as
#: ``torch.save`` report ENOSPC as a RuntimeError of their own).
LOW_SPACE_BYTES = 1 << 20


def _disk_full(directory: Path) -> bool:
    """Whether the file system holding ``directory`` has (almost) no space left."""
    try:
        return shutil.disk_usage(directory).free < LOW_SPACE_BYTES
    except OSError:
        return False


def _explain(err: BaseException, path: Path) -> BaseException:
    """The error of a failed write, stated plainly: a full disk or an unwritable path.

    Any error while the disk is (almost) full becomes ``OSError(ENOSPC, "no space left on
    device while writing <path>")``; other errors are returned as they are.
    """
    code = err.errno if isinstance(err, OSError) else None
    if code == errno.ENOSPC or (isinstance(err, Exception) and _disk_full(path.parent)):
        return OSError(errno.ENOSPC, f"no space left on device while writing {path}")
    if code in (errno.EACCES, errno.EROFS, errno.EPERM):
        return OSError(code, f"{path} is not writable ({os.strerror(code)})")
    return err


def _raise_explained(err: BaseException, path: Path) -> NoReturn:
    """Raise ``_explain(err, path)``, chained to ``err`` when it is a new error."""
    explained = _explain(err, path)
    if explained is err:
        raise err
    raise explained from err


class LinkError(OSError):
    """A path this project would write is a symbolic link (never followed)."""

    def __init__(self, path: str | os.PathLike[str], what: str = "file") -> None:
        super().__init__(
            errno.ELOOP,
            f"{path} is a symbolic link; maxrl-bench never writes through links (a link "
            f"could point outside the output directory): remove it, or replace it by a real "
            f"{what}",
        )
        self.filename = None  # the message names the path already
        self.path = Path(path)


class NotRegularFileError(OSError):
    """A path this project reads or writes as a file is a folder, pipe or device."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(
            errno.EINVAL,
            f"{path} is not a regular file (a folder, pipe or device); remove or rename it",
        )
        self.path = Path(path)


def refuse_irregular(path: str | os.PathLike[str]) -> None:
    """Raise ``NotRegularFileError`` when ``path`` exists and is not a regular file.

    Checked before opening, so a pipe planted where a file belongs never blocks a reader.
    """
    import stat

    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(path)


def refuse_link(path: str | os.PathLike[str], what: str = "file") -> None:
    """Raise ``LinkError`` when ``path`` is a symbolic link (a dangling one included)."""
    if os.path.islink(path):
        raise LinkError(path, what)


def refuse_links_below(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Refuse ``path`` and each folder between ``root`` and it that is a symbolic link.

    ``root`` itself may be a link (the user chose it); everything inside it that this project
    writes must not be.

    Raises:
        LinkError: The first link found, from ``root`` down.
        ValueError: ``path`` is not inside ``root``.
    """
    root, path = Path(root), Path(path)
    current = root
    parts = path.relative_to(root).parts
    for index, part in enumerate(parts):
        current = current / part
        refuse_link(current, "file" if index == len(parts) - 1 else "folder")


def _clear_tmp(tmp: Path) -> None:
    """Remove a leftover temporary entry (a planted link is removed, never followed)."""
    if os.path.islink(tmp):
        tmp.unlink()
    elif tmp.is_dir():
        shutil.rmtree(tmp)
    elif tmp.exists():
        tmp.unlink()


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file, which then replaces it.

    The temporary file sits in the same directory (so the rename is atomic), is fsynced
    before the rename, and is removed if anything fails. A full disk raises ``OSError``
    (ENOSPC) saying "no space left", whatever the writer raised; the previous file is
    untouched. A target that is a symbolic link is refused (``LinkError``), and a leftover
    temporary entry (even a link) is removed first, so no write follows a link.
    """
    path = Path(path)
    refuse_link(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        _clear_tmp(tmp)
        write(tmp)
        with open(tmp, "rb+") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except Exception as err:
        _raise_explained(err, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a UTF-8 text file atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write strict JSON (non-finite floats as strings) atomically, keys sorted."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=True, allow_nan=False, default=str)
    atomic_write_text(path, text + "\n")


def atomic_replace_dir(path: str | os.PathLike[str], fill: Callable[[Path], None]) -> None:
    """Replace directory ``path`` by one that ``fill(tmp_dir)`` writes.

    As atomically as POSIX allows: the old directory is renamed aside, the new one renamed
    in, the old one removed.

    A process killed between the two renames leaves only the aside copy;
    ``recover_dir(path)`` (called before reading) moves it back. Failures are reported as
    by ``atomic_write`` (a full disk says "no space left").
    """
    path = Path(path)
    refuse_link(path, "folder")
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    old = path.with_name(f"{path.name}.old{os.getpid()}")
    try:
        _clear_tmp(tmp)
        _clear_tmp(old)
        tmp.mkdir(parents=True)
        fill(tmp)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_explained(err, path)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(path: str | os.PathLike[str], complete: Callable[[Path], bool]) -> None:
    """Undo a directory swap cut between its renames; drop leftover temporary copies.

    Args:
        path: The directory ``atomic_replace_dir`` writes.
        complete: Whether a candidate directory holds a whole copy.
    """
    path = Path(path)
    for old in sorted(path.parent.glob(path.name + ".old*")):
        if os.path.islink(old):
            old.unlink()
        elif not os.path.lexists(path) and complete(old):
            os.replace(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in path.parent.glob(path.name + ".tmp*"):
        with contextlib.suppress(OSError):
            _clear_tmp(tmp)


def metrics_problem(metrics: Any) -> str | None:
    """What is wrong with a run's stored metrics (None when they are usable).

    Usable: a non-empty JSON object whose values are numbers (not booleans) or the strings
    ``"nan"``, ``"inf"`` and ``"-inf"`` that ``json_safe`` writes for non-finite values.
    """
    if not isinstance(metrics, dict):
        return f"'metrics' must be an object of numbers, got {json.dumps(metrics, default=str)}"
    if not metrics:
        return "'metrics' is empty"
    for key, value in metrics.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(value, str):
            ok = value.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")
        if not ok:
            shown = json.dumps(value, default=str)[:40]
            return f"metric {key!r} is {shown}, not a number"
    return None


class CorruptFileError(ValueError):
    """A run file exists but cannot be read (truncated, empty or not what it should be)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} is corrupt ({problem})")
        self.path = path


def read_json(path: str | os.PathLike[str], expect: type = dict) -> Any:
    """Read a JSON file written by this project.

    Raises:
        CorruptFileError: The file is empty, truncated, not JSON, or not of type ``expect``,
            naming the file and the problem.
        FileNotFoundError: The file does not exist.
    """
    path = Path(path)
    try:
        refuse_irregular(path)
    except NotRegularFileError:
        raise CorruptFileError(path, "not a regular file (a folder, pipe or device)") from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CorruptFileError(path, f"not UTF-8 text: {err.reason}") from None
    if not text.strip():
        raise CorruptFileError(path, "empty file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise CorruptFileError(path, f"not valid JSON: {err.msg} at line {err.lineno}") from None
    if not isinstance(data, expect):
        raise CorruptFileError(path, f"expected a JSON {expect.__name__}")
    return data


def set_aside(path: str | os.PathLike[str]) -> Path:
    """Rename a corrupt file or folder to ``<name>.corrupt[-k]`` (kept for inspection)."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    k = 1
    while os.path.lexists(target):
        k += 1
        target = path.with_name(f"{path.name}.corrupt-{k}")
    os.replace(path, target)
    return target


# --------------------------------------------------------------------------------------------
# The run directory
# --------------------------------------------------------------------------------------------


class RunDirectory:
    """The lifecycle of one run directory, shared by every agent.

    Args:
        path: ``log_dir/run_name``.
        config: The run's settings as plain JSON data (what ``config.json`` holds).
        ignore: Config keys that do not change what the run computes (paths, progress bars,
            devices, threads): not compared when a stored run is resumed.
        checkpoint: Name of the checkpoint file or folder inside the directory.
        checkpoint_config: Reads the config the checkpoint carries (None if it carries none
            or there is no checkpoint); used when ``config.json`` is missing.
        restart_hint: How the user starts over, for the mismatch message (e.g. the CLI flag
            ``--no-resume``, or ``resume=False``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: dict[str, Any],
        *,
        ignore: Iterable[str] = (),
        checkpoint: str = "checkpoint.pt",
        checkpoint_config: Callable[[Path], dict[str, Any] | None] | None = None,
        restart_hint: str = "resume=False",
    ) -> None:
        self.path = Path(path)
        self.config = json.loads(json.dumps(json_safe(config), default=str))  # as stored
        self.ignore = tuple(ignore)
        self.checkpoint = self.path / checkpoint
        self.checkpoint_config = checkpoint_config
        self.restart_hint = restart_hint

    @property
    def config_path(self) -> Path:
        """``config.json``."""
        return self.path / CONFIG

    @property
    def final_path(self) -> Path:
        """``final.json``."""
        return self.path / FINAL

    def _comparable(self, config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k not in self.ignore}

    def clear(self) -> None:
        """Delete the run's files: checkpoint, ``final.json``, ``config.json``, events."""
        for path in (self.final_path, self.config_path):
            path.unlink(missing_ok=True)
        if os.path.islink(self.checkpoint):  # remove the link, never what it points to
            self.checkpoint.unlink()
        elif self.checkpoint.is_dir():
            shutil.rmtree(self.checkpoint)
        else:
            self.checkpoint.unlink(missing_ok=True)
        for path in self.path.glob("events.out.tfevents.*"):
            path.unlink()

    def stored_config(self) -> tuple[dict[str, Any] | None, str]:
        """The config of the run stored here, and where it came from (None, "" if none).

        ``config.json`` first; without it, the config that ``final.json`` records (a finished
        run may have no checkpoint left), then the one the checkpoint carries.
        """
        if self.config_path.exists():
            return read_json(self.config_path), str(self.config_path)
        if self.final_path.exists():
            stored = read_json(self.final_path).get("config")
            if not isinstance(stored, dict):
                raise CorruptFileError(self.final_path, "no 'config' object")
            return stored, f"the config inside {self.final_path}"
        if self.checkpoint_config is not None and self.checkpoint.exists():
            stored = self.checkpoint_config(self.checkpoint)
            if stored is not None:
                return stored, f"the config inside {self.checkpoint}"
        return None, ""

    def prepare(self, resume: bool) -> dict[str, Any] | None:
        """Make the directory ready for this config.

        Args:
            resume: Continue a stored run (and return a finished one's result); False
                deletes the run's files first.

        Returns:
            The ``final.json`` record of a finished run (when resuming), else None.

        Raises:
            ValueError: The directory holds a run with different settings (naming them).
            CorruptFileError: ``config.json`` or ``final.json`` cannot be read.
        """
        refuse_link(self.path, "folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            _raise_explained(err, self.path)
        for name in (CONFIG, FINAL, self.checkpoint.name):
            refuse_link(self.path / name, "file" if Path(name).suffix else "folder")
        if not resume:
            self.clear()
        stored, source = self.stored_config()
        if stored is not None:
            old, new = self._comparable(stored), self._comparable(self.config)
            differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if differ:
                shown = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in differ[:6])
                raise ValueError(
                    f"run directory {self.path} holds a run with different settings "
                    f"(from {source}: {shown}); use the same settings, another run name, or "
                    f"{self.restart_hint} to start over"
                )
        if not self.config_path.exists():
            atomic_write_json(self.config_path, self.config)
        if resume and self.final_path.exists():
            record = read_json(self.final_path)
            problem = metrics_problem(record.get("metrics"))
            if problem:
                raise CorruptFileError(self.final_path, problem)
            return record
        return None

    def write_final(self, record: dict[str, Any]) -> None:
        """Write ``final.json`` (metrics, config, anything else) atomically."""
        atomic_write_json(self.final_path, {**record, "config": self.config})
