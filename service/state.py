"""What the routes share: settings, the loaded scorer, the job store, the worker and the metrics."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from service.errors import ServiceError
from service.jobs import JobStore
from service.metrics import ServiceMetrics
from service.settings import Settings
from service.worker import InferenceWorker


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    store: JobStore | None = None
    worker: InferenceWorker | None = None
    scorer: Any = None
    ready: bool = False
    startup_error: str | None = None
    model_info: dict[str, Any] = field(default_factory=dict)
    probe_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    streams: Any = None  # service.streams.StreamManager once the model is loaded


def get_state(request: Request) -> ServiceState:
    return request.app.state.lanp


def ready_state(state: ServiceState = Depends(get_state)) -> ServiceState:
    """The state of a server whose model is loaded and warm (503 otherwise)."""
    if not state.ready or state.worker is None or state.store is None:
        raise ServiceError(503, "not_ready", state.startup_error or "the model is still loading", {"Retry-After": "5"})
    return state


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="required when LANP_API_KEY is set")


def require_api_key(
    key: str | None = Depends(_api_key_header), state: ServiceState = Depends(get_state)
) -> None:
    """401 unless the configured API key (if any) is sent in ``X-API-Key``."""
    expected = state.settings.api_key
    if expected is None:
        return
    if key is None or not secrets.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise ServiceError(
            401,
            "unauthorized",
            "missing or wrong API key: send it in the X-API-Key header" if key else "missing X-API-Key header",
            {"WWW-Authenticate": "X-API-Key"},
        )
