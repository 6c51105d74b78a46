"""The PyAV reader (the default): packet timestamps from one demux pass, then one sequential decode that keeps
only the frames the caller asked for, each converted and scaled to the delivered size as it is decoded."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import av
import av.error
import numpy as np

from pipeline.video.container import MediaSource, StreamHeader, check_complete, frame_rate, open_container
from pipeline.video.errors import CorruptVideoError
from pipeline.video.reader import VideoReader, build_info, rgb_at_size

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
        timestamps = self._packet_timestamps()
        fps = frame_rate(source.name, header.rate, timestamps, len(timestamps))
        finite = timestamps if np.all(np.isfinite(timestamps)) else None
        check_complete(source.name, header, finite, len(timestamps), fps)
        self.info = build_info(
            name=source.name,
            backend="pyav",
            count=len(timestamps),
            fps=fps,
            timestamps=finite,
            size=(header.width, header.height),
            out_size=out_size or (header.width, header.height),
            target_fps=target_fps,
            codec=header.codec,
            container=header.container,
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
        first = int(source_indices[0])
        if any(int(i) < self._next_index and int(i) not in self._kept for i in source_indices):
            self._restart()
        self._kept = {i: frame for i, frame in self._kept.items() if i >= first}
        wanted = set(source_indices.tolist())
        last = int(source_indices[-1])
        while self._next_index <= last:
            frame = self._next_frame()
            if self._next_index in wanted:
                self._kept[self._next_index] = rgb_at_size(frame, self.info.width, self.info.height)
            self._next_index += 1
        return np.stack([self._kept[int(i)] for i in source_indices])

    def _next_frame(self) -> av.VideoFrame:
        if self._frames is None:
            self._restart()
        try:
            return next(self._frames)
        except StopIteration:
            raise CorruptVideoError(
                f"{self._source.name}: the stream holds {self.info.source_num_frames} frames but decoding "
                f"ended after {self._next_index} (truncated or corrupt)"
            ) from None
        except av.error.FFmpegError as error:
            raise CorruptVideoError(
                f"{self._source.name}: decoding failed at frame {self._next_index}: {error}"
            ) from error

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
