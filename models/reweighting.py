"""Loss re-weighting: trust a pseudo label less when the snippet's distance to known-normal content disagrees.

The normal list M holds one mean feature per confident normal video (over its sampled snippets, as the official
code does, or over all of them). A snippet's distance d is its smallest distance to M (cosine: 1 - cos; rms:
sqrt(mean_k (x_k - m_k)^2)), and its loss weight is w = exp(-|d - y|): a snippet labelled normal (y = 0) far from
every normal video, or one labelled abnormal (y = 1) close to one, counts less.
"""

from __future__ import annotations

import numpy as np

from lanp_vad.models.config import ReweightConfig
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.models.sampling import segment_indices

_COSINE_EPS = 1e-6  # as torch.nn.CosineSimilarity's default in the official code


def normal_list(
    features: list[np.ndarray], confident_normal: np.ndarray, config: ReweightConfig, num_segments: int
) -> np.ndarray:
    """Mean feature (M, D) of each confident normal video; ``features`` are (T, D) per video (crops averaged)."""
    if len(confident_normal) == 0:
        raise UserError(
            "the normal list needs at least one confident normal video (raise confident_normal_ratio)",
            kind=ErrorKind.TRAINING_DATA,
        )
    rows = []
    for index in confident_normal:
        video = np.asarray(features[int(index)], dtype=np.float64)
        if config.normal_features == "sampled":
            video = video[segment_indices(video.shape[0], num_segments)]
        rows.append(video.mean(axis=0))
    return np.stack(rows)


def distances_to_normals(features: np.ndarray, normals: np.ndarray, config: ReweightConfig) -> np.ndarray:
    """Smallest distance of each feature vector (..., D) to the normal list (M, D)."""
    points = np.asarray(features, dtype=np.float64)
    flat = points.reshape(-1, points.shape[-1])
    if config.distance == "cosine":
        unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), _COSINE_EPS)
        normal_unit = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), _COSINE_EPS)
        distance = 1 - unit @ normal_unit.T
    else:
        squared = (flat**2).sum(1)[:, None] + (normals**2).sum(1)[None, :] - 2 * flat @ normals.T
        distance = np.sqrt(np.maximum(squared, 0) / points.shape[-1])
    return distance.min(axis=1).reshape(points.shape[:-1])


def loss_weights(
    features: np.ndarray, labels: np.ndarray, normals: np.ndarray, config: ReweightConfig
) -> np.ndarray:
    """w = exp(-|d - y|) per snippet (all ones when re-weighting is disabled); features (..., D), labels (...)."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.shape != features.shape[:-1]:
        raise ValueError(f"labels of shape {labels.shape} do not match features of shape {features.shape}")
    if not config.enabled:
        return np.ones_like(labels)
    return np.exp(-np.abs(distances_to_normals(features, normals, config) - labels))
