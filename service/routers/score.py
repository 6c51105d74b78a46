"""POST /score: score an uploaded clip synchronously (short clips; long videos go to POST /jobs)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from pipeline.scoring.scorer import ScoringCancelled
from service.errors import ServiceError
from service.routers.common import (
    ERROR_RESPONSES,
    MULTIPART_VIDEO_BODY,
    ResultFormat,
    probe_duration,
    queue_full,
    score_response,
    video_error,
)
from service.state import ServiceState, ready_state, require_api_key
from service.uploads import receive_upload
from service.worker import QueueFullError, is_video_error

router = APIRouter(tags=["score"], dependencies=[Depends(require_api_key)])


@router.post(
    "/score",
    summary="Score an uploaded video now",
    openapi_extra={"requestBody": {"required": True, "content": MULTIPART_VIDEO_BODY}},
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}, **ERROR_RESPONSES},
)
async def score(
    request: Request,
    threshold: float | None = Query(None, ge=0, le=1, description="override the model's default threshold"),
    format: ResultFormat = Query("json", description="json: the full result; csv: one row per frame"),
    state: ServiceState = Depends(ready_state),
) -> Response:
    """Per-frame and per-snippet scores, timestamps and event segments of one clip, with the model identity."""
    from pipeline.video import sniff_container

    settings = state.settings
    upload = await receive_upload(request, settings.uploads_dir, settings.max_upload_bytes, sniff_container)
    submitted = None
    try:
        duration = await probe_duration(upload.path, state)
        if duration > settings.max_sync_seconds:
            raise ServiceError(
                413,
                "too_long",
                f"{upload.filename!r} lasts {duration:.1f} s, more than the {settings.max_sync_seconds:g} s "
                "POST /score accepts: submit it to POST /jobs instead",
            )
        assert state.worker is not None
        try:
            submitted = state.worker.submit_score(upload.path, upload.filename, threshold)
        except QueueFullError as error:
            raise queue_full(state, state.worker.depth) from error
        try:
            result = await asyncio.wrap_future(submitted.future)
        except ScoringCancelled as error:
            raise ServiceError(503, "canceled", "the server stopped scoring this video") from error
        except Exception as error:
            if is_video_error(error):
                raise video_error(error) from error
            raise
        return score_response(result, format)
    finally:
        if submitted is not None:
            submitted.cancel.set()  # a client that went away stops the worker at the next snippet batch
        else:
            upload.path.unlink(missing_ok=True)  # the worker removes the files it was given
