"""Helpers the routers share: the multipart request body in OpenAPI, video checks, result formats."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from fastapi.responses import JSONResponse, Response

from pipeline.scoring.scorer import VideoScore
from service.errors import ServiceError
from service.state import ServiceState

ResultFormat = Literal["json", "csv"]

MULTIPART_VIDEO_BODY: dict[str, Any] = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary", "description": "the video file"}},
        }
    }
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong X-API-Key"},
    413: {"description": "upload larger than LANP_MAX_UPLOAD_MB (or, for /score, longer than LANP_MAX_SYNC_SECONDS)"},
    415: {"description": "not multipart/form-data, or the file is not a video"},
    422: {"description": "the video cannot be decoded; 'kind' says why"},
    503: {"description": "queue full or model not ready; see Retry-After"},
}


def video_error(error: Exception) -> ServiceError:
    """422 for a video the decoder refuses, naming the reason."""
    kind = getattr(error, "kind", "invalid")
    return ServiceError(422, f"video_{kind}", f"the video cannot be scored ({kind}): {error}")


def queue_full(state: ServiceState, depth: int) -> ServiceError:
    return ServiceError(
        503,
        "queue_full",
        f"the inference queue is full ({depth} videos waiting); retry after {state.settings.retry_after_s} s",
        {"Retry-After": str(state.settings.retry_after_s)},
    )


async def probe_duration(path: Path, state: ServiceState) -> float:
    """The video's duration in seconds, read by the scorer's persistent probe process, which is killed on a hang
    (422 on failure). At most ``LANP_PROBE_CONCURRENCY`` requests wait for it at once."""
    from pipeline.video import VideoError

    try:
        async with state.probe_slots:  # a burst of uploads must not tie up every thread of the pool
            info = await asyncio.to_thread(state.scorer.probe, path, state.settings.probe_timeout_s)
    except VideoError as error:
        raise video_error(error) from error
    return float(info.duration_s or (info.num_frames / info.fps if info.fps else 0.0))


def score_response(score: VideoScore | dict[str, Any], result_format: ResultFormat) -> Response:
    if result_format == "csv":
        video_score = score if isinstance(score, VideoScore) else VideoScore.from_dict(score)
        return Response(video_score.frames_csv(), media_type="text/csv")
    return JSONResponse(score.to_dict() if isinstance(score, VideoScore) else score)
