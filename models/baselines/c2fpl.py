"""C2FPL (Al-lahham et al., WACV 2024): coarse-to-fine pseudo labels from feature magnitudes, and an MLP.

Coarse: each video is described by the (mean, variance) of its snippets' squared feature norms; a 2-component
GMM splits the videos, then the least likely videos of the normal bag move to the abnormal bag until the
abnormal share reaches its target. Fine: a 1-D Gaussian of the normal bag's snippet statistics gives a density
per snippet; in each abnormal-bag video the window (a fixed share of T) with the largest summed change of
density is abnormal, the rest normal. A per-snippet MLP is then trained on those labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from sklearn.mixture import GaussianMixture
from torch import nn

from models.baselines.common import (
    BaselineError,
    EpochCallback,
    SnippetHead,
    check_videos,
    seeded_generator,
)


class C2FPLConfig(BaseModel):
    """Every switch of C2FPL, defaults as in the paper's code."""

    model_config = ConfigDict(extra="forbid")

    abnormal_share: float = Field(0.5, gt=0, lt=1, description="target share of videos in the abnormal bag")
    move_percentile: float = Field(3.0, gt=0, lt=100, description="lowest-likelihood percentile moved")
    covariance_type: Literal["spherical", "diag", "full"] = Field(
        "spherical", description="GaussianMixture covariance of the video split"
    )
    window_ratio: float = Field(0.2, gt=0, le=1, description="abnormal window length as a share of T")
    hidden: tuple[int, ...] = (512, 32)
    dropout: float = Field(0.6, ge=0, lt=1)
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    milestones: tuple[int, ...] = (15, 25)
    lr_decay: float = Field(0.1, gt=0, le=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1, description="snippets per batch")


@dataclass
class C2FPLPseudoLabels:
    """Video bags and per-snippet 0/1 labels (float32 (T,) per video, 1 = abnormal)."""

    abnormal: np.ndarray
    snippet_labels: list[np.ndarray]


def snippet_statistic(features: np.ndarray) -> np.ndarray:
    """Squared L2 norm of each snippet feature (averaged over crops when there are crops), float64 (T,)."""
    array = np.asarray(features, dtype=np.float64)
    squared = np.square(array).sum(axis=-1)
    return squared.mean(axis=1) if squared.ndim == 2 else squared


def split_videos(statistics: Sequence[np.ndarray], config: C2FPLConfig, seed: int = 0) -> np.ndarray:
    """Boolean (N,) abnormal-bag mask: a GMM split, then unlikely normal-bag videos moved to the target."""
    count = len(statistics)
    if count < 4:
        raise BaselineError(f"C2FPL needs at least 4 videos to split into bags, got {count}")
    descriptors = np.array([[stat.mean(), stat.var()] for stat in statistics])
    # Standardise so the GMM's covariance floor means the same at every feature scale.
    descriptors = (descriptors - descriptors.mean(axis=0)) / np.maximum(descriptors.std(axis=0), 1e-12)

    def mixture() -> GaussianMixture:
        return GaussianMixture(2, covariance_type=config.covariance_type, max_iter=150, random_state=seed)

    assignment = mixture().fit_predict(descriptors)
    normal = assignment == np.bincount(assignment, minlength=2).argmax()
    target_normal = max(2, int(round(count * (1 - config.abnormal_share))))
    if normal.sum() < target_normal:
        normal[:] = True  # the GMM's majority is already below the target: refine from the whole set
    while normal.sum() > target_normal:
        members = np.flatnonzero(normal)
        likelihood = mixture().fit(descriptors[members]).score_samples(descriptors[members])
        order = np.argsort(likelihood)
        below = int((likelihood < np.percentile(likelihood, config.move_percentile)).sum())
        normal[members[order[: min(max(1, below), normal.sum() - target_normal)]]] = False
    return ~normal


def abnormal_window(density: np.ndarray, ratio: float) -> np.ndarray:
    """Float32 (T,) 0/1: the window of ``ratio * T`` snippets whose density changes most within it."""
    length = len(density)
    window = min(length, max(1, int(ratio * length)))
    change = np.abs(np.diff(density))
    # Summed change inside each window start..start+window-1 (window - 1 consecutive differences).
    sums = np.convolve(change, np.ones(window - 1), mode="valid") if window > 1 else np.zeros(length)
    start = int(np.argmax(sums)) if len(sums) else 0
    labels = np.zeros(length, dtype=np.float32)
    labels[start : start + window] = 1
    return labels


def make_c2fpl_labels(
    features: Sequence[np.ndarray], config: C2FPLConfig, seed: int = 0
) -> C2FPLPseudoLabels:
    """Coarse video bags and fine snippet labels for a set of unlabeled videos."""
    check_videos(features)
    statistics = [snippet_statistic(video) for video in features]
    abnormal = split_videos(statistics, config, seed)
    normal_snippets = np.concatenate([s for s, bad in zip(statistics, abnormal, strict=True) if not bad])
    mean, std = normal_snippets.mean(), max(normal_snippets.std(), 1e-12)
    labels = []
    for stat, bad in zip(statistics, abnormal, strict=True):
        if not bad:
            labels.append(np.zeros(len(stat), dtype=np.float32))
            continue
        density = np.exp(-0.5 * ((stat - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
        labels.append(abnormal_window(density, config.window_ratio))
    return C2FPLPseudoLabels(abnormal=abnormal, snippet_labels=labels)


def train_c2fpl(
    features: Sequence[np.ndarray],
    config: C2FPLConfig,
    *,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: EpochCallback | None = None,
) -> tuple[SnippetHead, C2FPLPseudoLabels]:
    """Make C2FPL's pseudo labels and train its snippet MLP on them (SGD, nesterov, step schedule)."""
    videos = check_videos(features)
    pseudo = make_c2fpl_labels(videos, config, seed)
    inputs = torch.as_tensor(np.concatenate(videos), device=device)
    targets = torch.as_tensor(np.concatenate(pseudo.snippet_labels), device=device)
    generator = seeded_generator(seed)
    model = SnippetHead(inputs.shape[1], config.hidden, config.dropout).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=True,
        weight_decay=config.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), gamma=config.lr_decay)
    loss_fn = nn.BCELoss()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(inputs), generator=generator).to(device)
        for batch in order.split(config.batch_size):
            optimizer.zero_grad()
            loss_fn(model(inputs[batch]), targets[batch]).backward()
            optimizer.step()
        schedule.step()
        if on_epoch is not None:
            model.eval()
            on_epoch(epoch, model)
    model.eval()
    return model, pseudo
