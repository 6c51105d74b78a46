"""Snippet scores of a live session equal to offline ones, though the classifier looks at its neighbours.

LANP's classifier starts with a temporal convolution (kernel ``k``, zero padding), so a snippet's score depends on
the features of the ``k // 2`` snippets on either side, and offline the first and last snippets of a video see
zero padding. ``TemporalContext`` holds a session's recent features and scores a snippet once its right-hand
neighbours have arrived, or at the end of the session (where the padding is offline's too). The features it
classifies always reach the session start or cover the whole receptive field, so every score is the one offline
scoring of the same frames gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np
import torch

Meta = TypeVar("Meta")


def temporal_radius(classifier: torch.nn.Module) -> int:
    """How many snippets on each side a classifier's score looks at (its temporal convolution's half width)."""
    convolutions = [m for m in classifier.modules() if isinstance(m, torch.nn.Conv1d)]
    return sum(int(m.kernel_size[0]) // 2 * int(m.dilation[0]) for m in convolutions)


class TemporalContext(Generic[Meta]):
    """Features in, ``(meta, score)`` out, each score as soon as its receptive field is complete."""

    def __init__(self, classify: Callable[[np.ndarray], np.ndarray], radius: int):
        self.classify = classify
        self.radius = radius
        self.reset()

    def reset(self) -> None:
        self.metas: list[Meta] = []
        self.features: list[np.ndarray] = []
        self.next = 0  # position in the lists of the first snippet not scored yet

    def add(self, meta: Meta, features: np.ndarray) -> list[tuple[Meta, float]]:
        self.metas.append(meta)
        self.features.append(features)
        return self._score(len(self.metas) - self.radius)

    def finish(self) -> list[tuple[Meta, float]]:
        """The sequence ends here (session end or a dropped snippet): score the rest with the end padding."""
        scored = self._score(len(self.metas))
        self.reset()
        return scored

    def _score(self, stop: int) -> list[tuple[Meta, float]]:
        if stop <= self.next:
            return []
        low = max(0, self.next - self.radius)
        scores = self.classify(np.stack(self.features[low : stop + self.radius]))
        scored = [(self.metas[i], float(scores[i - low])) for i in range(self.next, stop)]
        keep = max(0, stop - self.radius)  # the left context of the next snippet to score
        self.metas, self.features = self.metas[keep:], self.features[keep:]
        self.next = stop - keep
        return scored
