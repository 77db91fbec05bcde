"""Sweeps never give a silent wrong answer: one runner per results directory, corrupt run files
set aside and recorded, a full disk and a read-only directory stated plainly, unusable suites
refused before anything runs, Ray cleaned up."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from testrows import final_row

from benchmarks import results as results_module
from benchmarks import run as run_module
from benchmarks.jobs import execute_job
from benchmarks.report import main as report_main
from benchmarks.results import RESULTS_FILE, append_row, read_rows
from benchmarks.run import LockedError, ResultsLock, main
from benchmarks.suite import SuiteError, load_suite

REPO = Path(__file__).resolve().parents[2]
POOLS = "num_contexts = 64, num_test_contexts = 16, num_validation_contexts = 16"
# Runs of 4 steps (our trainer) or 2 updates (A2C), evaluated at 0, 64 and 128 rollouts.
MINI_SUITE = f"""
name = "mini"
description = "The reliability tests' suite."

[settings]
seeds = [0, 1]
budget = 128
eval_every = 64
eval_samples = 4
pass_k = 2
group_size = 4
num_groups = 8
hidden = [8]
lr_grid = [1e-2]
lr_points = 1
tune_eval_contexts = 16

[agents.a2c-small]
sb3 = "A2C"
num_envs = 8
hyperparams = {{ n_steps = 8 }}

[[experiments]]
name = "main"
envs = [{{ id = "MaxRLRegression-v0", kwargs = {{ {POOLS} }} }}]
agents = ["maxrl"]
"""


def write_mini(folder: Path, text: str = MINI_SUITE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mini.toml"
    path.write_text(text, encoding="utf-8")
    return path


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini suite (two runs of our trainer) run once; its results directory."""
    root = tmp_path_factory.mktemp("mini")
    suite = write_mini(root)
    args = [str(suite), "--out", str(root / "out"), "--no-progress", "--workers", "1"]
    assert main([*args, "--no-report"]) == 0
    return root / "out" / "mini"


@pytest.fixture
def mini_copy(mini_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the mini run: (suite file, results directory)."""
    shutil.copytree(mini_run, tmp_path / "out" / "mini")
    return write_mini(tmp_path), tmp_path / "out" / "mini"


def runner_args(suite: Path, results_dir: Path) -> list[str]:
    return [str(suite), "--out", str(results_dir.parent), "--no-progress", "--workers", "1"]


# --------------------------------------------------------------------------------------------
# One runner per results directory
# --------------------------------------------------------------------------------------------


def test_a_second_runner_exits_2_naming_the_holder(mini_copy: tuple[Path, Path]) -> None:
    suite, results_dir = mini_copy
    rows = (results_dir / RESULTS_FILE).read_bytes()
    with ResultsLock(results_dir):
        second = subprocess.run(
            [sys.executable, "-m", "benchmarks.run", *runner_args(suite, results_dir)],
            cwd=REPO,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert second.returncode == 2, second.stderr
    assert f"is in use by another maxrl-bench runner (pid {os.getpid()} on " in second.stderr
    assert platform.node() in second.stderr
    assert "Traceback" not in second.stderr
    assert (results_dir / RESULTS_FILE).read_bytes() == rows


def test_a_runner_killed_with_sigkill_does_not_block_the_next(
    mini_copy: tuple[Path, Path],
) -> None:
    suite, results_dir = mini_copy
    hold = (
        "import sys, time; from pathlib import Path; from benchmarks.run import ResultsLock; "
        "lock = ResultsLock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(300)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(results_dir)],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"pid {holder.pid} on "):
            ResultsLock(results_dir)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert "pid" in (results_dir / ".lock").read_text()  # its stamp is still in the file
    assert main([*runner_args(suite, results_dir), "--no-report"]) == 0


# --------------------------------------------------------------------------------------------
# Corrupt run files in a sweep: set aside, restarted, recorded
# --------------------------------------------------------------------------------------------


def mini_jobs(tmp_path: Path) -> dict[str, dict]:
    """Seed-0 jobs of our trainer and of A2C."""
    text = MINI_SUITE.replace("seeds = [0, 1]", "seeds = [0]").replace(
        'agents = ["maxrl"]', 'agents = ["maxrl", "a2c-small"]'
    )
    suite = load_suite(str(write_mini(tmp_path, text)))
    return {job.family: job.to_dict() for job in suite.initial_jobs()}


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Both jobs run to the end in ``done``, the A2C one killed after a checkpoint in ``cut``."""
    root = tmp_path_factory.mktemp("executed")
    jobs = mini_jobs(root)
    done = root / "done"
    rows = {family: execute_job(job, str(done)) for family, job in jobs.items()}
    assert {row["status"] for row in rows.values()} == {"ok"}
    from agents import sb3_baselines

    real = sb3_baselines._Run.evaluate

    def crash_at_128(self, model):
        if self.rollouts(model) >= 128:
            raise RuntimeError("killed")
        return real(self, model)

    sb3_baselines._Run.evaluate = crash_at_128
    try:
        cut = execute_job(jobs["sb3"], str(root / "cut"))
    finally:
        sb3_baselines._Run.evaluate = real
    assert cut["status"] == "failed"
    return {"jobs": jobs, "rows": rows, "done": done, "cut": root / "cut"}


RECOVERY_CASES = [
    # (family, state of the run, file damaged, what is set aside)
    ("ours", "done", "checkpoint.pt", "checkpoint.pt"),
    ("ours", "done", "config.json", "config.json"),
    ("ours", "done", "final.json", "final.json"),
    ("sb3", "cut", "checkpoint/state.json", "checkpoint"),
    ("sb3", "cut", "checkpoint/model.zip", "checkpoint"),
    ("sb3", "cut", "config.json", "config.json"),
    ("sb3", "done", "final.json", "final.json"),
]


@pytest.mark.parametrize("how", ["truncated", "garbage"])
@pytest.mark.parametrize(("family", "state", "name", "entry"), RECOVERY_CASES)
def test_a_corrupt_run_file_is_set_aside_and_recorded(
    executed, tmp_path: Path, family: str, state: str, name: str, entry: str, how: str
) -> None:
    results_dir = tmp_path / "results"
    shutil.copytree(executed[state], results_dir)
    job = executed["jobs"][family]
    run_dir = results_dir / executed["rows"][family]["run_dir"]
    if name == "checkpoint.pt":
        (run_dir / "final.json").unlink()  # an interrupted run: the checkpoint is read
    path = run_dir / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"\x00\xffgarbage" * 9)
    damaged = path.read_bytes()

    row = execute_job(job, str(results_dir))

    assert row["status"] == "ok", row.get("error")
    assert row["rollouts"] == 128
    (note,) = row["recovered"]
    assert f"{path} is corrupt" in note and f"set aside as {entry}.corrupt" in note
    aside = run_dir / f"{entry}.corrupt"
    kept = aside / Path(name).relative_to(entry) if aside.is_dir() else aside
    assert kept.read_bytes() == damaged  # kept for inspection
    assert (run_dir / "final.json").exists()


def test_a_sweep_records_the_recovery_in_its_row(mini_copy: tuple[Path, Path]) -> None:
    suite, results_dir = mini_copy
    path = results_dir / RESULTS_FILE
    rows = read_rows(path)
    victim = rows[0]
    run_dir = results_dir / victim["run_dir"]
    (run_dir / "final.json").unlink()
    (run_dir / "checkpoint.pt").write_bytes(b"")
    path.write_bytes(b"".join(results_module.encode_row(r) for r in rows[1:]))  # run it again
    assert main([*runner_args(suite, results_dir), "--no-report"]) == 0
    (row,) = [r for r in read_rows(path) if r["run_id"] == victim["run_id"]]
    assert row["status"] == "ok" and "checkpoint.pt is corrupt (" in row["recovered"][0]
    assert (run_dir / "checkpoint.pt.corrupt").read_bytes() == b""


# --------------------------------------------------------------------------------------------
# Disk full
# --------------------------------------------------------------------------------------------


class _FullDiskOs:
    """``os`` for ``benchmarks.results`` whose writes stop halfway on a full disk."""

    def __init__(self, short: bool = False) -> None:
        self.short = short

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        written = os.write(fd, data[: len(data) // 2])
        if self.short:
            return written
        raise OSError(errno.ENOSPC, "No space left on device")


ROW = {"run_id": "r", "status": "ok", "metrics": {"eval/log_likelihood": -1.0}}


@pytest.mark.parametrize("before", ["rows", "torn-tail", "new-file"])
@pytest.mark.parametrize("failure", ["enospc", "short-write"])
def test_append_row_on_a_full_disk_keeps_the_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: str, failure: str
) -> None:
    path = tmp_path / RESULTS_FILE
    if before != "new-file":
        append_row(path, {**ROW, "run_id": "a"})
        append_row(path, {**ROW, "run_id": "b"})
        if before == "torn-tail":
            path.write_bytes(path.read_bytes()[:-20])
    old = path.read_bytes() if path.exists() else b""
    monkeypatch.setattr(results_module, "os", _FullDiskOs(short=failure == "short-write"))
    with pytest.raises(OSError, match="no space left on device while appending a row to") as err:
        append_row(path, {**ROW, "run_id": "c"})
    assert err.value.errno == errno.ENOSPC
    assert path.read_bytes() == old
    monkeypatch.undo()
    append_row(path, {**ROW, "run_id": "d"})  # after space is freed, rows append cleanly
    assert [r["run_id"] for r in read_rows(path)][-1] == "d"


def test_a_sweep_on_a_full_disk_exits_1_with_the_results_file_whole(
    mini_copy: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    suite, results_dir = mini_copy
    path = results_dir / RESULTS_FILE
    path.unlink()  # the runs are finished: the sweep reads their final.json and appends rows
    real_append = run_module.append_row
    whole: list[bytes] = []

    def append(target: Path, row: dict) -> None:
        if whole:  # the disk fills up after the first row
            with monkeypatch.context() as patch:
                patch.setattr(results_module, "os", _FullDiskOs())
                real_append(target, row)
        real_append(target, row)
        whole.append(Path(target).read_bytes())

    monkeypatch.setattr(run_module, "append_row", append)
    assert main(runner_args(suite, results_dir)) == 1
    err = capsys.readouterr().err
    assert f"error: no space left on device while appending a row to {path}" in err
    assert "intact" in err and "rerun the same command to resume" in err
    assert len(whole) == 1 and path.read_bytes() == whole[0]
    assert len(read_rows(path)) == 1


# --------------------------------------------------------------------------------------------
# Read-only output
# --------------------------------------------------------------------------------------------


def _denied(path: object) -> None:
    raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))  # type: ignore[arg-type]


@contextlib.contextmanager
def read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make ``folder`` read-only: chmod 0o555, or (as root, whom modes do not stop) refuse
    creating, renaming and removing entries under it, as a read-only directory does."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    root = folder.resolve()

    def under(path: object) -> bool:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return False
        return Path(os.path.abspath(os.fsdecode(path))).is_relative_to(root)

    def new_under(path: object) -> bool:
        return under(path) and not os.path.lexists(path)  # type: ignore[arg-type]

    real = {name: getattr(os, name) for name in ("open", "mkdir", "replace", "rename")}
    real.update(unlink=os.unlink, rmdir=os.rmdir, io_open=io.open)

    def fake_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & os.O_CREAT and new_under(path):
            _denied(path)
        return real["open"](path, flags, mode, dir_fd=dir_fd)

    def fake_mkdir(path, mode=0o777, *, dir_fd=None):
        if new_under(path):
            _denied(path)
        return real["mkdir"](path, mode, dir_fd=dir_fd)

    def fake_move(name):
        def move(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
            if under(src) or under(dst):
                _denied(dst)
            return real[name](src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

        return move

    def fake_remove(name):
        def remove(path, *, dir_fd=None):
            if under(path):
                _denied(path)
            return real[name](path, dir_fd=dir_fd)

        return remove

    def fake_io_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wxa+") and new_under(file):
            _denied(file)
        return real["io_open"](file, mode, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", fake_open)
        patch.setattr(os, "mkdir", fake_mkdir)
        patch.setattr(os, "replace", fake_move("replace"))
        patch.setattr(os, "rename", fake_move("rename"))
        patch.setattr(os, "unlink", fake_remove("unlink"))
        patch.setattr(os, "remove", fake_remove("unlink"))
        patch.setattr(os, "rmdir", fake_remove("rmdir"))
        patch.setattr(io, "open", fake_io_open)
        patch.setattr("builtins.open", fake_io_open)
        yield


@pytest.mark.parametrize("where", ["out", "results-dir"])
def test_a_read_only_out_exits_2_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, where: str
) -> None:
    suite = write_mini(tmp_path)
    out = tmp_path / "out"
    results_dir = out / "mini"
    if where == "out":  # the results directory would be created inside a read-only --out
        out.mkdir()
        locked = out
    else:  # an existing results directory whose lock file is still writable
        results_dir.mkdir(parents=True)
        (results_dir / ".lock").write_text("")
        locked = results_dir
    with read_only(locked, monkeypatch):
        code = main([str(suite), "--out", str(out), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and "choose another --out" in err
    assert {p.name for p in out.rglob("*")} == ({"mini", ".lock"} if where != "out" else set())


def results_with_rows(folder: Path) -> Path:
    """A results directory with two agents' rows (written by hand, no training)."""
    folder.mkdir(parents=True)
    for agent in ("maxrl", "grpo"):
        for seed in (0, 1):
            curve = [[0, {"eval/log_likelihood": -3.0}], [100, {"eval/log_likelihood": -1.0}]]
            append_row(
                folder / RESULTS_FILE,
                final_row(
                    agent,
                    seed,
                    env_base="env",
                    sweep={},
                    select_metric="eval/log_likelihood",
                    columns=["eval/log_likelihood"],
                    target_fraction=0.9,
                    metrics={"eval/log_likelihood": -1.0 - seed},
                    curve=curve,
                ),
            )
    (folder / "suite.json").write_text(json.dumps({"suite": "s", "experiments": ["e"]}))
    return folder


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_report_of_a_read_only_directory_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    results_dir = results_with_rows(tmp_path / "results")
    before = listing(results_dir)
    with read_only(results_dir, monkeypatch):
        code = report_main([str(results_dir)])
    assert code == 0
    captured = capsys.readouterr()
    assert "# maxrl-bench report: s" in captured.out
    assert "| env | maxrl |" in captured.out and "| env | grpo |" in captured.out
    assert f"cannot write into {results_dir}" in captured.err and "--report-dir" in captured.err
    assert listing(results_dir) == before


def test_the_report_goes_to_report_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    results_dir = results_with_rows(tmp_path / "results")
    before = listing(results_dir)
    elsewhere = tmp_path / "elsewhere"
    with read_only(results_dir, monkeypatch):
        code = report_main([str(results_dir), "--report-dir", str(elsewhere)])
    assert code == 0
    text = (elsewhere / "report.md").read_text()
    assert f"python -m benchmarks.report {results_dir} --report-dir {elsewhere}" in text
    assert "](plots/curves_e.png)" in text and (elsewhere / "plots" / "curves_e.png").exists()
    assert f"report: {elsewhere / 'report.md'}" in capsys.readouterr().out
    assert listing(results_dir) == before


# --------------------------------------------------------------------------------------------
# A corrupt suite.json
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"suite": "s", "experi', b"", b"\x89PNG\r\n\x1a\n\x00\xff", b"[1, 2]"],
    ids=["truncated", "empty", "garbage", "a-list"],
)
def test_a_corrupt_suite_json_is_named_by_the_report(
    tmp_path: Path, capsys, content: bytes
) -> None:
    results_dir = results_with_rows(tmp_path / "results")
    (results_dir / "suite.json").write_bytes(content)
    assert report_main([str(results_dir)]) == 2
    assert f"error: {results_dir / 'suite.json'} is corrupt (" in capsys.readouterr().err
    other = results_with_rows(tmp_path / "other")
    assert report_main([str(other), str(results_dir)]) == 2  # compare reads it too
    assert not (results_dir / "report.md").exists()


def test_report_cli_on_a_corrupt_suite_json_prints_no_traceback(tmp_path: Path) -> None:
    results_dir = results_with_rows(tmp_path / "results")
    (results_dir / "suite.json").write_bytes(b'{"suite": ')
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", str(results_dir)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "suite.json is corrupt" in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------------------------
# Suite settings that cannot work are refused before anything runs
# --------------------------------------------------------------------------------------------

BAD_SUITES = {
    "tune-seeds-0-settings-grid": (
        ("lr_grid = [1e-2]", "lr_grid = [1e-2, 3e-2]\ntune_seeds = 0"),
        "tune_seeds=0 is invalid",
    ),
    "tune-seeds-0-agent-grid": (
        (
            'agents = ["maxrl"]',
            'agents = ["m2"]\n\n[agents.m2]\nestimator = "maxrl"\nlr_grid = [1e-2, 3e-2]',
        ),
        "agent 'm2' has 2 learning rates (0.01, 0.03) but tune_seeds=0",
    ),
    "tune-seeds-0-sb3-points": (
        ('agents = ["maxrl"]', 'agents = ["a2c-small"]\nlr_points = 3'),
        "tune_seeds=0 is invalid",
    ),
    "misspelt-select-metric": (
        ("lr_points = 1", 'lr_points = 1\nselect_metric = "eval/log_likelihod"'),
        "select_metric='eval/log_likelihod' is invalid; allowed: one of eval/",
    ),
    "misspelt-metric-column": (
        ("lr_points = 1", 'lr_points = 1\nmetrics = ["eval/pass@1", "eval/pas@2"]'),
        "metrics=['eval/pass@1', 'eval/pas@2'] is invalid",
    ),
    "name-dotdot": (('name = "mini"', 'name = "../x"'), "name='../x' is invalid"),
    "name-empty": (('name = "mini"', 'name = ""'), "name='' is invalid"),
    "name-slash": (('name = "mini"', 'name = "a/b"'), "name='a/b' is invalid"),
    "name-dot": (('name = "mini"', 'name = "."'), "name='.' is invalid"),
    "name-int": (('name = "mini"', "name = 5"), "name=5 is invalid"),
    "name-list": (('name = "mini"', 'name = ["x"]'), "name=['x'] is invalid"),
}


@pytest.mark.parametrize("case", list(BAD_SUITES))
def test_a_suite_that_cannot_work_is_refused_on_load(tmp_path: Path, case: str) -> None:
    (old, new), message = BAD_SUITES[case]
    text = MINI_SUITE.replace(old, new)
    if "tune-seeds-0" in case and "tune_seeds" not in new:
        text = text.replace("lr_points = 1", "lr_points = 1\ntune_seeds = 0")
    assert text != MINI_SUITE
    with pytest.raises(SuiteError, match=re.escape(message)):
        load_suite(str(write_mini(tmp_path, text)))


@pytest.mark.parametrize("case", ["tune-seeds-0-agent-grid", "name-dotdot"])
def test_the_runner_refuses_them_with_exit_2_and_writes_nothing(
    tmp_path: Path, capsys, case: str
) -> None:
    (old, new), message = BAD_SUITES[case]
    text = MINI_SUITE.replace(old, new).replace("lr_points = 1", "lr_points = 1\ntune_seeds = 0")
    suite = write_mini(tmp_path / "suite", text)
    assert main([str(suite), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name_or_path",
    [5, None, "", "   ", b"quick", 1.5, ["quick"], "no/such/suite.toml", "../quick"],
    ids=repr,
)
def test_load_suite_names_a_bad_suite_argument(name_or_path: object) -> None:
    with pytest.raises(SuiteError, match=re.escape(f"{name_or_path!r}")):
        load_suite(name_or_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", b'name = "x"\x00\x01', b"\xef\xbb\xbf\xff"],
    ids=["png", "nul-bytes", "bad-utf8"],
)
def test_a_binary_suite_file_is_a_suite_error(tmp_path: Path, capsys, content: bytes) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(content)
    with pytest.raises(SuiteError, match="binary.toml"):
        load_suite(str(path))
    assert main([str(path), "--out", str(tmp_path / "out")]) == 2
    assert "binary.toml" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Ray cleanup
# --------------------------------------------------------------------------------------------


def test_ray_backend_shuts_down_only_a_ray_it_started(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from benchmarks.backends import RayBackend

    if ray.is_initialized():  # pragma: no cover - another test left one running
        ray.shutdown()
    started = RayBackend(str(tmp_path), workers=1)
    try:
        assert started.owns_ray and ray.is_initialized()
    finally:
        started.close()
    assert not ray.is_initialized()  # started here, shut down here

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        joined = RayBackend(str(tmp_path), workers=1)
        assert not joined.owns_ray
        joined.close(cancel=True)
        assert ray.is_initialized()  # joined: left running for its owner
    finally:
        ray.shutdown()
