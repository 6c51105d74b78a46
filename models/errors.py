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

Every error has a ``kind`` from ``ErrorKind``: the same string in CLI messages, batch manifests, job records,
HTTP problem details and metrics. What only the web service answers (its HTTP statuses, the kinds of a request
rather than of an input: ``unauthorized``, ``queue_full``, ...) lives in the service (``service.problems``).
``UserError`` and ``VideoError`` are also ``ValueError`` s, so code that caught
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
    # an output that is in the way (a batch folder of another run)
    CONFLICT = "conflict"
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


def error_kind(error: BaseException) -> ErrorKind:
    """The kind of any exception: its own for ours, ``internal`` for everything else (a bug until shown otherwise)."""
    return error.kind if isinstance(error, LANPError) else ErrorKind.INTERNAL
