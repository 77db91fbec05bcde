"""Early stopping reports the test metrics of the validation-best checkpoint."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from agents import trainer as trainer_module
from agents.trainer import TrainConfig, Trainer


def classification_config(tmp_path, steps: int, **overrides) -> TrainConfig:
    """A 5-class early-stopping run of ``steps`` steps of 16 contexts x 8 rollouts,
    evaluated every 4 steps; lr 0.05 is large enough to move the validation score up and
    down."""
    settings = dict(
        env_id="MaxRLClassification-v0",
        env_kwargs={"task": "teacher-mlp", "num_classes": 5, "num_contexts": 256},
        group_size=8,
        num_groups=16,
        budget=16 * 8 * steps,
        lr=0.05,
        eval_every=16 * 8 * 4,
        eval_samples=8,
        pass_k=2,
        early_stopping=True,
        select_contexts=64,
        log_dir=str(tmp_path),
        device="cpu",
    )
    return TrainConfig(**{**settings, **overrides})


def test_early_stopping_picks_the_validation_best_checkpoint(monkeypatch, tmp_path) -> None:
    config = classification_config(tmp_path, steps=40, estimator="maxrl")
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


#: 3**11 = 177147 token sequences, above the exact enumeration's cap of 2**16.
BIG_TREE = {"num_digits": 11, "base": 3, "num_contexts": 64, "num_validation_contexts": 16}


def big_tree_config(tmp_path, **overrides) -> TrainConfig:
    settings = {
        "env_id": "MaxRLTokens-v0",
        "env_kwargs": {**BIG_TREE, "num_test_contexts": 16},
        "group_size": 4,
        "num_groups": 4,
        "budget": 64,
        "eval_every": 32,
        "eval_samples": 4,
        "pass_k": 2,
        "early_stopping": True,
        "log_dir": str(tmp_path),
        "device": "cpu",
        "hidden": (8,),
        **overrides,
    }
    return TrainConfig(**settings)


def test_big_token_tree_selects_on_the_monte_carlo_log_likelihood(tmp_path) -> None:
    # The default select metric of a Gaussian head is the log-likelihood; without an exact
    # form it falls back to the Monte-Carlo tag evaluation reports (was a KeyError).
    config = big_tree_config(tmp_path)
    result = trainer_module.train(config)
    assert "eval/log_likelihood" not in result
    assert result["eval/log_likelihood_mc"] < 0.0 and result["rollouts"] == 64
    assert result["selected_rollouts"] in (0.0, 32.0, 64.0)
    final = json.loads((tmp_path / config.name / "final.json").read_text())
    assert final["select_metric"] == "eval/log_likelihood_mc"
    # Asked for explicitly, the Monte-Carlo tag is accepted; the exact one is refused.
    trainer_module.validate_config(
        big_tree_config(tmp_path, select_metric="eval/log_likelihood_mc")
    )
    bad = big_tree_config(tmp_path, select_metric="eval/log_likelihood")
    with pytest.raises(ValueError, match=r"select_metric='eval/log_likelihood'.*177147.*_mc"):
        trainer_module.validate_config(bad)
    # A small tree keeps the exact tag, and refuses the Monte-Carlo one.
    small = dict(config.env_kwargs, num_digits=2)
    trainer_module.validate_config(
        big_tree_config(tmp_path, env_kwargs=small, select_metric="eval/log_likelihood")
    )
    with pytest.raises(ValueError, match=r"select_metric='eval/log_likelihood_mc'.*allowed"):
        trainer_module.validate_config(
            big_tree_config(tmp_path, env_kwargs=small, select_metric="eval/log_likelihood_mc")
        )


def test_load_policy_loads_the_selected_policy_and_requires_best(tmp_path) -> None:
    from agents.runs import CorruptFileError

    config = classification_config(tmp_path, steps=24)
    trainer = Trainer(config)
    result = trainer.run()
    assert trainer.best is not None and trainer.best.rollouts < trainer.rollouts_done
    agent, _ = trainer_module.load_policy(tmp_path / config.name)
    loaded = agent.policy.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trainer.best.policy.items())
    assert not all(torch.equal(loaded[k], v) for k, v in trainer.policy.state_dict().items())
    again = trainer_module.evaluate(
        agent.task, agent, eval_samples=8, pass_k=2, seed=trainer.eval_seed
    )
    assert again["eval/pass@1"] == pytest.approx(result["eval/pass@1"], abs=1e-12)
    last, _ = trainer_module.load_policy(tmp_path / config.name, selected=False)
    last_state = last.policy.state_dict()
    assert all(torch.equal(last_state[k], v) for k, v in trainer.policy.state_dict().items())

    path = tmp_path / config.name / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "best"}, path)
    with pytest.raises(CorruptFileError, match=r"checkpoint\.pt is corrupt.*'best'"):
        trainer_module.load_policy(tmp_path / config.name)
    torch.save({**state, "best": None}, path)  # final.json reports a selection it lacks
    with pytest.raises(CorruptFileError, match=r"selected at \d+\.0 rollouts.*no selection"):
        trainer_module.load_policy(tmp_path / config.name)


def test_checkpoint_selector_keeps_the_best_finite_value_in_the_metric_direction() -> None:
    from agents.protocol import CheckpointSelector

    module = torch.nn.Linear(1, 1, bias=False)
    up = CheckpointSelector(True, "eval/log_likelihood")  # higher is better
    down = CheckpointSelector(True, "eval/excess_mse")  # lower is better
    for value, rollouts in [(float("nan"), 0), (1.0, 10), (3.0, 20), (2.0, 30), (3.0, 40)]:
        with torch.no_grad():
            module.weight.fill_(rollouts)
        up.offer(value, rollouts, module)
        down.offer(value, rollouts, module)
    assert (up.best.value, up.best.rollouts) == (3.0, 20)  # ties keep the first
    assert (down.best.value, down.best.rollouts) == (1.0, 10)
    assert up.tag == "select/log_likelihood"
    with torch.no_grad():
        module.weight.fill_(-1.0)
    seen = []
    selected = up.selected(
        module, lambda: seen.append(float(module.weight.detach())) or {"eval/x": 0.5}
    )
    assert seen == [20.0] and float(module.weight) == -1.0  # scored the best, then put back
    assert selected == {"eval/x": 0.5, "selected_rollouts": 20.0, "selected_value": 3.0}
    off = CheckpointSelector(False, "eval/log_likelihood")
    assert not off.offer(1.0, 0, module) and off.selected(module, dict) is None


def test_both_configs_have_the_shared_run_and_eval_settings() -> None:
    """RunSettings and EvalSettings name fields that both configs have."""
    import dataclasses

    from agents.protocol import EvalSettings, RunSettings
    from agents.sb3_baselines import SB3Config

    ours, sb3 = TrainConfig(pass_k=4, eval_samples=8), SB3Config(pass_k=4, eval_samples=8)
    assert ours.eval_settings == sb3.eval_settings  # the same defaults for evaluation
    assert ours.run_settings.eval_every == 20_000 and sb3.run_settings.eval_every == 10_000
    names = [{f.name for f in dataclasses.fields(cls)} for cls in (TrainConfig, SB3Config)]
    for shared in (RunSettings, EvalSettings):
        for f in dataclasses.fields(shared):
            assert all(f.name in config_fields for config_fields in names), f.name
    bad = dataclasses.replace(sb3.eval_settings, pass_k=9)
    with pytest.raises(ValueError, match=r"pass_k=9 is invalid; allowed: an integer in \[1, 8\]"):
        bad.check()
