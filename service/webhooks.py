"""Webhooks: when a job ends, or a live stream's event starts or ends, a signed JSON notice goes to its
``callback_url`` and to ``LANP_WEBHOOK_URL``.

Job body: ``{"event": "job.ended", "job": <GET /jobs/{id}>, "segments": [...]}`` (segments: the completed job's
events). Stream body: ``{"event": "stream.<type>", "stream": {"id", "url"}, "record": <the SSE record>}`` for the
records ``event_start``, ``event_end`` (with its thumbnail), ``stopped`` and ``failed``. Headers:
``X-LANP-Timestamp`` (Unix seconds) and ``X-LANP-Signature: sha256=<hex>``, the HMAC-SHA256 of
``"<timestamp>.<body>"`` keyed by the webhook key (``LANP_WEBHOOK_SECRET``, else a random key the server keeps
in its work directory: never the API key, which every client holds). A receiver recomputes it over the raw body
and rejects old timestamps (replays).

Delivery is per destination (scheme, host and port): each has its own queue, sent in order by its own task, so a
receiver that never answers delays only its own notices; at most ``MAX_CONCURRENT`` POSTs are in flight in all.
Every connection goes through the egress proxy (``service.egress``), which refuses destinations in denied
networks. Failed deliveries (network errors, 408, 429, 5xx) are retried with exponential backoff (1 s, 2 s, 4 s,
...); other 4xx answers end the delivery. The state (``pending`` / ``delivered`` / ``failed``, attempts, last
error) is kept in the job record; its error text says only which (masked) URL was not delivered, never what
answered there (the details go to the log). Job notices still pending when the server stops are sent after the
next start. Stream notices live in memory (as streams do): ``STREAM_BACKLOG`` may wait at once (more are dropped
and counted), those queued when the server stops get ``DRAIN_S`` to go out, and each stream reports its
delivered / failed counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from lanp_vad.service.egress import public_url
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
MAX_CONCURRENT = 32
"""POSTs in flight at once over all destinations."""
IDLE_S = 30.0
"""A destination's task ends after this long without a notice (the next notice starts another)."""


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-LANP-Signature`` value of ``body`` sent at ``timestamp``."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Delivery:
    """One notice to one URL; ``done(attempts, error)`` hears how it went (error None: delivered)."""

    url: str
    body: bytes
    done: Callable[[int, str | None], None]


def destination_of(url: str) -> str:
    """The queue a URL's notices share: its scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


class WebhookSender:
    """Delivers notices from its own event loop (a daemon thread), one queue and task per destination."""

    def __init__(
        self,
        store: JobStore,
        *,
        server_url: str | None,
        secret: bytes,
        attempts: int,
        segments_of: Callable[[str], list[dict[str, Any]]],
        proxy_url: str | None = None,
        backoff_s: float = 1.0,
        timeout_s: float = 10.0,
    ):
        self.store = store
        self.server_url = server_url
        self.secret = secret
        self.attempts = attempts
        self.segments_of = segments_of
        self.proxy_url = proxy_url
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._streams_waiting = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._client: httpx.AsyncClient | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="lanp-webhooks", daemon=True)

    def targets(self, job: Job) -> list[str]:
        return [url for url in (job.callback_url, self.server_url) if url]

    def start(self) -> None:
        """Start the loop and queue the notices of ended jobs not yet delivered (after a restart)."""
        self._thread.start()
        self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False, trust_env=False,
                                         proxy=self.proxy_url)
        for job in self.store.undelivered():
            self.notify(job.id)

    def stop(self) -> None:
        """Deliver what is queued for up to ``DRAIN_S``, then stop (undelivered job notices stay pending)."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(self._drain(), self._loop).result(DRAIN_S + 1.0)
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2.0)

    async def _drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(queue.join() for queue in list(self._queues.values()))),
                                   DRAIN_S)

    async def _close(self) -> None:
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def notify(self, job_id: str) -> None:
        """Queue the notice of an ended job (nothing happens for jobs nobody awaits); from any thread."""
        self._loop.call_soon_threadsafe(self._notify_job, job_id)

    def notify_stream(self, stream_id: str, url: str, record: dict[str, Any], callback_url: str | None,
                      done: Callable[[str | None], None]) -> None:
        """Queue a stream's record if it is one of ``STREAM_RECORDS`` and someone awaits it; ``done`` hears how
        each delivery went (also when the notice is dropped because too many wait)."""
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
        left = [len(targets)]
        failures: list[str] = []

        def delivered(attempts: int, error: str | None) -> None:
            if error:
                failures.append(error)
            left[0] -= 1
            if left[0] == 0:
                with self._lock:
                    self._streams_waiting -= 1
                done("; ".join(failures) or None)

        for target in targets:
            self._loop.call_soon_threadsafe(self._enqueue, Delivery(target, body, delivered))

    def _notify_job(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is None or not self.targets(job):
            return
        targets = self.targets(job)
        segments = self.segments_of(job.id) if job.status == COMPLETED else []
        body = json.dumps({"event": "job.ended", "job": job.public(), "segments": segments}).encode()
        outcomes: list[tuple[int, str | None]] = []

        def delivered(attempts: int, error: str | None) -> None:
            outcomes.append((attempts, error))
            if len(outcomes) < len(targets):
                return
            errors = [error for _, error in outcomes if error]
            if errors and self._stopping.is_set():
                return  # stays pending: sent again after the next start
            self.store.set_webhook(job_id, WEBHOOK_FAILED if errors else WEBHOOK_DELIVERED,
                                   attempts=sum(tried for tried, _ in outcomes), error="; ".join(errors) or None)

        for target in targets:
            self._enqueue(Delivery(target, body, delivered))

    def _enqueue(self, delivery: Delivery) -> None:
        key = destination_of(delivery.url)
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue()
            task = asyncio.ensure_future(self._serve(key, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.put_nowait(delivery)

    async def _serve(self, key: str, queue: asyncio.Queue[Delivery]) -> None:
        """Send one destination's notices in order; end after ``IDLE_S`` without one."""
        while True:
            try:
                delivery = await asyncio.wait_for(queue.get(), IDLE_S)
            except TimeoutError:
                if queue.empty():
                    del self._queues[key]
                    return
                continue
            try:
                attempts, error = await self._post_with_retries(delivery.url, delivery.body)
                delivery.done(attempts, error)
            except Exception:  # a receiver must never stop its destination's queue
                log.exception("webhook to %s", public_url(delivery.url))
            finally:
                queue.task_done()

    async def _post_with_retries(self, url: str, body: bytes) -> tuple[int, str | None]:
        """(attempts made, None when delivered else a text that names the URL, not what answered there)."""
        assert self._client is not None
        shown = "LANP_WEBHOOK_URL" if url == self.server_url else public_url(url)  # the operator's, not the client's
        attempt = 0
        while True:
            attempt += 1
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                       SIGNATURE_HEADER: signature(self.secret, timestamp, body)}
            retry = True
            try:
                async with self._slots:
                    response = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError as failure:
                log.info("webhook to %s, attempt %d: %s", shown, attempt, type(failure).__name__)
            else:
                if response.is_success:
                    return attempt, None
                log.info("webhook to %s, attempt %d: HTTP %d", shown, attempt, response.status_code)
                retry = response.status_code >= 500 or response.status_code in RETRIED_STATUSES
            if not retry or attempt == self.attempts:
                return attempt, f"{shown}: not delivered ({attempt} attempt{'s' if attempt > 1 else ''})"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.backoff_s * 2 ** (attempt - 1))
            if self._stopping.is_set():
                return attempt, f"{shown}: not delivered (the server stopped)"
