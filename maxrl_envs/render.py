"""Gymnasium render modes of the envs: ``"ansi"`` (one text line) and ``"rgb_array"``.

Both draw a ``RenderView``: a numpy snapshot of the contexts of the current or last finished
episodes (ids, observations, targets) with, once an episode has been scored, the
predictions of every rollout of each group, their normalized log-likelihoods and rewards.
The shells only keep references to the contexts and scores to draw (when a render mode was
asked for); ``render()`` copies them to numpy, so a step costs the same with or without a
render mode.

* ``"ansi"``: ``context 3 | x dim 8 mean +0.12 norm 2.71 | target +0.532 | prediction
  +0.480 | log-likelihood -0.014 | reward 0.986``.
* ``"rgb_array"``: a ``FRAME_SHAPE`` uint8 picture drawn with numpy. Its horizontal axis is
  the prediction range ``[-prediction_range, prediction_range]`` (numeric kinds) or the
  class ids (classification); the top strip marks the target (green) and the prediction
  (red); below, blue bars are the histogram of the group's predictions (the predictive
  distribution of a vector env's group of N rollouts); the bottom rule is grey with a
  dark tick at 0 (numeric kinds). Values outside the axis sit on its edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from maxrl_envs.validation import check_choice

#: Render modes every env accepts (besides None).
RENDER_MODES = ("ansi", "rgb_array")
#: Frames per second declared for video recorders (one frame per env step).
RENDER_FPS = 4
#: Height, width and channels of an ``rgb_array`` frame.
FRAME_SHAPE = (48, 128, 3)
#: Histogram bins of numeric predictions (classification uses one bin per class, up to the
#: frame width).
NUMERIC_BINS = 32

WHITE = (255, 255, 255)
GREEN = (0, 160, 0)
RED = (220, 0, 0)
BLUE = (70, 110, 220)
GREY = (190, 190, 190)
DARK = (60, 60, 60)
_STRIP = 8  # rows of the marker strip at the top
_RULE = 3  # rows of the axis rule at the bottom


def check_render_mode(render_mode: Any) -> str | None:
    """Return ``render_mode`` if it is None, ``"ansi"`` or ``"rgb_array"``; else ``ValueError``."""
    if render_mode is None:
        return None
    return check_choice("render_mode", render_mode, RENDER_MODES)


@dataclass(frozen=True)
class RenderView:
    """A numpy snapshot of grouped episodes to draw.

    Attributes:
        ids: Context ids ``[B]``.
        obs: Context observations x ``[B, dim]``.
        target: Targets y (or observed labels) ``[B]``.
        group_size: Rollouts per context N.
        numeric: Whether predictions are numbers (else class ids).
        axis: ``(low, high)`` of the horizontal axis of a frame.
        bins: Histogram bins of a frame.
        prediction: Predictions ``[B, N]`` of the last scored step, or None before one.
        log_likelihood: Their normalized log-likelihoods ``[B, N]`` (or None).
        reward: Their rewards ``[B, N]`` (or None).
        written: Tokens written so far ``[B * N, position]`` mid-episode (or None).
    """

    ids: np.ndarray
    obs: np.ndarray
    target: np.ndarray
    group_size: int
    numeric: bool
    axis: tuple[float, float]
    bins: int
    prediction: np.ndarray | None = None
    log_likelihood: np.ndarray | None = None
    reward: np.ndarray | None = None
    written: np.ndarray | None = None

    @property
    def num_rollouts(self) -> int:
        """B * N: one frame or line per rollout (sub-env)."""
        return int(self.ids.shape[0]) * self.group_size


def snapshot(episodes: Any, scores: Any = None, contexts: Any = None) -> RenderView:
    """Take a ``RenderView`` of ``GroupEpisodes`` (their contexts, and ``scores`` if scored).

    Args:
        episodes: A ``maxrl_envs.episodes.GroupEpisodes`` whose episodes have begun.
        scores: The ``Scores`` of the step that ended the episodes drawn, or None.
        contexts: The contexts drawn (default: the current ones; a vector env passes the
            finished episodes' after its autoreset began new ones).
    """
    current = contexts is None or contexts is episodes.contexts
    contexts = episodes.contexts if contexts is None else contexts
    task = episodes.task
    numeric = bool(task.kind.numeric)
    if numeric:
        limit = float(task.core.prediction_range)
        axis, bins = (-limit, limit), NUMERIC_BINS
    else:
        space = task.step_action_space()
        classes = int(space.n) if isinstance(space, spaces.Discrete) else 1
        axis, bins = (-0.5, classes - 0.5), min(classes, FRAME_SHAPE[1])
    b, n = episodes.num_groups, episodes.group_size

    def host(value: Any) -> np.ndarray:
        return value.detach().cpu().numpy()

    written = None
    if current and scores is None and episodes._written is not None and episodes.position > 0:
        written = host(episodes._written[:, : episodes.position])
    return RenderView(
        ids=host(contexts.ids),
        obs=host(contexts.obs).reshape(b, -1),
        target=host(contexts.target),
        group_size=n,
        numeric=numeric,
        axis=axis,
        bins=bins,
        prediction=None if scores is None else host(scores.prediction).reshape(b, n),
        log_likelihood=None if scores is None else host(scores.log_likelihood).reshape(b, n),
        reward=None if scores is None else host(scores.reward).reshape(b, n),
        written=written,
    )


def _number(value: Any, numeric: bool, sign: bool = True) -> str:
    if not numeric:
        return f"class {int(value)}"
    return f"{float(value):+.3f}" if sign else f"{float(value):.3f}"


def ansi_line(view: RenderView, rollout: int = 0) -> str:
    """One line describing rollout ``rollout`` (sub-env index) of ``view``."""
    group, member = divmod(rollout, view.group_size)
    x = view.obs[group].astype(np.float64)
    parts = [
        f"context {int(view.ids[group])}",
        f"x dim {x.size} mean {x.mean():+.2f} norm {np.linalg.norm(x):.2f}",
        f"target {_number(view.target[group], view.numeric)}",
    ]
    if view.prediction is None:
        if view.written is not None:
            digits = ",".join(str(int(t)) for t in view.written[rollout])
            parts.append(f"written [{digits}]")
        parts.append("prediction - (no action yet)")
    else:
        assert view.log_likelihood is not None and view.reward is not None
        parts += [
            f"prediction {_number(view.prediction[group, member], view.numeric)}",
            f"log-likelihood {float(view.log_likelihood[group, member]):.3f}",
            f"reward {float(view.reward[group, member]):.3f}",
        ]
    return " | ".join(parts)


def _columns(values: np.ndarray, axis: tuple[float, float], width: int) -> np.ndarray:
    low, high = axis
    position = (np.asarray(values, dtype=np.float64) - low) / (high - low)
    return np.clip((position * width).astype(np.int64), 0, width - 1)


def rgb_frame(view: RenderView, rollout: int = 0) -> np.ndarray:
    """A ``FRAME_SHAPE`` uint8 picture of rollout ``rollout``'s group (see the module doc)."""
    height, width, _ = FRAME_SHAPE
    frame = np.empty(FRAME_SHAPE, dtype=np.uint8)
    frame[:] = WHITE
    frame[height - _RULE :] = GREY
    low, high = view.axis
    if view.numeric and low < 0.0 < high:
        zero = int(_columns(np.array([0.0]), view.axis, width)[0])
        frame[height - _RULE :, zero] = DARK
    group, member = divmod(rollout, view.group_size)
    target = int(_columns(np.array([view.target[group]]), view.axis, width)[0])
    if view.prediction is not None:
        predictions = view.prediction[group].astype(np.float64)
        counts, _ = np.histogram(np.clip(predictions, low, high), bins=view.bins, range=view.axis)
        bar_space = height - _STRIP - _RULE
        heights = np.ceil(counts / counts.max() * bar_space).astype(np.int64)
        edges = np.linspace(0, width, view.bins + 1).astype(np.int64)
        rows = np.arange(height)[:, None]
        top = (height - _RULE - heights)[np.searchsorted(edges, np.arange(width), "right") - 1]
        bars = (rows >= top[None, :]) & (rows < height - _RULE)
        frame[bars] = BLUE
        own = int(_columns(predictions[member : member + 1], view.axis, width)[0])
        frame[: _STRIP // 2, max(own - 1, 0) : own + 2] = RED
    frame[_STRIP // 2 : _STRIP, max(target - 1, 0) : target + 2] = GREEN
    frame[_STRIP : height - _RULE, target] = GREEN
    return frame


def render(view: RenderView | None, render_mode: str | None, rollout: int = 0) -> Any:
    """What ``env.render()`` returns for one rollout: a line, a frame, or None."""
    if render_mode is None or view is None:
        return None
    if render_mode == "ansi":
        return ansi_line(view, rollout)
    return rgb_frame(view, rollout)


__all__ = [
    "FRAME_SHAPE",
    "RENDER_FPS",
    "RENDER_MODES",
    "RenderView",
    "ansi_line",
    "check_render_mode",
    "render",
    "rgb_frame",
    "snapshot",
]
