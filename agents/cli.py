"""Conventions shared by every console script (maxrl-train, maxrl-bench, maxrl-report, ...).

* A usage mistake prints one line, ``PROG: error: MESSAGE (see PROG --help)``, and exits
  with status 2 (argparse would print the whole usage block first); a short usage line is
  quoted in it, and a misspelled option gets a "did you mean".
* ``--version`` prints the installed package's version.
* ``--help`` shows each option's default once: options whose help already says what the
  default is, and flags that are off by default, get no ``(default: ...)`` appended.
"""

from __future__ import annotations

import argparse
import re
from importlib import metadata
from typing import Any, NoReturn

#: The distribution whose version ``--version`` prints.
DISTRIBUTION = "maxrl-bench"

#: Usage lines up to this long are quoted in error messages.
SHORT_USAGE = 90

# Help text that already states its default: "(default: ...", "default: ...", "; default ...".
_STATES_DEFAULT = re.compile(r"\(default\b|^default\b|\bdefault:|; default\b|%\(default\)")


def package_version() -> str:
    """The installed ``maxrl-bench`` version (the source tree's when it is not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from maxrl_envs import __version__

        return __version__


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs kept as written; ``(default: X)`` added once, where it tells something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or _STATES_DEFAULT.search(text)
        ):
            return action.help
        return f"{text} (default: %(default)s)".lstrip()


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` with one-line errors, ``--version`` and ``HelpFormatter``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--version",
            action="version",
            version=f"%(prog)s {package_version()}",
            help="print the version and exit",
        )

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` on one line and exit with 2."""
        message = " ".join(message.split())
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            from maxrl_envs.validation import did_you_mean

            options = [o for o in self._option_string_actions if o.startswith("--")]
            for word in message[len(prefix) :].split():
                if word.startswith("--"):
                    message += did_you_mean(word.split("=", 1)[0], options)
        self.exit(2, f"{self.prog}: error: {message} ({self.hint()})\n")

    def hint(self) -> str:
        """``see PROG --help``, led by the usage line when that is short."""
        usage = " ".join(self.format_usage().split())
        see = f"see {self.prog} --help"
        return f"{usage}; {see}" if len(usage) <= SHORT_USAGE else see


def activation_hint(tool: str = "tensorboard") -> str | None:
    """How to reach ``tool`` when it is not on PATH but next to this Python, else None.

    ``make demo`` installs into ``.venv`` without activating it, so the console scripts
    (``tensorboard``, ``maxrl-bench``, ...) are in ``.venv/bin`` but not on PATH.

    Returns:
        A one-line hint (``source .venv/bin/activate`` or the full path), or None when
        ``tool`` runs as printed.
    """
    import os
    import shutil
    import sys
    from pathlib import Path

    folder = Path(sys.executable).parent
    if shutil.which(tool) is not None or not (folder / tool).exists():
        return None
    try:
        shown = os.path.relpath(folder)
    except ValueError:  # another drive (Windows)
        shown = str(folder)
    shown = shown if shown.startswith((".", os.sep)) else f".{os.sep}{shown}"
    activate = Path(shown) / "activate"
    how = f"source {activate}" if (folder / "activate").exists() else f"add {shown} to PATH"
    return (
        f"{tool} and the maxrl-* commands are in {shown}, which is not on PATH: run `{how}` "
        f"first, or call them as {Path(shown) / tool}"
    )


def fail(prog: str, message: str) -> int:
    """Print a usage error the way ``Parser.error`` does, for errors found after parsing.

    Returns:
        2, the exit status of a usage error.
    """
    import sys

    message = " ".join(str(message).split())
    print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
    return 2


__all__ = [
    "DISTRIBUTION",
    "HelpFormatter",
    "Parser",
    "activation_hint",
    "fail",
    "package_version",
]
