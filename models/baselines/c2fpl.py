"""C2FPL (Al-lahham et al., WACV 2024): coarse-to-fine pseudo labels from feature magnitudes, and an MLP.

Coarse: each video is described by the (mean, variance) of its snippets' squared feature norms; a 2-component
GMM splits the videos, then the least likely videos of the normal bag move to the abnormal bag until the
abnormal share reaches its target. Fine: a 1-D Gaussian of the normal bag's snippet statistics gives a density
per snippet; in each abnormal-bag video the window (a fixed share of T) with the largest summed change of
density is abnormal, the rest normal. A per-snippet MLP is then trained on those labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from sklearn.mixture import GaussianMixture
from torch import nn

from lanp_vad.models.baselines.common import (
    BaselineError,
    EpochCallback,
    PeerPseudoLabels,
    SnippetHead,
    Standardize,
    check_videos,
    epoch_factor,
    seeded_generator,
)


class C2FPLConfig(BaseModel):
    """Every switch of C2FPL, defaults as in the paper's code."""

    model_config = ConfigDict(extra="forbid")

    variant: Literal["project", "authors"] = Field(
        "project", description="the project's reading of the paper, or the authors' code as written"
    )
    abnormal_share: float = Field(
        0.5, gt=0, lt=1, description="target share of videos in the abnormal bag (the authors' code: 0.5 only)"
    )
    move_percentile: float = Field(3.0, gt=0, lt=100, description="lowest-likelihood percentile moved")
    covariance_type: Literal["spherical", "diag", "full"] = Field(
        "spherical", description="GaussianMixture covariance of the video split"
    )
    window_ratio: float = Field(0.2, gt=0, le=1, description="abnormal window length as a share of T")
    standardize: bool | None = Field(
        None,
        description="z-score the head's input with the training snippets' statistics (None: yes, except in the "
        "authors' variant, which trains on raw features); the pseudo labels always use raw norms",
    )
    hidden: tuple[int, ...] = (512, 32)
    dropout: float = Field(0.6, ge=0, lt=1)
    lr: float = Field(0.01, gt=0)
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(5e-4, ge=0)
    milestones: tuple[int, ...] = (15, 25)
    lr_decay: float = Field(0.1, gt=0, le=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(128, ge=1, description="snippets per batch")
    min_steps: int = Field(
        0, ge=0, description="repeat epochs and milestones by one factor until training takes this many steps"
    )


def snippet_statistic(features: np.ndarray) -> np.ndarray:
    """Squared L2 norm of each snippet feature (averaged over crops when there are crops), float64 (T,)."""
    array = np.asarray(features, dtype=np.float64)
    squared = np.square(array).sum(axis=-1)
    return squared.mean(axis=1) if squared.ndim == 2 else squared


def video_descriptors(statistics: Sequence[np.ndarray], config: C2FPLConfig) -> np.ndarray:
    """(N, 2) per-video (mean, variance) of the snippet statistic; standardised per column unless ``authors``."""
    ddof = 1 if config.variant == "authors" else 0  # the authors' np.cov is the sample variance
    descriptors = np.array([[stat.mean(), stat.var(ddof=ddof) if len(stat) > ddof else 0.0] for stat in statistics])
    if config.variant == "authors":
        return descriptors
    # Standardise so the GMM's covariance floor means the same at every feature scale.
    return (descriptors - descriptors.mean(axis=0)) / np.maximum(descriptors.std(axis=0), 1e-12)


def split_videos(statistics: Sequence[np.ndarray], config: C2FPLConfig, seed: int = 0) -> np.ndarray:
    """Boolean (N,) abnormal-bag mask: a GMM split, then unlikely normal-bag videos moved to the target."""
    count = len(statistics)
    if count < 4:
        raise BaselineError(f"C2FPL needs at least 4 videos to split into bags, got {count}")
    descriptors = video_descriptors(statistics, config)

    def mixture() -> GaussianMixture:
        return GaussianMixture(2, covariance_type=config.covariance_type, max_iter=150, random_state=seed)

    assignment = mixture().fit_predict(descriptors)
    if config.variant == "authors":
        normal = assignment == 0
        target_normal = count // 2  # move until abnormal >= normal
    else:
        normal = assignment == np.bincount(assignment, minlength=2).argmax()
        target_normal = max(2, int(round(count * (1 - config.abnormal_share))))
        if normal.sum() < target_normal:
            normal[:] = True  # the GMM's majority is already below the target: refine from the whole set
    while normal.sum() > max(target_normal, 2):
        members = np.flatnonzero(normal)
        likelihood = mixture().fit(descriptors[members]).score_samples(descriptors[members])
        order = np.argsort(likelihood)
        below = max(1, int((likelihood < np.percentile(likelihood, config.move_percentile)).sum()))
        if config.variant != "authors":  # the authors' loop overshoots the 50/50 stop by up to one round
            below = min(below, int(normal.sum()) - target_normal)
        normal[members[order[:below]]] = False
    return ~normal


def abnormal_window(density: np.ndarray, ratio: float, *, at_least_one: bool = True) -> np.ndarray:
    """Float32 (T,) 0/1: the window of ``ratio * T`` snippets whose density changes most within it.

    A video shorter than 1 / ratio snippets gets a one-snippet window, or none (``at_least_one=False``, the
    authors' code, where int(ratio * T) = 0 labels nothing).
    """
    length = len(density)
    window = min(length, max(int(at_least_one), int(ratio * length)))
    if window == 0:
        return np.zeros(length, dtype=np.float32)
    change = np.abs(np.diff(density))
    # Summed change inside each window start..start+window-1 (window - 1 consecutive differences).
    sums = np.convolve(change, np.ones(window - 1), mode="valid") if window > 1 else np.zeros(length)
    start = int(np.argmax(sums)) if len(sums) else 0
    labels = np.zeros(length, dtype=np.float32)
    labels[start : start + window] = 1
    return labels


def make_c2fpl_labels(
    features: Sequence[np.ndarray], config: C2FPLConfig, seed: int = 0
) -> PeerPseudoLabels:
    """Coarse video bags and fine snippet labels for a set of unlabeled videos."""
    check_videos(features)
    statistics = [snippet_statistic(video) for video in features]
    abnormal = split_videos(statistics, config, seed)
    normal_snippets = np.concatenate([s for s, bad in zip(statistics, abnormal, strict=True) if not bad])
    ddof = 1 if config.variant == "authors" and len(normal_snippets) > 1 else 0
    mean, std = normal_snippets.mean(), max(normal_snippets.std(ddof=ddof), 1e-12)
    labels = []
    for stat, bad in zip(statistics, abnormal, strict=True):
        if not bad:
            labels.append(np.zeros(len(stat), dtype=np.float32))
            continue
        density = np.exp(-0.5 * ((stat - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
        labels.append(abnormal_window(density, config.window_ratio, at_least_one=config.variant != "authors"))
    return PeerPseudoLabels(abnormal=abnormal, snippet_labels=labels)


def train_c2fpl(
    features: Sequence[np.ndarray],
    config: C2FPLConfig,
    *,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: EpochCallback | None = None,
) -> tuple[nn.Module, PeerPseudoLabels]:
    """Make C2FPL's pseudo labels and train its snippet MLP on them (SGD, nesterov, step schedule)."""
    videos = check_videos(features)
    pseudo = make_c2fpl_labels(videos, config, seed)
    inputs = torch.as_tensor(np.concatenate(videos), device=device)
    targets = torch.as_tensor(np.concatenate(pseudo.snippet_labels), device=device)
    generator = seeded_generator(seed)
    standardize = config.standardize if config.standardize is not None else config.variant != "authors"
    head = SnippetHead(inputs.shape[1], config.hidden, config.dropout).to(device)
    model = nn.Sequential(Standardize(inputs), head) if standardize else head
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        nesterov=True,
        weight_decay=config.weight_decay,
    )
    factor = epoch_factor(config.epochs, -(-len(inputs) // config.batch_size), config.min_steps)
    milestones = [factor * milestone for milestone in config.milestones]
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=config.lr_decay)
    loss_fn = nn.BCELoss()
    for epoch in range(1, factor * config.epochs + 1):
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
