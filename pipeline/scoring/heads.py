"""What turns a video's snippet features into snippet scores: a *head*. Torch-free.

The scorer, the live watcher and the service see only ``SnippetHead``: scores in [0, 1] as a function of the
snippet features, plus how far along the sequence each score looks (``radius``, for live sessions) and whether
it needs the features' trailing means (``context_window``). The heads are the trained LANP classifier in torch
(``models.torch_head.TorchHead``), the same classifier exported to ONNX by ``lanp export`` (``ExportedHead``, run
by ONNX Runtime, no torch), and the ``models.detector.Detector`` that joins either with the normality bank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from lanp_vad.models.context import StreamingTrailingMean
from lanp_vad.pipeline.features.sessions import cpu_cores, installed_runtime


class SnippetHead(Protocol):
    """Snippet scores of one video's features."""

    radius: int
    """Snippets on each side that a snippet's score depends on (0: each snippet alone)."""
    context_window: int | None
    """The trailing-mean window of a head that sees the video context; None: no context."""
    device: str

    def __call__(self, features: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Scores (T,) float64 in [0, 1] of (T, D) or (T, crops, D) features (crops averaged); ``reference``: their
        trailing means, for a window out of a longer sequence (a live session)."""
        ...


def trailing_means(features: np.ndarray, window: int) -> np.ndarray:
    """Each snippet's mean over the last ``window`` snippets up to it (what offline scoring gives the context)."""
    running = StreamingTrailingMean(window)
    return np.stack([running.add(row) for row in features]) if len(features) else features.copy()


class ExportedHead:
    """The classifier ``lanp export`` wrote (``classifier.onnx``), run by ONNX Runtime on the CPU."""

    def __init__(self, path: Path, *, radius: int, context_window: int | None, threads: int | None = None):
        import onnxruntime

        installed_runtime("onnxruntime")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or cpu_cores()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [item.name for item in self.session.get_inputs()]
        self.radius, self.context_window, self.device = radius, context_window, "cpu"

    def __call__(self, features: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        def batch(values: np.ndarray) -> np.ndarray:  # (T, D) -> (1, T, D); (T, crops, D) -> (1, crops, T, D)
            array = np.asarray(values, dtype=np.float32)
            return (array if array.ndim == 2 else array.transpose(1, 0, 2))[None]

        feeds = {"features": batch(features)}
        if "reference" in self.inputs:
            assert self.context_window is not None
            feeds["reference"] = batch(trailing_means(features, self.context_window) if reference is None
                                       else reference)
        return self.session.run(None, feeds)[0].reshape(-1).astype(np.float64)
