"""Where a result came from: package versions, git commit, device and threads.

Every result row and every ``suite.json`` carries a ``provenance`` mapping (as SB3's
``get_system_info`` does for a saved model), so a number in a report can be traced to the
software and machine that produced it::

    {"python": "3.12.3", "packages": {"torch": "2.13.0", "gymnasium": "1.2.0",
     "stable-baselines3": "2.7.0", "numpy": "2.3.1", "maxrl-bench": "0.1.0"},
     "git_commit": "6af0808...", "git_dirty": false, "platform": "Linux-6.8-x86_64",
     "device": "cpu", "threads": 1}

Nothing here ever fails: a package that is not installed reads as None, and so does the git
commit outside a git checkout (an installed wheel) or without a ``git`` executable. Rows
written before provenance was recorded have no ``provenance`` key; every reader treats it as
optional.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: The distributions whose versions are recorded (distribution names, as pip spells them).
PACKAGES = ("torch", "gymnasium", "stable-baselines3", "numpy", "maxrl-bench")
#: Key of the provenance mapping in a row and in ``suite.json``.
KEY = "provenance"


def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None if it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_state(root: str | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the checkout holding this package; ``(None, None)`` if unknown.

    ``dirty`` says whether tracked files differ from the commit (untracked files and run
    outputs do not count). Never raises: no git executable, no checkout of this package (an
    installed copy, even inside another repository), or a git error all read as unknown.
    """
    where = root or str(Path(__file__).resolve().parents[1])

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", where, *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # Only this package's own checkout counts: an installed copy inside some other
    # repository (a virtual environment in a project) must not report that one's commit.
    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != Path(where).resolve():
        return None, None
    commit = git("rev-parse", "HEAD")
    if not commit:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


def provenance(device: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """The provenance mapping of this process (see the module docstring).

    Args:
        device: The torch device the run used (``cpu``, ``cuda:0``); None: not a run's.
        threads: Torch intra-op threads; None: ``torch.get_num_threads()``.

    Returns:
        ``python``, ``packages`` (name -> version or None), ``git_commit``, ``git_dirty``,
        ``platform``, ``device`` and ``threads``.
    """
    if threads is None:
        try:
            import torch

            threads = int(torch.get_num_threads())
        except ImportError:  # pragma: no cover - torch is a dependency
            threads = None
    commit, dirty = git_state()
    return {
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "git_commit": commit,
        "git_dirty": dirty,
        "platform": platform.platform(terse=True),
        "device": device,
        "threads": threads,
    }


def job_device(job: dict[str, Any]) -> str:
    """The device a job's run uses: its config's ``device``, resolved like the trainers do.

    Without one, its family's ``default_device`` (``benchmarks.families``): SB3 runs default
    to ``cpu``, ours to ``auto`` (CUDA when present).
    """
    from benchmarks.suite import AGENT_FAMILIES  # the built-in families register with the suite

    config = job.get("config") or {}
    family = AGENT_FAMILIES.get(str(job.get("family")))
    device = str(config.get("device", family.default_device if family else "auto"))
    if device == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:  # pragma: no cover
            return "cpu"
    return device
