"""GET /models: what this server has loaded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from service.state import ServiceState, ready_state, require_api_key

router = APIRouter(tags=["models"], dependencies=[Depends(require_api_key)])


@router.get("/models", summary="The loaded model: identity, feature spec, threshold, device")
def models(state: ServiceState = Depends(ready_state)) -> dict[str, Any]:
    return {"models": [state.model_info]}
