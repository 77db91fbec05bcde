"""Trainer callbacks see every step and evaluation; hyperparameters go through the public API."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agents.callbacks import HPARAM_PREFIX, TrainerCallback, as_callback
from agents.trainer import TrainConfig, train

CONFIG = {
    "num_groups": 32,
    "group_size": 8,
    "eval_contexts": 128,
    "eval_samples": 16,
    "pass_k": 4,
    "device": "cpu",
    "threads": 1,
    "budget": 2048,  # 8 steps of 256 rollouts
    "eval_every": 768,  # evaluations at 0, 768, 1536 and the final one at 2048
    "log_every": 3,
}


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


class Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.steps: list[tuple[int, dict]] = []
        self.evaluations: list[tuple[int, dict]] = []
        self.ends: list[dict] = []

    def on_start(self, trainer) -> None:
        self.calls.append("start")

    def on_step(self, trainer, rollouts, stats) -> None:
        self.calls.append("step")
        self.steps.append((rollouts, dict(stats)))

    def on_evaluation(self, trainer, rollouts, metrics) -> None:
        self.calls.append("evaluation")
        self.evaluations.append((rollouts, dict(metrics)))

    def on_end(self, trainer, result) -> None:
        self.calls.append("end")
        self.ends.append(dict(result))


def read_events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_a_callback_sees_every_evaluation_step_and_the_end(tmp_path: Path) -> None:
    recorder, other = Recorder(), Recorder()
    result = train(TrainConfig(**CONFIG, log_dir=str(tmp_path)), callbacks=[recorder, other])
    assert recorder.calls[0] == "start" and recorder.calls[-1] == "end"
    assert recorder.calls.count("start") == recorder.calls.count("end") == 1
    assert recorder.ends == [result] and other.calls == recorder.calls
    # Every step, with the logged statistics on logging steps (3, 6 and the last, 8) only.
    assert [r for r, _ in recorder.steps] == [256 * i for i in range(1, 9)]
    assert [i + 1 for i, (_, s) in enumerate(recorder.steps) if s] == [3, 6, 8]
    assert all("train/loss" in s and "time/fps" in s for _, s in recorder.steps if s)
    # Every evaluation, with the values TensorBoard holds.
    events = read_events(tmp_path / "MaxRLRegression-v0__maxrl__0")
    for tag in ("eval/log_likelihood", "eval/pass@1", "eval/pass@4"):
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        seen = [(r, m[tag]) for r, m in recorder.evaluations]
        assert [s for s, _ in logged] == [s for s, _ in seen] == [0, 768, 1536, 2048]
        assert [v for _, v in logged] == pytest.approx([v for _, v in seen], rel=1e-6)
    assert recorder.evaluations[-1][1]["eval/pass@4"] == result["eval/pass@4"]


def test_hparams_record_the_config_and_final_metrics_with_pass_at_k(tmp_path: Path) -> None:
    from tensorboard.plugins.hparams import plugin_data_pb2

    result = train(TrainConfig(**CONFIG, log_dir=str(tmp_path)))
    events = read_events(tmp_path / "MaxRLRegression-v0__maxrl__0")
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    metrics = {m.name.tag for m in experiment.experiment.metric_infos}
    assert {HPARAM_PREFIX + "pass@1", HPARAM_PREFIX + "pass@4"} <= metrics
    assert HPARAM_PREFIX + "log_likelihood" in metrics
    for tag in metrics - {HPARAM_PREFIX + "rollouts"}:
        (event,) = events.Scalars(tag)
        assert event.step == 2048
        assert event.value == pytest.approx(result["eval/" + tag.removeprefix(HPARAM_PREFIX)])
    # The record does not touch the curves: one point per evaluation, the last the result.
    curve = events.Scalars("eval/log_likelihood")
    assert len(curve) == 4 and curve[-1].value == pytest.approx(result["eval/log_likelihood"])


def test_callbacks_must_be_trainer_callbacks() -> None:
    with pytest.raises(TypeError, match="callbacks=.*TrainerCallback"):
        as_callback([print])
    assert isinstance(as_callback(None), TrainerCallback)
