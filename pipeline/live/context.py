"""Snippet scores of a live session equal to offline ones, though the classifier looks at its neighbours.

LANP's classifier starts with a temporal convolution (kernel ``k``, zero padding), so a snippet's score depends on
the features of the ``k // 2`` snippets on either side, and offline the first and last snippets of a video see
zero padding. ``TemporalContext`` holds a session's recent features and scores a snippet once its right-hand
neighbours have arrived, or at the end of the session (where the padding is offline's too). The features it
classifies always reach the session start or cover the whole receptive field, so every score is the one offline
scoring of the same frames gives. A head with the video context (``classifier.context=trailing_mean``) also gets
each snippet's trailing mean, kept from the session start by ``StreamingTrailingMean``, as offline computes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

from lanp_vad.models.context import StreamingTrailingMean

Meta = TypeVar("Meta")


class TemporalContext(Generic[Meta]):
    """Features in, ``(meta, score)`` out, each score as soon as its receptive field is complete."""

    def __init__(
        self, classify: Callable[..., np.ndarray], radius: int, *, context_window: int | None = None
    ):
        """``context_window``: the trailing-mean window of a head with the video context (None: no context)."""
        self.classify = classify
        self.radius = radius
        self.trailing = StreamingTrailingMean(context_window) if context_window else None
        self.reset()

    def reset(self) -> None:
        self.metas: list[Meta] = []
        self.features: list[np.ndarray] = []
        self.references: list[np.ndarray] = []
        self.next = 0  # position in the lists of the first snippet not scored yet
        if self.trailing is not None:
            self.trailing.reset()

    def add(self, meta: Meta, features: np.ndarray) -> list[tuple[Meta, float]]:
        self.metas.append(meta)
        self.features.append(features)
        if self.trailing is not None:
            self.references.append(self.trailing.add(features))
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
        window = slice(low, stop + self.radius)
        if self.trailing is None:
            scores = self.classify(np.stack(self.features[window]))
        else:
            scores = self.classify(np.stack(self.features[window]), np.stack(self.references[window]))
        scored = [(self.metas[i], float(scores[i - low])) for i in range(self.next, stop)]
        keep = max(0, stop - self.radius)  # the left context of the next snippet to score
        self.metas, self.features, self.references = self.metas[keep:], self.features[keep:], self.references[keep:]
        self.next = stop - keep
        return scored
