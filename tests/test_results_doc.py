"""The committed study results rebuild the committed tables.

Every table of ``docs/results.md`` sits under a ``<!-- summary: ARGS -->`` marker naming the
``python -m benchmarks.summary ARGS`` command that prints it from the committed rows; every
suite directory under ``docs/results/`` holds packed rows and a ``report.md`` that
``maxrl-report`` rebuilds byte for byte (a report is dated by its newest row, not by when
it was written), so rebuilding a committed report leaves ``git status`` clean.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from benchmarks import summary
from benchmarks.report import main as report_main

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results.md"
RESULTS = ROOT / "docs" / "results"
MARKER = re.compile(r"^<!-- summary: (.*?) -->\n((?:\|.*\n)+)", re.M)
SUITES = sorted(p.parent.name for p in RESULTS.glob("*/results.jsonl.gz"))


def tables() -> list[tuple[str, str]]:
    return MARKER.findall(DOC.read_text(encoding="utf-8"))


def test_results_doc_quotes_summary_tables() -> None:
    assert len(tables()) >= 5
    quoted = {shlex.split(args)[1] for args, _ in tables()}
    assert quoted <= {f"docs/results/{suite}" for suite in SUITES}


@pytest.mark.slow
@pytest.mark.parametrize("args, table", tables(), ids=lambda v: v[:70] if "docs/" in v else "")
def test_committed_rows_print_the_committed_table(args: str, table: str, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert summary.main(shlex.split(args)) == 0
    assert out.getvalue() == table


@pytest.mark.slow
@pytest.mark.parametrize("suite", SUITES)
def test_committed_rows_rebuild_the_committed_report(
    suite: str, tmp_path: Path, monkeypatch
) -> None:
    # The text is what is compared; drawing the PNGs (tests/benchmarks/test_plots.py covers
    # them) was over half of each rebuild's CPU time, so each figure is released unrendered.
    from benchmarks.report import figures

    def release(fig, path: Path) -> Path:
        import matplotlib.pyplot as plt

        plt.close(fig)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        return path

    monkeypatch.setattr(figures, "_save_figure", release)
    source = RESULTS / suite
    assert (source / "suite.json").exists() and (source / "suite.toml").exists()
    copy = tmp_path / suite
    copy.mkdir()
    for name in ("results.jsonl.gz", "suite.json"):
        shutil.copy(source / name, copy / name)
    with contextlib.redirect_stdout(io.StringIO()):
        assert report_main([str(copy)]) == 0
    rebuilt = (copy / "report.md").read_text(encoding="utf-8")
    rebuilt = rebuilt.replace(str(copy), f"docs/results/{suite}")
    committed = (source / "report.md").read_text(encoding="utf-8")
    assert rebuilt == committed
