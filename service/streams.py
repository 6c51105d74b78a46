"""Live streams in the service: each ``POST /streams`` runs a ``pipeline.live.Watcher`` (the code of ``lanp watch``)
on the loaded model in its own thread; its records are kept in a bounded buffer that ``GET /streams/{id}/events``
streams as Server-Sent Events (resumable with ``Last-Event-ID`` while the records are still buffered).

Each stream's ``event_start`` / ``event_end`` / ``stopped`` / ``failed`` records also go to the webhooks (its
``callback_url`` and ``LANP_WEBHOOK_URL``; see ``service.webhooks``); its summary counts the deliveries.

Sources must use an allowed URL scheme (``LANP_STREAM_SCHEMES``) or be a path under ``LANP_DATA_ROOT``; at most
``LANP_MAX_STREAMS`` run at once. Each watcher runs its inference batches on the device's turn
(``service.scheduler``, group ``streams``), shared fairly with the inference worker's uploads and jobs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.live.watcher import WatchConfig, Watcher
from lanp_vad.service.problems import HTTPErrorKind, ServiceError
from lanp_vad.service.scheduler import STREAMS, DeviceScheduler
from lanp_vad.service.webhooks import WebhookSender

RECORDS_KEPT = 2048
"""Records buffered per stream for event clients (older ones are forgotten)."""
STOPPED_KEPT = 16
"""Stopped streams still listed (their last records readable)."""


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
        self.records: deque[tuple[int, dict[str, Any]]] = deque(maxlen=RECORDS_KEPT)
        self.sequence = 0
        self.latest: dict[str, dict[str, Any]] = {}  # the last record of each type
        self.condition = threading.Condition()
        self.device = scheduler.client(STREAMS, f"stream {self.id}")
        self.watcher = Watcher(scorer, url, self._append, config, device_turn=self.device.turn)
        self.thread = threading.Thread(target=self._run, name=f"lanp-stream-{self.id}", daemon=True)
        self.error: str | None = None

    def _run(self) -> None:
        try:
            self.watcher.run(warm_up=False)  # the server warmed the model; its decode process may be busy
        except Exception as error:  # a bug must not go unseen: the stream reports it
            self.error = f"{type(error).__name__}: {error}"
            self._append({"type": "failed", "error": self.error, "wall_time": time.time()})
        finally:
            with self.condition:
                self.condition.notify_all()

    def _append(self, record: dict[str, Any]) -> None:
        with self.condition:
            self.sequence += 1
            self.records.append((self.sequence, record))
            self.latest[record["type"]] = record
            self.condition.notify_all()
        if self.webhooks is not None:
            self.webhooks.notify_stream(self.id, self.url, record, self.callback_url, self._delivered)

    def _delivered(self, error: str | None) -> None:
        """How one webhook notice went (from the sender's thread)."""
        with self.condition:
            self.webhook_counts["failed" if error else "delivered"] += 1
            self.webhook_error = error or self.webhook_error

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def after(self, sequence: int, timeout: float) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
        """Records after ``sequence`` (waiting up to ``timeout`` for one) and whether the stream has ended."""
        with self.condition:
            self.condition.wait_for(lambda: self.sequence > sequence or not self.running, timeout)
            return [item for item in self.records if item[0] > sequence], not self.running

    def summary(self) -> dict[str, Any]:
        with self.condition:
            latest = dict(self.latest)
        connection = max((latest.get(k, {}) for k in ("connected", "disconnected", "reconnecting", "gave_up")),
                         key=lambda record: record.get("wall_time", 0.0))
        status = connection.get("type", "connecting") if self.running else "stopped"
        snippet = latest.get("snippet")
        return {
            "id": self.id, "url": self.url, "created": self.created, "running": self.running,
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
                 scheduler: DeviceScheduler, webhooks: WebhookSender | None = None):
        self.scorer = scorer
        self.scheduler = scheduler
        self.webhooks = webhooks
        self.max_streams = max_streams
        self.schemes = {scheme.lower() for scheme in schemes}
        self.data_root = data_root
        self.runs: dict[str, StreamRun] = {}
        self.lock = threading.Lock()

    def _check(self, url: str) -> str:
        if "\x00" in url:
            raise ServiceError(400, HTTPErrorKind.BAD_REQUEST, "the stream URL contains a NUL byte")
        scheme, separator, _ = url.partition("://")
        if separator:
            if scheme.lower() not in self.schemes:
                raise ServiceError(403, HTTPErrorKind.FORBIDDEN, f"stream URL scheme {scheme!r} is not allowed here "
                                   f"(LANP_STREAM_SCHEMES: {', '.join(sorted(self.schemes))})")
            return url
        if self.data_root is None:
            raise ServiceError(403, HTTPErrorKind.FORBIDDEN,
                               "file and device sources need LANP_DATA_ROOT on the server")
        path = (self.data_root / url).resolve()  # relative paths are under the root; an absolute one replaces it
        if not path.is_relative_to(self.data_root.resolve()):
            raise ServiceError(403, HTTPErrorKind.FORBIDDEN, f"{url} is not under the server's data root")
        if not path.exists():
            raise ServiceError(404, ErrorKind.NOT_FOUND, f"{url} does not exist")
        return str(path)

    def start(self, url: str, *, threshold: float | None = None, callback_url: str | None = None) -> StreamRun:
        """Start watching ``url`` (``threshold``: the events', default the model's; ``callback_url``: also
        POSTed the stream's event notices)."""
        source = self._check(url)
        with self.lock:
            running = sum(run.running for run in self.runs.values())
            if running >= self.max_streams:
                raise ServiceError(429, HTTPErrorKind.TOO_MANY_STREAMS, f"{running} streams are running "
                                   f"(LANP_MAX_STREAMS {self.max_streams}); stop one first",
                                   headers={"Retry-After": "30"}, extra={"limit": "LANP_MAX_STREAMS"})
            try:
                run = StreamRun(source, self.scorer, WatchConfig(threshold=threshold), self.scheduler,
                                webhooks=self.webhooks, callback_url=callback_url)
            except UserError as error:  # a source the pipeline cannot open
                raise ServiceError(422, error.kind, str(error)) from error
            self.runs[run.id] = run
            stopped = [key for key, other in self.runs.items() if not other.running and key != run.id]
            for key in stopped[: max(0, len(stopped) - STOPPED_KEPT)]:
                del self.runs[key]
        run.thread.start()
        return run

    def get(self, stream_id: str) -> StreamRun:
        run = self.runs.get(stream_id)
        if run is None:
            raise ServiceError(404, ErrorKind.NOT_FOUND, f"no stream {stream_id!r}")
        return run

    def stop(self, stream_id: str, timeout: float = 15.0) -> StreamRun:
        run = self.get(stream_id)
        run.watcher.stop()
        run.thread.join(timeout)
        return run

    def close(self) -> None:
        """Stop every stream (the server is shutting down)."""
        for run in list(self.runs.values()):
            run.watcher.stop()
        for run in list(self.runs.values()):
            run.thread.join(15.0)
