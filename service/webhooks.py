"""Webhooks: when a job ends, or a live stream's event starts or ends, a signed JSON notice goes to its
``callback_url`` and to ``LANP_WEBHOOK_URL``.

Job body: ``{"event": "job.ended", "job": <GET /jobs/{id}>, "segments": [...]}`` (segments: the completed job's
events). Stream body: ``{"event": "stream.<type>", "stream": {"id", "url"}, "record": <the SSE record>}`` for the
records ``event_start``, ``event_end`` (with its thumbnail), ``stopped`` and ``failed``, sent in the order they
happened. Headers: ``X-LANP-Timestamp`` (Unix seconds) and ``X-LANP-Signature: sha256=<hex>``, the HMAC-SHA256
of ``"<timestamp>.<body>"`` keyed by ``LANP_WEBHOOK_SECRET`` (default: the API key; without either the notice
goes unsigned). A receiver recomputes it over the raw body and rejects old timestamps (replays). Failed
deliveries (network errors, 408, 429, 5xx) are retried with exponential backoff (1 s, 2 s, 4 s, ...); other 4xx
answers end the delivery. The state (``pending`` / ``delivered`` / ``failed``, attempts, last error) is kept in the
job record; job notices still pending when the server stops are sent after the next start. Stream notices live
in memory (as streams do): ``STREAM_BACKLOG`` may wait at once (more are dropped and counted), those
queued when the server stops get ``DRAIN_S`` to go out, and each stream reports its delivered / failed counts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from lanp_vad.service.jobs import COMPLETED, WEBHOOK_DELIVERED, WEBHOOK_FAILED, Job, JobStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-LANP-Signature"
TIMESTAMP_HEADER = "X-LANP-Timestamp"
RETRIED_STATUSES = frozenset({408, 429})
STREAM_RECORDS = frozenset({"event_start", "event_end", "stopped", "failed"})
"""The records of a live stream that go to the webhooks."""
STREAM_BACKLOG = 256
"""Stream notices waiting for delivery at most (a dead receiver must not grow the server's memory)."""
DRAIN_S = 2.0
"""On stop, queued notices get this long to be delivered (the streams' last ``stopped`` notices among them)."""


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-LANP-Signature`` value of ``body`` sent at ``timestamp``."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def public_url(url: str) -> str:
    """``url`` without the password of its user info (camera URLs often carry one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname}"
                                     + (f":{parts.port}" if parts.port else "")))


@dataclass(frozen=True)
class StreamNotice:
    """One stream record to deliver; ``done`` hears ``None`` (delivered everywhere) or the failures."""

    body: bytes
    targets: tuple[str, ...]
    done: Callable[[str | None], None]


class WebhookSender:
    """Delivers job-end notices from one background thread, so slow receivers never hold up scoring."""

    def __init__(
        self,
        store: JobStore,
        *,
        server_url: str | None,
        secret: bytes | None,
        attempts: int,
        segments_of: Callable[[str], list[dict[str, Any]]],
        backoff_s: float = 1.0,
        timeout_s: float = 10.0,
    ):
        self.store = store
        self.server_url = server_url
        self.secret = secret
        self.attempts = attempts
        self.segments_of = segments_of
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._streams_waiting = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | StreamNotice | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lanp-webhooks", daemon=True)

    def targets(self, job: Job) -> list[str]:
        return [url for url in (job.callback_url, self.server_url) if url]

    def start(self) -> None:
        for job in self.store.undelivered():
            self._queue.put(job.id)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued for up to ``DRAIN_S``, then stop (undelivered job notices stay pending)."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(DRAIN_S)
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def notify(self, job_id: str) -> None:
        """Queue the notice of an ended job (nothing happens for jobs nobody awaits)."""
        self._queue.put(job_id)

    def notify_stream(self, stream_id: str, url: str, record: dict[str, Any], callback_url: str | None,
                      done: Callable[[str | None], None]) -> None:
        """Queue a stream's record if it is one of ``STREAM_RECORDS`` and someone awaits it; ``done`` hears how
        the delivery went (also when the notice is dropped because too many wait)."""
        targets = tuple(target for target in (callback_url, self.server_url) if target)
        if record["type"] not in STREAM_RECORDS or not targets:
            return
        with self._lock:
            if self._streams_waiting >= STREAM_BACKLOG:
                done(f"dropped: {self._streams_waiting} stream notices were waiting")
                return
            self._streams_waiting += 1
        body = json.dumps({"event": f"stream.{record['type']}", "stream": {"id": stream_id, "url": public_url(url)},
                           "record": record}).encode()
        self._queue.put(StreamNotice(body, targets, done))

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            while (item := self._queue.get()) is not None:
                try:
                    if isinstance(item, StreamNotice):
                        self._deliver_stream(client, item)
                        continue
                    job = self.store.get(item)
                    if job is not None and self.targets(job) and not self._stopping.is_set():
                        self._deliver(client, job)
                except Exception:  # the sender must outlive any one receiver
                    log.exception("webhook %s", item)

    def _deliver_stream(self, client: httpx.Client, notice: StreamNotice) -> None:
        with self._lock:
            self._streams_waiting -= 1
        if self._stopping.is_set():
            notice.done("the server stopped before it was sent")
            return
        _, failures = self._post_all(client, notice.targets, notice.body)
        notice.done("; ".join(failures) or None)

    def _body(self, job: Job) -> bytes:
        segments = self.segments_of(job.id) if job.status == COMPLETED else []
        return json.dumps({"event": "job.ended", "job": job.public(), "segments": segments}).encode()

    def _post_all(self, client: httpx.Client, targets: list[str] | tuple[str, ...],
                  body: bytes) -> tuple[int, list[str]]:
        """Send ``body`` to every target with retries: (attempts in all, the failures)."""
        attempts, failures = 0, []
        for url in targets:
            tried, error = self._post_with_retries(client, url, body)
            attempts += tried
            if error is not None:
                failures.append(f"{url}: {error}")
        return attempts, failures

    def _deliver(self, client: httpx.Client, job: Job) -> None:
        attempts, failures = self._post_all(client, self.targets(job), self._body(job))
        status = WEBHOOK_FAILED if failures else WEBHOOK_DELIVERED
        if self._stopping.is_set() and failures:
            return  # stays pending: sent again after the next start
        self.store.set_webhook(job.id, status, attempts=attempts, error="; ".join(failures) or None)

    def _post_with_retries(self, client: httpx.Client, url: str, body: bytes) -> tuple[int, str | None]:
        """(attempts made, None when delivered else the last error)."""
        error: str | None = None
        for attempt in range(1, self.attempts + 1):
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
            if self.secret:
                headers[SIGNATURE_HEADER] = signature(self.secret, timestamp, body)
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {failure}"
            else:
                if response.is_success:
                    return attempt, None
                error = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in RETRIED_STATUSES:
                    return attempt, error
            if attempt < self.attempts and self._stopping.wait(self.backoff_s * 2 ** (attempt - 1)):
                return attempt, error
        return self.attempts, error
