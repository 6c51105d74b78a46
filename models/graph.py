"""The graph of one video: its window geometry and the feature affinities of its edges.

Snippet i links to the snippets j of its window (``banded``: the official rule k = min(band_k, T-1),
Lw = min(2k, T), window [i - Lw/2, i + Lw/2) shifted inside the video at the borders; otherwise all snippets).
Edge weights are W_ij = F_ij * exp(-|i - j| / L), with F the feature affinity of ``config.affinity`` (see
``models.propagation``). Features are copied into float32 buffers near zero (``load_into``) so that the dot
products the distance kernels are built from stay accurate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from lanp_vad.models.config import PropagationConfig

COSINE_EPS = 1e-12


@dataclass(frozen=True)
class Graph:
    """The window geometry of one video: window length Lw and temporal length L."""

    length: int
    window: int
    temporal_length: int

    @classmethod
    def of(cls, length: int, config: PropagationConfig) -> Graph:
        if config.banded:
            half = min(config.band_k, length - 1)
            window = min(2 * half, length)
        else:
            window = length
        temporal = window if config.temporal_length == "window" else length
        return cls(length, window, temporal)

    @property
    def complete(self) -> bool:
        return self.window >= self.length


def window_starts(positions: torch.Tensor, length: torch.Tensor | int, window: int) -> torch.Tensor:
    """First index of each snippet's window (the official rule: centred, shifted inside the video at borders)."""
    half = window // 2
    length = torch.as_tensor(length, device=positions.device)
    centred = positions - half
    starts = torch.where(positions <= half, torch.zeros_like(positions), centred)
    return torch.where(positions >= length - half, length - window, starts)


def affinity(
    dots: torch.Tensor,
    norms_i: torch.Tensor,
    norms_j: torch.Tensor,
    dim: int,
    config: PropagationConfig,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feature affinity from dot products and squared norms (broadcasting); ``scale`` for ``adaptive``."""
    if not config.feature_similarity:
        return torch.ones_like(dots)
    if config.affinity == "cosine":
        denominator = (norms_i.clamp_min(0).sqrt() * norms_j.clamp_min(0).sqrt()).clamp_min(COSINE_EPS)
        return (dots / denominator).clamp_min(0)
    squared = (norms_i + norms_j - 2 * dots).clamp_min(0)
    two_sigma_sq = 2 * config.sigma**2
    if config.affinity == "gaussian":
        return torch.exp(-squared / two_sigma_sq)
    if config.affinity == "rms":
        return torch.exp(-(squared / dim).sqrt() / two_sigma_sq)
    assert scale is not None
    return torch.exp(-squared / (2 * scale**2))


def needs_distances(config: PropagationConfig) -> bool:
    return config.feature_similarity and config.affinity != "cosine"


def median_scale(distances_sq: torch.Tensor) -> torch.Tensor:
    """The adaptive bandwidth: median Euclidean distance (1 when all distances vanish)."""
    if distances_sq.numel() == 0:
        return torch.ones((), dtype=distances_sq.dtype, device=distances_sq.device)
    median = distances_sq.clamp_min(0).median().sqrt()
    return torch.where(median > 0, median, torch.ones_like(median))


def load_into(target: torch.Tensor, features: np.ndarray | torch.Tensor, config: PropagationConfig) -> None:
    """Copy one video's features into ``target`` (T, D) float32, standardised or shifted to near zero.

    Distances do not change under a shift, but the float32 dot products of the distance kernels are accurate
    only for vectors near zero: subtracting the mean of a few evenly spaced snippets while copying does that in
    the same pass over the data (the full mean would need two more).
    """
    length = target.shape[0]
    if config.standardize or not needs_distances(config):
        if torch.is_tensor(features):
            target.copy_(features)
        elif target.device.type == "cpu":
            np.copyto(target.numpy(), np.asarray(features), casting="same_kind")
        else:
            target.copy_(torch.from_numpy(np.array(features, dtype=np.float32)))
        if config.standardize:
            spread = target.std(dim=0, unbiased=False)
            target -= target.mean(dim=0)
            target /= torch.where(spread > 0, spread, torch.ones_like(spread))
        return
    probes = np.unique(np.linspace(0, length - 1, min(length, 8)).round().astype(int))
    if not torch.is_tensor(features) and target.device.type == "cpu":  # straight from (memory-mapped) arrays
        centre = np.asarray(features[probes], dtype=np.float32).mean(axis=0)
        array = np.asarray(features)
        if not array.dtype.isnative or min(array.strides, default=0) < 0 or array.dtype.kind not in "fiu":
            np.subtract(array, centre, out=target.numpy(), casting="same_kind")  # what torch cannot view
            return
        with warnings.catch_warnings():  # read only: torch warns that a read-only array is not writable
            warnings.simplefilter("ignore", UserWarning)
            source = torch.from_numpy(array)
        torch.sub(source, torch.from_numpy(centre), out=target)  # torch's threads, where NumPy uses one
        return
    source = features if torch.is_tensor(features) else torch.from_numpy(np.array(features, dtype=np.float32))
    source = source.to(device=target.device, dtype=torch.float32)
    torch.sub(source, source[torch.as_tensor(probes, device=target.device)].mean(dim=0), out=target)


def prepare(features: np.ndarray | torch.Tensor, config: PropagationConfig, device: torch.device) -> torch.Tensor:
    """One video's prepared float32 features on the device (see ``load_into``)."""
    tensor = torch.empty(tuple(features.shape), dtype=torch.float32, device=device)
    load_into(tensor, features, config)
    return tensor
