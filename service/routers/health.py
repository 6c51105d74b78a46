"""Liveness and readiness probes (never behind the API key: orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lanp_vad.models.errors import ErrorKind
from lanp_vad.service.problems import ServiceError
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
    responses={503: problem("still loading, loading failed, or the work directory's disk is (almost) full")},
)
def readyz(state: ServiceState = Depends(ready_state)) -> dict[str, str | None]:
    if state.disk.low():
        raise ServiceError(503, ErrorKind.DISK_FULL, f"the work directory has {state.disk.free_bytes() / 2**20:.0f} "
                           f"MiB free, below LANP_MIN_FREE_DISK_MB", headers={"Retry-After": "60"},
                           extra={"limit": "min_free_disk_mb"})
    info = state.model_info
    return {"status": "ready", "model": info.get("name"), "device": info.get("device")}
