"""The LANP snippet classifier: the official temporal head.

Conv1d(D -> hidden, k, same padding) + ReLU + Dropout, Linear(hidden, hidden) + ReLU + Dropout, Linear(hidden, 1)
+ Sigmoid. Input (B, T, D) gives (B, T) scores in [0, 1]; input (B, crops, T, D) scores every crop separately and
averages the scores (as the official test code does for 10-crop features). D comes from the data.

With ``context=trailing_mean`` the head sees [x_t, x_t - m_t] (2 x D input channels, ``models.context``): m_t is
computed from the sequence passed in, or given as ``reference`` by callers that pass snippets out of their video
(the trainer's sampled segments, a live session's window).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from lanp_vad.models.config import ClassifierConfig
from lanp_vad.models.context import trailing_mean, with_context
from lanp_vad.models.errors import InternalError


class LANPClassifier(nn.Module):
    """Per-snippet anomaly scores from a sequence of snippet features."""

    def __init__(self, dim: int, config: ClassifierConfig | None = None):
        super().__init__()
        config = config or ClassifierConfig()
        if dim < 1:
            raise ValueError(f"feature dimension must be positive, got {dim}")
        if config.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep T snippets, got {config.kernel_size}")
        if config.context == "auto":
            raise InternalError("classifier.context=auto must be resolved to none or trailing_mean before training")
        self.dim = dim
        self.config = config
        inputs = 2 * dim if config.context == "trailing_mean" else dim
        self.temporal = nn.Conv1d(inputs, config.hidden, config.kernel_size, padding=config.kernel_size // 2)
        self.hidden = nn.Linear(config.hidden, config.hidden)
        self.output = nn.Linear(config.hidden, 1)
        self.dropout = nn.Dropout(config.dropout)

    def _temporal_conv(self, features: torch.Tensor) -> torch.Tensor:
        """The Conv1d as one matrix product over the unfolded k-snippet windows: (B, T, D) -> (B, T, hidden).

        Same weights and result as ``self.temporal`` on (B, D, T), but a plain GEMM, which oneDNN runs faster on CPU
        than its convolution for these shapes (30 x 32 x 2048 -> 512), in fp32 and in bf16.
        """
        if torch.onnx.is_in_onnx_export():  # ONNX has no unfold of a dynamic length: the convolution itself
            return self.temporal(features.transpose(1, 2)).transpose(1, 2)
        batch, length, dim = features.shape
        size = self.temporal.kernel_size[0]
        padded = functional.pad(features, (0, 0, size // 2, size // 2))
        windows = padded.unfold(1, size, 1).reshape(batch, length, dim * size)
        return functional.linear(windows, self.temporal.weight.flatten(1), self.temporal.bias)

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T)."""
        hidden = self._temporal_conv(features)
        hidden = self.dropout(torch.relu(hidden))
        hidden = self.dropout(torch.relu(self.hidden(hidden)))
        return torch.sigmoid(self.output(hidden)).squeeze(-1)

    def forward(self, features: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of (B, T, D) or (B, crops, T, D) features; ``reference``: their trailing means, same shape."""
        if features.shape[-1] != self.dim:
            raise ValueError(f"expected {self.dim}-d features, got shape {tuple(features.shape)}")
        if self.config.context == "trailing_mean":
            if reference is None:
                reference = trailing_mean(features, self.config.context_window)
            features = with_context(features, reference)
        if features.ndim == 3:
            return self._score(features)
        if features.ndim == 4:
            batch, crops, length, width = features.shape
            scores = self._score(features.reshape(batch * crops, length, width))
            return scores.reshape(batch, crops, length).mean(dim=1)
        raise ValueError(f"expected (B, T, D) or (B, crops, T, D) features, got shape {tuple(features.shape)}")


def create_classifier(*, dim: int, config: ClassifierConfig | None = None, seed: int | None = None) -> LANPClassifier:
    """A freshly initialised classifier; ``seed`` makes the initial weights reproducible."""
    if seed is None:
        return LANPClassifier(dim, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LANPClassifier(dim, config)
