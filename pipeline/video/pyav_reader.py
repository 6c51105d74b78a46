"""The PyAV reader (the default): packet timestamps from one demux pass, then one sequential decode that keeps
only the frames the caller asked for, each converted and scaled to the delivered size as it is decoded."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import av
import av.error
import numpy as np

from lanp_vad.pipeline.video.container import (
    MediaSource,
    StreamHeader,
    check_frame_size,
    frame_rate,
    open_container,
    stream_info,
)
from lanp_vad.pipeline.video.errors import CorruptVideoError
from lanp_vad.pipeline.video.reader import VideoReader, rgb_at_size

logger = logging.getLogger(__name__)


class PyAVReader(VideoReader):
    """Frames by index from a sequential decode (restarted from the first frame when asked to go back)."""

    def __init__(
        self,
        source: MediaSource,
        header: StreamHeader,
        target_fps: float | None,
        out_size: tuple[int, int] | None,
    ) -> None:
        self._source = source
        self._header = header
        timestamps = self._packet_timestamps()
        fps = frame_rate(source.name, header.rate, timestamps, len(timestamps))
        finite = timestamps if np.all(np.isfinite(timestamps)) else None
        self.info = stream_info(
            source, header, backend="pyav", timestamps=finite, count=len(timestamps), fps=fps, out_size=out_size,
            target_fps=target_fps,
        )
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._next_index = 0
        self._kept: dict[int, np.ndarray] = {}

    def _packet_timestamps(self) -> np.ndarray:
        """Seconds of every stored video frame in presentation order (demux only, no decoding).

        Empty packets (frames an AVI recorder dropped) hold no picture and are skipped: the gap stays in the
        timestamps of the frames around them.
        """
        stamps: list[float] = []
        with open_container(self._source) as container:
            stream = container.streams.video[0]
            time_base = float(stream.time_base) if stream.time_base else math.nan
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    pts = packet.pts if packet.pts is not None else packet.dts
                    stamps.append(pts * time_base if pts is not None else math.nan)
            except av.error.FFmpegError as error:
                logger.warning("%s: demuxing stopped early (%s)", self._source.name, error)
        return np.sort(np.asarray(stamps, dtype=np.float64))

    def _decode_source_frames(self, source_indices: np.ndarray) -> np.ndarray:
        """Decoded frames are written straight into the result; frames kept from the previous call (overlapping
        snippets) are views of its result, so nothing is held twice."""
        first = int(source_indices[0])
        if any(int(i) < self._next_index and int(i) not in self._kept for i in source_indices):
            self._restart()
        kept = {i: frame for i, frame in self._kept.items() if i >= first}
        out = np.empty((len(source_indices), self.info.height, self.info.width, 3), dtype=np.uint8)
        position = {int(index): slot for slot, index in enumerate(source_indices)}
        for index, frame in kept.items():
            if index in position:
                out[position[index]] = frame
        self._kept = {}  # the previous result is released as soon as the caller lets go of it
        last = int(source_indices[-1])
        while self._next_index <= last:
            frame = self._next_frame()
            if self._next_index in position:
                out[position[self._next_index]] = rgb_at_size(frame, self.info.width, self.info.height)
            self._next_index += 1
        self._kept = {int(index): out[slot] for slot, index in enumerate(source_indices)}
        return out

    def _next_frame(self) -> av.VideoFrame:
        if self._frames is None:
            self._restart()
        try:
            frame = next(self._frames)
        except StopIteration:
            raise CorruptVideoError(
                f"{self._source.name}: the stream holds {self.info.source_num_frames} frames but decoding "
                f"ended after {self._next_index} (truncated or corrupt)"
            ) from None
        except av.error.FFmpegError as error:
            raise CorruptVideoError(
                f"{self._source.name}: decoding failed at frame {self._next_index}: {error}"
            ) from error
        if (frame.width, frame.height) != (self._header.width, self._header.height):
            check_frame_size(self._source.name, self._next_index, frame.width, frame.height, self._header,
                             self._source.max_pixels)
        return frame

    def _restart(self) -> None:
        """Reopen the container and decode from the first frame again."""
        self.close()
        self._container = open_container(self._source)
        self._frames = self._container.decode(video=0)
        self._next_index = 0
        self._kept = {}

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container, self._frames = None, None
