"""Helpers the routers share: the multipart request body and error answers in OpenAPI, the header checks, the
wait for a result that a client may abandon, result formats."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from lanp_vad.models.errors import ErrorKind
from lanp_vad.pipeline.scoring.result import VideoScore
from lanp_vad.service.problems import (
    HTTPErrorKind,
    Problem,
    ServiceError,
    client_closed,
    from_exception,
    too_much_for_score,
)
from lanp_vad.service.state import ServiceState
from lanp_vad.service.uploads import check_declared_length, idle_timed_chunks
from lanp_vad.service.worker import SnippetBudget

ResultFormat = Literal["json", "csv"]
MAX_JSON_BYTES = 16 * 1024
"""The largest JSON request body (a job or a stream request is a few hundred bytes)."""
Body = TypeVar("Body", bound=BaseModel)

MULTIPART_VIDEO_BODY: dict[str, Any] = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary", "description": "the video file"}},
        }
    }
}


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response entry whose body is a problem document (``docs.typed_openapi`` sets its media type)."""
    return {"description": description, "model": Problem}


PROTECTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem("missing or wrong X-API-Key"),
    422: problem("invalid parameters"),
    503: problem("the model is not ready; see Retry-After"),
}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: problem("missing or wrong X-API-Key"),
    408: problem("the upload stalled for LANP_BODY_TIMEOUT_S"),
    413: problem("too large: the upload, or (for /score) the video's length; 'limit' names the setting"),
    415: problem("not multipart/form-data, or the file is not a video"),
    422: problem("the request or the video is invalid; 'kind' says why"),
    500: problem("the server failed (e.g. its decoding worker crashed)"),
    503: problem("queue or upload budget full, model not ready, or shutting down; see Retry-After"),
}

RESULT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the result (JSON: VideoScore, the response model), or one row per frame (?format=csv)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
}


def event_options(
    smooth: float | None = Query(None, ge=0, le=60, description="moving average over this many seconds"),
    min_duration: float | None = Query(None, ge=0, le=3600, description="drop events shorter than this (s)"),
    merge_gap: float | None = Query(None, ge=0, le=3600, description="merge events this close together (s)"),
) -> dict[str, float]:
    """The event rules a request overrides (the ``ScoringConfig`` field names); unset ones keep the model's."""
    given = {"smooth_s": smooth, "min_duration_s": min_duration, "merge_gap_s": merge_gap}
    return {name: value for name, value in given.items() if value is not None}


async def read_json_body(request: Request, model: type[Body], idle_timeout_s: float) -> Body:
    """The request's JSON body as ``model``, read by the route itself (after its API-key dependency: FastAPI reads a
    declared body parameter before any dependency runs, so an unauthenticated client could make it read and parse
    megabytes); 413 beyond ``MAX_JSON_BYTES`` (declared or received), 408 when the body stalls, 422 when invalid."""
    check_declared_length(request, MAX_JSON_BYTES, slack=0)
    body = bytearray()
    async for chunk in idle_timed_chunks(request, idle_timeout_s):
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ServiceError(413, ErrorKind.TOO_LARGE, f"a JSON request body is at most {MAX_JSON_BYTES // 1024} KiB")
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())
        raise ServiceError(422, ErrorKind.INVALID_ARGUMENT, f"invalid request: {problems}") from error


def queue_full(state: ServiceState, depth: int) -> ServiceError:
    return ServiceError(
        503,
        HTTPErrorKind.QUEUE_FULL,
        f"the inference queue is full ({depth} videos waiting); retry after {state.settings.retry_after_s} s",
        headers={"Retry-After": str(state.settings.retry_after_s)},
        extra={"limit": "queue_size"},
    )


async def check_sync_limits(path: Path, shown: str, state: ServiceState) -> SnippetBudget:
    """413 naming the limit when the video is too much work for a synchronous answer: its seconds, frames or
    pixels x frames, from its header (read by the scorer's persistent probe process, killed on a hang).

    A header can under-state its frames (or give none), so the same limits also come back as the most snippets
    the scoring may decode, with the tightest limit's name: the worker stops there with the same 413."""
    settings = state.settings
    try:
        async with state.probe_slots:  # a burst of uploads must not tie up every thread of the pool
            info = await asyncio.to_thread(state.scorer.probe, path, settings.probe_timeout_s)
    except Exception as error:
        raise from_exception(error, path=path, shown=shown) from error
    frames = info.num_frames or round(info.duration_s * info.fps)
    duration = float(info.duration_s or (frames / info.fps if info.fps else 0.0))
    pixels = info.source_width * info.source_height  # decoding reads every source pixel, whatever it delivers
    megapixel_frames = pixels * frames / 1e6
    if duration > settings.max_sync_seconds:
        raise too_much_for_score(shown, f"lasts {duration:.1f} s", "max_sync_seconds")
    if frames > settings.max_sync_frames:
        snippets = -(-frames // state.scorer.spec.snippet_length)
        raise too_much_for_score(shown, f"has {frames} frames ({snippets} snippets)", "max_sync_frames")
    if megapixel_frames > settings.max_sync_megapixel_frames:
        raise too_much_for_score(
            shown, f"holds {megapixel_frames:.0f} megapixel-frames ({info.source_width}x{info.source_height})",
            "max_sync_megapixel_frames",
        )
    stride = state.scorer.spec.stride  # a video of N frames makes at most ceil(N / stride) snippets
    budgets = [(math.ceil(settings.max_sync_frames / stride), "max_sync_frames")]
    if pixels:
        frames_allowed = settings.max_sync_megapixel_frames / (pixels / 1e6)
        budgets.append((math.ceil(frames_allowed / stride), "max_sync_megapixel_frames"))
    if info.fps:
        budgets.append((math.ceil(settings.max_sync_seconds * info.fps / stride), "max_sync_seconds"))
    return SnippetBudget(*min(budgets))


async def await_unless_disconnected(request: Request, future: Future, on_disconnect: Any) -> Any:
    """The result of ``future``; when the client hangs up first, ``on_disconnect()`` is called (it cancels the
    work) and a 499 is raised."""
    result = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not result.done():
        on_disconnect()
        result.cancel()
        raise client_closed("scoring")
    return result.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body is read already: the next message is the end)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def csv_response(score: VideoScore) -> Response:
    """The ``?format=csv`` answer: one row per frame."""
    return Response(score.frames_csv(), media_type="text/csv")
