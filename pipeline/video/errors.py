"""Why an input video cannot be used: one ``models.errors.VideoError`` subclass per kind of failure.

Each class carries its ``ErrorKind``, the one name every surface uses (CLI messages, batch manifests, job records,
HTTP problem details, metrics). A worker process that dies is not the video's fault: that is
``pipeline.video.worker.DecoderCrashedError``, an ``InternalError``.
"""

from __future__ import annotations

from lanp_vad.models.errors import ErrorKind, VideoError


class EmptyFileError(VideoError):
    """The file (or uploaded stream) has no bytes."""

    kind = ErrorKind.EMPTY


class NotAVideoError(VideoError):
    """The bytes are not any container FFmpeg knows (random bytes, a text file, a still image, ...)."""

    kind = ErrorKind.NOT_VIDEO


class NoVideoStreamError(VideoError):
    """A valid media file without a video stream (audio only, subtitles only)."""

    kind = ErrorKind.NO_VIDEO_STREAM


class UnsupportedCodecError(VideoError):
    """The video stream's codec has no decoder here."""

    kind = ErrorKind.UNSUPPORTED_CODEC


class CorruptVideoError(VideoError):
    """A known container that cannot be read, whose decoding fails, or whose stream ends well before the time its
    header announces (truncated)."""

    kind = ErrorKind.CORRUPT


class ResolutionTooLargeError(VideoError):
    """The header announces a frame size above the limits; refused before decoding a frame."""

    kind = ErrorKind.TOO_LARGE


class DecodeTimeoutError(VideoError):
    """Probing or decoding did not finish within its time limit and was killed."""

    kind = ErrorKind.TIMEOUT


VIDEO_ERRORS: tuple[type[VideoError], ...] = (
    EmptyFileError,
    NotAVideoError,
    NoVideoStreamError,
    UnsupportedCodecError,
    CorruptVideoError,
    ResolutionTooLargeError,
    DecodeTimeoutError,
)
"""Every kind of video failure, for code that rebuilds an error from its kind (a worker reports kinds)."""

