"""The FastAPI application: ``create_app(settings)``; ``uvicorn service.app:create_app --factory`` serves it.

The lifespan loads the model directory once, warms it up, starts the single inference worker and re-queues the
jobs a previous run left unfinished (see ``service.jobs``); the server accepts connections only once the model is
warm, and a model that cannot be loaded stops the server with the reason (a misconfigured container fails loudly).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError
from service.jobs import JobStore
from service.metrics import ServiceMetrics
from service.routers import health, jobs, metrics, models, review, score, streams
from service.settings import Settings
from service.state import ServiceState
from service.streams import StreamManager
from service.worker import InferenceWorker

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


def _load_model(settings: Settings) -> Any:
    from pipeline.scoring.scorer import Scorer

    scorer = Scorer.from_model_dir(
        settings.model_dir,
        device=settings.device,
        weights=settings.weights,
        decode_timeout_s=settings.decode_timeout_s if settings.isolate_decode else None,
    )
    scorer.warm_up()
    return scorer


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: ServiceState = app.state.lanp
    settings = state.settings
    shutil.rmtree(settings.uploads_dir, ignore_errors=True)  # temp files of a server that died mid-request
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    (settings.jobs_dir / "inputs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scorer = await asyncio.to_thread(_load_model, settings)
    state.scorer = scorer
    state.model_info = {
        **scorer.identity,
        "feature_spec": scorer.spec_identity,
        "segments": vars(scorer.segment_options),
        "metadata": {key: value for key, value in scorer.metadata.items() if key != "history"},
    }
    state.store = JobStore(settings.jobs_db_path)
    state.worker = InferenceWorker(
        scorer,
        state.store,
        state.metrics,
        jobs_dir=settings.jobs_dir,
        queue_size=settings.queue_size,
    )
    state.worker.start()
    recovered = state.store.recover(settings.max_job_attempts)
    for job in recovered:
        state.worker.submit_job(job.id, bounded=False)
    log.info(
        "model %s ready on %s in %.1f s; %d unfinished job(s) re-queued",
        scorer.identity["name"],
        scorer.device,
        time.perf_counter() - started,
        len(recovered),
    )
    state.probe_slots = asyncio.Semaphore(settings.probe_concurrency)
    state.streams = StreamManager(scorer, max_streams=settings.max_streams, schemes=settings.stream_schemes,
                                  data_root=settings.data_root)
    state.ready = True
    try:
        yield
    finally:
        state.ready = False
        await asyncio.to_thread(state.streams.close)
        await asyncio.to_thread(state.worker.stop)
        await asyncio.to_thread(scorer.close)  # its decode and probe processes: none may outlive the server
        state.store.close()


def _error_response(request: Request, error: ServiceError) -> JSONResponse:
    request.app.state.lanp.metrics.errors.labels(kind=error.kind).inc()
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: read from the ``LANP_*`` environment)."""
    settings = settings or Settings()  # type: ignore[call-arg]  (model_dir comes from the environment)
    service_metrics = ServiceMetrics()
    app = FastAPI(
        title="LANP video anomaly scoring",
        version="0.1.0",
        description="Per-frame anomaly scores and event segments for surveillance video (LANP, ECCV 2024).",
        lifespan=lifespan,
    )
    app.state.lanp = ServiceState(settings=settings, metrics=service_metrics)
    for router in (score.router, jobs.router, review.router, models.router, health.router, metrics.router, review.page,
                   streams.router):
        app.include_router(router)
    app.mount("/static", review.static_files(), name="static")
    app.add_middleware(LatencyMiddleware, metrics=service_metrics)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> JSONResponse:
        return _error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        return _error_response(request, ServiceError(422, "invalid_request", f"invalid request: {problems}"))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(request, ServiceError(500, "internal", f"internal error ({type(error).__name__})"))

    return app
