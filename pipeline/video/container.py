"""The FFmpeg side of opening a video: the source (path or stream), the container and its header checks.

Everything here runs before a frame is decoded: the file is non-empty, a container FFmpeg can open (and not a text
file or a still image), with a video stream whose codec has a decoder, at a sane resolution. The header's
announced duration is kept so a reader can tell a truncated file (its stream ends well before that time) from one
with dropped frames (timestamps with gaps that still reach the end).
"""

from __future__ import annotations

import math
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import av.error
import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.video.errors import (
    CorruptVideoError,
    EmptyFileError,
    NotAVideoError,
    NoVideoStreamError,
    ResolutionTooLargeError,
    UnsupportedCodecError,
)
from lanp_vad.pipeline.video.reader import VideoInfo, build_info
from lanp_vad.pipeline.video.sniff import sniff_container

VideoSource = str | Path | BinaryIO

MAX_SIDE = 8192
"""No video side may exceed this many pixels (checked on the header, before any frame is decoded)."""
DEFAULT_MAX_PIXELS = 7680 * 4320
"""Default cap on width x height of the source (8K UHD): larger frames are refused as too large to decode."""
TRUNCATION_TOLERANCE = 0.02
"""A stream whose timestamps end earlier than the duration its header announces, by more than this fraction (and
two frames), is treated as truncated."""
_TEXT_FORMATS = frozenset({"tty"})  # FFmpeg shows any text file as "ANSI art" video
_IMAGE_FORMATS = frozenset({"image2"})  # single still images (plus every "*_pipe" image demuxer)
_HEADER_DURATION_FORMATS = frozenset({"matroska,webm", "flv", "asf"})


@dataclass
class MediaSource:
    """A file path or a seekable binary stream, with a name for messages and the frame-size limit."""

    path: Path | None
    stream: BinaryIO | None
    name: str
    max_pixels: int

    @classmethod
    def of(cls, source: VideoSource, max_pixels: int) -> MediaSource:
        if isinstance(source, str | Path):
            path = Path(source)
            mode = path.stat().st_mode  # FileNotFoundError names the path
            if stat.S_ISREG(mode) and path.stat().st_size == 0:
                raise EmptyFileError(f"{path}: the file is empty (0 bytes)")
            return cls(path, None, str(path), max_pixels)
        name = str(getattr(source, "name", "") or "<uploaded stream>")
        if not (hasattr(source, "read") and hasattr(source, "seek")):
            raise TypeError(f"expected a path or a binary file object, got {type(source).__name__}")
        if hasattr(source, "seekable") and not source.seekable():
            message = f"{name}: the stream is not seekable; save it to a file first"
            raise UserError(message, kind=ErrorKind.INVALID_INPUT)
        source.seek(0)
        if not source.read(1):
            raise EmptyFileError(f"{name}: the uploaded stream is empty (0 bytes)")
        source.seek(0)
        return cls(None, source, name, max_pixels)

    def handle(self) -> str | BinaryIO:
        """What a decoder opens: the path, or the stream rewound to its start."""
        if self.stream is None:
            return str(self.path)
        self.stream.seek(0)
        return self.stream

    def head(self, size: int = 512) -> bytes:
        if self.stream is None:
            with open(self.path, "rb") as file:
                return file.read(size)
        self.stream.seek(0)
        data = self.stream.read(size)
        self.stream.seek(0)
        return data


@dataclass(frozen=True)
class StreamHeader:
    """What the container header says about its first video stream (``announced_s`` 0: it does not say)."""

    width: int
    height: int
    rate: float | None
    codec: str
    container: str
    announced_s: float


def open_container(source: MediaSource) -> av.container.InputContainer:
    """av.open with FFmpeg's failure turned into NotAVideoError (unknown bytes) or CorruptVideoError.

    FFmpeg decodes a few frames while probing the streams; its ``max_pixels`` codec option (given to every
    stream) makes that probe, and PyAV's decoding, refuse frames above our limit too.
    """
    try:
        container = av.open(
            source.handle(), mode="r", metadata_errors="ignore", options={"max_pixels": str(source.max_pixels)}
        )
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
            raise
        kind = sniff_container(source.head())
        if kind is None:
            raise NotAVideoError(f"{source.name}: not a video file (no known container): {error}") from error
        raise CorruptVideoError(f"{source.name}: a damaged {kind} file that cannot be opened: {error}") from error
    format_name = container.format.name
    if format_name in _TEXT_FORMATS or format_name in _IMAGE_FORMATS or format_name.endswith("_pipe"):
        container.close()
        what = "a text file" if format_name in _TEXT_FORMATS else "a still image"
        raise NotAVideoError(f"{source.name}: {what} ({format_name}), not a video; pass a folder for frames")
    return container


def probe_header(source: MediaSource) -> StreamHeader:
    """Check the container, its video stream, codec and frame size before any decoding starts."""
    with open_container(source) as container:
        if not container.streams.video:
            others = ", ".join(sorted({s.type for s in container.streams})) or "no streams at all"
            raise NoVideoStreamError(f"{source.name}: the file has no video stream ({others})")
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context is not None else None
        if not codec or codec == "none":
            raise UnsupportedCodecError(f"{source.name}: the video codec is unknown or has no decoder here")
        try:
            av.codec.Codec(codec, "r")
        except (av.error.FFmpegError, ValueError) as error:
            raise UnsupportedCodecError(f"{source.name}: no decoder for the video codec {codec!r}") from error
        width, height = stream.codec_context.width, stream.codec_context.height
        check_resolution(source.name, width, height, source.max_pixels)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        rate = float(rate) if rate else None
        return StreamHeader(width, height, rate, codec, container.format.name, _announced_s(container, stream, rate))


def _announced_s(container: av.container.InputContainer, stream: av.VideoStream, rate: float | None) -> float:
    """The stream duration the header announces (0 when it does not say): nb_frames / rate, else its duration.

    Durations count only from containers that store one in their header; elsewhere (MPEG-TS, raw streams)
    FFmpeg estimates it from the bit rate, too loosely to call a file truncated. An AVI's frame count includes
    the frames its recorder dropped (empty chunks), so the announced time, not the count, is what must be reached.
    """
    if stream.frames > 0:
        return stream.frames / rate if rate else 0.0
    if container.format.name not in _HEADER_DURATION_FORMATS:
        return 0.0
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and len(container.streams) == 1:
        return container.duration / av.time_base
    return 0.0


def check_complete(name: str, header: StreamHeader, timestamps: np.ndarray | None, count: int, fps: float) -> None:
    """Refuse a stream that ends clearly before the time its header announces (a truncated file).

    Frames are trusted as stored: gaps in the timestamps (frames the recorder dropped) are no damage, as long as
    the stream still reaches the announced end. Without distinct timestamps the frame count at ``fps`` stands in.
    """
    if not header.announced_s:
        return
    frame_s = 1.0 / fps
    usable = timestamps is not None and len(timestamps) and np.all(np.isfinite(timestamps))
    if usable and np.unique(timestamps).size == len(timestamps):  # repeated stamps say nothing about time
        covered_s = float(timestamps.max() - timestamps.min()) + frame_s
    else:
        covered_s = count * frame_s
    if covered_s < header.announced_s * (1 - TRUNCATION_TOLERANCE) - 2 * frame_s:
        raise CorruptVideoError(
            f"{name}: the header announces {header.announced_s:.2f} s of video but the stream ends after "
            f"{covered_s:.2f} s ({count} frames; truncated)"
        )


def stream_info(
    source: MediaSource,
    header: StreamHeader,
    *,
    backend: str,
    timestamps: np.ndarray | None,
    count: int,
    fps: float,
    out_size: tuple[int, int] | None,
    target_fps: float | None,
) -> VideoInfo:
    """A container reader's ``VideoInfo``, once the stream is known to reach its announced end."""
    check_complete(source.name, header, timestamps, count, fps)
    return build_info(
        name=source.name,
        backend=backend,
        count=count,
        fps=fps,
        timestamps=timestamps,
        size=(header.width, header.height),
        out_size=out_size or (header.width, header.height),
        target_fps=target_fps,
        codec=header.codec,
        container=header.container,
    )


def check_resolution(name: str, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise CorruptVideoError(f"{name}: the header gives no frame size ({width}x{height})")
    if max(width, height) > MAX_SIDE or width * height > max_pixels:
        raise ResolutionTooLargeError(
            f"{name}: frame size {width}x{height} exceeds the limit ({MAX_SIDE} px a side, "
            f"{max_pixels} pixels); refused before decoding"
        )


def check_frame_size(name: str, index: int, width: int, height: int, header: StreamHeader, max_pixels: int) -> None:
    """Refuse a decoded frame beyond the limits or larger than the header declared: a stream may change its size
    mid-way, and the header is all the limits (and a service's work budget) were checked against."""
    if max(width, height) > MAX_SIDE or width * height > max_pixels:
        raise ResolutionTooLargeError(f"{name}: frame {index} is {width}x{height}, beyond the limit ({MAX_SIDE} px a "
                                      f"side, {max_pixels} pixels)")
    if width * height > header.width * header.height:
        raise ResolutionTooLargeError(f"{name}: frame {index} is {width}x{height}, larger than the "
                                      f"{header.width}x{header.height} its header declares")


def frame_rate(name: str, container_rate: float | None, timestamps: np.ndarray | None, count: int) -> float:
    """The container's rate, else the rate the timestamps imply; never an assumed default."""
    if container_rate and math.isfinite(container_rate) and container_rate > 0:
        return container_rate
    if timestamps is not None and count >= 2 and timestamps[-1] > timestamps[0]:
        return (count - 1) / float(timestamps[-1] - timestamps[0])
    raise CorruptVideoError(f"{name}: the container gives no frame rate and no timestamps to derive one")
