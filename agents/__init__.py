"""Agents for maxrl-bench: estimators, policies, the shared evaluation, the trainer and its CLI.

- ``agents.estimators``: per-rollout weights of MaxRL and its peers (pure functions).
- ``agents.policies``: Gaussian, categorical and autoregressive token policies.
- ``agents.evaluation``: ``evaluate`` and ``SB3Policy``, shared by every agent.
- ``agents.trainer``: ``TrainConfig`` and ``train``, one loop for every estimator.
- ``agents.train``: the ``maxrl-train`` command line.
"""
