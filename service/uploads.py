"""Streaming multipart uploads to disk with size limits and content sniffing.

The body is parsed as it arrives (python-multipart's streaming parser) and the file part written straight to a
file in the work directory, so memory stays flat whatever the upload size. Limits: the declared
``Content-Length`` is checked before reading (413), the received bytes while reading (413); the first bytes of the
file are sniffed (415 unless a known video container or image). On any error the partial file is removed; on
success the caller owns the file and must remove it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from service.errors import ServiceError

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
    return ServiceError(413, "too_large", f"{what} exceeds the upload limit of {limit / 2**20:.1f} MiB")


def check_declared_length(request: Request, max_bytes: int) -> None:
    """413 before reading anything when the declared body is larger than the limit allows."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError as error:
        raise ServiceError(400, "bad_request", f"Content-Length {declared!r} is not a number") from error
    if length > max_bytes + MULTIPART_SLACK_BYTES:
        raise _too_large(max_bytes, f"the request body ({length / 2**20:.1f} MiB declared)")


def multipart_boundary(request: Request) -> bytes:
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ServiceError(
            415,
            "unsupported_media_type",
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
        if filename is not None and not self._file_done:
            self._part = "file"
            self.filename = Path(filename.decode("utf-8", "replace").replace("\\", "/")).name[:200] or "upload"
            self.stream = self.path.open("wb")
        elif filename is None and b"name" in params:
            self._part = "field:" + params[b"name"].decode("utf-8", "replace")[:100]
        else:
            self._part = "skip"

    def _check_type(self) -> None:
        self.container = self.sniff(self.head)
        if self.container is None:
            raise ServiceError(
                415,
                "not_a_video",
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
                raise ServiceError(413, "too_large", f"form field {self._part[6:]!r} is larger than 16 KiB")

    def on_part_end(self) -> None:
        if self._part == "file" and self.stream is not None:
            self.stream.close()
            self._file_done = True
            if self.container is None:
                if self.size == 0:
                    raise ServiceError(422, "empty_file", f"the uploaded file {self.filename!r} is empty")
                self._check_type()
        elif self._part is not None and self._part.startswith("field:"):
            self.fields[self._part[6:]] = self._field_value.decode("utf-8", "replace")

    def close(self) -> None:
        if self.stream is not None and not self.stream.closed:
            self.stream.close()


async def receive_upload(request: Request, directory: Path, max_bytes: int, sniff: Sniffer) -> StoredUpload:
    """Stream the request's multipart file part to ``directory``; see the module docstring for the errors."""
    check_declared_length(request, max_bytes)
    boundary = multipart_boundary(request)
    directory.mkdir(parents=True, exist_ok=True)
    collector = _FileCollector(directory / f"{uuid.uuid4().hex}.upload", max_bytes, sniff)
    parser = MultipartParser(boundary, collector.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + MULTIPART_SLACK_BYTES:
                raise _too_large(max_bytes, "the request body")
            parser.write(chunk)
        parser.finalize()
        collector.close()
        if not collector._file_done:
            raise ServiceError(
                400, "no_file", "the multipart body has no complete file part: send the video as field 'file'"
            )
    except ServiceError:
        collector.close()
        collector.path.unlink(missing_ok=True)
        raise
    except Exception as error:  # a malformed body, a client that went away: nothing may be left behind
        collector.close()
        collector.path.unlink(missing_ok=True)
        if type(error).__name__ == "ClientDisconnect":
            raise
        raise ServiceError(400, "bad_multipart", f"malformed multipart body: {error}") from error
    return StoredUpload(
        collector.path, collector.filename, collector.size, collector.container or "", collector.fields
    )
