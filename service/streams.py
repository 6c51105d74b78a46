"""Live streams in the service: each ``POST /streams`` runs a ``pipeline.live.Watcher`` (the code of ``lanp watch``)
on the loaded model in its own thread; its records are kept in a buffer bounded in count and bytes that
``GET /streams/{id}/events`` streams as Server-Sent Events (resumable with ``Last-Event-ID`` while the records are
still buffered). Event clients wait on an asyncio event that the stream sets, so they hold no thread while waiting.

Each stream's ``event_start`` / ``event_end`` / ``stopped`` / ``failed`` records also go to the webhooks (its
``callback_url`` and ``LANP_WEBHOOK_URL``; see ``service.webhooks``); its summary counts the deliveries.

Sources must use an allowed URL scheme (``LANP_STREAM_SCHEMES``) and a host the egress policy permits
(``service.egress``: HTTP(S) sources connect through its proxy, every redirect checked), or be a path under
``LANP_DATA_ROOT``; at most ``LANP_MAX_STREAMS`` run at once (counted from the moment one is accepted). A source
that cannot be reached is retried ``LANP_STREAM_MAX_RECONNECTS`` times in a row, then the stream ends. What a
stream shows (its URL, its records' reasons) never carries the camera's password nor what answered at a port:
the reasons of connection records are one fixed sentence per kind. Each watcher runs its inference batches on
the device's turn (``service.scheduler``, group ``streams``), shared fairly with the inference worker.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.live.source import SourceConfig
from lanp_vad.pipeline.live.watcher import WatchConfig, Watcher
from lanp_vad.service.egress import EgressPolicy, check_destination, hide_urls, public_url
from lanp_vad.service.problems import HTTPErrorKind, ServiceError
from lanp_vad.service.scheduler import STREAMS, DeviceScheduler
from lanp_vad.service.webhooks import WebhookSender

RECORDS_KEPT = 2048
"""Records buffered per stream for event clients (older ones are forgotten)."""
RECORDS_BYTES = 4 * 2**20
"""Bytes of records (their JSON) buffered per running stream."""
STOPPED_BYTES = 256 * 1024
"""Bytes of records a stopped stream keeps (its last records stay readable)."""
STOPPED_KEPT = 16
"""Stopped streams still listed."""
TEXT_CHARS = 512
"""The longest text a record carries (an error message)."""
CONNECTION_REASONS = {
    ErrorKind.SOURCE_UNREACHABLE.value: "the source could not be opened",
    ErrorKind.STREAM_LOST.value: "the stream was lost",
    "end_of_stream": "the stream ended",
}
"""What a connection record says for each kind: one sentence, whatever the source answered (no port oracle)."""
HTTP_SCHEMES = frozenset({"http", "https"})


class StreamRun:
    """One watched stream: its watcher thread and the records it wrote."""

    def __init__(self, url: str, scorer: Any, config: WatchConfig, scheduler: DeviceScheduler, *,
                 webhooks: WebhookSender | None = None, callback_url: str | None = None):
        self.id = uuid.uuid4().hex[:12]
        self.webhooks = webhooks
        self.callback_url = callback_url
        self.webhook_counts = {"delivered": 0, "failed": 0}
        self.webhook_error: str | None = None
        self.url = url
        self.created = time.time()
        self.records: deque[tuple[int, str, str]] = deque()  # (sequence, type, JSON)
        self.bytes_held = 0
        self.sequence = 0
        self.latest: dict[str, dict[str, Any]] = {}  # the last record of each type
        self.condition = threading.Condition()
        self.listeners: set[Callable[[], None]] = set()
        self.ended = False
        self.device = scheduler.client(STREAMS, f"stream {self.id}")
        self.watcher = Watcher(scorer, url, self._append, config, device_turn=self.device.turn)
        self.thread = threading.Thread(target=self._run, name=f"lanp-stream-{self.id}", daemon=True)
        self.error: str | None = None

    def _run(self) -> None:
        try:
            self.watcher.run(warm_up=False)  # the server warmed the model; its decode process may be busy
        except Exception as error:  # a bug must not go unseen: the stream reports it
            self.error = self._public_text(f"{type(error).__name__}: {error}")
            self._append({"type": "failed", "error": self.error, "wall_time": time.time()})
        finally:
            with self.condition:
                self.ended = True
                self._trim(STOPPED_BYTES)
                self.condition.notify_all()
            self.wake()

    def _public_text(self, text: str) -> str:
        return hide_urls(text, (self.url, self.callback_url or ""))[:TEXT_CHARS]

    def _public(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record as clients see it: no credentials, no port oracle, no unbounded text."""
        shown = dict(record)
        if "source" in shown:
            shown["source"] = public_url(shown["source"])
        if shown["type"] in ("reconnecting", "gave_up", "disconnected") and shown.get("reason") != "stopped":
            kind = shown.get("kind") or "end_of_stream"
            shown["reason"] = CONNECTION_REASONS.get(kind, f"the source sent no usable video ({kind})")
        for key in ("error", "reason"):
            if isinstance(shown.get(key), str):
                shown[key] = self._public_text(shown[key])
        return shown

    def _append(self, record: dict[str, Any]) -> None:
        shown = self._public(record)
        text = json.dumps(shown)
        with self.condition:
            self.sequence += 1
            self.records.append((self.sequence, shown["type"], text))
            self.bytes_held += len(text)
            self._trim(STOPPED_BYTES if self.ended else RECORDS_BYTES)
            self.latest[shown["type"]] = shown
            self.condition.notify_all()
        self.wake()
        if self.webhooks is not None:
            self.webhooks.notify_stream(self.id, self.url, shown, self.callback_url, self._delivered)

    def _trim(self, budget: int) -> None:
        """Forget the oldest records beyond ``budget`` bytes or ``RECORDS_KEPT`` (with the condition held)."""
        while self.records and (self.bytes_held > budget or len(self.records) > RECORDS_KEPT):
            self.bytes_held -= len(self.records.popleft()[2])

    def wake(self) -> None:
        """Tell every event client that something happened (each call is cheap: it schedules a wake-up)."""
        with self.condition:
            listeners = list(self.listeners)
        for listener in listeners:
            with contextlib.suppress(RuntimeError):  # its event loop closed (the server stopped under it)
                listener()

    def listen(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` (from any thread) at every new record and at the end; returns the way to stop."""
        with self.condition:
            self.listeners.add(wake)

        def forget() -> None:
            with self.condition:
                self.listeners.discard(wake)

        return forget

    def _delivered(self, error: str | None) -> None:
        """How one webhook notice went (from the sender's thread)."""
        with self.condition:
            self.webhook_counts["failed" if error else "delivered"] += 1
            self.webhook_error = error or self.webhook_error

    @property
    def running(self) -> bool:
        return not self.ended

    def since(self, sequence: int) -> tuple[list[tuple[int, str, str]], bool]:
        """The records after ``sequence`` (as ``(sequence, type, JSON)``) and whether the stream has ended."""
        with self.condition:
            return [item for item in self.records if item[0] > sequence], self.ended

    def summary(self) -> dict[str, Any]:
        with self.condition:
            latest = dict(self.latest)
        connection = max((latest.get(k, {}) for k in ("connected", "disconnected", "reconnecting", "gave_up")),
                         key=lambda record: record.get("wall_time", 0.0))
        status = connection.get("type", "connecting") if self.running else "stopped"
        snippet = latest.get("snippet")
        return {
            "id": self.id, "url": public_url(self.url), "created": self.created, "running": self.running,
            "status": {"connected": "live"}.get(status, status),
            "sessions": self.watcher.sessions, "snippets_scored": self.watcher.scored,
            "snippets_dropped": self.watcher.dropped,
            "last_snippet": snippet, "last_event": latest.get("event_end") or latest.get("event_start"),
            "error": self.error,
            "webhooks": {**self.webhook_counts, "last_error": self.webhook_error},
        }


class StreamManager:
    """The service's streams: start (checked, limited), list, stop."""

    def __init__(self, scorer: Any, *, max_streams: int, schemes: list[str], data_root: Path | None,
                 scheduler: DeviceScheduler, egress: EgressPolicy, proxy_url: str | None = None,
                 max_reconnects: int = 20, webhooks: WebhookSender | None = None):
        self.scorer = scorer
        self.scheduler = scheduler
        self.webhooks = webhooks
        self.max_streams = max_streams
        self.schemes = {scheme.lower() for scheme in schemes}
        self.data_root = data_root
        self.egress = egress
        self.proxy_url = proxy_url
        self.max_reconnects = max_reconnects
        self.runs: dict[str, StreamRun] = {}
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.event_clients = 0

    def _check(self, url: str) -> tuple[str, dict[str, str]]:
        """The source to open and its FFmpeg options; 400/403/404 when it may not be watched."""
        if "\x00" in url:
            raise ServiceError(400, HTTPErrorKind.BAD_REQUEST, "the stream URL contains a NUL byte")
        scheme, separator, _ = url.partition("://")
        if separator:
            if scheme.lower() not in self.schemes:
                raise ServiceError(403, HTTPErrorKind.FORBIDDEN, f"stream URL scheme {scheme!r} is not allowed here "
                                   f"(LANP_STREAM_SCHEMES: {', '.join(sorted(self.schemes))})")
            check_destination(self.egress, url, "the stream source")
            if scheme.lower() in HTTP_SCHEMES and self.proxy_url:
                return url, {"http_proxy": self.proxy_url}  # every connection, redirects too, checked again
            return url, {}
        if self.data_root is None:
            raise ServiceError(403, HTTPErrorKind.FORBIDDEN,
                               "file and device sources need LANP_DATA_ROOT on the server")
        path = (self.data_root / url).resolve()  # relative paths are under the root; an absolute one replaces it
        if not path.is_relative_to(self.data_root.resolve()):
            raise ServiceError(403, HTTPErrorKind.FORBIDDEN, f"{url} is not under the server's data root")
        if not path.exists():
            raise ServiceError(404, ErrorKind.NOT_FOUND, f"{url} does not exist")
        return str(path), {}

    def start(self, url: str, *, threshold: float | None = None, callback_url: str | None = None) -> StreamRun:
        """Start watching ``url`` (``threshold``: the events', default the model's; ``callback_url``: also
        POSTed the stream's event notices)."""
        source, options = self._check(url)
        if callback_url is not None:
            check_destination(self.egress, callback_url, "the callback URL")
        config = WatchConfig(threshold=threshold,
                             source=SourceConfig(options=options, max_reconnects=self.max_reconnects))
        with self.lock:  # counted and started under one lock: concurrent requests cannot overrun the limit
            if self.closing.is_set():
                raise ServiceError(503, ErrorKind.CANCELED, "the server is shutting down",
                                   headers={"Retry-After": "5"})
            running = sum(run.running for run in self.runs.values())
            if running >= self.max_streams:
                raise ServiceError(429, HTTPErrorKind.TOO_MANY_STREAMS, f"{running} streams are running "
                                   f"(LANP_MAX_STREAMS {self.max_streams}); stop one first",
                                   headers={"Retry-After": "30"}, extra={"limit": "LANP_MAX_STREAMS"})
            try:
                run = StreamRun(source, self.scorer, config, self.scheduler, webhooks=self.webhooks,
                                callback_url=callback_url)
            except UserError as error:  # a source the pipeline cannot open
                raise ServiceError(422, error.kind, hide_urls(str(error), (url,))) from error
            self.runs[run.id] = run
            run.thread.start()
            stopped = [key for key, other in self.runs.items() if not other.running]
            for key in stopped[: max(0, len(stopped) - STOPPED_KEPT)]:
                del self.runs[key]
        return run

    def take_event_client(self, limit: int) -> Callable[[], None]:
        """Count one more event client (429 beyond ``limit``); returns the way to give its place back (once)."""
        with self.lock:
            if self.event_clients >= limit:
                raise ServiceError(429, HTTPErrorKind.TOO_MANY_STREAMS, f"{self.event_clients} event clients are "
                                   f"connected (LANP_MAX_EVENT_CLIENTS {limit})", headers={"Retry-After": "30"},
                                   extra={"limit": "LANP_MAX_EVENT_CLIENTS"})
            self.event_clients += 1
        released = threading.Event()

        def release() -> None:
            with self.lock:
                if not released.is_set():
                    released.set()
                    self.event_clients -= 1

        return release

    def get(self, stream_id: str) -> StreamRun:
        run = self.runs.get(stream_id)
        if run is None:
            raise ServiceError(404, ErrorKind.NOT_FOUND, f"no stream {stream_id!r}")
        return run

    def stop(self, stream_id: str, timeout: float = 2.0) -> StreamRun:
        run = self.get(stream_id)
        run.watcher.stop()
        run.thread.join(timeout)
        return run

    def begin_close(self) -> None:
        """The server is shutting down: refuse new streams, ask every watcher to stop and wake every event
        client (it ends its response), without waiting."""
        self.closing.set()
        for run in list(self.runs.values()):
            run.watcher.stop()
            run.wake()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop every stream (the server is shutting down), waiting ``timeout_s`` for them in all."""
        self.begin_close()
        deadline = time.monotonic() + timeout_s
        for run in list(self.runs.values()):
            run.thread.join(max(0.0, deadline - time.monotonic()))

