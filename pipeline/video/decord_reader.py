"""The decord (``decord2``) reader: random access by frame index with ``get_batch``, one thread (VP9-safe).

decord hands over full-size RGB frames; they are scaled to the delivered size with the same swscale filter as
the PyAV reader, a few at a time, so the backends agree and a large source is held at full size only a group of
frames at a time. With ``fallback``, a decord failure mid-video hands the remaining frames to PyAV (logged);
without, it is a CorruptVideoError.
"""

from __future__ import annotations

import logging

import numpy as np

from lanp_vad.pipeline.video.container import MediaSource, StreamHeader, frame_rate, stream_info
from lanp_vad.pipeline.video.errors import CorruptVideoError
from lanp_vad.pipeline.video.pyav_reader import PyAVReader
from lanp_vad.pipeline.video.reader import VideoReader, scale_rgb

logger = logging.getLogger(__name__)

FULL_SIZE_GROUP_BYTES = 64 << 20
"""At most this much full-size RGB is fetched from decord at once before it is scaled down."""


class DecordReader(VideoReader):
    """decord, with PyAV taking over the rest of the video on a decord failure when ``fallback`` is set."""

    def __init__(
        self,
        source: MediaSource,
        header: StreamHeader,
        target_fps: float | None,
        out_size: tuple[int, int] | None,
        *,
        fallback: bool,
    ) -> None:
        import decord

        self._source, self._header, self._allow_fallback = source, header, fallback
        self._reader = decord.VideoReader(source.handle(), ctx=decord.cpu(0), num_threads=1)
        count = len(self._reader)
        timestamps = self._reader.get_frame_timestamp(np.arange(count))[:, 0] if count else None
        if timestamps is not None and not np.all(np.isfinite(timestamps)):
            timestamps = None
        fps = frame_rate(source.name, header.rate or self._reader.get_avg_fps(), timestamps, count)
        self.info = stream_info(
            source, header, backend="decord", timestamps=timestamps, count=count, fps=fps, out_size=out_size,
            target_fps=target_fps,
        )
        self._group = max(1, FULL_SIZE_GROUP_BYTES // (header.width * header.height * 3))
        self._fallback: PyAVReader | None = None

    def _decode_source_frames(self, source_indices: np.ndarray) -> np.ndarray:
        if self._fallback is None:
            try:
                return np.concatenate(
                    [
                        self._fetch(source_indices[start : start + self._group])
                        for start in range(0, len(source_indices), self._group)
                    ]
                )
            except Exception as error:  # decord reports damage as bare RuntimeErrors
                if not self._allow_fallback:
                    raise CorruptVideoError(
                        f"{self._source.name}: decoding failed near frame {int(source_indices[0])}: {error}"
                    ) from error
                logger.warning("decord failed on %s (%s); continuing with PyAV", self._source.name, error)
                self._fallback = PyAVReader(self._source, self._header, None, (self.info.width, self.info.height))
        if source_indices[-1] >= self._fallback.info.num_frames:
            raise CorruptVideoError(
                f"{self._source.name}: the video promised {self.info.source_num_frames} frames but only "
                f"{self._fallback.info.num_frames} can be decoded (truncated or corrupt)"
            )
        return self._fallback._decode_source_frames(source_indices)

    def _fetch(self, source_indices: np.ndarray) -> np.ndarray:
        """One group of frames from decord, scaled to the delivered size."""
        frames = self._reader.get_batch(source_indices.tolist()).asnumpy()
        if frames.shape[0] != len(source_indices):
            raise RuntimeError(f"got {frames.shape[0]} of {len(source_indices)} frames")
        return scale_rgb(frames, self.info.width, self.info.height)

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()
        self._reader = None  # decord releases the file when its reader is collected
