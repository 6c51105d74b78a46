"""Streaming multipart uploads to disk with size limits, content sniffing and a server-wide budget.

The body is parsed as it arrives (python-multipart's streaming parser) and the file part (form field ``file``)
written straight to a file in the work directory, so memory stays flat whatever the upload size. Limits: the
declared ``Content-Length`` is checked before reading (413), the received bytes while reading (413); the first
bytes of the file are sniffed (415 unless a known video container or image); a body that sends nothing for
``body_timeout_s`` is dropped (408). ``UploadGate`` also bounds the whole server: at most
``max_concurrent`` uploads are received at once and the uploads on disk (being received, queued or being scored)
hold at most ``max_bytes_in_flight`` bytes (503 + Retry-After beyond either). On any error the partial file is
removed; on success the caller owns the file and must hand it back with ``UploadGate.discard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from lanp_vad.models.errors import ErrorKind
from lanp_vad.service.disk import DiskGuard
from lanp_vad.service.problems import HTTPErrorKind, ServiceError, client_closed, disk_full, is_disk_full

SNIFF_BYTES = 4096
MULTIPART_SLACK_BYTES = 64 * 1024  # boundaries, part headers and small form fields on top of the file
MAX_FIELD_BYTES = 16 * 1024

Sniffer = Callable[[bytes], "str | None"]


@dataclass(frozen=True)
class StoredUpload:
    """A received file: where it lies, the client's file name (for display only), size and sniffed type."""

    path: Path
    filename: str
    size: int
    container: str
    fields: dict[str, str]


def _too_large(limit: int, what: str) -> ServiceError:
    return ServiceError(
        413,
        ErrorKind.TOO_LARGE,
        f"{what} exceeds the upload limit of {limit / 2**20:.1f} MiB",
        extra={"limit": "max_upload_mb"},
    )


def check_declared_length(request: Request, max_bytes: int, *, slack: int = MULTIPART_SLACK_BYTES) -> int | None:
    """The declared body length; 413 before reading anything when it is larger than ``max_bytes`` + ``slack``
    (the multipart framing around a file)."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        length = int(declared)
    except ValueError as error:
        raise ServiceError(400, HTTPErrorKind.BAD_REQUEST, f"Content-Length {declared!r} is not a number") from error
    if length > max_bytes + slack:
        raise _too_large(max_bytes, f"the request body ({length / 2**20:.1f} MiB declared)")
    return length


def multipart_boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ServiceError(
            415,
            HTTPErrorKind.UNSUPPORTED_MEDIA_TYPE,
            "expected a multipart/form-data upload with the video in a file field named 'file' "
            f"(got Content-Type {request.headers.get('content-type', 'none')!r})",
        )
    return params[b"boundary"]


class _FileCollector:
    """python-multipart callbacks: the first file part goes to disk, small text fields are kept."""

    def __init__(self, path: Path, max_bytes: int, sniff: Sniffer):
        self.path = path
        self.max_bytes = max_bytes
        self.sniff = sniff
        self.stream: BinaryIO | None = None
        self.filename = ""
        self.size = 0
        self.container: str | None = None
        self.head = b""
        self.fields: dict[str, str] = {}
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._part: str | None = None  # "file", "field:<name>" or "skip"
        self._field_value = b""
        self._file_done = False

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._headers, self._part, self._field_value = {}, None, b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        filename = params.get(b"filename")
        name = params.get(b"name", b"").decode("utf-8", "replace")[:100]
        if filename is not None and name != "file":
            raise ServiceError(
                422,
                ErrorKind.INVALID_ARGUMENT,
                f"the video must be sent in the form field 'file' (got a file in field {name!r})",
            )
        if filename is not None and not self._file_done:
            self._part = "file"
            self.filename = Path(filename.decode("utf-8", "replace").replace("\\", "/")).name[:200] or "upload"
            self.stream = self.path.open("wb")
        elif filename is None and b"name" in params:
            self._part = "field:" + name
        else:
            self._part = "skip"

    def _check_type(self) -> None:
        self.container = self.sniff(self.head)
        if self.container is None:
            raise ServiceError(
                415,
                ErrorKind.NOT_VIDEO,
                f"{self.filename!r} is not a video: its first bytes match no known video container "
                f"(starts with {self.head[:16]!r})",
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part == "file" and self.stream is not None:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise _too_large(self.max_bytes, f"the file {self.filename!r}")
            if self.container is None:
                self.head += chunk[: SNIFF_BYTES - len(self.head)]
                if len(self.head) >= SNIFF_BYTES:
                    self._check_type()
            self.stream.write(chunk)
        elif self._part is not None and self._part.startswith("field:"):
            self._field_value += chunk
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise ServiceError(413, ErrorKind.TOO_LARGE, f"form field {self._part[6:]!r} is larger than 16 KiB")

    def on_part_end(self) -> None:
        if self._part == "file" and self.stream is not None:
            self.stream.close()
            self._file_done = True
            if self.container is None:
                if self.size == 0:
                    raise ServiceError(422, ErrorKind.EMPTY, f"the uploaded file {self.filename!r} is empty")
                self._check_type()
        elif self._part is not None and self._part.startswith("field:"):
            self.fields[self._part[6:]] = self._field_value.decode("utf-8", "replace")

    def close(self) -> None:
        if self.stream is not None and not self.stream.closed:
            self.stream.close()


async def idle_timed_chunks(request: Request, idle_timeout_s: float) -> AsyncIterator[bytes]:
    """The request body's chunks; 408 when the client sends nothing for ``idle_timeout_s`` (a slow-loris body),
    499 when it hangs up."""
    chunks = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(chunks), idle_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError as error:
            raise ServiceError(
                408,
                ErrorKind.TIMEOUT,
                f"the request body sent nothing for {idle_timeout_s:g} s",
                extra={"limit": "body_timeout_s"},
            ) from error
        except ClientDisconnect as error:
            raise client_closed("upload") from error
        yield chunk


class UploadGate:
    """The server-wide bounds on uploads: how many are received at once and how many bytes all uploads still on
    disk hold (received, queued or being scored), plus the per-upload limits. Thread-safe: the inference worker
    hands files back from its own thread."""

    def __init__(
        self,
        *,
        max_bytes: int,
        max_concurrent: int,
        max_bytes_in_flight: int,
        body_timeout_s: float,
        retry_after_s: int,
        max_kept_bytes: int,
        disk: DiskGuard,
    ):
        self.max_bytes = max_bytes
        self.max_concurrent = max_concurrent
        self.max_bytes_in_flight = max_bytes_in_flight
        self.body_timeout_s = body_timeout_s
        self.retry_after_s = retry_after_s
        self.max_kept_bytes = max_kept_bytes
        self.disk = disk
        self._lock = threading.Lock()
        self._held: dict[Path, int] = {}
        self._kept: OrderedDict[Path, int] = OrderedDict()  # completed jobs' videos, oldest first
        self._receiving = 0

    @property
    def bytes_in_flight(self) -> int:
        with self._lock:
            return sum(self._held.values())

    def _busy(self, message: str, limit: str) -> ServiceError:
        return ServiceError(
            503,
            HTTPErrorKind.QUEUE_FULL,
            f"{message}; retry after {self.retry_after_s} s",
            headers={"Retry-After": str(self.retry_after_s)},
            extra={"limit": limit},
        )

    def _over_budget(self, more: int) -> ServiceError | None:
        """The 503 for ``more`` bytes on top of what is held (call with the lock held), None if they fit."""
        held = sum(self._held.values())
        if held + more <= self.max_bytes_in_flight:
            return None
        return self._busy(
            f"uploads on the server would exceed {self.max_bytes_in_flight / 2**20:.0f} MiB "
            f"({held / 2**20:.1f} MiB held)",
            "max_uploads_in_flight_mb",
        )

    def _hold(self, path: Path, more: int) -> None:
        with self._lock:
            refused = self._over_budget(more)
            if refused is not None:
                raise refused
            self._held[path] = self._held.get(path, 0) + more

    def adopt(self, path: Path) -> None:
        """Count a file already on disk (a job input re-queued after a restart) without checking the budget."""
        with self._lock:
            self._held[path] = path.stat().st_size if path.is_file() else 0

    def keep(self, path: Path) -> None:
        """Keep an upload on disk (a completed job's video, for the review page): no longer in flight, counted
        against ``max_kept_bytes`` instead; the oldest kept videos are deleted beyond it."""
        with self._lock:
            self._held.pop(path, None)
            self._kept[path] = path.stat().st_size if path.is_file() else 0
            held = sum(self._kept.values())
            while held > self.max_kept_bytes and len(self._kept) > 1:
                oldest, size = self._kept.popitem(last=False)
                oldest.unlink(missing_ok=True)
                held -= size

    @property
    def kept_bytes(self) -> int:
        with self._lock:
            return sum(self._kept.values())

    def discard(self, path: Path) -> None:
        """Remove an upload and give its bytes back (idempotent)."""
        path.unlink(missing_ok=True)
        with self._lock:
            self._held.pop(path, None)
            self._kept.pop(path, None)

    async def receive(self, request: Request, directory: Path, sniff: Sniffer) -> StoredUpload:
        """Stream the request's multipart ``file`` part to ``directory``; see the module docstring for the errors."""
        declared = check_declared_length(request, self.max_bytes)
        boundary = multipart_boundary(request)
        with self._lock:
            if self._receiving >= self.max_concurrent:
                raise self._busy(f"{self._receiving} uploads are being received already", "max_concurrent_uploads")
            refused = self._over_budget(declared or 0)  # refused before reading when the declared size is too much
            if refused is not None:
                raise refused
            self.disk.check_room(declared or 0, "the upload")
            self._receiving += 1
        directory.mkdir(parents=True, exist_ok=True)
        collector = _FileCollector(directory / f"{uuid.uuid4().hex}.upload", self.max_bytes, sniff)
        try:
            await self._receive_into(request, collector, boundary)
        except BaseException:
            with contextlib.suppress(OSError):  # a full disk fails the flush too: the file goes all the same
                collector.close()
            self.discard(collector.path)
            raise
        finally:
            with self._lock:
                self._receiving -= 1
        return StoredUpload(
            collector.path, collector.filename, collector.size, collector.container or "", collector.fields
        )

    async def _receive_into(self, request: Request, collector: _FileCollector, boundary: bytes) -> None:
        parser = MultipartParser(boundary, collector.callbacks())
        received = 0
        try:
            async for chunk in idle_timed_chunks(request, self.body_timeout_s):
                received += len(chunk)
                if received > self.max_bytes + MULTIPART_SLACK_BYTES:
                    raise _too_large(self.max_bytes, "the request body")
                self._hold(collector.path, len(chunk))
                parser.write(chunk)
            parser.finalize()
        except ServiceError:
            raise
        except Exception as error:  # a malformed body, or a full disk: nothing may be left behind
            if is_disk_full(error):
                raise disk_full("the upload", self.disk.retry_after_s) from error
            raise ServiceError(
                400, HTTPErrorKind.BAD_REQUEST, f"malformed multipart body: {type(error).__name__}: {error}"
            ) from error
        collector.close()
        if not collector._file_done:
            raise ServiceError(
                422,
                ErrorKind.INVALID_ARGUMENT,
                "the multipart body has no complete file part: send the video in the form field 'file'",
            )
