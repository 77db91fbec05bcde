"""Run directories: resume checks what it resumes, corrupt files are named, disk full is said.

Our trainer (``agents.trainer.train``) and the SB3 runner (``agents.sb3_baselines.train_sb3``)
share ``agents.runs.RunDirectory``; every test here attacks one of its promises for both.
"""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agents import runs, sb3_baselines
from agents.runs import CorruptFileError, atomic_replace_dir, atomic_write
from agents.sb3_baselines import SB3Config, train_sb3
from agents.trainer import TrainConfig, Trainer, train

POOLS = {"num_contexts": 64, "num_test_contexts": 16, "num_validation_contexts": 16}
#: Four steps of 8 contexts x 4 rollouts, evaluated at 0, 64 and 128 rollouts.
OURS = {
    "env_kwargs": POOLS,
    "num_groups": 8,
    "group_size": 4,
    "budget": 128,
    "eval_every": 64,
    "eval_samples": 4,
    "pass_k": 2,
    "select_contexts": 16,
    "hidden": (8,),
    "device": "cpu",
    "threads": 1,
    "run_name": "run",
}
#: Two A2C updates of 8 sub-envs x 8 steps, evaluated at 0, 64 and 128 rollouts.
SB3 = {
    "algo": "A2C",
    "env_kwargs": POOLS,
    "budget": 128,
    "eval_every": 64,
    "num_envs": 8,
    "hyperparams": {"n_steps": 8},
    "eval_samples": 4,
    "pass_k": 2,
    "select_contexts": 16,
    "run_name": "run",
}


@pytest.fixture(autouse=True)
def _one_thread(single_thread) -> None:
    """One torch thread, as in the benchmark workers."""


def ours(log_dir: Path, **overrides) -> TrainConfig:
    return TrainConfig(**{**OURS, "log_dir": str(log_dir), **overrides})


def sb3(log_dir: Path, **overrides) -> SB3Config:
    return SB3Config(**{**SB3, "log_dir": str(log_dir), **overrides})


class CrashError(RuntimeError):
    """A run killed between two evaluations."""


@pytest.fixture(scope="module")
def ours_done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """A finished run of our trainer: (log_dir, metrics)."""
    root = tmp_path_factory.mktemp("ours")
    before = torch.get_num_threads()
    try:
        metrics = train(ours(root))
    finally:
        torch.set_num_threads(before)
    return root, metrics


@pytest.fixture(scope="module")
def sb3_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SB3 run directories: ``done`` (finished) and ``cut`` (killed after its first checkpoint)."""
    root = tmp_path_factory.mktemp("sb3")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_sb3(sb3(root / "done"))
        real = sb3_baselines._Run.evaluate

        def crash_at_128(self, model):
            if self.rollouts(model) >= 128:
                raise CrashError
            return real(self, model)

        sb3_baselines._Run.evaluate = crash_at_128
        try:
            with pytest.raises(CrashError):
                train_sb3(sb3(root / "cut"))
        finally:
            sb3_baselines._Run.evaluate = real
    finally:
        torch.set_num_threads(before)
    assert (root / "cut" / "run" / "checkpoint" / "model.zip").exists()
    return {"done": root / "done", "cut": root / "cut"}


def copy_of(log_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(log_dir, target)
    return target


# --------------------------------------------------------------------------------------------
# Resume checks what it resumes
# --------------------------------------------------------------------------------------------

CHANGES = {
    "lr": ({"lr": 1e-2}, "lr"),
    "env": ({"env_kwargs": {**POOLS, "snr": 1.0}}, "env_kwargs"),
    "budget": ({"budget": 256}, "budget"),
}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("left", ["checkpoint", "final"])
def test_ours_without_config_json_refuses_a_run_of_other_settings(
    ours_done, tmp_path: Path, left: str, change: str
) -> None:
    # config.json is gone; what is left (the checkpoint of an interrupted run, or the
    # final.json of a finished one whose checkpoint was deleted) carries the config.
    log_dir = copy_of(ours_done[0], tmp_path)
    run_dir = log_dir / "run"
    (run_dir / "config.json").unlink()
    (run_dir / ("final.json" if left == "checkpoint" else "checkpoint.pt")).unlink()
    overrides, field = CHANGES[change]
    source = "checkpoint.pt" if left == "checkpoint" else "final.json"
    with pytest.raises(
        ValueError, match=rf"different settings \(from the config inside .*{source}: {field}"
    ):
        train(ours(log_dir, **overrides))
    assert not (run_dir / "config.json").exists()  # nothing was written for the new settings
    # The same settings are accepted: the finished run is returned, the cut one resumed.
    metrics = train(ours(log_dir))
    assert metrics["rollouts"] == 128
    if left == "final":
        assert metrics == ours_done[1]


@pytest.mark.parametrize("change", ["budget", "env"])
@pytest.mark.parametrize("config_json", ["kept", "deleted"])
def test_sb3_second_call_with_new_settings_raises(
    sb3_runs, tmp_path: Path, config_json: str, change: str
) -> None:
    log_dir = copy_of(sb3_runs["done"], tmp_path)
    run_dir = log_dir / "run"
    assert not (run_dir / "checkpoint").exists()  # a finished SB3 run keeps no checkpoint
    if config_json == "deleted":
        (run_dir / "config.json").unlink()
    overrides, field = CHANGES[change]
    with pytest.raises(ValueError, match=rf"different settings .*{field}"):
        train_sb3(sb3(log_dir, **overrides))
    final = json.loads((run_dir / "final.json").read_text())
    assert train_sb3(sb3(log_dir)) == final["metrics"]  # same settings: the stored result


@pytest.mark.parametrize("change", ["budget", "env"])
def test_sb3_interrupted_run_without_config_json_checks_its_checkpoint(
    sb3_runs, tmp_path: Path, change: str
) -> None:
    log_dir = copy_of(sb3_runs["cut"], tmp_path)
    (log_dir / "run" / "config.json").unlink()
    overrides, field = CHANGES[change]
    with pytest.raises(ValueError, match=rf"config inside .*checkpoint: {field}"):
        train_sb3(sb3(log_dir, **overrides))


# --------------------------------------------------------------------------------------------
# Corrupt run files are named
# --------------------------------------------------------------------------------------------


def damage(path: Path, how: str) -> bytes:
    """Truncate, empty or overwrite a file; return its new bytes."""
    data = path.read_bytes()
    new = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "garbage": b"\x89\x00\xffnot a run file\x00" * 8,
        "wrong-type": json.dumps([1, 2, 3]).encode(),
    }[how]
    path.write_bytes(new)
    return new


OURS_FILES = ["checkpoint.pt", "config.json", "final.json"]
DAMAGE = ["truncated", "empty", "garbage"]


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("name", OURS_FILES)
def test_ours_corrupt_file_is_a_clear_error_naming_it(
    ours_done, tmp_path: Path, name: str, how: str
) -> None:
    run_dir = copy_of(ours_done[0], tmp_path) / "run"
    if name == "checkpoint.pt":
        (run_dir / "final.json").unlink()  # an interrupted run: its checkpoint is read
    path = run_dir / name
    bad = damage(path, how)
    with pytest.raises(CorruptFileError, match=f"{path} is corrupt") as caught:
        train(ours(run_dir.parent))
    assert caught.value.path == path
    assert path.read_bytes() == bad  # kept as it was, for inspection


def _partial(state: dict) -> object:
    return {"policy": {}}


def _without_config(state: dict) -> object:
    return {"policy": state["policy"], "step": state["step"]}  # cannot be checked


def _foreign_policy(state: dict) -> object:
    return {**state, "policy": {"net.0.weight": torch.zeros(2, 2)}}


def _tensor(state: dict) -> object:
    return torch.zeros(3)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("config.json", [1, 2]),
        ("final.json", {"config": "x"}),
        ("checkpoint.pt", _partial),
        ("checkpoint.pt", _without_config),
        ("checkpoint.pt", _foreign_policy),
        ("checkpoint.pt", _tensor),
    ],
    ids=[
        "config-list",
        "final-without-metrics",
        "checkpoint-partial",
        "checkpoint-without-config",
        "checkpoint-foreign-policy",
        "checkpoint-tensor",
    ],
)
def test_ours_readable_file_of_the_wrong_shape_is_corrupt(
    ours_done, tmp_path: Path, name: str, content: object
) -> None:
    run_dir = copy_of(ours_done[0], tmp_path) / "run"
    path = run_dir / name
    if name == "checkpoint.pt":
        (run_dir / "final.json").unlink()
        if content is not _foreign_policy:
            (run_dir / "config.json").unlink()  # so the checkpoint's config is read too
        state = torch.load(path, weights_only=True)
        torch.save(content(state), path)
    else:
        path.write_text(json.dumps(content))
    with pytest.raises(CorruptFileError, match=f"{path} is corrupt"):
        train(ours(run_dir.parent))


SB3_FILES = {
    "checkpoint/state.json": "cut",
    "checkpoint/model.zip": "cut",
    "config.json": "cut",
    "final.json": "done",
}


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("name", list(SB3_FILES))
def test_sb3_corrupt_file_is_a_clear_error_naming_it(
    sb3_runs, tmp_path: Path, name: str, how: str
) -> None:
    run_dir = copy_of(sb3_runs[SB3_FILES[name]], tmp_path) / "run"
    path = run_dir / name
    bad = damage(path, how)
    with pytest.raises(CorruptFileError, match=f"{path} is corrupt") as caught:
        train_sb3(sb3(run_dir.parent))
    assert caught.value.path == path
    assert path.read_bytes() == bad


def test_sb3_state_json_of_the_wrong_shape_is_corrupt(sb3_runs, tmp_path: Path) -> None:
    run_dir = copy_of(sb3_runs["cut"], tmp_path) / "run"
    path = run_dir / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps({"config": state["config"], "curve": "x"}))
    with pytest.raises(CorruptFileError, match=f"{path} is corrupt"):
        train_sb3(sb3(run_dir.parent))


# --------------------------------------------------------------------------------------------
# Disk full
# --------------------------------------------------------------------------------------------


def torch_disk_full(tmp: Path) -> None:
    """What ``torch.save`` does on a full disk: part of a file, then its own RuntimeError."""
    tmp.write_bytes(b"PK\x03\x04partial")
    raise RuntimeError(
        "[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0: "
        "PytorchStreamWriter failed writing file data/0: file write failed"
    )


@pytest.fixture
def nearly_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file system has 4 KiB left."""
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=4096))


@pytest.mark.parametrize(
    "writer",
    [
        torch_disk_full,
        lambda tmp: torch.save({"x": torch.zeros(4)}, "/dev/full"),
        lambda tmp: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")),
    ],
    ids=["torch-runtime-error", "torch-save-to-dev-full", "plain-enospc"],
)
def test_atomic_write_says_no_space_left_and_keeps_the_old_file(
    tmp_path: Path, nearly_full, writer: Callable[[Path], None]
) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"the previous checkpoint")
    with pytest.raises(OSError, match=f"no space left on device while writing {path}") as caught:
        atomic_write(path, writer)
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"the previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp file left


def test_atomic_write_with_space_left_keeps_the_writers_own_error(tmp_path: Path) -> None:
    # A full disk is said only when it is full: other failures are not relabelled.
    with pytest.raises(RuntimeError, match="enforce fail"):
        atomic_write(tmp_path / "checkpoint.pt", torch_disk_full)
    assert list(tmp_path.iterdir()) == []


def test_atomic_replace_dir_says_no_space_left(tmp_path: Path, nearly_full) -> None:
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "state.json").write_text("{}")

    def fill(tmp: Path) -> None:
        torch_disk_full(tmp / "model.zip")

    with pytest.raises(OSError, match="no space left on device while writing .*checkpoint"):
        atomic_replace_dir(folder, fill)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
    assert (folder / "state.json").read_text() == "{}"


def test_trainer_checkpoint_on_a_full_disk(
    ours_done, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = copy_of(ours_done[0], tmp_path) / "run"
    before = (run_dir / "checkpoint.pt").read_bytes()
    trainer = Trainer(ours(run_dir.parent))
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda _: usage._replace(free=0))
    monkeypatch.setattr(torch, "save", lambda obj, f: torch_disk_full(Path(f)))
    with pytest.raises(OSError, match="no space left on device while writing .*checkpoint.pt"):
        trainer.save_checkpoint(run_dir / "checkpoint.pt")
    assert (run_dir / "checkpoint.pt").read_bytes() == before


# --------------------------------------------------------------------------------------------
# Settings that must be errors before a run directory exists
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"checkpoint": "no"}, "checkpoint='no' must be True or False"),
        ({"resume": 1}, "resume=1 must be True or False"),
        (
            {"budget": 2e5},
            "budget=200000.0 must be an integer in [1, 1000000000000] (write 200000 or 200_000",
        ),
        ({"device": "meta"}, "device='meta' is not supported; allowed: 'auto', 'cpu'"),
        ({"env_kwargs": {**POOLS, "num_contexts": 10**30}}, "num_contexts=10000000000"),
        ({"env_kwargs": {**POOLS, "snr": "10"}}, "snr='10'"),
        ({"run_name": ".."}, "run_name='..'"),
    ],
)
def test_ours_bad_settings_are_refused_before_anything_is_written(
    tmp_path: Path, overrides: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        train(ours(tmp_path / "logs", **overrides))
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"budget": 2e5}, "budget=200000.0 must be an integer"),
        ({"device": "meta"}, "device='meta' is not supported"),
        ({"resume": "yes"}, "resume='yes' must be True or False"),
        ({"env_kwargs": {**POOLS, "num_contexts": 10**30}}, "num_contexts=10000000000"),
    ],
)
def test_sb3_bad_settings_are_refused_before_anything_is_written(
    tmp_path: Path, overrides: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        train_sb3(sb3(tmp_path / "logs", **overrides))
    assert not (tmp_path / "logs").exists()
