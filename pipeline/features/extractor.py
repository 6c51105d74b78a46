"""``FeatureExtractor``: a backbone on a device plus the decoding and transform settings that define a feature spec.

Built from an ``ExtractionConfig`` (``FeatureExtractor(config)``) or from a spec it must reproduce
(``FeatureExtractor.from_spec``: the scorer and the Ray actors). ``extract_video`` streams one video's snippets
through the backbone in batches (memory independent of length); with a timeout it decodes in a killable worker
process that the extractor starts once and keeps (``close()``).
"""

from __future__ import annotations

import logging
import weakref

import numpy as np
import torch

from lanp_vad.models.errors import ErrorKind, InternalError, UserError
from lanp_vad.pipeline.device import resolve_device
from lanp_vad.pipeline.features.base import PooledExtractor, close_pools
from lanp_vad.pipeline.features.config import SPEC_SETTINGS, ExtractionConfig
from lanp_vad.pipeline.features.engine import DecodePool
from lanp_vad.pipeline.features.runtime import CPU_PREFERENCE, INSTALL_HINTS, Runner, choose_runtime, create_runner
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.features.transforms import SnippetTransform
from lanp_vad.pipeline.features.weights import create_backbone
from lanp_vad.pipeline.video.worker import snippet_frame_offsets

log = logging.getLogger(__name__)

DECODE_AT_RESIZE = "auto"
"""``decode_short_side="auto"`` scales frames while decoding straight to the transform's short side (the resize):
the one scale happens in FFmpeg's colour conversion, which reads the full-size picture once, and everything after
it (the decoder's output, the shared-memory hand-off, the transform) handles small frames. At 1080p this took the
extraction from 24x the decode floor to a few times it (bench/cameras.py --stages). Sources whose short side is
already at most the resize (Ped2, the CCTV clips) decode at full size, as before. swscale's bilinear (antialiased
when it reduces) is not torch's resize: on a Ped2 clip upscaled x4 the features moved 8.9 % relative L2 (cosine
0.996) against a full-size decode resized by torch, where re-encoding the clip at CRF 18 moved them 1.8 %
(bench/decode_size.py --features --oversample 1), so it is a setting of the feature spec, and specs saved with
another bound (1080, or none) keep decoding as they were extracted."""


class FeatureExtractor(PooledExtractor):
    """A backbone on a device plus the decoding and transform settings that, together, define a ``FeatureSpec``."""

    def __init__(self, config: ExtractionConfig | None = None, *, archive_workers: int = 0):
        """``archive_workers`` > 0 starts that many decoding processes for ``extract_archive`` before the runtime
        session is built, so that their start-up (imports, ~0.5 s) overlaps it instead of delaying the first
        batch; the first ``extract_archive`` with this extractor takes them."""
        config = config or ExtractionConfig()
        self.config = config
        loaded = create_backbone(config.backbone, weights=config.weights, allow_pickle=config.allow_pickle)
        info = loaded.info
        self.device = resolve_device(config.device)
        self.backbone = loaded.backbone.to(self.device)
        crop_size = config.crop_size or info.crop_size
        # Without an explicit resize keep the backbone's resize/crop ratio (e.g. 256/224).
        resize = config.resize or (
            info.resize if config.crop_size is None else round(crop_size * info.resize / info.crop_size)
        )
        decode_short_side = config.decode_short_side
        if decode_short_side == DECODE_AT_RESIZE:  # the scale done once, while decoding (the spec records it)
            decode_short_side = resize
        self.spec = FeatureSpec(**{
            **{name: getattr(config, name) for name in SPEC_SETTINGS},
            # what the config leaves to the backbone, resolved; the backbone's frame count by default (as many as
            # a snippet has if it wants more)
            "backbone": info.name, "weights": loaded.weights, "dim": info.dim, "mean": info.mean, "std": info.std,
            "layer": info.layer, "resize": resize, "crop_size": crop_size, "decode_short_side": decode_short_side,
            "frames_per_snippet": config.frames_per_snippet or min(info.input_frames, config.snippet_length),
        })
        if crop_size > resize:
            raise UserError(f"crop_size {crop_size} exceeds resize {resize} (the short side it is cropped from)",
                            kind=ErrorKind.INVALID_ARGUMENT)
        self.transform = SnippetTransform(resize, crop_size, config.crops, info.mean, info.std)
        super().__init__(self.spec.decode_settings(config.decoder), batch_size=config.batch_size,
                         pin_for_cuda=self.device.type == "cuda")
        snippet_frame_offsets(config.snippet_length, self.decode.frames_per_snippet)  # validates the count
        self._archive_pool: DecodePool | None = None
        if archive_workers > 0:
            self._archive_pool = DecodePool.for_archive(self.decode, workers=archive_workers,
                                                        snippets_per_chunk=config.batch_size, device=self.device)
            self._archive_pool.start()
            weakref.finalize(self, close_pools, self._archive_pool)
        self.runtime = choose_runtime(config.runtime, self.device)
        self._runner = self._build_runner(config.runtime, loaded.weights, crop_size)

    @classmethod
    def from_spec(cls, spec: FeatureSpec, *, weights: str | None = None, what: str = "model",
                  **how: object) -> FeatureExtractor:
        """The extractor that makes ``spec``'s features (``ExtractionConfig.from_spec``); refuses, naming both
        specs, when the result differs (e.g. other weights). ``what`` names the spec's owner in that message."""
        extractor = cls(ExtractionConfig.from_spec(spec, weights=weights, **how))
        spec.check_compatible(extractor.spec, what=what, other_what="extractor")
        return extractor

    def take_archive_pool(self) -> DecodePool | None:
        """The decoding pool started for ``extract_archive`` at construction (once; then None). The taker closes it."""
        pool, self._archive_pool = self._archive_pool, None
        return pool

    def close(self) -> None:
        """Stop the decode and probe processes and an untaken archive pool (idempotent)."""
        super().close()
        if self._archive_pool is not None:
            self._archive_pool.close()

    def clips(self, snippets: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 snippets (any device, or a numpy array) -> normalised clips (N, crops, 3, L, S, S) on the
        extractor's device."""
        tensor = torch.from_numpy(snippets) if isinstance(snippets, np.ndarray) else snippets
        return self.transform(tensor.to(self.device, non_blocking=True))

    @torch.inference_mode()
    def forward_clips(self, clips: torch.Tensor) -> np.ndarray:
        """Features (N, D) or (N, crops, D) of transformed clips, in batches that shrink on CUDA out-of-memory."""
        count, crops = clips.shape[:2]
        flat = clips.flatten(0, 1)
        outputs = []
        start = 0
        while start < flat.shape[0]:
            size = max(1, self.batch_size * crops)
            try:
                outputs.append(self._forward(flat[start : start + size]))
                start += size
            except torch.cuda.OutOfMemoryError as error:
                if size <= 1:
                    raise InternalError("out of device memory for a single snippet; lower --crop-size",
                                        kind=ErrorKind.OUT_OF_MEMORY) from error
                torch.cuda.empty_cache()
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("CUDA out of memory: batch size lowered to %d snippets", self.batch_size)
        features = torch.cat(outputs).float().cpu().numpy().reshape(count, crops, -1)
        return features[:, 0] if crops == 1 else features

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        with self.forward_gate():
            return self._runner(clips)

    def _build_runner(self, requested: str, weights: str, crop_size: int) -> Runner:
        """The forward pass in ``self.runtime``; under ``auto`` a runtime that fails to load falls back to torch."""
        if requested == "auto" and self.device.type == "cpu" and self.runtime != CPU_PREFERENCE[0]:
            log.warning("%s is not installed: the backbone runs in %s, slower on a CPU; %s",
                        CPU_PREFERENCE[0], self.runtime, INSTALL_HINTS[CPU_PREFERENCE[0]])
        try:
            return create_runner(self.runtime, self.backbone, weights=weights, device=self.device,
                                 frames=self.decode.frames_per_snippet, crop_size=crop_size)
        except Exception as error:
            if requested != "auto" or self.runtime == "torch":
                raise
            log.warning("the %s runtime failed to load the backbone (%s: %s): falling back to torch",
                        self.runtime, type(error).__name__, error)
            self.runtime = "torch"
            return create_runner("torch", self.backbone, weights=weights, device=self.device,
                                 frames=self.decode.frames_per_snippet, crop_size=crop_size)
