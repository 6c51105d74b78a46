"""What scores a snippet: a classifier head, the normality bank and the calibration that joins them. Pure numpy.

A *head* is any function of a video's snippet features that gives scores in [0, 1] (the trained classifier in
torch, ``models.torch_head``, or its ONNX export), with the ``radius`` of snippets its score looks at and the
``context_window`` of a head that sees the video context. A ``Detector`` is itself such a head: the head alone
(no calibration: the official recipe), or the calibrated evidence of the head and / or the bank
(``models.calibration``), so training, evaluation, offline and live scoring all score with the same object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lanp_vad.models.bank import NormalityBank
from lanp_vad.models.calibration import Calibration, CalibrationError


class Head(Protocol):
    """Snippet scores of one video's features (the scorer's ``SnippetHead``)."""

    radius: int
    context_window: int | None
    device: str

    def __call__(self, features: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray: ...


@dataclass
class Detector:
    """The head alone (``calibration`` None, the official recipe), or the calibrated evidence of the head and / or
    the normality bank."""

    head: Head | None
    bank: NormalityBank | None = None
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        needed = set(self.calibration.components) if self.calibration is not None else {"classifier"}
        if "bank" in needed and self.bank is None:
            raise CalibrationError("the calibration uses a normality bank the model does not have")
        if "classifier" in needed and self.head is None:
            raise CalibrationError("the model's scores need a classifier it does not have")

    @property
    def uses_classifier(self) -> bool:
        return self.calibration is None or "classifier" in self.calibration.components

    @property
    def radius(self) -> int:
        """Snippets on each side a score depends on: the head's (the bank scores each snippet on its own)."""
        return self.head.radius if self.head is not None and self.uses_classifier else 0

    @property
    def context_window(self) -> int | None:
        return self.head.context_window if self.head is not None and self.uses_classifier else None

    @property
    def device(self) -> str:
        return self.head.device if self.head is not None else "cpu"

    def __call__(
        self, features: np.ndarray, reference: np.ndarray | None = None, *, exclude: Sequence[int] | None = None
    ) -> np.ndarray:
        """Snippet scores in [0, 1] of one video's (T, D) or (T, crops, D) features. ``reference``: trailing means
        for a head with the video context (a window of a longer sequence); ``exclude``: training videos whose bank
        entries do not count (None: those recognised by their seeds)."""
        scores = self.head(features, reference) if self.uses_classifier else None
        if self.calibration is None:
            return scores
        distances = self.bank.distances(features, exclude=exclude) if "bank" in self.calibration.components else None
        return self.calibration.score(self.calibration.evidence(scores, distances))
