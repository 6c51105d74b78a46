"""``FeatureExtractor``: a backbone on a device plus the decoding and transform settings that define a feature spec.

Built from an ``ExtractionConfig`` (``FeatureExtractor(config)``) or from a spec it must reproduce
(``FeatureExtractor.from_spec``: the scorer and the Ray actors). ``extract_video`` streams one video's snippets
through the backbone in batches (memory independent of length); with a timeout it decodes in a killable worker
process that the extractor starts once and keeps (``close()``).
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from lanp_vad.models.errors import ErrorKind, InternalError
from lanp_vad.pipeline.device import resolve_device
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.engine import DecodePool, ExtractedVideo, Progress, extract_in_worker
from lanp_vad.pipeline.features.runtime import CPU_PREFERENCE, INSTALL_HINTS, Runner, choose_runtime, create_runner
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.features.transforms import SnippetTransform
from lanp_vad.pipeline.features.weights import create_backbone
from lanp_vad.pipeline.video import VideoInfo
from lanp_vad.pipeline.video.worker import DecodeSettings, snippet_frame_offsets

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


class FeatureExtractor:
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
        self.batch_size = config.batch_size
        crop = config.crop_size or info.crop_size
        # Without an explicit resize keep the backbone's resize/crop ratio (e.g. 256/224).
        short_side = config.resize or (
            info.resize if config.crop_size is None else round(crop * info.resize / info.crop_size)
        )
        self.transform = SnippetTransform(short_side, crop, config.crops, info.mean, info.std)
        decode_short_side = config.decode_short_side
        if decode_short_side == DECODE_AT_RESIZE:  # the scale done once, while decoding (the spec records it)
            decode_short_side = short_side
        self.decode = DecodeSettings(
            snippet_length=config.snippet_length,
            stride=config.stride,
            pad_last=config.pad_last,
            frames_per_snippet=min(config.frames_per_snippet or info.input_frames, config.snippet_length),
            target_fps=config.fps,
            max_side=config.max_side,
            max_short_side=decode_short_side,
            backend=config.decoder,
        )
        snippet_frame_offsets(config.snippet_length, self.decode.frames_per_snippet)  # validates the count
        self._archive_pool: DecodePool | None = None
        if archive_workers > 0:
            self._archive_pool = DecodePool.for_archive(self.decode, workers=archive_workers,
                                                        snippets_per_chunk=config.batch_size, device=self.device)
            self._archive_pool.start()
            weakref.finalize(self, _close_pools, self._archive_pool)
        self.runtime = choose_runtime(config.runtime, self.device)
        self._runner = self._build_runner(config.runtime, loaded.weights, crop)
        self.spec = FeatureSpec(
            backbone=info.name,
            weights=loaded.weights,
            dim=info.dim,
            snippet_length=config.snippet_length,
            stride=config.stride,
            frames_per_snippet=self.decode.frames_per_snippet,
            pad_last=config.pad_last,
            resize=short_side,
            crop_size=crop,
            crops=config.crops,
            mean=info.mean,
            std=info.std,
            layer=info.layer,
            fps=config.fps,
            max_side=config.max_side,
            decode_short_side=decode_short_side,
        )
        # The isolated path's processes, started on first use and kept: one decodes, one reads headers (a probe
        # must not wait behind a long decode). Stopped by close(), garbage collection or interpreter exit.
        self._decoder = DecodePool(self.decode, slots_per_worker=3, snippets_per_chunk=config.batch_size,
                                   pin_for_cuda=self.device.type == "cuda")
        self._prober = DecodePool(self.decode, slots_per_worker=0, snippets_per_chunk=1)
        self._close = weakref.finalize(self, _close_pools, self._decoder, self._prober)
        # Entered around every forward pass (one batch): the service sets its device scheduler's gate here, so
        # that callers in several threads (uploads, jobs, live streams) take turns on the one device.
        self.forward_gate: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext

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

    def start_workers(self) -> None:
        """Start the isolated path's decode and probe processes now rather than on the first video."""
        for pool in (self._decoder, self._prober):
            with pool.lease():
                pass

    def close(self) -> None:
        """Stop the decode and probe processes (idempotent; a later isolated call starts fresh ones)."""
        _close_pools(self._decoder, self._prober, *([self._archive_pool] if self._archive_pool else []))

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def probe(self, source: str | Path, *, timeout_s: float | None = None) -> VideoInfo:
        """The video's header as extraction will see it (frame count, fps, size), without decoding frames.

        With ``timeout_s`` it is read by the persistent probe process, killed and replaced when it gives no answer
        in that long (DecodeTimeoutError) or dies (DecoderCrashedError); otherwise in this process."""
        if timeout_s is None:
            with self.decode.open_reader(source) as reader:
                return reader.info
        with self._prober.lease(timeout_s) as pool:
            return pool.probe(Path(source))

    def clips(self, snippets: torch.Tensor) -> torch.Tensor:
        """uint8 snippets (any device) -> normalised clips (N, crops, 3, L, S, S) on the extractor's device."""
        return self.transform(snippets.to(self.device, non_blocking=True))

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
                    raise InternalError("out of device memory for a single snippet; lower --size",
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

    def features(self, snippets: torch.Tensor | np.ndarray) -> np.ndarray:
        """uint8 snippets (N, L, H, W, 3) -> features (N, D) or (N, crops, D)."""
        tensor = torch.from_numpy(snippets) if isinstance(snippets, np.ndarray) else snippets
        return self.forward_clips(self.clips(tensor))

    def extract_video(
        self, source: str | Path | BinaryIO, *, timeout_s: float | None = None, progress: Progress | None = None
    ) -> ExtractedVideo:
        """One video's features. With ``timeout_s`` (paths only) decoding runs in the extractor's persistent worker
        process, killed (and replaced for the next video) when it stops making progress for that long
        (DecodeTimeoutError) or dies (DecoderCrashedError); otherwise decoding runs in this process."""
        if timeout_s is not None and isinstance(source, str | Path):
            with self._decoder.lease(timeout_s) as pool:
                return extract_in_worker(self, Path(source), pool, progress)
        reader, plan = self.decode.open(source)
        with reader:
            parts = []
            for first, chunk in self.decode.iter_chunks(reader, plan, self.batch_size):
                parts.append(self.features(chunk))
                if progress is not None:
                    progress(first + chunk.shape[0], plan.num_snippets)
            return ExtractedVideo(np.concatenate(parts), reader.info, plan)


def _close_pools(*pools: DecodePool) -> None:
    for pool in pools:
        pool.close()
