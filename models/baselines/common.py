"""Pieces the baselines share: crop averaging, snippet flattening, seeded torch, and the snippet MLP head.

The heads follow the classifier's forward contract, ``(..., T, D) -> (..., T)`` scores in [0, 1] and
``(B, crops, T, D) -> (B, T)`` with the crop scores averaged, so the project's evaluator can score them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lanp_vad.models.errors import ErrorKind, UserError

EpochCallback = Callable[[int, nn.Module], None]
"""Called after every training epoch with the (1-based) epoch and the model in eval mode."""


class BaselineError(UserError):
    """Input a baseline cannot learn from; names the offending video where one is to blame."""

    kind = ErrorKind.TRAINING_DATA


@dataclass
class PeerPseudoLabels:
    """A peer's pseudo labels: abnormal videos (bool (N,)) and per-snippet 0/1 labels (float32 (T,), 1 = abnormal)."""

    abnormal: np.ndarray
    snippet_labels: list[np.ndarray]


def crop_average(features: np.ndarray) -> np.ndarray:
    """(T, D) features unchanged, (T, crops, D) averaged over the crops; float32."""
    array = np.asarray(features, dtype=np.float32)
    return array.mean(axis=1) if array.ndim == 3 else array


def check_videos(features: Sequence[np.ndarray], video_ids: Sequence[str] | None = None) -> list[np.ndarray]:
    """Crop-averaged (T, D) arrays with one D across videos; a clear error names the first bad video."""
    if len(features) == 0:
        raise BaselineError("no videos to learn from")
    names = list(video_ids) if video_ids is not None else [f"video #{i}" for i in range(len(features))]
    arrays: list[np.ndarray] = []
    for name, video in zip(names, features, strict=True):
        array = np.asarray(video)
        if array.ndim not in (2, 3) or array.shape[0] < 1:
            raise BaselineError(f"{name}: features must be (T, D) or (T, crops, D), got shape {array.shape}")
        averaged = crop_average(array)
        if arrays and averaged.shape[1] != arrays[0].shape[1]:
            raise BaselineError(
                f"{name}: feature dimension {averaged.shape[1]} differs from {arrays[0].shape[1]}"
            )
        if not np.isfinite(averaged).all():
            raise BaselineError(f"{name}: NaN or inf in the features")
        arrays.append(averaged)
    return arrays


def epoch_factor(epochs: int, steps_per_epoch: int, min_steps: int) -> int:
    """How many times to repeat a schedule of ``epochs`` so that it takes at least ``min_steps`` optimizer steps.

    The peers' schedules are given in epochs over benchmark sets of ~10^5-10^6 snippets (thousands of steps per
    epoch); on an archive of a few thousand snippets the same epochs are a few hundred steps and the heads stop
    far from fitting their pseudo labels. Scaling every epoch count and milestone by one factor keeps the
    schedule's shape.
    """
    if min_steps <= 0 or steps_per_epoch <= 0:
        return 1
    return max(1, -(-min_steps // (epochs * steps_per_epoch)))


def seeded_generator(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout, init) and return a generator for shuffling, both from ``seed``."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class Standardize(nn.Module):
    """(x - mean) / std per feature with the training snippets' statistics (no labels), kept with the model."""

    def __init__(self, snippets: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", snippets.mean(dim=0))
        self.register_buffer("std", snippets.std(dim=0).clamp_min(1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


class SnippetHead(nn.Module):
    """Per-snippet MLP D -> hidden... -> 1 -> sigmoid with dropout; crop scores averaged."""

    def __init__(self, dim: int, hidden: Sequence[int], dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.layers = nn.Sequential(*layers)
        for module in self.layers:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        scores = torch.sigmoid(self.layers(features).squeeze(-1))
        return scores.mean(dim=1) if features.ndim == 4 else scores


@torch.no_grad()
def score_videos(model: nn.Module, features: Sequence[np.ndarray], device: str = "cpu") -> list[np.ndarray]:
    """Per-snippet scores (T,) of each video; crops scored separately and averaged (the field's habit)."""
    model.eval()
    scores = []
    for video in features:
        tensor = torch.as_tensor(np.asarray(video, dtype=np.float32), device=device)
        per_snippet = model(tensor.transpose(0, 1)).mean(dim=0) if tensor.ndim == 3 else model(tensor)
        scores.append(per_snippet.float().cpu().numpy().astype(np.float64))
    return scores
