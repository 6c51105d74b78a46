"""Running the app under uvicorn with the service's connection limits (what ``lanp serve`` calls).

uvicorn has a keep-alive timeout but none for a request's headers: a client that sends them a byte at a time
(slow loris) holds its connection forever. ``HeaderTimeoutProtocol`` closes a connection whose request headers
are not complete ``header_timeout_s`` after it opened (or after its previous response). Body stalls are the app's
(``LANP_BODY_TIMEOUT_S``, 408). On SIGTERM the live streams are asked to stop and their event clients' responses
end, uvicorn stops accepting, gives the requests in flight ``LANP_SHUTDOWN_GRACE_S`` to finish, then cancels them;
the lifespan then waits for the streams (at most 5 s), stops the worker (the running video stops at its next
snippet batch, at most 5 s more, then its decoding process is killed), gives queued webhook notices 2 s, and the
process exits: within ``LANP_SHUTDOWN_GRACE_S`` + ``SHUTDOWN_AFTER_GRACE_S`` in the worst case.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from lanp_vad.service.app import create_app
from lanp_vad.service.settings import Settings

MALLOC_ARENAS = 2
"""glibc malloc arenas of the server process (its default is 8 per core)."""
M_ARENA_MAX = -8
"""mallopt's parameter number for the arena cap (glibc's malloc.h)."""


def limit_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas at ``MALLOC_ARENAS`` unless ``MALLOC_ARENA_MAX`` says otherwise; whether it did.

    The server starts threads all the time (two per live stream, the thread pools, the webhook and proxy loops),
    and glibc gives threads arenas of their own whose freed memory mostly stays with the process, so its resident
    memory creeps up under mixed work (``bench/drills.py``'s soak). Called before the model loads, so that the
    arenas of its threads are capped too; a no-op where the C library is not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False  # glibc read it at start
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, MALLOC_ARENAS))


SHUTDOWN_AFTER_GRACE_S = 15.0
"""After ``LANP_SHUTDOWN_GRACE_S``, shutting down takes at most this: streams 5 s, the worker 5 s, webhooks 3 s,
and the rest (the compose file's ``stop_grace_period`` allows for both)."""


class ServiceServer(uvicorn.Server):
    """uvicorn's server that, on SIGTERM, first ends what would otherwise hold the graceful shutdown for its whole
    grace period without being a request in flight: live streams and their event clients."""

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        state = self.config.app.state.lanp
        if state.streams is not None:
            state.streams.begin_close()
        await super().shutdown(sockets)


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request's headers."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers took over %g s", self.header_timeout_s)
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._header_deadline is not None and self.conn.their_state is not h11.IDLE:
            self._header_deadline.cancel()
            self._header_deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)


def serve(settings: Settings, scorer: Any, *, host: str, port: int, log_level: str) -> None:
    """Serve ``scorer`` (loaded for ``settings``) until SIGTERM / SIGINT."""
    protocol = type("ServiceProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": settings.header_timeout_s})
    # One worker process: the model and its device belong to one inference thread (see service.worker).
    config = uvicorn.Config(
        create_app(settings, scorer=scorer),
        host=host,
        port=port,
        log_level=log_level,
        workers=1,
        http=protocol,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=settings.shutdown_grace_s,  # type: ignore[arg-type]  (a float works)
    )
    ServiceServer(config).run()
