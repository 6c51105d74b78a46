"""Liveness and readiness probes (never behind the API key: orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.state import ServiceState, get_state

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive and answering")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The model is loaded on its device and warmed up",
    responses={503: {"description": "still loading, or loading failed"}},
)
def readyz(state: ServiceState = Depends(get_state)) -> JSONResponse:
    if state.ready:
        info = state.model_info
        return JSONResponse({"status": "ready", "model": info.get("name"), "device": info.get("device")})
    reason = state.startup_error or "the model is still loading"
    return JSONResponse({"status": "not ready", "detail": reason, "kind": "not_ready"}, status_code=503)
