"""Early stopping reports the test metrics of the validation-best checkpoint."""

from __future__ import annotations

import copy

import pytest
import torch

from agents import trainer as trainer_module
from agents.trainer import TrainConfig, Trainer


def test_early_stopping_picks_the_validation_best_checkpoint(monkeypatch, tmp_path) -> None:
    config = TrainConfig(
        env_id="MaxRLClassification-v0",
        env_kwargs={"task": "teacher-mlp", "num_classes": 5, "num_contexts": 256},
        estimator="maxrl",
        group_size=8,
        num_groups=16,
        budget=16 * 8 * 40,
        lr=0.05,  # large enough to move the validation score up and down
        eval_every=16 * 8 * 4,
        eval_samples=8,
        pass_k=2,
        early_stopping=True,
        select_contexts=64,
        log_dir=str(tmp_path),
        device="cpu",
    )
    seen: list[tuple[int, float, dict]] = []
    original = Trainer.track_best

    def spy(self, metrics):
        value = original(self, metrics)
        state = copy.deepcopy(self.policy.state_dict())
        seen.append((self.rollouts_done, value, state))
        return value

    monkeypatch.setattr(Trainer, "track_best", spy)
    trainer = Trainer(config)
    result = trainer.run()
    assert len(seen) >= 10
    best_rollouts, best_value, best_state = max(seen, key=lambda item: item[1])
    assert result["selected_rollouts"] == best_rollouts
    assert result["selected_value"] == best_value
    assert best_rollouts < seen[-1][0]  # the best is not the last: the test tells them apart
    # The reported test metrics are those of the best checkpoint, not of the last policy.
    trainer.policy.load_state_dict(best_state)
    expected = trainer.evaluate()
    for tag in ("eval/pass@1", "eval/log_likelihood"):
        assert result[tag] == pytest.approx(expected[tag], rel=1e-12, abs=1e-12)
    # ... and the selection metric is the task's default (pass@1 for classification).
    assert trainer_module.select_metric(config, trainer.task) == "eval/pass@1"


def test_without_early_stopping_the_last_policy_is_reported(tmp_path) -> None:
    config = TrainConfig(
        env_id="MaxRLRegression-v0",
        env_kwargs={"num_contexts": 128},
        group_size=4,
        num_groups=8,
        budget=256,
        eval_every=64,
        eval_samples=4,
        pass_k=2,
        log_dir=None,
        device="cpu",
    )
    trainer = Trainer(config)
    result = trainer.run()
    assert "selected_rollouts" not in result
    assert result["eval/log_likelihood"] == pytest.approx(trainer.evaluate()["eval/log_likelihood"])
    assert trainer.best is None and torch.get_num_threads() == 1
