"""Latent generation: a prediction written as a short sequence of digit tokens.

A number is written with ``num_digits`` tokens in base ``base``; the tokens spell an integer
n in [0, base^num_digits - 1], and the decoded prediction is the grid point
-R + 2 R n / (base^num_digits - 1) on [-R, R] (R = ``prediction_range``). The first token is
the coarsest, so a policy over tokens can put mass on several far-apart values at once, like
an LLM that reasons its way to a number.
"""

from __future__ import annotations

import torch

from maxrl_envs.core import PREDICTION_RANGE_MAX, PREDICTION_RANGE_MIN
from maxrl_envs.validation import check_int, check_number

#: Largest grid (base ** num_digits) whose points stay distinct as float32 predictions, so that
#: ``encode(decode(tokens)) == tokens`` holds on the whole grid (checked exhaustively at 2^24).
MAX_LEVELS = 2**24


class TokenCodec:
    """Encode and decode predictions as digit sequences; build token-step observations.

    Args:
        num_digits: Tokens per prediction (episode length), >= 1.
        base: Vocabulary size of each token, >= 2.
        prediction_range: Half-width R of the prediction grid, in [1e-6, 1e6].
    """

    def __init__(self, num_digits: int = 3, base: int = 10, prediction_range: float = 4.0) -> None:
        self.num_digits = check_int("num_digits", num_digits, 1, 12)
        self.base = check_int("base", base, 2, 1024)
        self.prediction_range = check_number(
            "prediction_range",
            prediction_range,
            minimum=PREDICTION_RANGE_MIN,
            maximum=PREDICTION_RANGE_MAX,
        )
        if self.base**self.num_digits > MAX_LEVELS:
            raise ValueError(
                f"base={base!r} and num_digits={num_digits!r} give {self.base**self.num_digits} "
                f"grid values, more than float32 predictions can tell apart ({MAX_LEVELS}); "
                "choose fewer digits or a smaller base"
            )
        self.levels = self.base**self.num_digits

    @property
    def extra_obs_dim(self) -> int:
        """Observation features added to x: position one-hot and written-token one-hots."""
        return self.num_digits + self.num_digits * self.base

    def decode(self, tokens: torch.Tensor, validate: bool = True) -> torch.Tensor:
        """Turn tokens ``[..., num_digits]`` (long) into float32 predictions ``[...]``.

        Args:
            tokens: Digit tokens, each in ``[0, base)``.
            validate: Check the token range (a host sync on GPUs); skip only for trusted
                tokens, e.g. a policy's samples or actions the env has already checked.
        """
        if tokens.shape[-1] != self.num_digits:
            raise ValueError(
                f"tokens have {tokens.shape[-1]} digits in their last dimension; "
                f"expected num_digits={self.num_digits}"
            )
        if (
            validate
            and tokens.numel()
            and (int(tokens.min()) < 0 or int(tokens.max()) >= self.base)
        ):
            raise ValueError(f"token values must lie in [0, {self.base - 1}]")
        powers = self.base ** torch.arange(
            self.num_digits - 1, -1, -1, device=tokens.device, dtype=torch.float64
        )
        n = (tokens.to(torch.float64) * powers).sum(-1)
        value = -1.0 + 2.0 * n / (self.levels - 1)
        return (value * self.prediction_range).to(torch.float32)

    def encode(self, prediction: torch.Tensor) -> torch.Tensor:
        """Nearest token sequence ``[..., num_digits]`` for predictions (clipped to the range)."""
        unit = (prediction.to(torch.float64) / self.prediction_range).clamp(-1.0, 1.0)
        n = torch.round((unit + 1.0) * 0.5 * (self.levels - 1)).to(torch.long)
        digits = []
        for _ in range(self.num_digits):
            digits.append(n % self.base)
            n = n // self.base
        return torch.stack(digits[::-1], dim=-1)

    def step_features(self, written: torch.Tensor, position: int) -> torch.Tensor:
        """Features of a partly written number.

        Args:
            written: Tokens so far, ``[M, num_digits]`` long; entries at and after
                ``position`` are ignored.
            position: Index of the token about to be written, in [0, num_digits]; at
                num_digits (the number is complete) no position bit is set.

        Returns:
            Float32 ``[M, extra_obs_dim]``: one-hot of ``position``, then for each digit slot a
            one-hot of its token (zeros for slots not yet written).
        """
        m = written.shape[0]
        features = torch.zeros(m, self.extra_obs_dim, device=written.device)
        if position < self.num_digits:
            features[:, position] = 1.0
        if position > 0:
            slots = torch.arange(position, device=written.device)
            columns = self.num_digits + slots * self.base + written[:, :position]
            features.scatter_(1, columns, 1.0)
        return features
