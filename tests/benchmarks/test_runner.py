"""The runner end to end: rows, shared TensorBoard tags, report, resume, failures, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmarks.results import RESULTS_FILE, latest_rows, read_rows
from benchmarks.run import main

REPO = Path(__file__).resolve().parents[2]
SHARED_TAGS = {
    "eval/log_likelihood",
    "eval/excess_mse",
    "eval/pass@1",
    "eval/pass@4",
    "eval/success_rate",
    "eval/reward",
}


def final_mtimes(results_dir: Path) -> dict[str, int]:
    """mtime (ns) of every run's final.json, keyed by run directory name."""
    return {p.parent.name: p.stat().st_mtime_ns for p in results_dir.glob("logs/*/*/final.json")}


def event_files(results_dir: Path) -> set[Path]:
    return set(results_dir.glob("logs/*/*/events.out.tfevents.*"))


def scalar_tags(run_dir: Path) -> dict[str, list[int]]:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [event.step for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


# --- a tiny suite end to end -------------------------------------------------------------


def test_tiny_suite_writes_one_ok_row_per_run(tiny_run: Path) -> None:
    rows = read_rows(tiny_run / RESULTS_FILE)
    assert len(rows) == 6 and len({r["run_id"] for r in rows}) == 6
    assert {r["status"] for r in rows} == {"ok"}
    assert {r["family"] for r in rows} == {"ours", "sb3"}
    assert {(r["phase"], r["family"]) for r in rows} == {
        ("tune", "ours"),
        ("final", "ours"),
        ("final", "sb3"),
    }
    for row in rows:
        assert set(row["metrics"]) >= SHARED_TAGS
        assert row["rollouts"] >= 2048
        assert [step for step, _ in row["curve"]] == [0, 1024, 2048]
    # The reported MaxRL runs use the rate with the best validation log-likelihood.
    tune = [r for r in rows if r["phase"] == "tune"]
    best = max(tune, key=lambda r: r["metrics"]["eval/log_likelihood"])
    final_lrs = {r["lr"] for r in rows if r["phase"] == "final" and r["family"] == "ours"}
    assert final_lrs == {best["lr"]}
    assert {r["config"]["eval_split"] for r in tune} == {"validation"}
    assert {r["config"]["eval_split"] for r in rows if r["phase"] == "final"} == {"test"}


def test_both_families_log_the_shared_tags_at_rollouts(tiny_run: Path) -> None:
    rows = read_rows(tiny_run / RESULTS_FILE)
    for family in ("ours", "sb3"):
        row = next(r for r in rows if r["family"] == family and r["phase"] == "final")
        tags = scalar_tags(tiny_run / row["run_dir"])
        assert set(tags) >= SHARED_TAGS, family
        for tag in SHARED_TAGS:
            assert tags[tag] == [0, 1024, 2048], (family, tag)
    sb3_row = next(r for r in rows if r["family"] == "sb3")
    assert any(
        tag.startswith(("train/", "rollout/")) for tag in scalar_tags(tiny_run / sb3_row["run_dir"])
    )


def test_report_has_table_plot_and_command(tiny_run: Path) -> None:
    report = (tiny_run / "report.md").read_text()
    assert "| environment | agent | lr | seeds |" in report
    assert "| maxrl |" in report.replace("MaxRLRegression-v0 ", "") and "a2c-small" in report
    # In-process calls of main() record the console-script form of the command.
    produced = next(line for line in report.splitlines() if line.startswith("- Produced by:"))
    assert "maxrl-bench " in produced and "tiny.toml --out " in produced
    assert f"python -m benchmarks.report {tiny_run}" in report
    assert "## Learning-rate selection" in report
    plot = tiny_run / "plots" / "curves_main.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5_000
    assert "plots/curves_main.png" in report


def test_report_cli_rewrites_the_report(tiny_copy: tuple[Path, Path], capsys) -> None:
    _, results_dir = tiny_copy
    (results_dir / "report.md").unlink()
    from benchmarks.report import main as report_main

    assert report_main([str(results_dir)]) == 0
    assert (results_dir / "report.md").exists()
    assert "| environment | agent |" in capsys.readouterr().out
    assert report_main([str(results_dir / "nowhere")]) == 2


# --- resume ----------------------------------------------------------------------------------


def test_rerun_skips_finished_runs(tiny_copy: tuple[Path, Path]) -> None:
    suite, results_dir = tiny_copy
    before_rows = read_rows(results_dir / RESULTS_FILE)
    before = final_mtimes(results_dir)
    events = event_files(results_dir)
    assert main([str(suite), "--out", str(results_dir.parent), "--no-progress"]) == 0
    assert read_rows(results_dir / RESULTS_FILE) == before_rows
    assert final_mtimes(results_dir) == before and len(before) == 6
    assert event_files(results_dir) == events


def test_torn_last_row_is_rewritten_without_retraining(tiny_copy: tuple[Path, Path]) -> None:
    suite, results_dir = tiny_copy
    path = results_dir / RESULTS_FILE
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_start + (len(data) - last_start) // 2])  # cut mid-line
    torn_id = read_rows(path)[-1]["run_id"]
    assert len(read_rows(path)) == 5
    before = final_mtimes(results_dir)
    events = event_files(results_dir)
    assert main([str(suite), "--out", str(results_dir.parent), "--no-progress"]) == 0
    rows = read_rows(path)
    assert len(rows) == 6 and len({r["run_id"] for r in rows}) == 6
    assert torn_id in {r["run_id"] for r in rows}
    assert final_mtimes(results_dir) == before  # the lost row came back from final.json
    assert event_files(results_dir) == events


def test_killed_sweep_resumes_without_losing_or_recomputing(
    tmp_path: Path, suite_writer, tiny_suite_text: str
) -> None:
    text = tiny_suite_text.replace("seeds = [0, 1]", "seeds = [0, 1, 2]").replace(
        "budget = 2048", "budget = 4096"
    )
    suite = suite_writer(tmp_path, text)
    out = tmp_path / "out"
    results = out / "tiny" / RESULTS_FILE
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "benchmarks.run", str(suite), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--no-progress", "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while len(read_rows(results)) < 3:
            assert process.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no rows after 90 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(2.5)  # let orphaned workers notice the dead driver and exit
    before_rows = read_rows(results)
    done_before = {r["run_id"] for r in before_rows}
    assert 3 <= len(before_rows) < 8
    mtimes = {
        name: mtime for name, mtime in final_mtimes(out / "tiny").items() if name in done_before
    }
    assert len(mtimes) == len(done_before)

    assert main([str(suite), "--out", str(out), "--no-progress", "--workers", "2"]) == 0
    rows = read_rows(results)
    assert rows[: len(before_rows)] == before_rows  # nothing lost or rewritten
    ids = [r["run_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 8  # 2 validation + 3 MaxRL + 3 A2C runs, once each
    assert all(r["status"] == "ok" for r in rows)
    after = final_mtimes(out / "tiny")
    assert {name: after[name] for name in mtimes} == mtimes  # finished runs not recomputed


# --- failures and bad input -------------------------------------------------------------------


def test_crashing_run_becomes_a_failed_row_and_the_sweep_goes_on(
    tiny_copy: tuple[Path, Path], suite_writer, tiny_suite_text: str
) -> None:
    # An optimizer keyword passes the suite checks (SB3 hands it to torch unread) but
    # torch's Adam rejects eps = -1 inside the worker. The tiny suite's 6 runs are done.
    _, results_dir = tiny_copy
    text = tiny_suite_text.replace(
        'agents = ["maxrl", "a2c-small"]', 'agents = ["maxrl", "a2c-small", "ppo-broken"]'
    ).replace(
        "[[experiments]]",
        '[agents.ppo-broken]\nsb3 = "PPO"\nnum_envs = 8\n'
        "hyperparams = { n_steps = 8, policy_kwargs = { optimizer_kwargs = { eps = -1.0 } } }"
        "\n\n[[experiments]]",
    )
    suite = suite_writer(results_dir.parent.parent / "broken", text)
    out = results_dir.parent
    assert main([str(suite), "--out", str(out), "--no-progress"]) == 1
    rows = read_rows(out / "tiny" / RESULTS_FILE)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(rows) == 8 and len(failed) == 2
    assert {r["agent"] for r in failed} == {"ppo-broken"}
    assert all("epsilon" in r["error"] and r["traceback"] for r in failed)
    assert "## Failed runs" in (out / "tiny" / "report.md").read_text()

    # --skip-failed leaves them; a plain rerun retries them (and they fail again).
    assert main([str(suite), "--out", str(out), "--no-progress", "--skip-failed"]) == 1
    assert len(read_rows(out / "tiny" / RESULTS_FILE)) == 8
    assert main([str(suite), "--out", str(out), "--no-progress", "--no-report"]) == 1
    rows = read_rows(out / "tiny" / RESULTS_FILE)
    assert len(rows) == 10
    assert len(latest_rows(rows)) == 8


@pytest.mark.parametrize(
    ("suite_change", "message"),
    [
        (
            ('agents = ["maxrl", "a2c-small"]', 'agents = ["maxrl", "dqn"]'),
            "does not support the box",
        ),
        (
            ('agents = ["maxrl", "a2c-small"]', 'agents = ["maxrl", "nope"]'),
            "agent 'nope' is unknown",
        ),
        (("snr = 1.0", "snrr = 1.0"), "snrr"),
        (("MaxRLRegression-v0", "MaxRLNope-v0"), "MaxRLNope-v0"),
        (("budget = 2048", "budget = 64"), "budget=64"),
    ],
)
def test_bad_input_fails_before_anything_runs(
    tmp_path: Path, suite_writer, tiny_suite_text: str, capsys, suite_change, message: str
) -> None:
    suite = suite_writer(tmp_path, tiny_suite_text.replace(*suite_change))
    out = tmp_path / "out"
    assert main([str(suite), "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unknown_suite_and_dry_run(
    tmp_path: Path, suite_writer, tiny_suite_text: str, capsys
) -> None:
    assert main(["no-such-suite", "--out", str(tmp_path / "out")]) == 2
    assert "not a known suite" in capsys.readouterr().err
    suite = suite_writer(tmp_path, tiny_suite_text)
    assert main([str(suite), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "tune" in printed and "a2c-small" in printed
    assert not (tmp_path / "out").exists()
    assert main(["--list"]) == 0
    assert "quick" in capsys.readouterr().out


def test_ray_backend_without_ray_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    import builtins

    from benchmarks import backends

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ImportError, match=r"maxrl-bench\[ray\]"):
        backends.make_backend("ray", str(tmp_path))


def test_report_ignores_rows_of_an_older_suite_version(tiny_copy: tuple[Path, Path]) -> None:
    from benchmarks.report import write_report
    from benchmarks.results import append_row

    _, results_dir = tiny_copy
    row = next(r for r in read_rows(results_dir / RESULTS_FILE) if r["phase"] == "final")
    stale = {**row, "run_id": "stale-run", "seed": 7, "metrics": {"eval/log_likelihood": 999.0}}
    append_row(results_dir / RESULTS_FILE, stale)
    report = write_report(results_dir)
    table = report.tables["main"]
    assert "999" not in table and "| 2 |" in table


def test_workers_default_to_the_cpus_divided_by_threads(
    tmp_path: Path, tiny_suite_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What docs/benchmarks.md and --help say: --workers defaults to CPUs // --threads."""
    from benchmarks import backends

    made: list[dict] = []

    def record(name: str, results_dir: str, **kwargs: object) -> None:
        made.append({"backend": name, **kwargs})
        raise ValueError("recorded")  # stop before anything runs

    monkeypatch.setattr(backends, "default_workers", lambda: 8)
    monkeypatch.setattr(backends, "make_backend", record)
    suite = tmp_path / "tiny.toml"
    suite.write_text(tiny_suite_text, encoding="utf-8")
    common = [str(suite), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main([*common, "--threads", "2"]) == 2
    assert main([*common, "--threads", "3"]) == 2
    assert main([*common, "--threads", "16"]) == 2
    assert main([*common, "--workers", "5"]) == 2
    assert [m["workers"] for m in made] == [4, 2, 1, 5]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md").read_text()
    assert "default: the CPUs available divided by `--threads`, at least 1" in " ".join(
        docs.split()
    )
