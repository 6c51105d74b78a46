"""The review page (``/``, offline: its assets ship in the package) and the job resources it shows: the source
video, events recomputed at another threshold."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service.errors import ServiceError
from service.routers.jobs import completed_job
from service.state import ServiceState, ready_state, require_api_key
from service.worker import result_path

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

page = APIRouter(tags=["review page"])
router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_api_key)])


def static_files() -> StaticFiles:
    """The page's CSS and JavaScript, mounted at ``/static``."""
    return StaticFiles(directory=STATIC_DIR)


@page.get("/", include_in_schema=False)
def review_page() -> FileResponse:
    """The page itself; it asks for the API key and sends it with every call, so it may load without one."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get(
    "/{job_id}/video",
    summary="The source video of a completed job (byte ranges supported, for seeking)",
    response_class=FileResponse,
    responses={200: {"content": {"video/*": {}}}, 409: {"description": "not completed"}, 410: {"description": "gone"}},
)
def get_video(job_id: str, state: ServiceState = Depends(ready_state)) -> FileResponse:
    job = completed_job(state, job_id)
    source = Path(job.input_path)
    if not source.is_file():
        raise ServiceError(410, "gone", f"the source video of job {job_id} is no longer kept")
    return FileResponse(source, filename=Path(job.video).name)


@router.get("/{job_id}/segments", summary="The job's events recomputed at another threshold (no decoding)")
async def get_segments(
    job_id: str,
    threshold: float = Query(ge=0, le=1),
    state: ServiceState = Depends(ready_state),
) -> dict[str, Any]:
    from pipeline.scoring.segments import find_segments

    completed_job(state, job_id)
    path = result_path(state.settings.jobs_dir, job_id)
    if not path.is_file():
        raise ServiceError(410, "gone", f"the result file of job {job_id} is gone")
    document = await asyncio.to_thread(lambda: json.loads(path.read_text()))
    options = state.scorer.segment_options
    segments = find_segments(
        document["frame_scores"], document["fps"], threshold, smooth_s=options.smooth_s,
        min_duration_s=options.min_duration_s, merge_gap_s=options.merge_gap_s, timestamps_s=document["timestamps"],
    )
    return {"threshold": threshold, "segments": [segment.to_dict() for segment in segments]}
