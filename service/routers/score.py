"""POST /score: score an uploaded clip synchronously (short clips; long videos go to POST /jobs)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from lanp_vad.pipeline.scoring.result import VideoScore
from lanp_vad.service.routers.common import (
    ERROR_RESPONSES,
    MULTIPART_VIDEO_BODY,
    PROTECTED_RESPONSES,
    RESULT_RESPONSES,
    ResultFormat,
    await_unless_disconnected,
    check_sync_limits,
    csv_response,
    event_options,
    queue_full,
)
from lanp_vad.service.state import ServiceState, ready_state, require_api_key
from lanp_vad.service.worker import QueueFullError

router = APIRouter(
    tags=["score"], dependencies=[Depends(require_api_key)], responses=PROTECTED_RESPONSES
)


@router.post(
    "/score",
    summary="Score an uploaded video now",
    response_model=VideoScore,
    openapi_extra={"requestBody": {"required": True, "content": MULTIPART_VIDEO_BODY}},
    responses={**RESULT_RESPONSES, **ERROR_RESPONSES},
)
async def score(
    request: Request,
    threshold: float | None = Query(None, ge=0, le=1, description="override the model's default threshold"),
    format: ResultFormat = Query("json", description="json: the full result; csv: one row per frame"),
    events: dict[str, float] = Depends(event_options),
    state: ServiceState = Depends(ready_state),
) -> VideoScore | Response:
    """Per-frame and per-snippet scores, timestamps and event segments of one clip, with the model identity.

    A client that hangs up stops the scoring at the next snippet batch (the worker is free for the next one)."""
    from lanp_vad.pipeline.video import sniff_container

    upload = await state.uploads.receive(request, state.settings.uploads_dir, sniff_container)
    shown = repr(upload.filename)
    submitted = None
    try:
        budget = await check_sync_limits(upload.path, shown, state)
        assert state.worker is not None
        try:
            submitted = state.worker.submit_score(upload.path, upload.filename, threshold, events, budget)
        except QueueFullError as error:
            raise queue_full(state, state.worker.depth) from error
        result: VideoScore = await await_unless_disconnected(request, submitted.future, submitted.cancel.set)
        return csv_response(result) if format == "csv" else result
    finally:
        if submitted is not None:
            submitted.cancel.set()  # also when this task is canceled (a shutdown past its grace period)
        else:
            state.uploads.discard(upload.path)  # the worker hands back the files it was given
