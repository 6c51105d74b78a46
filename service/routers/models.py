"""GET /models: what this server has loaded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from lanp_vad.service.routers.common import PROTECTED_RESPONSES
from lanp_vad.service.schemas import ModelsResponse
from lanp_vad.service.state import ServiceState, ready_state, require_api_key

router = APIRouter(
    tags=["models"], dependencies=[Depends(require_api_key)], responses=PROTECTED_RESPONSES
)


@router.get(
    "/models", summary="The loaded model: identity, feature spec, threshold, device", response_model=ModelsResponse
)
def models(state: ServiceState = Depends(ready_state)) -> dict[str, Any]:
    return {"models": [state.model_info]}
