"""Live sources: anything FFmpeg opens through PyAV (rtsp://, http(s):// HLS or MJPEG, udp://, srt://, a device,
a growing file), decoded frame by frame, reopened with backoff when the connection drops.

``open_live`` opens one connection and checks it like a file (a video stream, a decoder for its codec, a sane frame
size); ``LiveConnection.frames`` yields ``(stream time, frame)`` in presentation order until the source ends or
fails. Every failure is a ``VideoError`` with a kind (``source_unreachable`` before a connection exists,
``stream_lost`` after), so the watcher can report it and try again. ``Backoff`` spaces the attempts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from pydantic import BaseModel, ConfigDict, Field

from lanp_vad.models.errors import ErrorKind, UserError, VideoError
from lanp_vad.pipeline.video import DEFAULT_MAX_PIXELS, MAX_SIDE

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "rtp", "srt", "tcp")
"""URL schemes passed to FFmpeg as network streams; anything else must be an existing path (file or device)."""


class SourceConfig(BaseModel):
    """How a live source is opened and reopened (saved in the watch log's first record)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    open_timeout_s: float = Field(10.0, gt=0, description="give up opening a connection after this long")
    read_timeout_s: float = Field(10.0, gt=0, description="a connection silent this long counts as dropped")
    reconnect_initial_s: float = Field(0.5, gt=0, description="first wait before reconnecting")
    reconnect_max_s: float = Field(30.0, gt=0, description="the wait doubles up to this")
    max_reconnects: int | None = Field(None, ge=0, description="consecutive failed attempts before giving up")
    format: str | None = Field(None, description="FFmpeg input format (e.g. v4l2 for a device); None guesses")
    options: dict[str, str] = Field(default_factory=dict, description="FFmpeg options (e.g. rtsp_transport=tcp)")


def check_source(source: str) -> str:
    """``source`` if FFmpeg can be asked to open it: a URL of a known scheme or an existing path."""
    scheme, separator, _ = source.partition("://")
    if separator:
        if scheme.lower() not in NETWORK_SCHEMES:
            raise UserError(
                f"unsupported stream URL scheme {scheme!r} in {source!r}; use one of {', '.join(NETWORK_SCHEMES)} "
                "or a file or device path",
                kind=ErrorKind.INVALID_ARGUMENT,
            )
        return source
    if not Path(source).exists():
        raise UserError(f"{source}: no such file or device (and not a stream URL)", kind=ErrorKind.NOT_FOUND)
    return source


def is_file(source: str) -> bool:
    """A regular file (read while it grows), as opposed to a network stream or a device."""
    return "://" not in source and Path(source).is_file()


@dataclass
class LiveConnection:
    """One open connection to a live source and what its video stream says about itself."""

    source: str
    container: Any
    stream: Any
    fps: float | None
    width: int
    height: int
    codec: str
    growing_file: bool = False
    read_timeout_s: float = 0.0

    def describe(self) -> dict[str, Any]:
        return {"fps": self.fps, "width": self.width, "height": self.height, "codec": self.codec,
                "format": self.container.format.name}

    def frames(self, stopped: Callable[[], bool] = lambda: False) -> Iterator[tuple[float, av.VideoFrame]]:
        """``(seconds, frame)`` in presentation order until ``stopped()`` (asked at every packet of any stream, so
        a source that sends no video still stops at once); a broken or silent connection raises ``stream_lost``
        after the frames the decoder still held (its reordering delay) are out. A frame larger than the size
        limits (a stream may change its size mid-way) raises ``too_large``."""
        codec, time_base = self.stream.codec_context, float(self.stream.time_base)
        try:
            for packet in self.container.demux():  # every stream's packets; the video's last, empty one flushes
                if stopped():
                    return
                if packet.stream is self.stream:
                    yield from self._timed(codec.decode(packet), time_base)
        except (av.error.FFmpegError, OSError) as error:
            with contextlib.suppress(av.error.FFmpegError):
                yield from self._timed(codec.decode(None), time_base)
            if self.growing_file:
                raise VideoError(f"{self.source}: the file stopped growing (nothing new for {self.read_timeout_s:g} "
                                 "s)", kind=ErrorKind.STREAM_LOST) from error
            raise VideoError(f"{self.source}: the stream was lost: {error}", kind=ErrorKind.STREAM_LOST) from error

    def _timed(self, frames: Iterator[av.VideoFrame], time_base: float) -> Iterator[tuple[float, av.VideoFrame]]:
        """Frames with their presentation time in seconds (the stream's time base: flushed frames carry none),
        each checked against the size limits."""
        for frame in frames:
            _check_size(self.source, frame.width, frame.height)
            if frame.pts is not None and math.isfinite(seconds := frame.pts * time_base):
                yield seconds, frame  # a frame without a time has no place in the stream

    def close(self) -> None:
        self.container.close()


def _check_size(source: str, width: int, height: int) -> None:
    if max(width, height) > MAX_SIDE or width * height > DEFAULT_MAX_PIXELS:
        raise VideoError(f"{source}: frame size {width}x{height} exceeds the limit ({MAX_SIDE} px a side, "
                         f"{DEFAULT_MAX_PIXELS} pixels)", kind=ErrorKind.TOO_LARGE)


def open_live(source: str, config: SourceConfig) -> LiveConnection:
    """Open ``source`` and check its first video stream; ``source_unreachable`` (or a typed video kind) if not."""
    options = dict(config.options)
    if is_file(source):
        options.setdefault("follow", "1")  # keep reading while the file grows; the read timeout ends it
    try:
        container = av.open(
            source, mode="r", format=config.format, options=options, metadata_errors="ignore",
            timeout=(config.open_timeout_s, config.read_timeout_s),
        )
    except (av.error.FFmpegError, OSError) as error:
        raise VideoError(f"{source}: cannot open the stream: {error}", kind=ErrorKind.SOURCE_UNREACHABLE) from error
    try:
        if not container.streams.video:
            raise VideoError(f"{source}: the stream carries no video", kind=ErrorKind.NO_VIDEO_STREAM)
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context is not None else ""
        if not codec or codec == "none":
            raise VideoError(f"{source}: the video codec has no decoder here", kind=ErrorKind.UNSUPPORTED_CODEC)
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_size(source, width, height)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return LiveConnection(source, container, stream, float(rate) if rate else None, width, height, codec,
                              growing_file=is_file(source), read_timeout_s=config.read_timeout_s)
    except BaseException:
        container.close()
        raise


class Backoff:
    """Waits between reconnection attempts: doubling from ``initial`` to ``maximum``; reset after a success."""

    def __init__(self, config: SourceConfig):
        self.config = config
        self.failures = 0

    def next_delay(self) -> float | None:
        """The wait before the next attempt, or None when ``max_reconnects`` consecutive attempts failed."""
        self.failures += 1
        limit = self.config.max_reconnects
        if limit is not None and self.failures > limit:
            return None
        return min(self.config.reconnect_initial_s * 2 ** (self.failures - 1), self.config.reconnect_max_s)

    def reset(self) -> None:
        self.failures = 0
