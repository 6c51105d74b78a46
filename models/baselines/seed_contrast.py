"""The naive baseline LANP must beat: how far each snippet is from the mean of the video's seed snippets.

It uses the same prior as LANP (the first two and last two snippets are normal) with no graph, no pseudo labels
and no training: score_i = ||x_i - mean(x_seeds)||. If a method that propagates, pseudo-labels and trains does
not beat this, the extra machinery is not earning its keep.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanp_vad.models.baselines.common import check_videos


def seed_contrast_scores(features: Sequence[np.ndarray], video_ids: Sequence[str] | None = None) -> list[np.ndarray]:
    """Euclidean distance of every snippet to the mean of snippets {0, 1, T-2, T-1}, float64 (T,) per video."""
    scores = []
    for video in check_videos(features, video_ids):
        length = video.shape[0]
        seeds = np.unique([0, min(1, length - 1), max(length - 2, 0), length - 1])
        centre = video[seeds].astype(np.float64).mean(axis=0)
        scores.append(np.linalg.norm(video.astype(np.float64) - centre, axis=1))
    return scores
