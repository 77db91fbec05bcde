"""Every console script: one-line errors with a hint, --version, help defaults, suggestions,
the --list table, plain progress without a terminal, and SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import time
from importlib import metadata
from pathlib import Path

import pytest

import benchmarks.run as run_module
from agents import train
from agents.cli import Parser
from benchmarks import report, results, throughput
from benchmarks.run import PlainProgress, list_suites

TINY_SUITE = """
name = "tiny"
description = "Tiny suite of the CLI tests."

[settings]
seeds = [0, 1]
budget = 2048
eval_every = 1024
group_size = 8
num_groups = 16
lr_grid = [1e-2, 3e-2]
tune_seeds = 1

[[experiments]]
name = "main"
envs = [{ id = "MaxRLRegression-v0", kwargs = { snr = 1.0, num_contexts = 512 } }]
agents = ["maxrl"]
"""
TINY_RUNS = 4  # 2 validation runs (one per rate) + 2 reported runs


def exit_of(main, argv) -> int:
    """A main's exit status, whether it returns it or raises SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


MAINS = {
    "maxrl-train": train.main,
    "maxrl-bench": run_module.main,
    "maxrl-report": report.main,
    "maxrl-throughput": throughput.main,
    "python -m benchmarks.results": results.main,
}


@pytest.mark.parametrize("prog", MAINS)
def test_usage_errors_are_one_line_with_a_hint(prog, capsys):
    positional = {"maxrl-report": ["dir"], "python -m benchmarks.results": ["pack", "dir"]}
    assert exit_of(MAINS[prog], [*positional.get(prog, []), "--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: unrecognized arguments")
    assert f"see {prog} --help" in err


@pytest.mark.parametrize("prog", MAINS)
def test_version_comes_from_the_package_metadata(prog, capsys):
    try:
        expected = metadata.version("maxrl-bench")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        from maxrl_envs import __version__ as expected
    assert exit_of(MAINS[prog], ["--version"]) == 0
    assert capsys.readouterr().out == f"{prog} {expected}\n"


@pytest.mark.parametrize(
    "parser",
    [train.build_parser, run_module.build_parser, throughput.build_parser],
    ids=["maxrl-train", "maxrl-bench", "maxrl-throughput"],
)
def test_help_states_each_default_once(parser):
    text = " ".join(parser().format_help().split())
    options = re.split(r" (?=--?[a-z])", text.split(" options: ", 1)[1])
    for option in options:
        assert len(re.findall(r"\(default|default:|; default", option)) <= 1, option
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 1)" in text  # --threads still shows its default


def test_misspellings_get_a_suggestion(capsys):
    assert exit_of(train.main, ["--env", "MaxRLRegresion-v0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(did you mean 'MaxRLRegression-v0'?)" in err
    assert exit_of(train.main, ["--estimatr", "grpo"]) == 2
    assert "(did you mean '--estimator'?)" in capsys.readouterr().err
    assert run_module.main(["quik"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(did you mean 'quick'?)" in err
    assert exit_of(train.main, ["--env-kwargs", "snrr=1"]) == 2
    assert "snrr=1 (did you mean 'snr'?)" in capsys.readouterr().err


def test_list_columns_line_up(monkeypatch):
    # Names of different lengths and costs in minutes and hours (not "full": slow to load).
    names = ["quick", "low-snr-offpolicy", "tokens"]
    monkeypatch.setattr(run_module, "available_suites", lambda: names)
    lines = list_suites().splitlines()[1:-1]
    assert [line.split()[0] for line in lines] == names
    for column in (r"\d runs ", r" CPU "):
        ends = {match.end() for match in (re.search(column, line) for line in lines)}
        assert len(ends) == 1, (column, lines)


def test_plain_progress_prints_every_tenth_or_thirty_seconds():
    lines: list[str] = []
    now = [0.0]
    progress = PlainProgress("s", 200, write=lines.append, clock=lambda: now[0])
    for _ in range(40):  # 20% of the runs, one per second
        now[0] += 1.0
        progress.update()
    assert [line.split(",")[0] for line in lines] == [
        "s: 20/200 runs (10%)",
        "s: 40/200 runs (20%)",
    ]
    now[0] += 31.0
    progress.set_postfix_str("ETA ~5 min (rough)")
    progress.update()  # 30 s since the last line
    assert lines[-1] == "s: 41/200 runs (20%), 71 s elapsed, ETA ~5 min (rough)"
    progress.update(159)
    progress.close()
    assert lines[-1] == "s: 200/200 runs (100%), 71 s elapsed"
    assert len(lines) == 4


class FakeBackend:
    """Finishes every job at once with an ok row (no training), one slot."""

    slots = 1

    def __init__(self, *args, **kwargs) -> None:
        self.jobs: list[dict] = []
        self.on_submit = None

    @property
    def in_flight(self) -> int:
        return len(self.jobs)

    def describe(self) -> str:
        return "fake"

    def submit(self, job: dict) -> None:
        self.jobs.append(job)
        if self.on_submit is not None:
            self.on_submit()

    def wait(self) -> list[tuple[dict, dict]]:
        done, self.jobs = self.jobs, []
        metrics = {"eval/log_likelihood": -1.0, "eval/pass@1": 0.5, "eval/excess_mse": 0.1}
        return [({**j}, {**j, "status": "ok", "metrics": metrics, "elapsed": 0.1}) for j in done]

    def close(self, cancel: bool = False) -> None:
        self.cancelled = cancel


def test_without_a_terminal_progress_is_plain_lines(tmp_path: Path, monkeypatch, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE, encoding="utf-8")
    backends: list[FakeBackend] = []
    monkeypatch.setattr(
        "benchmarks.backends.make_backend",
        lambda *a, **k: backends.append(FakeBackend()) or backends[-1],
    )
    assert run_module.main([str(suite), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "%|" not in err  # no bar redraws
    assert err.splitlines()[-1].startswith(f"tiny: {TINY_RUNS}/{TINY_RUNS} runs (100%), ")


def test_sigterm_stops_the_driver_cleanly_with_one_line(tmp_path: Path, monkeypatch, capsys):
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE, encoding="utf-8")
    backend = FakeBackend()
    calls = []

    def terminate() -> None:
        calls.append(1)
        if len(calls) == 2:  # one run finished, the second is in flight
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted by the handler long before this ends

    backend.on_submit = terminate
    monkeypatch.setattr("benchmarks.backends.make_backend", lambda *a, **k: backend)
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGTERM)
    assert run_module.main([str(suite), "--out", str(out), "--no-progress"]) == 143
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored
    assert backend.cancelled  # the runs in flight were stopped
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("terminated (SIGTERM); ")
    assert f"Rerun the same command to resume: maxrl-bench {suite}" in err
    rows = (out / "tiny" / "results.jsonl").read_text().splitlines()
    assert len(rows) == 1  # the finished run's row is kept, whole


def test_parser_quotes_a_short_usage_line(capsys):
    parser = Parser(prog="tool")
    parser.add_argument("path")
    with pytest.raises(SystemExit):
        parser.parse_args([])
    err = capsys.readouterr().err
    assert err == (
        "tool: error: the following arguments are required: path "
        "(usage: tool [-h] [--version] path; see tool --help)\n"
    )


def test_activation_hint_when_the_venv_is_not_on_path(tmp_path: Path, monkeypatch):
    import shutil
    import sys

    from agents.cli import activation_hint

    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "tensorboard", "activate"):
        (bin_dir / name).write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    hint = activation_hint()
    assert "run `source .venv/bin/activate` first" in hint
    assert "or call them as .venv/bin/tensorboard" in hint
    monkeypatch.setattr(shutil, "which", lambda name: f"/somewhere/{name}")
    assert activation_hint() is None  # on PATH: the printed command runs as it is
