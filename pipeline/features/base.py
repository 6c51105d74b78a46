"""What every extractor shares, torch or not: decoding one video (in this process, or in a killable worker process
kept for the next video), reading its header, and feeding its snippets to the subclass's forward pass.

``FeatureExtractor`` (``extractor.py``) computes features with a torch backbone; ``ExportedExtractor``
(``exported.py``) with the backbone ``lanp export`` wrote, without torch. Both are the engine's ``SnippetModel``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lanp_vad.pipeline.features.engine import DecodePool, ExtractedVideo, Progress, extract_in_worker
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.video import VideoInfo
from lanp_vad.pipeline.video.worker import DecodeSettings


class PooledExtractor:
    """The decoding half of an extractor; subclasses set ``spec``, ``device`` and ``runtime`` and provide
    ``clips`` (uint8 snippets -> network input) and ``forward_clips`` (network input -> features)."""

    spec: FeatureSpec
    device: Any
    runtime: str

    def __init__(self, decode: DecodeSettings, *, batch_size: int, pin_for_cuda: bool = False):
        self.decode = decode
        self.batch_size = batch_size
        # The isolated path's processes, started on first use and kept: one decodes, one reads headers (a probe
        # must not wait behind a long decode). Stopped by close(), garbage collection or interpreter exit.
        self._decoder = DecodePool(decode, slots_per_worker=3, snippets_per_chunk=batch_size,
                                   pin_for_cuda=pin_for_cuda)
        self._prober = DecodePool(decode, slots_per_worker=0, snippets_per_chunk=1)
        self._close = weakref.finalize(self, close_pools, self._decoder, self._prober)
        # Entered around every forward pass (one batch): the service sets its device scheduler's gate here, so
        # that callers in several threads (uploads, jobs, live streams) take turns on the one device.
        self.forward_gate: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext

    def clips(self, snippets: np.ndarray) -> Any:
        raise NotImplementedError

    def forward_clips(self, clips: Any) -> np.ndarray:
        raise NotImplementedError

    def features(self, snippets: np.ndarray) -> np.ndarray:
        """uint8 snippets (N, L, H, W, 3) -> features (N, D) or (N, crops, D)."""
        return self.forward_clips(self.clips(snippets))

    def start_workers(self) -> None:
        """Start the isolated path's decode and probe processes now rather than on the first video."""
        for pool in (self._decoder, self._prober):
            with pool.lease():
                pass

    def close(self) -> None:
        """Stop the decode and probe processes (idempotent; a later isolated call starts fresh ones)."""
        close_pools(self._decoder, self._prober)

    def __enter__(self) -> PooledExtractor:
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


def close_pools(*pools: DecodePool) -> None:
    for pool in pools:
        pool.close()
