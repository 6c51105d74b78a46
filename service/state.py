"""What the routes share: settings, the loaded scorer, the job store, the worker, the upload gate and the metrics."""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from lanp_vad.service.disk import DiskGuard
from lanp_vad.service.egress import EgressPolicy
from lanp_vad.service.evidence import EvidenceCache
from lanp_vad.service.jobs import JobStore
from lanp_vad.service.metrics import ServiceMetrics
from lanp_vad.service.problems import HTTPErrorKind, ServiceError
from lanp_vad.service.settings import Settings
from lanp_vad.service.uploads import UploadGate
from lanp_vad.service.webhooks import WebhookSender
from lanp_vad.service.worker import InferenceWorker


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    uploads: UploadGate
    disk: DiskGuard
    store: JobStore | None = None
    worker: InferenceWorker | None = None
    webhooks: WebhookSender | None = None
    scorer: Any = None
    ready: bool = False
    startup_error: str | None = None
    model_info: dict[str, Any] = field(default_factory=dict)
    probe_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    streams: Any = None  # service.streams.StreamManager once the model is loaded
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    evidence: EvidenceCache = field(init=False)  # made by the lifespan (it reads the jobs folder)


def get_state(request: Request) -> ServiceState:
    return request.app.state.lanp


def ready_state(state: ServiceState = Depends(get_state)) -> ServiceState:
    """The state of a server whose model is loaded and warm (503 otherwise)."""
    if not state.ready or state.worker is None or state.store is None:
        raise ServiceError(
            503,
            HTTPErrorKind.NOT_READY,
            state.startup_error or "the model is still loading",
            headers={"Retry-After": "5"},
        )
    return state


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="required when LANP_API_KEY is set")


def _basic_password(request: Request) -> str | None:
    """The password of an ``Authorization: Basic`` header (a browser's login prompt sends the key that way)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")[2]
    except (binascii.Error, UnicodeDecodeError):
        return None


def _check_api_key(request: Request, key: str | None, state: ServiceState, challenge: str) -> None:
    expected = state.settings.api_key
    if expected is None:
        return
    offered = key if key is not None else _basic_password(request)
    if offered is None or not secrets.compare_digest(offered.encode(), expected.get_secret_value().encode()):
        raise ServiceError(
            401,
            HTTPErrorKind.UNAUTHORIZED,
            "missing or wrong API key: send it in the X-API-Key header" if offered else "missing X-API-Key header",
            headers={"WWW-Authenticate": challenge},
        )


def require_api_key(
    request: Request, key: str | None = Depends(_api_key_header), state: ServiceState = Depends(get_state)
) -> None:
    """401 unless the configured API key (if any) is sent in ``X-API-Key`` (or as the password of HTTP Basic
    authentication, any user name). The challenge names X-API-Key, so a page calling the API with ``fetch``
    handles the 401 itself (a Basic challenge would make the browser prompt)."""
    _check_api_key(request, key, state, "X-API-Key")


def require_api_key_from_browser(
    request: Request, key: str | None = Depends(_api_key_header), state: ServiceState = Depends(get_state)
) -> None:
    """``require_api_key`` for pages a person opens (``/docs``): the 401 asks the browser for the key (Basic)."""
    _check_api_key(request, key, state, 'Basic realm="lanp", charset="UTF-8"')
