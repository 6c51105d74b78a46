"""The service's errors: ``ServiceError`` (an HTTP answer), the kinds only a request can have, and RFC 9457
problem details for every error the service answers, with how any exception becomes one.

The body is ``application/problem+json`` with ``type`` (``urn:lanp:problem:<kind>``), ``title``, ``status``,
``detail`` and our ``kind``: one of ``models.errors.ErrorKind`` (the kinds the CLI, manifests and job records use
too) or of ``HTTPErrorKind`` (what only a request to the service can get wrong), plus ``limit`` when a setting was
hit (which one a 413 or 503 refers to). A client that hung up gets status 499 (nginx's "client closed request"):
logged at info and counted apart from errors.
"""

from __future__ import annotations

import errno
import sqlite3
from enum import StrEnum
from pathlib import Path

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lanp_vad.models.errors import Canceled, ErrorKind, InternalError, LANPError, UserError, VideoError

PROBLEM_MEDIA_TYPE = "application/problem+json"
CLIENT_CLOSED = 499


class HTTPErrorKind(StrEnum):
    """Kinds of a request to the service (not of its input): stable names, never renamed once released."""

    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    GONE = "gone"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    QUEUE_FULL = "queue_full"
    TOO_MANY_STREAMS = "too_many_streams"
    NOT_READY = "not_ready"


ProblemKind = ErrorKind | HTTPErrorKind
"""Every kind the service answers: the product's kinds and the request's."""


class ServiceError(LANPError):
    """An answer of the web service: an HTTP ``status``, a ``kind`` and a one-line message for the problem details.

    ``headers`` go with the response (``Retry-After``, ``WWW-Authenticate``); ``extra`` adds members to the
    problem document (e.g. ``limit``: which setting a 413 or 503 hit)."""

    kind: ProblemKind

    def __init__(
        self,
        status: int,
        kind: ProblemKind,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


class Problem(BaseModel):
    """An error answer (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="urn:lanp:problem:<kind>")
    title: str = Field(description="short summary of the kind")
    status: int = Field(description="the HTTP status")
    detail: str = Field(description="what went wrong with this request, in one line")
    kind: ProblemKind = Field(description="stable machine-readable kind, the same on every surface")
    limit: str | None = Field(None, description="the setting a 413 or 503 hit (e.g. max_sync_frames)")


def problem_body(error: ServiceError) -> dict[str, object]:
    kind = error.kind
    return {
        "type": f"urn:lanp:problem:{kind.value}",
        "title": kind.value.replace("_", " ").capitalize(),
        "status": error.status,
        "detail": error.message,
        "kind": kind.value,
        **error.extra,
    }


def problem_response(error: ServiceError) -> JSONResponse:
    return JSONResponse(problem_body(error), status_code=error.status, headers=error.headers,
                        media_type=PROBLEM_MEDIA_TYPE)


def client_closed(stage: str) -> ServiceError:
    """The answer to a client that hung up during ``stage`` (``upload`` or ``scoring``): never sent, but logged
    and counted by stage."""
    return ServiceError(
        CLIENT_CLOSED,
        ErrorKind.CANCELED,
        f"the client closed the connection during {stage}",
        extra={"stage": stage},
    )


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
INSUFFICIENT_STORAGE = 507


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is a full disk: ENOSPC / EDQUOT, or SQLite's "database or disk is
    full"."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        if isinstance(error, sqlite3.OperationalError) and "full" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full(what: str, retry_after_s: int = 60) -> ServiceError:
    """507 kind ``disk_full`` for ``what`` could not be written: the server's work directory is out of space."""
    return ServiceError(INSUFFICIENT_STORAGE, ErrorKind.DISK_FULL,
                        f"the server's disk (its work directory) is full: {what} could not be written; retry later",
                        headers={"Retry-After": str(retry_after_s)}, extra={"limit": "min_free_disk_mb"})


def redact(message: str, path: Path | None, shown: str) -> str:
    """``message`` with the server-side ``path`` (and its bare file name) replaced by the client's name."""
    if path is None:
        return message
    for private in (str(path), str(path.resolve()), path.name):
        message = message.replace(private, shown)
    return message


def too_much_for_score(shown: str, what: str, limit: str) -> ServiceError:
    """413 naming the ``POST /score`` limit the video exceeds (its header's figures, or what decoding found)."""
    return ServiceError(
        413,
        ErrorKind.TOO_LARGE,
        f"{shown} {what}, more than POST /score accepts (LANP_{limit.upper()}): submit it to POST /jobs instead",
        extra={"limit": limit},
    )


def from_exception(error: BaseException, *, path: Path | None = None, shown: str = "the video") -> ServiceError:
    """The answer ``error`` deserves, its message free of ``path`` (a server file shown to the client as ``shown``).

    A full disk is 507 ``disk_full``; a decode worker that crashed is our failure (500 ``worker_crashed``), a
    video the decoder refuses is 422 with the decoder's kind, a shutdown that stopped the work is 503 ``canceled``,
    anything unknown is 500 ``internal`` (its class name only: internals stay in the log)."""
    from lanp_vad.pipeline.scoring.result import ScoringCancelled, WorkLimitExceeded

    if isinstance(error, ServiceError):
        return error
    if is_disk_full(error):
        return disk_full(f"the work on {shown}")
    message = redact(str(error), path, shown)
    if isinstance(error, WorkLimitExceeded) and error.limit:
        return too_much_for_score(shown, message, error.limit)
    if isinstance(error, InternalError):
        if error.kind == ErrorKind.WORKER_CRASHED:
            return ServiceError(500, error.kind, f"the decoding worker crashed on {shown}: {message}")
        return ServiceError(500, error.kind, f"internal error: {message}")
    if isinstance(error, VideoError):
        return ServiceError(422, error.kind, f"the video cannot be scored ({error.kind.value}): {message}")
    if isinstance(error, Canceled | ScoringCancelled):
        return ServiceError(503, ErrorKind.CANCELED, "the server stopped scoring this video (it is shutting down)",
                            headers={"Retry-After": "5"})
    if isinstance(error, UserError | LANPError):
        return ServiceError(422, error.kind, message)
    return ServiceError(500, ErrorKind.INTERNAL, f"internal error ({type(error).__name__})")


def status_error(status: int, detail: str, headers: dict[str, str] | None = None) -> ServiceError:
    """A framework HTTP error (unknown route, wrong method, ...) as one of ours."""
    kinds: dict[int, ProblemKind] = {
        400: HTTPErrorKind.BAD_REQUEST,
        401: HTTPErrorKind.UNAUTHORIZED,
        403: HTTPErrorKind.FORBIDDEN,
        404: ErrorKind.NOT_FOUND,
        405: HTTPErrorKind.METHOD_NOT_ALLOWED,
        409: ErrorKind.CONFLICT,
        410: HTTPErrorKind.GONE,
        413: ErrorKind.TOO_LARGE,
        415: HTTPErrorKind.UNSUPPORTED_MEDIA_TYPE,
    }
    kind = kinds.get(status, ErrorKind.INTERNAL if status >= 500 else HTTPErrorKind.BAD_REQUEST)
    return ServiceError(status, kind, detail, headers=headers)
