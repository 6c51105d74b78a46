"""The official code's deterministic snippet sampling: n indices floor(i * T / n), duplicates when T < n."""

from __future__ import annotations

import numpy as np


def segment_indices(num_snippets: int, num_segments: int = 32) -> np.ndarray:
    """Indices of the snippets a video contributes to training (length ``num_segments``)."""
    if num_snippets < 1:
        raise ValueError("a video needs at least one snippet")
    return (np.arange(num_segments) * num_snippets) // num_segments
