"""Hooks into our trainer's loop, and the TensorBoard hyperparameter record of a run.

A callback, as in Stable-Baselines3, is an object the trainer calls at fixed points; a user's
logger (Weights & Biases in offline mode, MLflow, a CSV file) plugs in without editing the
trainer::

    from agents.callbacks import TrainerCallback
    from agents.trainer import TrainConfig, train

    class Printer(TrainerCallback):
        def on_evaluation(self, trainer, rollouts, metrics):
            print(rollouts, metrics["eval/log_likelihood"])

    train(TrainConfig(budget=4096), callbacks=[Printer()])

The trainer calls, in order:

- ``on_start(trainer)`` once, before the first step (also when resuming);
- ``on_step(trainer, rollouts, stats)`` after every optimizer step: ``stats`` holds the
  training statistics logged to TensorBoard (``train/loss``, ``time/fps``, ...) on logging
  steps (every ``log_every`` steps) and is empty on the others, so a callback adds no host
  synchronization to the loop;
- ``on_evaluation(trainer, rollouts, metrics)`` after every evaluation on ``eval_split``, with
  the metrics written to TensorBoard at that step (``eval/log_likelihood``, ``eval/pass@k``,
  ...);
- ``on_end(trainer, result)`` once, with the metrics ``train`` returns.

Callbacks observe: their return values are ignored and they should not change the trainer
(its policy, optimizer or generator), or the run stops being reproducible.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Prefix of the metrics of the TensorBoard hyperparameter record (kept apart from the
#: ``eval/`` curves, which the record's own scalars would otherwise overwrite).
HPARAM_PREFIX = "hparam/"


class TrainerCallback:
    """Base class of trainer callbacks: override the hooks you need (each does nothing)."""

    def on_start(self, trainer: Any) -> None:
        """Called once before the first step of this call of ``train`` (also on resume)."""

    def on_step(self, trainer: Any, rollouts: int, stats: Mapping[str, float]) -> None:
        """Called after every optimizer step.

        Args:
            trainer: The ``agents.trainer.Trainer`` (``trainer.config``, ``trainer.step``).
            rollouts: Rollouts consumed so far.
            stats: The statistics logged at this step (empty between logging steps).
        """

    def on_evaluation(self, trainer: Any, rollouts: int, metrics: Mapping[str, float]) -> None:
        """Called after every evaluation with the metrics logged to TensorBoard."""

    def on_end(self, trainer: Any, result: Mapping[str, float]) -> None:
        """Called once when training ends, with the metrics ``train`` returns."""


class CallbackList(TrainerCallback):
    """Several callbacks called in order."""

    def __init__(self, callbacks: Iterable[TrainerCallback]) -> None:
        self.callbacks = list(callbacks)

    def on_start(self, trainer: Any) -> None:  # noqa: D102 - see TrainerCallback
        for callback in self.callbacks:
            callback.on_start(trainer)

    def on_step(self, trainer: Any, rollouts: int, stats: Mapping[str, float]) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_step(trainer, rollouts, stats)

    def on_evaluation(self, trainer: Any, rollouts: int, metrics: Mapping[str, float]) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_evaluation(trainer, rollouts, metrics)

    def on_end(self, trainer: Any, result: Mapping[str, float]) -> None:  # noqa: D102
        for callback in self.callbacks:
            callback.on_end(trainer, result)


def as_callback(
    callbacks: TrainerCallback | Iterable[TrainerCallback] | None,
) -> TrainerCallback:
    """One callback from None, a callback, or several (a ``CallbackList``).

    Raises:
        TypeError: Something that is not a ``TrainerCallback`` (naming it).
    """
    if callbacks is None:
        return TrainerCallback()
    items = [callbacks] if isinstance(callbacks, TrainerCallback) else list(callbacks)
    for item in items:
        if not isinstance(item, TrainerCallback):
            raise TypeError(
                f"callbacks={item!r} is not a TrainerCallback; allowed: an instance of a "
                "subclass of agents.callbacks.TrainerCallback, or a list of them"
            )
    return items[0] if len(items) == 1 else CallbackList(items)


def hparam_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings as hyperparameters.

    Numbers, strings and booleans stay as they are; anything else (lists, mappings, None)
    becomes sorted JSON text.
    """
    return {
        key: value
        if isinstance(value, (bool, int, float, str))
        else json.dumps(value, sort_keys=True)
        for key, value in config.items()
    }


def write_hparams(
    writer: Any, config: Mapping[str, Any], metrics: Mapping[str, float], rollouts: int
) -> None:
    """Record a finished run's settings and final metrics for TensorBoard's HParams tab.

    Through the public ``SummaryWriter.add_hparams``, into the run's own directory
    (``run_name="."``), at the final step. The metrics are every ``eval/`` metric of the
    result (log-likelihood, excess MSE, pass@1, pass@k, ...) as ``hparam/<name>``, plus
    ``hparam/rollouts``: tags of their own, since ``add_hparams`` also writes its metrics as
    scalars and the ``eval/`` curves must keep their last point.

    Args:
        writer: The run's ``torch.utils.tensorboard.SummaryWriter``.
        config: The run's settings (``TrainConfig.to_dict()`` or an SB3 run's settings).
        metrics: The run's final metrics (``train``'s result).
        rollouts: Rollouts consumed (the step of the record).
    """
    values = {
        HPARAM_PREFIX + tag.removeprefix("eval/"): float(value)
        for tag, value in metrics.items()
        if tag.startswith("eval/") and isinstance(value, (int, float)) and math.isfinite(value)
    }
    values[HPARAM_PREFIX + "rollouts"] = float(rollouts)
    writer.add_hparams(hparam_values(config), values, run_name=".", global_step=int(rollouts))
