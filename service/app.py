"""The FastAPI application: ``create_app(settings)``; ``lanp serve`` (``service.server``) runs it under uvicorn.

The lifespan loads the model directory once (unless the caller loaded it already), warms it up, starts the single
inference worker and the webhook sender, re-queues the jobs a previous run left unfinished (see ``service.jobs``)
and removes the uploads of those it fails; a janitor deletes jobs past ``LANP_JOB_TTL_HOURS`` with their files.
Every error is answered as RFC 9457 problem details (``service.problems``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lanp_vad.models.errors import ErrorKind
from lanp_vad.service.disk import DiskGuard
from lanp_vad.service.egress import EgressPolicy, EgressProxy
from lanp_vad.service.evidence import EvidenceCache
from lanp_vad.service.jobs import JobStore
from lanp_vad.service.metrics import ServiceMetrics
from lanp_vad.service.problems import (
    CLIENT_CLOSED,
    HTTPErrorKind,
    ServiceError,
    disk_full,
    is_disk_full,
    problem_response,
    status_error,
)
from lanp_vad.service.routers import docs, health, jobs, metrics, models, review, score, streams
from lanp_vad.service.scheduler import DeviceScheduler
from lanp_vad.service.settings import Settings
from lanp_vad.service.state import ServiceState
from lanp_vad.service.streams import StreamManager
from lanp_vad.service.uploads import UploadGate
from lanp_vad.service.webhooks import WebhookSender
from lanp_vad.service.worker import InferenceWorker, result_path

log = logging.getLogger(__name__)


class LatencyMiddleware:
    """Records every request's latency by route template, method and status (pure ASGI: bodies stream through)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.request_seconds.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )


class OriginGuard:
    """Refuses cross-origin state-changing requests (403) before anything reads them: a page on another site could
    otherwise make a browser that holds Basic credentials for this server POST /jobs (a multipart POST is a
    "simple" request, sent without a preflight). Allowed: no ``Origin`` (clients that are not browsers) unless
    ``Sec-Fetch-Site`` says cross-site, the server's own host, and ``allowed_origins``."""

    SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, allowed_origins: list[str]):
        self.app = app
        self.allowed = {origin.rstrip("/").lower() for origin in allowed_origins}

    def _refused(self, scope: Scope) -> str | None:
        """Why the request must be refused, or None."""
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        origin = headers.get("origin")
        if origin is None:
            return "a cross-site request" if headers.get("sec-fetch-site") == "cross-site" else None
        origin = origin.rstrip("/").lower()
        if origin in self.allowed or urlsplit(origin).netloc == headers.get("host", "").lower():
            return None
        return f"a request from the origin {origin[:200]!r}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in self.SAFE_METHODS:
            refused = self._refused(scope)
            if refused is not None:
                answer = problem_response(ServiceError(
                    403, HTTPErrorKind.FORBIDDEN, f"{refused} may not change anything here (LANP_ALLOWED_ORIGINS)"))
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def load_scorer(settings: Settings) -> Any:
    """The scorer for ``settings``' model directory, warmed up (``lanp serve`` calls it before binding the port,
    so a bad model directory is one line and exit 2)."""
    from lanp_vad.pipeline.scoring.config import ScoringConfig
    from lanp_vad.pipeline.scoring.scorer import Scorer

    scorer = Scorer.from_model_dir(
        settings.model_dir,
        device=settings.device,
        weights=settings.weights,
        config=ScoringConfig(decode_timeout_s=settings.decode_timeout_s if settings.isolate_decode else None),
        runtime=settings.runtime,
    )
    scorer.warm_up()
    return scorer


def _segments_of(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    path = result_path(settings.jobs_dir, job_id)
    return json.loads(path.read_text())["segments"] if path.is_file() else []


def _expire_jobs(state: ServiceState) -> int:
    """Delete the jobs past their retention with their folders (results, plots) and inputs; how many."""
    settings, store = state.settings, state.store
    assert store is not None and settings.job_ttl_hours is not None
    expired = store.expire(time.time() - settings.job_ttl_hours * 3600)
    for job in expired:
        shutil.rmtree(settings.jobs_dir / job.id, ignore_errors=True)
        state.evidence.forget_job(settings.jobs_dir / job.id)
        if job.source_kind == "upload":
            state.uploads.discard(Path(job.input_path))
    return len(expired)


async def _janitor(state: ServiceState) -> None:
    """Delete expired jobs (when they expire) and set the disk's reserve aside again once there is room."""
    ttl_hours = state.settings.job_ttl_hours
    interval_s = min(60.0, ttl_hours * 3600 / 4) if ttl_hours is not None else 60.0
    while True:
        if ttl_hours is not None:
            removed = await asyncio.to_thread(_expire_jobs, state)
            if removed:
                log.info("%d expired job(s) removed", removed)
        await asyncio.to_thread(state.disk.restore_reserve)
        await asyncio.sleep(interval_s)


def webhook_key(settings: Settings) -> bytes:
    """The key that signs webhook notices: ``LANP_WEBHOOK_SECRET``, else a random key made once and kept (mode
    0600) in the work directory, so that no client can forge a notice (every client holds the API key)."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value().encode()
    path = settings.work_dir / "webhook.key"
    if not path.is_file():
        made = path.with_name(f".webhook.key.{secrets.token_hex(4)}")
        descriptor = os.open(made, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_hex(32))
        made.replace(path)
        log.info("webhook notices are signed with a new random key, kept in %s", path)
    return path.read_text().strip().encode()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.lanp
    settings = state.settings
    shutil.rmtree(settings.uploads_dir, ignore_errors=True)  # temp files of a server that died mid-request
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    (settings.jobs_dir / "inputs").mkdir(parents=True, exist_ok=True)
    state.evidence = EvidenceCache(settings.jobs_dir, settings.evidence_cache_bytes)
    state.disk.restore_reserve()
    started = time.perf_counter()
    scorer = state.scorer or await asyncio.to_thread(load_scorer, settings)
    state.scorer = scorer
    state.model_info = {
        **scorer.identity,
        "feature_spec": scorer.spec_identity,
        "segments": scorer.config.segments.model_dump(),
        "metadata": {key: value for key, value in scorer.metadata.items() if key != "history"},
    }
    store = state.store = JobStore(settings.jobs_db_path)
    state.egress = EgressPolicy(allowed=settings.allowed_networks, denied=settings.denied_networks)
    proxy = EgressProxy(state.egress)
    proxy_url = proxy.start()
    state.webhooks = WebhookSender(
        store,
        server_url=str(settings.webhook_url) if settings.webhook_url else None,
        secret=webhook_key(settings),
        attempts=settings.webhook_attempts,
        segments_of=lambda job_id: _segments_of(settings, job_id),
        proxy_url=proxy_url,
    )
    scheduler = DeviceScheduler(observe=state.metrics.device_turn)
    scorer.extractor.forward_gate = scheduler.gate  # every forward pass takes its turn on the one device
    state.worker = InferenceWorker(
        scorer,
        store,
        state.metrics,
        jobs_dir=settings.jobs_dir,
        queue_size=settings.queue_size,
        uploads=state.uploads,
        on_job_end=state.webhooks.notify,
        scheduler=scheduler,
    )
    for kept in store.kept_uploads():  # completed jobs' videos, oldest first, within the stored-uploads budget
        state.uploads.keep(kept)
    recovered, failed = store.recover(settings.max_job_attempts)
    for job in failed:  # interrupted too often: its upload goes, its webhook is sent
        if job.source_kind == "upload":
            state.uploads.discard(Path(job.input_path))
    for job in recovered:
        if job.source_kind == "upload":
            state.uploads.adopt(Path(job.input_path))
        state.worker.submit_job(job.id, bounded=False)
    state.webhooks.start()  # also sends the notices of the jobs failed just now
    state.worker.start()
    log.info(
        "model %s ready on %s in %.1f s; %d unfinished job(s) re-queued, %d failed as interrupted",
        scorer.identity["name"],
        scorer.device,
        time.perf_counter() - started,
        len(recovered),
        len(failed),
    )
    state.probe_slots = asyncio.Semaphore(settings.probe_concurrency)
    state.streams = StreamManager(scorer, max_streams=settings.max_streams, schemes=settings.stream_schemes,
                                  data_root=settings.data_root, scheduler=scheduler, egress=state.egress,
                                  proxy_url=proxy_url, max_reconnects=settings.stream_max_reconnects,
                                  webhooks=state.webhooks)
    janitor = asyncio.create_task(_janitor(state))
    state.ready = True
    try:
        yield
    finally:
        state.ready = False
        await asyncio.to_thread(state.streams.close)
        janitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await janitor
        if not await asyncio.to_thread(state.worker.stop):
            log.warning("the running video did not stop in time: its decoding is killed")
        await asyncio.to_thread(scorer.close)  # its decode and probe processes: none may outlive the server
        await asyncio.to_thread(state.webhooks.stop)
        proxy.stop()
        store.close()


def _answer(request: Request, error: ServiceError) -> JSONResponse:
    metrics = request.app.state.lanp.metrics
    if error.status == CLIENT_CLOSED:
        log.info("%s %s: %s", request.method, request.url.path, error.message)
        metrics.client_disconnects.labels(stage=str(error.extra.get("stage", "request"))).inc()
    else:
        metrics.errors.labels(kind=error.kind).inc()
    return problem_response(error)


def create_app(settings: Settings | None = None, *, scorer: Any = None) -> FastAPI:
    """The service for ``settings`` (default: read from the ``LANP_*`` environment); ``scorer``: an already
    loaded and warmed ``Scorer`` for it (else the lifespan loads one)."""
    settings = settings or Settings()  # type: ignore[call-arg]  (model_dir comes from the environment)
    service_metrics = ServiceMetrics()
    app = FastAPI(
        title="LANP video anomaly scoring",
        version="0.1.0",
        description="Per-frame anomaly scores and event segments for surveillance video (LANP, ECCV 2024).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    disk = DiskGuard(settings.work_dir, settings.min_free_disk_bytes, settings.retry_after_s)
    uploads = UploadGate(
        max_bytes=settings.max_upload_bytes,
        max_concurrent=settings.max_concurrent_uploads,
        max_bytes_in_flight=settings.max_uploads_in_flight_bytes,
        body_timeout_s=settings.body_timeout_s,
        retry_after_s=settings.retry_after_s,
        max_kept_bytes=settings.max_stored_uploads_bytes,
        disk=disk,
    )
    app.state.lanp = ServiceState(settings=settings, metrics=service_metrics, uploads=uploads, disk=disk,
                                  scorer=scorer)
    for router in (score.router, jobs.router, review.router, models.router, health.router, metrics.router, review.page,
                   streams.router):
        app.include_router(router)
    app.mount("/static", review.static_files(), name="static")
    docs.install(app)
    app.add_middleware(OriginGuard, allowed_origins=settings.allowed_origins)
    app.add_middleware(LatencyMiddleware, metrics=service_metrics)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return _answer(request, error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _answer(request, status_error(error.status_code, str(error.detail), error.headers))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        return _answer(request, ServiceError(422, ErrorKind.INVALID_ARGUMENT, f"invalid request: {problems}"))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        if is_disk_full(error):
            log.warning("%s %s: the disk is full", request.method, request.url.path)
            return _answer(request, disk_full(f"the answer to {request.method} {request.url.path}",
                                              settings.retry_after_s))
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _answer(request, ServiceError(500, ErrorKind.INTERNAL, f"internal error ({type(error).__name__})"))

    return app
