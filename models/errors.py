"""The one error hierarchy of the product, and the one vocabulary of error kinds every surface uses.

It lives in ``models`` (the lowest layer, pure Python) so that the method, the pipeline and the service all raise
the same classes: ``LANPError`` is the only root. Beneath it:

- ``UserError``: the user can fix it (bad argument, setting, feature folder, ground truth, model directory).
  The CLI prints one line and exits 2; the service answers 4xx.
- ``VideoError``: this input video cannot be used (empty, not a video, corrupt, too large, too slow to decode).
  The CLI records the video as failed (exit 1 at the end); the service answers 415 / 422 / 413.
- ``InternalError``: our fault or the machine's (a worker process died, a bug). The CLI shows a traceback; the
  service answers 500 and counts it as an internal error.
- ``Canceled``: the caller (or a shutdown) stopped the work; not an error of anyone's input.
- ``ServiceError``: what the web service answers, with its HTTP status (RFC 9457 problem details carry ``kind``).

Every error has a ``kind`` from ``ErrorKind``: the same string in CLI messages, batch manifests, job records,
HTTP problem details and metrics. ``UserError`` and ``VideoError`` are also ``ValueError`` s, so code that caught
``ValueError`` before the hierarchy existed keeps working.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Stable short names of what went wrong (machine-readable; never renamed once released)."""

    # the user's arguments, settings and files
    INVALID_ARGUMENT = "invalid_argument"
    INVALID_CONFIG = "invalid_config"
    INVALID_INPUT = "invalid_input"
    INVALID_FEATURES = "invalid_features"
    INVALID_GROUND_TRUTH = "invalid_ground_truth"
    INVALID_MODEL = "invalid_model"
    INVALID_WEIGHTS = "invalid_weights"
    SPEC_MISMATCH = "spec_mismatch"
    TRAINING_DATA = "training_data"
    NOT_FOUND = "not_found"
    # the input video
    EMPTY = "empty"
    NOT_VIDEO = "not_video"
    NO_VIDEO_STREAM = "no_video_stream"
    UNSUPPORTED_CODEC = "unsupported_codec"
    CORRUPT = "corrupt"
    TOO_LARGE = "too_large"
    TOO_SHORT = "too_short"
    TIMEOUT = "timeout"
    # a live stream
    SOURCE_UNREACHABLE = "source_unreachable"
    STREAM_LOST = "stream_lost"
    # requests to the service
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    GONE = "gone"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    QUEUE_FULL = "queue_full"
    TOO_MANY_STREAMS = "too_many_streams"
    NOT_READY = "not_ready"
    # the machines: a cluster that cannot place the work asked of it
    NO_RESOURCES = "no_resources"
    # stopped on purpose
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"
    # ours
    MISSING_DEPENDENCY = "missing_dependency"
    WORKER_CRASHED = "worker_crashed"
    OUT_OF_MEMORY = "out_of_memory"
    DISK_FULL = "disk_full"
    INTERNAL = "internal"


class LANPError(Exception):
    """Root of every error this product raises on purpose; ``kind`` says which, for every surface alike."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str = "", *, kind: ErrorKind | str | None = None):
        super().__init__(message)
        if kind is not None:
            self.kind = ErrorKind(kind)


class UserError(LANPError, ValueError):
    """Something the user can fix: printed in one line (CLI exit 2, HTTP 4xx), never with a traceback."""

    kind = ErrorKind.INVALID_ARGUMENT


class VideoError(LANPError, ValueError):
    """This input video cannot be used; the batch goes on without it and records ``kind``."""

    kind = ErrorKind.CORRUPT


class InternalError(LANPError, RuntimeError):
    """Our fault or the machine's (a crashed worker, a bug): HTTP 500, a traceback in the CLI."""

    kind = ErrorKind.INTERNAL


class Canceled(LANPError):
    """The work was stopped on purpose (a cancel, a client that went away, a shutdown)."""

    kind = ErrorKind.CANCELED


class ServiceError(LANPError):
    """An answer of the web service: an HTTP ``status``, a ``kind`` and a one-line message for the problem details.

    ``headers`` go with the response (``Retry-After``, ``WWW-Authenticate``); ``extra`` adds members to the
    problem document (e.g. ``limit``: which setting a 413 or 503 hit)."""

    def __init__(
        self,
        status: int,
        kind: ErrorKind | str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ):
        super().__init__(message, kind=kind)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def error_kind(error: BaseException) -> ErrorKind:
    """The kind of any exception: its own for ours, ``internal`` for everything else (a bug until shown otherwise)."""
    return error.kind if isinstance(error, LANPError) else ErrorKind.INTERNAL
