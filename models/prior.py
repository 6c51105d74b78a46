"""The normality prior: which snippets are taken as normal before propagation, and z's post-processing.

``prior=seeds`` (the paper and the code) is the 0/1 indicator y of the seed snippets. ``prior=soft`` is
y_i = exp(-d_i^2 / (2 b^2)) with d_i the Euclidean distance of snippet i to the mean of the seed snippets and b
the median of d over the video: every snippet starts as normal as it resembles the seeds, with no scale to tune
(the bandwidth follows the video's own spread), so it carries the contrast that already finds subtle anomalies
(the naive seed-contrast baseline) into the propagation, and it stays informative where a fixed-sigma feature
affinity underflows to W = 0 (z is then y itself, not the seed indicator).
"""

from __future__ import annotations

import numpy as np
import torch

from lanp_vad.models.config import PropagationConfig


def seed_indices(features: torch.Tensor, config: PropagationConfig, rng: np.random.Generator) -> np.ndarray:
    """The snippets labelled normal before propagation (sorted, unique)."""
    length = features.shape[0]
    reference = np.unique([0, 1, length - 2, length - 1])
    if config.seeds == "first_last":
        return np.array([0, length - 1])
    if config.seeds == "reference":
        return reference
    if config.seeds == "random":
        return np.sort(rng.choice(length, size=reference.size, replace=False))
    # data_driven: lowest local contrast = smallest mean distance to the temporal neighbours.
    steps = torch.linalg.vector_norm((features[1:] - features[:-1]).double(), dim=1)
    padded = torch.cat([steps[:1], steps, steps[-1:]])
    contrast = (padded[:-1] + padded[1:]) / 2
    order = np.argsort(contrast.cpu().numpy(), kind="stable")
    return np.sort(order[: reference.size])


def postprocess(z: np.ndarray, seeds: np.ndarray, config: PropagationConfig) -> np.ndarray:
    if config.postprocess:
        z = np.maximum(z, 0.0)
        z[seeds] = z.max()
    return z


def prior_vector(features: torch.Tensor, seeds: np.ndarray, config: PropagationConfig) -> torch.Tensor:
    """The right-hand side y (float64, (T,)) of one video's propagation, by ``config.prior``."""
    length = features.shape[0]
    seed_tensor = torch.as_tensor(seeds, device=features.device)
    if config.prior == "seeds":
        y = torch.zeros(length, dtype=torch.float64, device=features.device)
        y[seed_tensor] = 1.0
        return y
    points = features.double()
    distances = torch.linalg.vector_norm(points - points[seed_tensor].mean(dim=0), dim=1)
    bandwidth = distances.median()
    bandwidth = torch.where(bandwidth > 0, bandwidth, torch.ones_like(bandwidth))
    return torch.exp(-(distances**2) / (2 * bandwidth**2))
