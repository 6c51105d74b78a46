"""The LANP snippet classifier: the official temporal head.

Conv1d(D -> hidden, k, same padding) + ReLU + Dropout, Linear(hidden, hidden) + ReLU + Dropout, Linear(hidden, 1)
+ Sigmoid. Input (B, T, D) gives (B, T) scores in [0, 1]; input (B, crops, T, D) scores every crop separately and
averages the scores (as the official test code does for 10-crop features). D comes from the data.
"""

from __future__ import annotations

import torch
from torch import nn

from models.config import ClassifierConfig


class LANPClassifier(nn.Module):
    """Per-snippet anomaly scores from a sequence of snippet features."""

    def __init__(self, dim: int, config: ClassifierConfig | None = None):
        super().__init__()
        config = config or ClassifierConfig()
        if dim < 1:
            raise ValueError(f"feature dimension must be positive, got {dim}")
        if config.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep T snippets, got {config.kernel_size}")
        self.dim = dim
        self.config = config
        self.temporal = nn.Conv1d(dim, config.hidden, config.kernel_size, padding=config.kernel_size // 2)
        self.hidden = nn.Linear(config.hidden, config.hidden)
        self.output = nn.Linear(config.hidden, 1)
        self.dropout = nn.Dropout(config.dropout)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T)."""
        hidden = self.temporal(features.transpose(1, 2)).transpose(1, 2)
        hidden = self.dropout(torch.relu(hidden))
        hidden = self.dropout(torch.relu(self.hidden(hidden)))
        return torch.sigmoid(self.output(hidden)).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.dim:
            raise ValueError(f"expected {self.dim}-d features, got shape {tuple(features.shape)}")
        if features.ndim == 3:
            return self._score(features)
        if features.ndim == 4:
            batch, crops, length, dim = features.shape
            scores = self._score(features.reshape(batch * crops, length, dim))
            return scores.reshape(batch, crops, length).mean(dim=1)
        raise ValueError(f"expected (B, T, D) or (B, crops, T, D) features, got shape {tuple(features.shape)}")


def create_classifier(*, dim: int, config: ClassifierConfig | None = None, seed: int | None = None) -> LANPClassifier:
    """A freshly initialised classifier; ``seed`` makes the initial weights reproducible."""
    if seed is None:
        return LANPClassifier(dim, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LANPClassifier(dim, config)
