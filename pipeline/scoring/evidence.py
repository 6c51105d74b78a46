"""Evidence an operator acts on: a JPEG of every event's peak frame and an MP4 clip of the event, cut from the source.

Both read the source video with PyAV, seek to a keyframe shortly before the wanted time and decode forward one
frame at a time, so memory stays bounded by a frame or two whatever the video's length. Times are the result
document's: seconds from the first frame (``timestamps``), which is what the decoder's timestamps count from.

- ``render_thumbnail(source, time_s)``: JPEG bytes of the frame on screen at ``time_s``.
- ``write_event_clip(source, destination, start_s, end_s, pre_roll_s=..., post_roll_s=...)``: an H.264 MP4 of
  ``[start_s - pre_roll_s, end_s + post_roll_s)``, clamped to the video.
- ``write_evidence(document, source, folder, config)``: both for every event of a result document, named
  ``<n>.jpg`` / ``<n>.mp4`` after the event's 1-based ``index`` (what the plot and the service's
  ``/jobs/{id}/events/{n}/...`` show).
- ``browser_playable(source)`` / ``write_browser_proxy(source, destination, max_side=...)``: whether a browser
  plays the source as it is, and an H.264 MP4 copy of it that one does (the review page's player).
- ``container_start_time(source)``: the wall-clock time of the first frame when the container records a
  ``creation_time``.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.error import FFmpegError

from lanp_vad.models.errors import ErrorKind, VideoError
from lanp_vad.pipeline.features.featureset import atomic_write_bytes
from lanp_vad.pipeline.scoring.config import EvidenceConfig

log = logging.getLogger(__name__)

SEEK_MARGIN_S = 1.0
JPEG_QUALITY = 85
CLIP_CODEC = "libx264"
CLIP_TIME_BASE = Fraction(1, 1000)  # clip timestamps in milliseconds: any source timing fits


@dataclass(frozen=True)
class ClipInfo:
    """What ``write_event_clip`` wrote: the span it covers (document seconds) and how many frames."""

    path: Path
    start_s: float
    end_s: float
    frames: int


def _open(source: str | Path) -> Any:
    try:
        return av.open(str(source))
    except (FFmpegError, OSError) as error:
        raise VideoError(f"{source}: cannot be read for evidence: {error}", kind=ErrorKind.CORRUPT) from error


def _frames_from(container: Any, start_s: float) -> Iterator[tuple[float, Any]]:
    """``(seconds from the first frame, frame)`` of every frame from about ``start_s`` on (after one seek)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    first = next(container.decode(stream), None)
    if first is None:
        return
    origin = float(first.time or 0.0)
    if start_s > SEEK_MARGIN_S and stream.time_base is not None:
        container.seek(int((origin + start_s - SEEK_MARGIN_S) / stream.time_base), stream=stream, backward=True)
    else:
        yield 0.0, first
    for frame in container.decode(stream):
        yield (float(frame.time) - origin if frame.time is not None else 0.0), frame


def render_thumbnail(source: str | Path, time_s: float, *, max_side: int = 480) -> bytes:
    """JPEG bytes of the frame on screen at ``time_s`` (seconds from the first frame; the last frame when
    ``time_s`` lies past the end), its longest side at most ``max_side`` pixels."""
    chosen = None
    with _open(source) as container:
        for seconds, frame in _frames_from(container, time_s):
            if chosen is not None and seconds > time_s + 1e-6:
                break
            chosen = frame
        if chosen is None:
            raise VideoError(f"{source}: no frame to make a thumbnail of", kind=ErrorKind.CORRUPT)
        image = chosen.to_image()
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def write_event_clip(
    source: str | Path,
    destination: str | Path,
    start_s: float,
    end_s: float,
    *,
    pre_roll_s: float = 3.0,
    post_roll_s: float = 3.0,
    max_side: int | None = None,
) -> ClipInfo:
    """Write ``[start_s - pre_roll_s, end_s + post_roll_s)`` of ``source`` (clamped to the video) as an H.264
    MP4 at the source's size (even-sized for 4:2:0; scaled down to ``max_side`` when given); written to a
    temporary name of its own (two cuts of one clip may run at once) and renamed, or removed when the cut fails.
    Each frame keeps its own time from the source, so a recording that dropped frames plays its gaps as time (the
    clip lasts as long as the span it shows), as the scores count them."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    begin, finish = max(0.0, start_s - pre_roll_s), end_s + post_roll_s
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.partial.mp4")
    try:
        written, first_s, last_s, last_pts = 0, None, begin, -1
        with _open(source) as container:
            source_stream = container.streams.video[0]
            rate = source_stream.average_rate or source_stream.guessed_rate or Fraction(25)
            width, height = source_stream.codec_context.width, source_stream.codec_context.height
            scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
            with av.open(str(temporary), mode="w") as output:
                stream = output.add_stream(CLIP_CODEC, rate=rate)
                stream.codec_context.time_base = CLIP_TIME_BASE
                stream.width = int(width * scale) // 2 * 2
                stream.height = int(height * scale) // 2 * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "23", "preset": "veryfast"}
                for seconds, frame in _frames_from(container, begin):
                    if seconds < begin - 1e-6:
                        continue
                    if seconds >= finish - 1e-6:
                        break
                    first_s = seconds if first_s is None else first_s
                    picture = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
                    last_pts = max(last_pts + 1, round((seconds - first_s) / CLIP_TIME_BASE))
                    picture.pts, picture.time_base = last_pts, CLIP_TIME_BASE
                    output.mux(stream.encode(picture))
                    last_s, written = seconds, written + 1
                output.mux(stream.encode(None))
        if written == 0:
            raise VideoError(f"{source}: no frames between {begin:.2f} s and {finish:.2f} s",
                             kind=ErrorKind.CORRUPT)
    except BaseException:
        temporary.unlink(missing_ok=True)  # a failed cut leaves nothing behind
        raise
    temporary.replace(destination)
    return ClipInfo(destination, float(first_s or 0.0), float(last_s + 1.0 / float(rate)), written)


# What every current browser's <video> plays: H.264 (8-bit 4:2:0), VP9 or AV1 in MP4; VP8, VP9 or AV1 in WebM
# (Matroska holding H.264 plays in some browsers only, so it gets a copy).
BROWSER_CODECS = {
    frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"}): {"h264", "vp9", "av1"},
    frozenset({"matroska", "webm"}): {"vp8", "vp9", "av1"},
}


def browser_playable(source: str | Path) -> bool:
    """Whether a browser's ``<video>`` can play ``source`` as it is (container, codec and pixel format)."""
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                return False
            context = container.streams.video[0].codec_context
            formats = set(container.format.name.split(","))
            codecs = next((codecs for family, codecs in BROWSER_CODECS.items() if formats & family), set())
            return context.name in codecs and (context.name != "h264" or context.pix_fmt in ("yuv420p", "yuvj420p"))
    except (FFmpegError, OSError):
        return False


def write_browser_proxy(source: str | Path, destination: str | Path, *, max_side: int) -> ClipInfo:
    """The whole of ``source`` as an H.264 MP4 a browser plays (an AVI's MPEG-4 part 2, say), its long side at
    most ``max_side``, every frame at its own time (so the page's curve and cursor agree with it)."""
    return write_event_clip(source, destination, 0.0, float("inf"), pre_roll_s=0.0, post_roll_s=0.0,
                            max_side=max_side)


def write_evidence(
    document: dict[str, Any], source: str | Path, folder: str | Path, config: EvidenceConfig
) -> list[dict[str, Any]]:
    """A thumbnail (``<n>.jpg``) and, with ``config.clips``, a clip (``<n>.mp4``) for every event of a result
    document, in ``folder``. Returns one record per event: its ``index`` and the files written (relative to
    ``folder``), and the clip's span. A source that is not a video file (a folder of frames) gets none."""
    folder = Path(folder)
    if not Path(source).is_file() or not (config.thumbnails or config.clips):
        return []
    timestamps = document["timestamps"]
    records = []
    for segment in document["segments"]:
        index = int(segment["index"])
        record: dict[str, Any] = {"index": index}
        if config.thumbnails:
            peak_s = float(timestamps[min(int(segment["peak_frame"]), len(timestamps) - 1)])
            atomic_write_bytes(folder / f"{index}.jpg",
                               render_thumbnail(source, peak_s, max_side=config.thumbnail_max_side))
            record["thumbnail"] = f"{index}.jpg"
        if config.clips:
            clip = write_event_clip(source, folder / f"{index}.mp4", segment["start_s"], segment["end_s"],
                                    pre_roll_s=config.pre_roll_s, post_roll_s=config.post_roll_s)
            record.update(clip=f"{index}.mp4", clip_start_s=clip.start_s, clip_end_s=clip.end_s)
        records.append(record)
    return records


def container_start_time(source: str | Path) -> datetime | None:
    """The container's (or its video stream's) ``creation_time`` as an aware datetime, or ``None``."""
    if not Path(source).is_file():
        return None
    try:
        with av.open(str(source)) as container:
            streams = container.streams.video
            stamp = container.metadata.get("creation_time") or (
                streams[0].metadata.get("creation_time") if streams else None
            )
    except (FFmpegError, OSError):
        return None
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        log.debug("%s: unreadable creation_time %r", source, stamp)
        return None
