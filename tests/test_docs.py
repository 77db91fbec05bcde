"""The documentation's examples run: every Python block, and every documented command.

Python blocks (```python) of README.md and docs/*.md run in a fresh interpreter. Shell
blocks (```bash) are checked without their full cost: ``maxrl-train`` / ``python -m
agents.train`` commands are parsed and validated (``config_from_args``), ``maxrl-bench`` /
``python -m benchmarks.run`` commands get ``--dry-run`` (or run as written for ``--list``
and ``--help``), other entry points run with ``--help``. A command a reader cannot run as
written (a placeholder such as ``NAME``) is skipped by name below, with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 240

#: Entry points and how to check them cheaply.
TRAIN = ("maxrl-train", "python -m agents.train")
BENCH = ("maxrl-bench", "python -m benchmarks.run")
HELP_ONLY = (
    "maxrl-report",
    "python -m benchmarks.report",
    "maxrl-throughput",
    "python -m benchmarks.throughput",
    "python -m maxrl_envs.references",
)
#: Placeholders that are not meant to run as written.
PLACEHOLDERS = ("NAME", "my-suite.toml", "runs/a", "<", "DIR", "OUT/", "--address auto")


def blocks(language: str) -> list[tuple[str, str]]:
    """(page:line, code) of every fenced block of ``language`` with no other info string."""
    found = []
    fence = re.compile(r"^```" + language + r"\n(.*?)^```", re.M | re.S)
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in fence.finditer(text):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def commands() -> list[tuple[str, str]]:
    """Every documented command line (continuations joined, comments dropped)."""
    out = []
    for where, code in blocks("bash"):
        code = code.replace("\\\n", " ")
        for line in code.splitlines():
            line = line.split("  #", 1)[0].split(" # ", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append((where, line))
    return out


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
@pytest.mark.parametrize("where, code", blocks("python"), ids=lambda v: v if ":" in v else "")
def test_python_blocks_run(where: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{where}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"


def _split(line: str) -> tuple[str, list[str]] | None:
    for prefix in (*TRAIN, *BENCH, *HELP_ONLY):
        if line == prefix or line.startswith(prefix + " "):
            return prefix, shlex.split(line[len(prefix) :])
    return None


def test_documented_commands_are_found() -> None:
    found = [line for _, line in commands() if _split(line)]
    assert len(found) >= 10  # the check below has something to check


@pytest.mark.parametrize(
    "where, line", [c for c in commands() if _split(c[1])], ids=lambda v: str(v)[:60]
)
def test_documented_commands_parse(where: str, line: str, monkeypatch, capsys) -> None:
    prefix, args = _split(line)  # type: ignore[misc]
    if prefix not in HELP_ONLY and any(token in line for token in PLACEHOLDERS):
        pytest.skip(f"{where}: a placeholder, not meant to run as written: {line}")
    if prefix in TRAIN:
        from agents.train import config_from_args

        config = config_from_args(args)  # parses and validates; exits 2 on a bad flag
        assert config.budget >= 1
        return
    # In this process (a fresh interpreter per command cost ~2.5 CPU-s each): the entry
    # points' main() functions are what the console scripts call.
    import importlib

    if prefix in BENCH:
        extra = [] if {"--list", "--help", "--dry-run"} & set(args) else ["--dry-run"]
        name, argv = "benchmarks.run", [*args, *extra]
    else:
        module = {"maxrl-report": "benchmarks.report", "maxrl-throughput": "benchmarks.throughput"}
        name, argv = module.get(prefix, prefix.removeprefix("python -m ")), ["--help"]
    code = run_main(importlib.import_module(name).main, argv, monkeypatch)
    out = capsys.readouterr()
    assert code == 0, f"{where}: {line}\n{out.out[-2000:]}\n{out.err[-2000:]}"


def run_main(main, argv: list[str], monkeypatch) -> int:
    """Exit status of an entry point's ``main(argv)``, run from the repository root.

    The runner pins threads through the environment and torch; both are restored after.
    """
    import torch

    monkeypatch.chdir(ROOT)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))  # restored when the test ends
    threads = torch.get_num_threads()
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    finally:
        torch.set_num_threads(threads)


def test_agents_page_lists_every_train_config_field_with_its_default() -> None:
    import dataclasses

    from agents.trainer import TrainConfig

    text = (ROOT / "docs" / "agents.md").read_text(encoding="utf-8")
    section = text[text.index("### `TrainConfig`") : text.index("`validate_config(config)`")]
    rows = dict(re.findall(r"^\| `(\w+)` \| [^|]* \| ([^|]*) \|", section, re.M))
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert sorted(rows) == sorted(fields)
    for name, field in fields.items():
        default = field.default_factory() if callable(field.default_factory) else field.default
        cell = rows[name].strip().strip("`").split(" (")[0]  # "False (CLI: True)" -> "False"
        if isinstance(default, bool) or default is None:
            assert cell == str(default), (name, cell, default)
        elif isinstance(default, (int, float)):
            assert float(cell) == default, (name, cell, default)
        else:
            assert cell == str(default), (name, cell, default)


def test_documented_training_runs_that_share_a_directory_agree() -> None:
    """Following every maxrl-train example must not hit a run-directory clash."""
    import dataclasses

    from agents.train import config_from_args

    seen: dict[Path, tuple[str, dict]] = {}
    for where, line in commands():
        split = _split(line)
        if split is None or split[0] not in TRAIN:
            continue
        config = config_from_args(split[1])
        if config.log_dir is None:
            continue
        settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "progress"}
        run_dir = Path(config.log_dir) / config.name
        if run_dir in seen:
            assert seen[run_dir][1] == settings, f"{where} and {seen[run_dir][0]}: {run_dir}"
        seen[run_dir] = (where, settings)
    assert len(seen) >= 2


def test_pages_say_how_to_reach_the_console_scripts() -> None:
    for page in ("README.md", "docs/getting-started.md"):
        text = (ROOT / page).read_text(encoding="utf-8")
        typed = ("\nmaxrl-train --", "\nmaxrl-bench --", "\nmaxrl-report ", "\ntensorboard --")
        first_command = min(text.index(command) for command in typed if command in text)
        assert "source .venv/bin/activate" in text[:first_command], page


def slugs(text: str) -> set[str]:
    """Anchors of a page's headings, as Python-Markdown's toc extension makes them."""
    import unicodedata

    found: set[str] = set()
    for heading in re.findall(
        r"^#{1,6} +(.+?) *#*$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S), re.M
    ):
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # link text only
        plain = unicodedata.normalize("NFKD", plain).encode("ascii", "ignore").decode()
        slug = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", plain).strip().lower())
        base, count = slug, 0
        while slug in found:  # repeated headings get _1, _2, ...
            count += 1
            slug = f"{base}_{count}"
        found.add(slug)
    return found


def test_page_anchors_exist() -> None:
    """Every [text](page.md#anchor) link in README.md and docs/ names a heading of the page."""
    checked = 0
    for page in [*PAGES, *sorted((ROOT / "docs").glob("*/**/*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*\.md|)#([^)\s]+)\)", text):
            linked = (page.parent / target).resolve() if target else page
            assert linked.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"
            assert anchor in slugs(linked.read_text(encoding="utf-8")), (
                f"{page.relative_to(ROOT)}: {target or page.name}#{anchor} names no heading"
            )
            checked += 1
    assert checked >= 3  # the check has links to check
