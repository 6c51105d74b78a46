"""Webhooks: when a job ends, a signed JSON notice goes to its ``callback_url`` and to ``LANP_WEBHOOK_URL``.

Body: ``{"event": "job.ended", "job": <GET /jobs/{id}>, "segments": [...]}`` (segments: the completed job's
events). Headers: ``X-LANP-Timestamp`` (Unix seconds) and ``X-LANP-Signature: sha256=<hex>``, the HMAC-SHA256
of ``"<timestamp>.<body>"`` keyed by ``LANP_WEBHOOK_SECRET`` (default: the API key; without either the notice
goes unsigned). A receiver recomputes it over the raw body and rejects old timestamps (replays). Failed
deliveries (network errors, 408, 429, 5xx) are retried with exponential backoff (1 s, 2 s, 4 s, ...); other 4xx
answers end the delivery. The state (``pending`` / ``delivered`` / ``failed``, attempts, last error) is kept in the
job record; notices still pending when the server stops are sent after the next start.
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
from typing import Any

import httpx

from service.jobs import COMPLETED, WEBHOOK_DELIVERED, WEBHOOK_FAILED, Job, JobStore

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-LANP-Signature"
TIMESTAMP_HEADER = "X-LANP-Timestamp"
RETRIED_STATUSES = frozenset({408, 429})


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-LANP-Signature`` value of ``body`` sent at ``timestamp``."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


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
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lanp-webhooks", daemon=True)

    def targets(self, job: Job) -> list[str]:
        return [url for url in (job.callback_url, self.server_url) if url]

    def start(self) -> None:
        for job in self.store.undelivered():
            self._queue.put(job.id)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout_s)

    def notify(self, job_id: str) -> None:
        """Queue the notice of an ended job (nothing happens for jobs nobody awaits)."""
        self._queue.put(job_id)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            while not self._stopping.is_set():
                job_id = self._queue.get()
                job = self.store.get(job_id) if job_id is not None else None
                if job is None or not self.targets(job):
                    continue
                try:
                    self._deliver(client, job)
                except Exception:  # the sender must outlive any one receiver
                    log.exception("webhook of job %s", job_id)

    def _body(self, job: Job) -> bytes:
        segments = self.segments_of(job.id) if job.status == COMPLETED else []
        return json.dumps({"event": "job.ended", "job": job.public(), "segments": segments}).encode()

    def _deliver(self, client: httpx.Client, job: Job) -> None:
        body = self._body(job)
        attempts, failures = 0, []
        for url in self.targets(job):
            tried, error = self._post_with_retries(client, url, body)
            attempts += tried
            if error is not None:
                failures.append(f"{url}: {error}")
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
