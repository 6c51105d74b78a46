"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from lanp_vad.service.routers.common import PROTECTED_RESPONSES
from lanp_vad.service.state import ServiceState, get_state, require_api_key

router = APIRouter(
    tags=["metrics"], dependencies=[Depends(require_api_key)], responses=PROTECTED_RESPONSES
)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(state: ServiceState = Depends(get_state)) -> Response:
    if state.worker is not None:
        state.metrics.queue_depth.set(state.worker.depth)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
