"""Report of a suite's results: markdown tables with confidence intervals, and plots.

The command line of ``python -m benchmarks.report`` and ``maxrl-report``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from agents.cli import Parser, fail
from agents.runs import (
    CorruptFileError,
    LinkError,
    NotRegularFileError,
    atomic_write_text,
)
from benchmarks.report.build import build_report, write_report
from benchmarks.report.compare import compare_results
from benchmarks.results import (
    RESULTS_FILE,
    CorruptRowsError,
    packed_path,
)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report DIR`` writes DIR's report; ``... A B`` compares A and B.

    With one directory: write its report (into ``--report-dir`` if given) and print its
    tables; where the report cannot be written (a read-only results directory), print the
    whole report instead. With two: print the comparison of B against A
    (:func:`compare_results`), and write it to ``--out FILE`` if given. Exit status 2 when a
    directory has no results file, a file of it is corrupt, or the arguments are wrong.
    """
    parser = Parser(
        prog="maxrl-report",
        description=__doc__.split("\n")[0],
        epilog="Trust: the report reads only JSON (results.jsonl[.gz], suite.json) and imports "
        "nothing from DIR; malformed rows are left out and listed. A results directory is "
        "still code for the runner (resuming loads SB3 checkpoints through pickle), so "
        "resume only directories you trust. Nothing is written through a symbolic link.",
    )
    parser.add_argument(
        "results_dirs",
        nargs="+",
        metavar="DIR",
        help="a suite's output directory (e.g. runs/quick); two to compare them (A B)",
    )
    parser.add_argument("--out", help="with two directories: also write the comparison here")
    parser.add_argument(
        "--report-dir",
        help="with one directory: write report.md and plots/ here instead of into DIR "
        "(e.g. when DIR is read-only)",
    )
    parser.add_argument(
        "--csv",
        metavar="PATH",
        help="with one directory: also write its rows as a tidy CSV table, one line per run "
        "and metric (benchmarks.results.to_frame; needs pandas: pip install 'maxrl-bench[data]')",
    )
    args = parser.parse_args(argv)
    if args.csv and len(args.results_dirs) != 1:
        print("error: --csv is for one directory", file=sys.stderr)
        return 2
    if len(args.results_dirs) > 2:
        return fail(parser.prog, "give one results directory, or two to compare")
    if args.out and len(args.results_dirs) == 1:
        return fail(parser.prog, "--out is for comparisons (two directories)")
    if args.report_dir and len(args.results_dirs) == 2:
        return fail(parser.prog, "--report-dir is for one directory (use --out to compare)")
    paths = [Path(p) for p in args.results_dirs]
    for path in paths:
        if not (path / RESULTS_FILE).exists() and not packed_path(path / RESULTS_FILE).exists():
            print(f"error: {path / RESULTS_FILE} does not exist", file=sys.stderr)
            return 2
    try:
        if len(paths) == 2:
            text = compare_results(*paths)
            print(text, end="")
            if args.out:
                atomic_write_text(Path(args.out), text)
                print(f"comparison: {args.out}")
            return 0
        code = _report(paths[0], args.report_dir)
        if args.csv:
            code = code or _write_csv(paths[0], args.csv)
        return code
    except CorruptFileError as err:
        print(
            f"error: {err}; move it away (the report then counts every row) or rerun the suite",
            file=sys.stderr,
        )
        return 2
    except (CorruptRowsError, LinkError, NotRegularFileError) as err:
        print(
            f"error: {err if isinstance(err, CorruptRowsError) else err.strerror}", file=sys.stderr
        )
        return 2


def _write_csv(results_dir: Path, out: str) -> int:
    """``--csv``: write the tidy table of a results directory; 2 with a one-line error."""
    from benchmarks.export import write_csv

    try:
        print(f"csv:    {write_csv(results_dir, out)}")
    except ImportError as err:
        print(f"error: --csv {out}: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: --csv {out}: cannot write it ({err.strerror or err})", file=sys.stderr)
        return 2
    return 0


def _report(results_dir: Path, report_dir: str | None) -> int:
    """Write and summarize one report; print all of it where it cannot be written."""
    try:
        report = write_report(results_dir, report_dir=report_dir)
    except (LinkError, NotRegularFileError):
        raise
    except OSError as err:
        if report_dir is not None:
            print(f"error: cannot write the report into {report_dir}: {err}", file=sys.stderr)
            return 2
        report = build_report(results_dir, plots=False)
        print(report.markdown)
        print(
            f"note: cannot write into {results_dir} ({err}); the report is printed above, "
            "without plots. Use --report-dir DIR to write it (and its plots) elsewhere.",
            file=sys.stderr,
        )
        return 0
    print(report.summary_text())
    return 0
