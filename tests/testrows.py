"""A hand-written result row for report, summary and claims tests (no training)."""

from __future__ import annotations

from typing import Any


def final_row(agent: str, seed: int, env: str = "env", **fields: Any) -> dict[str, Any]:
    """A finished reported row of ``agent`` at ``seed`` in experiment ``e`` on ``env``.

    Run id ``agent-seed`` and cell ``agent``, our family, learning rate 0.01, the role the
    report gives MaxRL or a baseline; ``fields`` add to or replace any of them (metrics,
    curve, columns, ...).
    """
    return {
        "run_id": f"{agent}-{seed}",
        "cell": agent,
        "experiment": "e",
        "env_label": env,
        "agent": agent,
        "role": "maxrl" if agent == "maxrl" else "baseline",
        "family": "ours",
        "lr": 0.01,
        "seed": seed,
        "phase": "final",
        "status": "ok",
        **fields,
    }
