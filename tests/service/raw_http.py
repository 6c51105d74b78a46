"""HTTP on a bare socket, for what a well-behaved client never does: hang up mid-request, send headers a byte at a
time, stall in the middle of a body. Used by the service tests and by ``bench/drills.py``."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BOUNDARY = "lanp-raw-boundary"


def multipart_file(content: bytes, *, filename: str = "clip.mp4", field: str = "file") -> tuple[bytes, bytes]:
    """(head, tail) of a multipart body holding ``content`` as ``field``: send head + content + tail."""
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(path: str, *, port: int, length: int, api_key: str | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
        f"Content-Length: {length}",
    ]
    if api_key:
        lines.append(f"X-API-Key: {api_key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(port: int, timeout_s: float = 30.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout_s)


def send_upload(port: int, path: str, content: bytes, *, api_key: str | None, sent_fraction: float = 1.0,
                filename: str = "clip.mp4") -> socket.socket:
    """Open a connection and send an upload of ``content`` (only ``sent_fraction`` of the body); the socket stays
    open for the caller to read, stall or close."""
    head, tail = multipart_file(content, filename=filename)
    body = head + content + tail
    connection = connect(port)
    try:
        connection.sendall(request_head(path, port=port, length=len(body), api_key=api_key))
        connection.sendall(body[: int(len(body) * sent_fraction)])
    except (BrokenPipeError, ConnectionResetError):  # the server answered (and closed) before the end
        pass
    return connection


def read_status(connection: socket.socket) -> int | None:
    """The status code of the answer on ``connection`` (None when the server closed it without one)."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = connection.recv(4096)
            if not chunk:
                return None
            data += chunk
    except (ConnectionResetError, TimeoutError):
        return None
    return int(data.split(b" ", 2)[1])


def closed_by_server(connection: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closed ``connection`` (reading nothing), None if it stayed open ``within_s``."""
    started = time.monotonic()
    connection.settimeout(0.2)
    while time.monotonic() - started < within_s:
        try:
            if connection.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def partial_headers(port: int) -> socket.socket:
    """A slow-loris connection: the request line and one header, then nothing (the headers never end)."""
    connection = connect(port)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return connection


def send_declared(port: int, method: str, path: str, *, declared: int, sent: bytes, headers: dict[str, str]
                  ) -> socket.socket:
    """A request that declares a ``declared``-byte body and sends only ``sent`` of it: whatever reads the whole
    body before answering hangs, whatever answers first answers now."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {declared}",
             *(f"{name}: {value}" for name, value in headers.items())]
    connection = connect(port, timeout_s=10.0)
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
    return connection


def send_get(port: int, path: str, *, api_key: str | None) -> socket.socket:
    """A GET whose answer the caller reads (or never reads: an idle event client)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *([f"X-API-Key: {api_key}"] if api_key else [])]
    connection = connect(port)
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return connection


class Responder:
    """A TCP server on ``host`` (a loopback address) that answers every connection with ``answer`` (b"": never
    answers, a silent port) and then keeps it open until ``close``; counts the connections it got."""

    def __init__(self, answer: bytes = b"", host: str = "127.0.0.1"):
        self.answer = answer
        self.connections = 0
        self._held: list[socket.socket] = []
        self._listener = socket.create_server((host, 0))
        self.host, self.port = host, self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{self.host}:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            self.connections += 1
            self._held.append(connection)
            if self.answer:
                with contextlib.suppress(OSError):
                    connection.settimeout(2.0)
                    connection.recv(65536)  # the request (or nothing, for a non-HTTP client)
                    connection.sendall(self.answer)

    def close(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


class PacedFile:
    """An HTTP server on 127.0.0.1 that sends one file to every GET at ``bytes_per_s`` (a live source)."""

    def __init__(self, path: Path, bytes_per_s: int):
        data = path.read_bytes()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                with contextlib.suppress(OSError):
                    for start in range(0, len(data), bytes_per_s // 10):
                        self.wfile.write(data[start : start + bytes_per_s // 10])
                        time.sleep(0.1)

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/live.ts"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@contextlib.contextmanager
def internal_service() -> Iterator[tuple[Responder, Responder, str]]:
    """A stand-in internal service on 127.0.0.2 (denied by default), a camera on 127.0.0.1 that redirects to it, and
    the service's address in decimal form: the request-forgery cases of the service tests and the drills."""
    internal = Responder(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", host="127.0.0.2")
    redirect = Responder(f"HTTP/1.1 302 Found\r\nLocation: {internal.url('/admin')}\r\n"
                         "Content-Length: 0\r\n\r\n".encode())
    try:
        yield internal, redirect, f"http://{int(ipaddress.ip_address('127.0.0.2'))}:{internal.port}/"
    finally:
        internal.close()
        redirect.close()


@contextlib.contextmanager
def port_kinds() -> Iterator[dict[str, str]]:
    """URLs of four kinds of port on 127.0.0.1: closed, silent (accepts, never answers), not HTTP (an SSH banner)
    and an HTTP error page; what an attacker probes to learn what answers where."""
    silent, other = Responder(), Responder(b"SSH-2.0-OpenSSH_9.2\r\n")
    page = Responder(b"HTTP/1.1 500 Oops\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    try:
        yield {"closed": f"http://127.0.0.1:{closed}/", "silent": silent.url(), "non-HTTP": other.url(),
               "HTTP": page.url()}
    finally:
        for responder in (silent, other, page):
            responder.close()
