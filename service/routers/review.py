"""The review page (``/``, offline: its assets ship in the package) and the job resources it shows: the source
video, events recomputed at another threshold, and each event's evidence (thumbnail, clip with pre/post roll)
cut from the kept source video on first request and cached in the job's folder (``service.evidence``: one cut
per file at a time, LRU-bounded in bytes)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from lanp_vad.models.errors import ErrorKind
from lanp_vad.service.problems import HTTPErrorKind, ServiceError
from lanp_vad.service.routers.common import PROTECTED_RESPONSES, problem
from lanp_vad.service.routers.jobs import completed_job
from lanp_vad.service.schemas import ResegmentedEvents
from lanp_vad.service.state import ServiceState, ready_state, require_api_key
from lanp_vad.service.worker import result_path

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

page = APIRouter(tags=["review page"])
router = APIRouter(
    prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_api_key)], responses=PROTECTED_RESPONSES
)


def static_files() -> StaticFiles:
    """The page's CSS and JavaScript, mounted at ``/static``."""
    return StaticFiles(directory=STATIC_DIR)


@page.get("/", include_in_schema=False)
def review_page() -> FileResponse:
    """The page itself; it asks for the API key and sends it with every call, so it may load without one."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


PROXY_FILE = "browser.mp4"
PROXY_MAX_SIDE = 640
# The playable copy is bounded: at 640 px H.264 (CRF 23) a video takes about 0.5-1 Mbit/s, so an hour is at most
# ~450 MB beside the job; longer sources get a clear refusal instead, and the page says their clips still play.
PROXY_MAX_SECONDS = 3600.0
_proxy_turn = asyncio.Lock()  # one copy made at a time (the player asks for byte ranges in parallel)


@router.get(
    "/{job_id}/video",
    summary="The video of a completed job for a browser's player (byte ranges supported, for seeking): the source "
            "itself when browsers play it, else an H.264 MP4 copy made once and kept with the job",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/*": {}}},
        404: problem("no job"),
        409: problem("not completed"),
        410: problem("the video is gone"),
        415: problem("browsers cannot play the source and it is too long for a playable copy"),
    },
)
async def get_video(job_id: str, state: ServiceState = Depends(ready_state)) -> FileResponse:
    from lanp_vad.pipeline.scoring.evidence import browser_playable, write_browser_proxy

    job = completed_job(state, job_id)
    source = _source(state, job_id)
    proxy = _cached(state, job_id, PROXY_FILE)
    if not proxy.is_file():
        if await asyncio.to_thread(browser_playable, source):
            return FileResponse(source, filename=Path(job.video).name)
        duration_s = (await _document(state, job_id, None))["duration_s"]
        if duration_s > PROXY_MAX_SECONDS:
            raise ServiceError(
                415, HTTPErrorKind.UNSUPPORTED_MEDIA_TYPE,
                f"browsers cannot play this video's format, and at {duration_s:.0f} s it is longer than a playable "
                f"copy may be ({PROXY_MAX_SECONDS:.0f} s); its event clips play",
            )
        async with _proxy_turn:
            if not proxy.is_file():
                await asyncio.to_thread(write_browser_proxy, source, proxy, max_side=PROXY_MAX_SIDE)
    return FileResponse(proxy, media_type="video/mp4", filename=f"{Path(job.video).stem}.mp4")


async def _document(state: ServiceState, job_id: str, threshold: float | None) -> dict[str, Any]:
    """The job's stored result, its events recomputed at ``threshold`` when one is given."""
    from lanp_vad.pipeline.scoring.result import resegment

    completed_job(state, job_id)
    path = result_path(state.settings.jobs_dir, job_id)
    if not path.is_file():
        raise ServiceError(410, HTTPErrorKind.GONE, f"the result file of job {job_id} is gone")
    document = await asyncio.to_thread(lambda: json.loads(path.read_text()))
    if threshold is None:
        return document
    return resegment(document, state.scorer.config.model_copy(update={"threshold": threshold}))


@router.get(
    "/{job_id}/segments",
    summary="The job's events recomputed at another threshold (no decoding)",
    response_model=ResegmentedEvents,
    responses={404: problem("no job"), 409: problem("not completed"), 410: problem("the result is gone")},
)
async def get_segments(
    job_id: str,
    threshold: float = Query(ge=0, le=1),
    state: ServiceState = Depends(ready_state),
) -> dict[str, Any]:
    return {"threshold": threshold, "segments": (await _document(state, job_id, threshold))["segments"]}


def _event(document: dict[str, Any], job_id: str, number: int) -> dict[str, Any]:
    segments = document["segments"]
    if not 1 <= number <= len(segments):
        raise ServiceError(
            404, ErrorKind.NOT_FOUND, f"job {job_id} has {len(segments)} event(s) at this threshold, not #{number}"
        )
    return segments[number - 1]


def _source(state: ServiceState, job_id: str) -> Path:
    source = Path(completed_job(state, job_id).input_path)
    if not source.is_file():
        raise ServiceError(410, HTTPErrorKind.GONE, f"the source video of job {job_id} is no longer kept")
    return source


def _cached(state: ServiceState, job_id: str, name: str) -> Path:
    return result_path(state.settings.jobs_dir, job_id).parent / "evidence" / name


@router.get(
    "/{job_id}/events/{number}/thumbnail.jpg",
    summary="The peak frame of event NUMBER (from 1), at the job's threshold or ?threshold=",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: problem("no such job or event"),
               409: problem("not completed"), 410: problem("the source video is gone")},
)
async def get_thumbnail(
    job_id: str,
    number: int,
    threshold: float | None = Query(None, ge=0, le=1),
    state: ServiceState = Depends(ready_state),
) -> FileResponse:
    from lanp_vad.pipeline.scoring.evidence import render_thumbnail

    document = await _document(state, job_id, threshold)
    event = _event(document, job_id, number)
    peak_s = document["timestamps"][event["peak_frame"]]
    source = _source(state, job_id)
    cached = await state.evidence.get(_cached(state, job_id, f"frame-{event['peak_frame']}.jpg"),
                                      lambda temporary: temporary.write_bytes(render_thumbnail(source, peak_s)),
                                      lambda: state.disk.check_room(0, "the thumbnail"))
    return FileResponse(cached, media_type="image/jpeg")


@router.get(
    "/{job_id}/events/{number}/clip.mp4",
    summary="An H.264 clip of event NUMBER with pre- and post-roll, at the job's threshold or ?threshold=",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}, 404: problem("no such job or event"),
               409: problem("not completed"), 410: problem("the source video is gone")},
)
async def get_clip(
    job_id: str,
    number: int,
    threshold: float | None = Query(None, ge=0, le=1),
    pre_roll: float = Query(3.0, ge=0, le=60, description="seconds before the event"),
    post_roll: float = Query(3.0, ge=0, le=60, description="seconds after the event"),
    state: ServiceState = Depends(ready_state),
) -> FileResponse:
    from lanp_vad.pipeline.scoring.evidence import write_event_clip

    event = _event(await _document(state, job_id, threshold), job_id, number)
    start_s, end_s = event["start_s"], event["end_s"]
    source = _source(state, job_id)
    cached = await state.evidence.get(
        _cached(state, job_id, f"clip-{start_s:.3f}-{end_s:.3f}-{pre_roll:g}-{post_roll:g}.mp4"),
        lambda temporary: write_event_clip(source, temporary, start_s, end_s, pre_roll_s=pre_roll,
                                           post_roll_s=post_roll),
        lambda: state.disk.check_room(0, "the clip"),
    )
    return FileResponse(cached, media_type="video/mp4", filename=f"{job_id}-event-{number}.mp4")
