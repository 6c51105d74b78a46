"""Opening a video: ``open_video`` checks the input and picks a reader (PyAV, decord, or a folder of images).

The input is checked before a frame is decoded (non-empty, a container FFmpeg can open, a video stream, a
decodable codec, a sane resolution: ``pipeline.video.container``) and refused with a typed
``pipeline.video.errors`` error otherwise. Metadata comes from the container: frame count, frame rate and
per-frame timestamps (seconds from the first frame); a frame rate is never assumed, it is read from the container
or derived from the timestamps. Frames the recorder dropped (timestamp gaps) are no damage; a stream that ends well
before the time its header announces, or whose decoding fails, is ``corrupt``.

Frames are decoded snippet by snippet (``VideoReader.iter_snippets``), so memory does not grow with the video's
length, and scaled down to the caller's limits while they are decoded, so it does not grow with the resolution
either. With ``backend="auto"`` a decord failure (at open or mid-video) is logged and PyAV takes over; PyAV failing
too is final. Nothing here keeps global state and every argument is picklable, so readers open inside worker
processes (``pipeline.video.worker``), where a hanging decode can be killed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from lanp_vad.models.errors import UserError
from lanp_vad.pipeline.video.container import DEFAULT_MAX_PIXELS, MediaSource, VideoSource, probe_header
from lanp_vad.pipeline.video.decord_reader import DecordReader
from lanp_vad.pipeline.video.errors import CorruptVideoError, VideoError
from lanp_vad.pipeline.video.folder_reader import DEFAULT_FOLDER_FPS, FolderReader
from lanp_vad.pipeline.video.pyav_reader import PyAVReader
from lanp_vad.pipeline.video.reader import VideoReader, output_size

logger = logging.getLogger(__name__)

Backend = Literal["auto", "decord", "pyav"]


def open_video(
    source: VideoSource,
    *,
    backend: Backend = "auto",
    target_fps: float | None = None,
    max_side: int | None = None,
    max_short_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    folder_fps: float = DEFAULT_FOLDER_FPS,
) -> VideoReader:
    """Open a video file, a seekable binary file object, or a folder of frame images, checking it first.

    ``target_fps`` resamples by timestamp (each output frame shows the source frame on screen at that time;
    frames repeat when the target exceeds the source rate). ``max_side`` and ``max_short_side`` bound the long
    and the short side of the delivered frames: larger sources are scaled down while decoding, aspect kept.
    ``max_pixels`` refuses sources whose width x height exceeds it.
    """
    if backend not in ("auto", "decord", "pyav"):
        raise UserError(f"unknown decoding backend {backend!r}; choose auto, decord or pyav")
    if target_fps is not None and not target_fps > 0:
        raise UserError(f"target_fps must be positive, got {target_fps}")
    for name, limit in (("max_side", max_side), ("max_short_side", max_short_side)):
        if limit is not None and limit < 1:
            raise UserError(f"{name} must be positive, got {limit}")
    if not folder_fps > 0:
        raise UserError(f"folder_fps must be positive, got {folder_fps}")
    if isinstance(source, str | Path) and Path(source).is_dir():
        return FolderReader(
            Path(source),
            target_fps=target_fps,
            max_side=max_side,
            max_short_side=max_short_side,
            max_pixels=max_pixels,
            folder_fps=folder_fps,
        )
    media = MediaSource.of(source, max_pixels)
    header = probe_header(media)
    out_size = output_size(header.width, header.height, max_side, max_short_side)
    if backend != "pyav":
        try:
            return DecordReader(media, header, target_fps, out_size, fallback=backend == "auto")
        except VideoError:
            raise
        except Exception as error:  # decord raises bare RuntimeErrors; any failure means "use the fallback"
            if backend == "decord":
                raise CorruptVideoError(f"{media.name}: decord cannot read this video: {error}") from error
            logger.warning("decord could not open %s (%s); falling back to PyAV", media.name, error)
    return PyAVReader(media, header, target_fps, out_size)


__all__ = ["Backend", "open_video"]
