"""The normality prior: which snippets are taken as normal before propagation (the right-hand side y is their 0/1
indicator, as in the paper and the code), and z's post-processing."""

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


def prior_vector(features: torch.Tensor, seeds: np.ndarray) -> torch.Tensor:
    """The right-hand side y (float64, (T,)) of one video's propagation: 1 on the seeds, 0 elsewhere."""
    y = torch.zeros(features.shape[0], dtype=torch.float64, device=features.device)
    y[torch.as_tensor(seeds, device=features.device)] = 1.0
    return y
