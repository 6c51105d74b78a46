"""What scores a snippet: a classifier head, the normality bank and the calibration that joins them. Pure numpy.

A *head* is any function of a video's snippet features that gives scores in [0, 1] (the trained classifier in
torch, ``models.torch_head``, or its ONNX export), with the ``radius`` of snippets its score looks at and the
``context_window`` of a head that sees the video context. A ``Detector`` is itself such a head: the head alone
(no calibration: the official recipe), or the calibrated evidence of the head, the bank and the video's own
propagation (``models.calibration``), so training, evaluation, offline and live scoring score with one object
(a live stream through ``for_stream``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lanp_vad.models.bank import NormalityBank
from lanp_vad.models.calibration import Calibration, CalibrationError
from lanp_vad.models.config import PropagationConfig
from lanp_vad.models.within import within_abnormality


class Head(Protocol):
    """Snippet scores of one video's features (the scorer's ``SnippetHead``)."""

    radius: int
    context_window: int | None
    device: str

    def __call__(self, features: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray: ...


@dataclass
class Detector:
    """The head alone (``calibration`` None, the official recipe), or the calibrated evidence of the head, the
    normality bank and (for whole videos) the video's own propagation; ``stream`` is the calibration of a live
    stream's windows, which have no end to propagate from."""

    head: Head | None
    bank: NormalityBank | None = None
    calibration: Calibration | None = None
    stream: Calibration | None = None
    propagation: PropagationConfig | None = None

    def __post_init__(self) -> None:
        for calibration in (self.calibration, self.stream) if self.stream is not None else (self.calibration,):
            needed = set(calibration.components) if calibration is not None else {"classifier"}
            if "bank" in needed and self.bank is None:
                raise CalibrationError("the calibration uses a normality bank the model does not have")
            if "classifier" in needed and self.head is None:
                raise CalibrationError("the model's scores need a classifier it does not have")
            if "within" in needed and self.propagation is None:
                raise CalibrationError("the calibration uses the video's own propagation but has no settings for it")
        if self.stream is not None and "within" in self.stream.components:
            raise CalibrationError("a live stream cannot be calibrated on the video's own propagation (it has no end)")

    def _uses(self, component: str) -> bool:
        if self.calibration is None:
            return component == "classifier"
        return component in self.calibration.components

    @property
    def radius(self) -> int:
        """Snippets on each side a score depends on: the head's, and the bank's smoothing."""
        head = self.head.radius if self.head is not None and self._uses("classifier") else 0
        return max(head, self.calibration.bank_radius if self._uses("bank") else 0)

    @property
    def context_window(self) -> int | None:
        return self.head.context_window if self.head is not None and self._uses("classifier") else None

    @property
    def device(self) -> str:
        return self.head.device if self.head is not None else "cpu"

    def for_stream(self) -> Detector:
        """The detector of a live stream's windows: the stream calibration (no within-video view)."""
        if self.calibration is None or "within" not in self.calibration.components:
            return self
        return Detector(self.head, self.bank, self.stream, None, None)

    def __call__(
        self, features: np.ndarray, reference: np.ndarray | None = None, *, exclude: Sequence[int] | None = None
    ) -> np.ndarray:
        """Snippet scores in [0, 1] of one video's (T, D) or (T, crops, D) features. ``reference``: trailing means
        for a head with the video context (a window of a longer sequence); ``exclude``: training videos whose bank
        entries do not count (None: those recognised by their seeds)."""
        classifier = self.head(features, reference) if self._uses("classifier") else None
        if self.calibration is None:
            return classifier
        parts = {"classifier": classifier}
        if self._uses("bank"):
            parts["bank"] = self.bank.distances(features, exclude=exclude)
        if self._uses("within"):
            parts["within"] = within_abnormality(features, self.propagation)
        return self.calibration.score(parts)
