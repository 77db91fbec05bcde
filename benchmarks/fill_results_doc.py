"""Refresh every table of ``docs/results.md`` from the committed rows.

Each table sits under a ``<!-- summary: ARGS -->`` or ``<!-- claims: ARGS -->`` marker;
this rewrites the table that follows each marker with what ``python -m benchmarks.summary
ARGS`` (or ``python -m benchmarks.claims ARGS``) prints now (a marker with no table yet gets
one). ``tests/test_results_doc.py`` and ``tests/benchmarks/test_claims.py`` check that the
two agree.

Usage: ``python -m benchmarks.fill_results_doc [docs/results.md]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

from benchmarks import claims, summary

_MARKER = re.compile(r"^(<!-- (summary|claims): (.*?) -->\n)((?:\|.*\n)*)", re.M)
_COMMANDS = {"summary": summary, "claims": claims}  # main looked up per call


def _table(command: str, args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = _COMMANDS[command].main(shlex.split(args))
    if status != 0:
        raise SystemExit(f"benchmarks.{command} {args} exited {status}")
    return out.getvalue()


def fill(text: str) -> str:
    """Return ``text`` with the table under every summary or claims marker printed afresh."""
    return _MARKER.sub(lambda m: m.group(1) + _table(m.group(2), m.group(3)), text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the document in place; returns 0."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fill_results_doc", description=__doc__.split("\n")[0]
    )
    parser.add_argument("doc", nargs="?", default="docs/results.md", type=Path)
    path = parser.parse_args(argv).doc
    path.write_text(fill(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
