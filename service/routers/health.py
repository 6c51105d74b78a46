"""Liveness and readiness probes (never behind the API key: orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lanp_vad.service.routers.common import problem
from lanp_vad.service.schemas import Health, Readiness
from lanp_vad.service.state import ServiceState, ready_state

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive and answering", response_model=Health)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The model is loaded on its device and warmed up",
    response_model=Readiness,
    responses={503: problem("still loading, or loading failed")},
)
def readyz(state: ServiceState = Depends(ready_state)) -> dict[str, str | None]:
    info = state.model_info
    return {"status": "ready", "model": info.get("name"), "device": info.get("device")}
