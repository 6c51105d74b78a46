"""Video context for the classifier: each snippet's features next to their difference from the recent past.

A classifier of absolute features learns what the archive's anomalies look like in feature space. When the videos
differ from each other far more than they vary inside (many cameras, per-video lighting or offsets), that space
is dominated by which video a snippet comes from, and an anomaly that is a small shift inside its video is out of
reach even with perfect labels. ``classifier.context=trailing_mean`` gives the classifier [x_t, x_t - m_t], with
m_t the mean of the last ``window`` snippets up to and including t (fewer at the start of a video). It is causal,
so a live stream computes exactly what offline scoring of the same frames does.

``between_video_share`` is the statistic ``context=auto`` decides by: the share of the archive's feature variance
that lies between the videos' means (sum_v T_v |mean_v - mean|^2 over sum_t |x_t - mean|^2).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the streaming mean and the share serve torch-free scoring
    import torch


def trailing_mean(features: torch.Tensor, window: int) -> torch.Tensor:
    """m_t = mean of features[..., max(0, t - window + 1) : t + 1, :] along the snippet axis (-2), in float64
    sums so that long videos keep their precision; returned in the features' dtype."""
    import torch

    length = features.shape[-2]
    sums = torch.cumsum(features.double(), dim=-2)
    padded = torch.cat([torch.zeros_like(sums[..., :1, :]), sums], dim=-2)
    stops = torch.arange(1, length + 1, device=features.device)
    starts = torch.clamp(stops - window, min=0)
    means = (padded[..., stops, :] - padded[..., starts, :]) / (stops - starts).to(sums.dtype).unsqueeze(-1)
    return means.to(features.dtype)


def with_context(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """[x, x - reference] along the feature axis."""
    import torch

    return torch.cat([features, features - reference], dim=-1)


class StreamingTrailingMean:
    """``trailing_mean`` one snippet at a time, for a live session; ``reset`` at a break in the sequence."""

    def __init__(self, window: int):
        self.window = window
        self.reset()

    def reset(self) -> None:
        self.recent: deque[np.ndarray] = deque()
        self.total: np.ndarray | None = None

    def add(self, features: np.ndarray) -> np.ndarray:
        """The trailing mean up to and including ``features`` (same shape and dtype as it)."""
        values = np.asarray(features, dtype=np.float64)
        self.total = values.copy() if self.total is None else self.total + values
        self.recent.append(values)
        if len(self.recent) > self.window:
            self.total -= self.recent.popleft()
        return (self.total / len(self.recent)).astype(np.asarray(features).dtype)


def between_video_share(videos: Sequence[np.ndarray]) -> float:
    """Share of the total feature variance that lies between the videos' means (0: none; 1: all of it)."""
    means = np.stack([np.mean(video, axis=0, dtype=np.float64) for video in videos])
    counts = np.array([len(video) for video in videos], dtype=np.float64)
    grand = (counts[:, None] * means).sum(axis=0) / counts.sum()
    between = float((counts * ((means - grand) ** 2).sum(axis=1)).sum())
    total = sum(float(((np.asarray(video, dtype=np.float64) - grand) ** 2).sum()) for video in videos)
    return between / total if total > 0 else 0.0
