"""Where the server may connect to: clients choose stream sources and webhook receivers, so every destination is
checked against the operator's networks before anything is sent there (server-side request forgery).

``EgressPolicy`` resolves a host name (decimal, octal and hex IPv4 forms resolve like any other) and refuses it
when any of its addresses lies in a denied network (``LANP_DENIED_NETWORKS``: by default loopback, link-local,
private, shared, multicast and reserved ranges) and in no allowed one (``LANP_ALLOWED_NETWORKS``, empty by
default). ``EgressProxy`` is an HTTP proxy on 127.0.0.1 through which FFmpeg (its ``http_proxy`` option) and the
webhook client make every HTTP(S) connection: it checks each connection when it is made, redirects and HLS
segments included, and connects to the very address it checked, so a name that resolves elsewhere a second time
(DNS rebinding) gains nothing. Other stream schemes (rtsp, udp, srt, ...) are checked when the stream starts.

``public_url`` is how any URL is shown back (records, summaries, webhook states): without the password of its user
info and without the values of query parameters that name a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.service.problems import HTTPErrorKind, ProblemKind, ServiceError

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DENIED_NETWORKS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "64:ff9b::/96", "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip
"""Refused unless allowed: this host, private and shared networks, link-local (cloud metadata), multicast, reserved."""
SECRET_QUERY_NAMES = re.compile(r"pass|pwd|secret|token|key|auth|sig|session|credential", re.IGNORECASE)
"""Query parameters whose values ``public_url`` hides (``?password=``, ``?access_token=``, ``?apikey=``, ...)."""
HEAD_LIMIT = 16 * 1024
"""The largest request head the proxy reads."""
MAX_CONNECTIONS = 256
"""Connections the proxy relays at once (more are refused)."""


class DestinationRefused(UserError):
    """A destination this server may not connect to (its networks), or one that does not resolve."""

    kind: ProblemKind = HTTPErrorKind.FORBIDDEN


def public_url(url: str) -> str:
    """``url`` as it may be shown: the password of its user info and the values of secret-looking query
    parameters replaced by ``***`` (camera URLs and webhook receivers often carry credentials)."""
    try:
        parts = urlsplit(url)
        password, port = parts.password, parts.port
    except ValueError:
        return "<an invalid URL>"
    netloc = parts.netloc
    if password is not None:
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{port}" if port else "")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(name, "***" if SECRET_QUERY_NAMES.search(name) else value) for name, value in pairs],
                          safe="*/:")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def hide_urls(text: str, urls: Iterable[str]) -> str:
    """``text`` with each of ``urls`` (and the parts FFmpeg quotes of it) shown as ``public_url`` shows it."""
    for url in urls:
        if url and url in text:
            text = text.replace(url, public_url(url))
    return text


class EgressPolicy:
    """Which addresses the server may connect to: those in an allowed network, else those in no denied one."""

    def __init__(self, *, allowed: Iterable[Network | str] = (),
                 denied: Iterable[Network | str] = DEFAULT_DENIED_NETWORKS):
        self.allowed = [ipaddress.ip_network(network) for network in allowed]
        self.denied = [ipaddress.ip_network(network) for network in denied]

    def permits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index is no part of the address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(ip in network for network in self.allowed):
            return True
        return not any(ip in network for network in self.denied)

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host``, all permitted; ``DestinationRefused`` if one is not or the name does not
        resolve (the message never says which address or what answered there)."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, ValueError) as error:
            raise DestinationRefused(f"the host {host!r} does not resolve",
                                     kind=ErrorKind.SOURCE_UNREACHABLE) from error
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses or not all(self.permits(address) for address in addresses):
            raise DestinationRefused(
                f"the host {host!r} lies in a network this server does not connect to "
                "(LANP_DENIED_NETWORKS; an operator may allow it with LANP_ALLOWED_NETWORKS)"
            )
        return addresses

    def check_url(self, url: str) -> None:
        """Refuse ``url`` unless its host resolves to permitted addresses only (a missing host means this one)."""
        try:
            parts = urlsplit(url)
            port = parts.port or 0
        except ValueError as error:
            raise DestinationRefused("the URL has an invalid host or port", kind=ErrorKind.INVALID_ARGUMENT) from error
        self.resolve(parts.hostname or "0.0.0.0", port)


def check_destination(policy: EgressPolicy, url: str, what: str) -> None:
    """403 (422 for a name that does not resolve) unless ``policy`` permits ``url``'s host; ``what`` names the
    URL in the answer."""
    try:
        policy.check_url(url)
    except DestinationRefused as refused:
        status = 422 if refused.kind == ErrorKind.SOURCE_UNREACHABLE else 403
        raise ServiceError(status, refused.kind, f"{what}: {refused}") from refused


class EgressProxy:
    """An HTTP proxy on 127.0.0.1 (absolute-form requests and CONNECT tunnels) that lets a connection through only
    to an address ``policy`` permits; runs its own event loop in a daemon thread. One request per connection."""

    def __init__(self, policy: EgressPolicy, *, connect_timeout_s: float = 10.0):
        self.policy = policy
        self.connect_timeout_s = connect_timeout_s
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._thread = threading.Thread(target=self._loop.run_forever, name="lanp-egress-proxy", daemon=True)

    def start(self) -> str:
        """Listen on an ephemeral port of 127.0.0.1; the proxy's URL."""
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, limit=HEAD_LIMIT), self._loop).result()
        self._server = server
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._slots.locked():
            writer.close()
            return
        async with self._slots:
            try:
                await self._relay(reader, writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
                pass
            finally:
                writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.connect_timeout_s)
        request_line, *header_lines = head[:-4].split(b"\r\n")
        method, target, version = request_line.split(b" ", 2)
        if method == b"CONNECT":
            host, _, port_text = target.decode("latin-1").rpartition(":")
            host, port, forwarded = host.strip("[]"), int(port_text), b""
        else:
            parts = urlsplit(target.decode("latin-1"))
            if parts.scheme != "http" or not parts.hostname:
                await _answer(writer, b"400 Bad Request")
                return
            host, port = parts.hostname, parts.port or 80
            origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            kept = [line for line in header_lines
                    if not line.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))]
            forwarded = b"\r\n".join([b" ".join([method, origin_form.encode("latin-1"), version]), *kept,
                                      b"Connection: close", b"", b""])
        try:
            addresses = await asyncio.get_running_loop().run_in_executor(None, self.policy.resolve, host, port)
        except DestinationRefused as refused:
            log.info("egress refused: %s", refused)
            await _answer(writer, b"403 Forbidden")
            return
        upstream = await self._connect(addresses, port)
        if upstream is None:
            await _answer(writer, b"502 Bad Gateway")
            return
        upstream_reader, upstream_writer = upstream
        if method == b"CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            upstream_writer.write(forwarded)
        pipes = {asyncio.ensure_future(_pipe(reader, upstream_writer)),
                 asyncio.ensure_future(_pipe(upstream_reader, writer))}
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)  # one end closed: the exchange is over
        finally:
            for pipe in pipes:
                pipe.cancel()
            upstream_writer.close()

    async def _connect(self, addresses: list[str], port: int
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for address in addresses:
            with contextlib.suppress(OSError, TimeoutError):
                return await asyncio.wait_for(asyncio.open_connection(address, port), self.connect_timeout_s)
        return None


async def _answer(writer: asyncio.StreamWriter, status: bytes) -> None:
    writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy ``source`` to ``sink`` until either end closes."""
    with contextlib.suppress(OSError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
