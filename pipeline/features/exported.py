"""Features without torch: the backbone ``lanp export`` wrote as ONNX, run by ONNX Runtime or OpenVINO.

``ExportedExtractor`` makes a model's features from its ``FeatureSpec`` alone: the decoder's settings and the
transform come from the spec (the transform in numpy, ``array_transforms``), the network from the exported file.
Decoding is the same as the torch extractor's (``PooledExtractor``: in a killable worker process, or in this one),
so the features equal the torch pipeline's to the exported network's precision (tests/pipeline/scoring/
test_export.py: scores within 1e-4 on real clips).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.array_transforms import ArraySnippetTransform
from lanp_vad.pipeline.features.base import PooledExtractor
from lanp_vad.pipeline.features.config import Decoder
from lanp_vad.pipeline.features.sessions import cpu_cores, exported_runner, installed_runtime
from lanp_vad.pipeline.features.spec import FeatureSpec


@dataclass(frozen=True)
class HostDevice:
    """Where the exported networks run: this machine's CPU (the engine asks ``device.type``)."""

    type: str = "cpu"

    def __str__(self) -> str:
        return self.type


class ExportedExtractor(PooledExtractor):
    """The features of ``spec`` computed by the exported backbone at ``path``."""

    def __init__(self, spec: FeatureSpec, path: Path, *, runtime: str = "auto", batch_size: int = 16,
                 decoder: Decoder = "pyav", threads: int | None = None):
        if spec.resize is None or spec.crop_size is None:
            raise UserError(f"{spec.describe()} has no resize and crop: its features were not made from video "
                            "frames by this project", kind=ErrorKind.SPEC_MISMATCH)
        super().__init__(spec.decode_settings(decoder), batch_size=batch_size)
        self.spec = spec
        self.device = HostDevice()
        self.runtime = installed_runtime(runtime)
        self.transform = ArraySnippetTransform(spec.resize, spec.crop_size, spec.crops, spec.mean, spec.std)
        self._run = exported_runner(self.runtime, path, threads=threads or cpu_cores(),
                                    frames_per_item=spec.frames_per_snippet)

    def clips(self, snippets: np.ndarray) -> np.ndarray:
        """uint8 snippets (N, L, H, W, 3) -> normalised clips (N, crops, 3, L, S, S)."""
        return self.transform(snippets)

    def forward_clips(self, clips: np.ndarray) -> np.ndarray:
        """Features (N, D) or (N, crops, D) of transformed clips."""
        count, crops = clips.shape[:2]
        with self.forward_gate():
            features = self._run(clips.reshape(count * crops, *clips.shape[2:])).reshape(count, crops, -1)
        return features[:, 0] if crops == 1 else features
