"""Pieces the baselines share: crop averaging, snippet flattening, seeded torch, and the snippet MLP head.

The heads follow the classifier's forward contract, ``(..., T, D) -> (..., T)`` scores in [0, 1] and
``(B, crops, T, D) -> (B, T)`` with the crop scores averaged, so the project's evaluator can score them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from models.errors import ErrorKind, UserError

EpochCallback = Callable[[int, nn.Module], None]
"""Called after every training epoch with the (1-based) epoch and the model in eval mode."""


class BaselineError(UserError):
    """Input a baseline cannot learn from; names the offending video where one is to blame."""

    kind = ErrorKind.TRAINING_DATA


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


def seeded_generator(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout, init) and return a generator for shuffling, both from ``seed``."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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
