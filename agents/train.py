r"""Command line for one training run: ``python -m agents.train`` or ``maxrl-train``.

Every ``TrainConfig`` field is a flag (``env_id`` is ``--env``, underscores become dashes)::

    python -m agents.train --env MaxRLRegression-v0 --estimator maxrl --group-size 16 \\
        --env-kwargs snr=10 task=linear --budget 200000 --seed 0
    python -m agents.train --env MaxRLClassification-v0 --estimator grpo \\
        --env-kwargs '{"label_noise": 0.1}' --hidden 128 128 --no-progress

``--env-kwargs`` takes one JSON object or ``key=value`` pairs (values parsed as JSON when
they can be, else kept as strings). Optional fields accept ``none``. A progress bar is shown
by default; the final metrics are printed as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.cli import HelpFormatter, Parser, activation_hint, fail
from agents.runs import FINAL
from agents.trainer import TrainConfig, train, validate_config

FLAG_NAMES = {"env_id": "env"}
EXAMPLES = """examples:
  maxrl-train --env MaxRLClassification-v0 --estimator maxrl --group-size 16 --budget 200000
  maxrl-train --env MaxRLRegressionLowSNR-v0 --estimator grpo --env-kwargs head=laplace snr=0.1
  maxrl-train --env MaxRLVerifier-v0 --env-kwargs '{"snr": 1.0, "task": "sine"}' --seed 3
  maxrl-train --env MaxRLTokens-v0 --estimator supervised --run-name tokens-sup --no-resume

Runs go to LOG_DIR/RUN_NAME (TensorBoard events, config.json, checkpoint.pt, final.json);
rerunning the same command resumes or returns the finished run. --threads defaults to 1,
the fastest for these small networks (more threads only help large batches or wide nets).
"""


#: Older flag names kept as aliases.
FLAG_ALIASES = {"group_size": ("--rollouts",), "num_groups": ("--contexts",)}


def parse_env_kwargs(values: Sequence[str]) -> dict[str, Any]:
    """Parse ``--env-kwargs``: one JSON object, or ``key=value`` pairs.

    Raises:
        ValueError: Neither form.
    """
    if len(values) == 1 and values[0].lstrip().startswith("{"):
        try:
            parsed = json.loads(values[0])
        except json.JSONDecodeError as err:
            raise ValueError(f"env_kwargs={values[0]!r} is not valid JSON: {err}") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"env_kwargs={values[0]!r} must be a JSON object")
        return parsed
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(
                f"env_kwargs item {item!r} is invalid; allowed: key=value pairs or one JSON object"
            )
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _optional(convert: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with one flag per ``TrainConfig`` field (help from field metadata)."""
    parser = Parser(
        prog="maxrl-train",
        description="Train one MaxRL / group-estimator (or supervised) run on a maxrl_envs task.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + FLAG_NAMES.get(f.name, f.name).replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata.get("help", "")}
        default = getattr(defaults, f.name)
        hint = hints[f.name]
        args = typing.get_args(hint)
        if f.name == "env_kwargs":
            kwargs |= {"nargs": "+", "default": default, "metavar": "KEY=VALUE"}
            kwargs["help"] += " Give key=value pairs (values parsed as JSON) or one JSON object."
        elif f.name == "progress":
            kwargs |= {"action": argparse.BooleanOptionalAction, "default": True}
        elif hint is bool:
            kwargs |= {"action": argparse.BooleanOptionalAction, "default": default}
        elif f.name == "hidden":
            kwargs |= {"nargs": "*", "type": int, "default": default, "metavar": "WIDTH"}
        else:
            base = next((a for a in args if a is not type(None)), hint) if args else hint
            convert = {int: int, float: float, str: str}[base]
            kwargs |= {
                "type": _optional(convert) if type(None) in args else convert,
                "default": default,
            }
        parser.add_argument(flag, *FLAG_ALIASES.get(f.name, ()), **kwargs)
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse command-line arguments into a validated ``TrainConfig``.

    Raises:
        SystemExit: Bad arguments (status 2, with the message naming the field).
    """
    parser = build_parser()
    ns = parser.parse_args(argv)
    values = vars(ns)
    try:
        if isinstance(values["env_kwargs"], list):
            values["env_kwargs"] = parse_env_kwargs(values["env_kwargs"])
        values["hidden"] = tuple(values["hidden"])
        config = TrainConfig(**values)
        validate_config(config)
    except ValueError as err:
        parser.error(str(err))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Run training from the command line; print the final metrics as JSON.

    Returns:
        0 on success; 2 (with one ``error:`` line) when the run cannot start, e.g. its run
        directory holds a run with other settings.
    """
    config = config_from_args(argv)
    run_dir = Path(config.log_dir) / config.name if config.log_dir is not None else None
    finished = run_dir is not None and config.resume and (run_dir / FINAL).exists()
    try:
        metrics = train(config)
    except ValueError as err:  # settings that clash with a stored run, a corrupt run file
        return fail("maxrl-train", str(err))
    except OSError as err:  # the run directory cannot be written (permissions, full disk)
        where = f" {err.filename}" if err.filename else ""
        return fail(
            "maxrl-train",
            f"cannot write the run directory under log_dir={config.log_dir!r}:{where}: "
            f"{err.strerror or err}",
        )
    if run_dir is not None:
        if finished:
            print(
                f"{run_dir} already holds this finished run: its final.json metrics follow "
                "(nothing was trained; --no-resume trains it again)",
                file=sys.stderr,
            )
        print(f"run directory: {run_dir} (tensorboard --logdir {run_dir})", file=sys.stderr)
        hint = activation_hint()
        if hint:
            print(f"note: {hint}", file=sys.stderr)
    json.dump(metrics, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
