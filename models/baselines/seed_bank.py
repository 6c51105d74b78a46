"""The strongest simple label-free baseline: a memory bank of the prior's normal snippets (PatchCore-style).

Standardise the archive's features (mean and std per dimension over all its snippets), put the first two and last
two snippets of every training video in a bank (the normality prior's seeds), and score each snippet by its
squared distance to the nearest bank entry of *another* video (a video never vouches for itself). With
``bank="all"`` every training snippet is in the bank: the baseline for archives known to hold no anomaly.
No graph, no pseudo labels, no training: a method that does all of that must beat this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from lanp_vad.models.baselines.common import check_videos


def reference_seeds(length: int) -> np.ndarray:
    """The official code's seed snippets {0, 1, T-2, T-1} of a video of ``length`` snippets (unique, sorted)."""
    return np.unique([0, min(1, length - 1), max(length - 2, 0), length - 1])


def seed_bank_scores(
    train: Sequence[np.ndarray],
    evaluation: Sequence[np.ndarray] | None = None,
    *,
    train_ids: Sequence[str] | None = None,
    evaluation_ids: Sequence[str] | None = None,
    bank: Literal["seeds", "all"] = "seeds",
) -> list[np.ndarray]:
    """Squared standardised distance of every evaluation snippet to its nearest bank entry of another video.

    ``evaluation`` None scores the training videos themselves (leave-one-video-out); otherwise an evaluation video
    whose id is among ``train_ids`` is also kept from its own entries, and the others see the whole bank.
    """
    videos = check_videos(train, train_ids)
    stacked = np.concatenate(videos).astype(np.float64)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
    rows = [reference_seeds(len(video)) if bank == "seeds" else np.arange(len(video)) for video in videos]
    entries = np.concatenate([(video[index] - mean) / std for video, index in zip(videos, rows, strict=True)])
    owners = np.concatenate([np.full(len(index), number) for number, index in enumerate(rows)])
    if evaluation is None:
        targets, owner_of = videos, list(range(len(videos)))
    else:
        targets = check_videos(evaluation, evaluation_ids)
        known = {name: number for number, name in enumerate(train_ids or [])}
        owner_of = [known.get(name, -1) for name in (evaluation_ids or [None] * len(targets))]
    squared = (entries**2).sum(axis=1)
    scores = []
    for video, owner in zip(targets, owner_of, strict=True):
        query = (video.astype(np.float64) - mean) / std
        distances = (query**2).sum(axis=1)[:, None] - 2 * query @ entries.T + squared[None, :]
        distances[:, owners == owner] = np.inf
        scores.append(np.maximum(distances.min(axis=1), 0.0))
    return scores
