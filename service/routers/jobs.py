"""Asynchronous jobs for long videos: submit (upload or server-side path), list, poll, fetch the result, cancel.

A job may name a ``callback_url``: when it ends, a signed notice is POSTed there (see ``service.webhooks``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from lanp_vad.models.errors import ErrorKind
from lanp_vad.pipeline.files import atomic_write_bytes
from lanp_vad.pipeline.scoring.plot import plot_png
from lanp_vad.pipeline.scoring.result import VideoScore, parse_document
from lanp_vad.pipeline.scoring.summary import summarize
from lanp_vad.service.egress import check_destination
from lanp_vad.service.jobs import COMPLETED, Job
from lanp_vad.service.problems import HTTPErrorKind, ServiceError
from lanp_vad.service.routers.common import (
    ERROR_RESPONSES,
    MULTIPART_VIDEO_BODY,
    PROTECTED_RESPONSES,
    RESULT_RESPONSES,
    ResultFormat,
    csv_response,
    event_options,
    problem,
    queue_full,
    read_json_body,
)
from lanp_vad.service.schemas import JobPage, JobStatus, JobStatusName
from lanp_vad.service.state import ServiceState, ready_state, require_api_key
from lanp_vad.service.uploads import SNIFF_BYTES
from lanp_vad.service.worker import QueueFullError, result_path

router = APIRouter(
    prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_api_key)], responses=PROTECTED_RESPONSES
)


class PathJobRequest(BaseModel):
    """A video already on the server, under the configured data root."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096, description="absolute, or relative to the data root")
    threshold: float | None = Field(None, ge=0, le=1)
    smooth: float | None = Field(None, ge=0, le=60, description="moving average over this many seconds")
    min_duration: float | None = Field(None, ge=0, le=3600, description="drop events shorter than this (s)")
    merge_gap: float | None = Field(None, ge=0, le=3600, description="merge events this close together (s)")
    callback_url: AnyHttpUrl | None = Field(None, max_length=2048,
                                            description="POSTed a signed notice when the job ends")


SUMMARY_FILE = "summary.json"


def _status(state: ServiceState, job: Job) -> dict[str, Any]:
    return {**job.public(), "result": result_summary(state, job.id) if job.status == COMPLETED else None}


def result_summary(state: ServiceState, job_id: str) -> dict[str, Any] | None:
    """A completed job's ``ResultSummary``, made from its result once and cached beside it (the page's job list
    asks every second; a result holds every frame's score)."""
    result = result_path(state.settings.jobs_dir, job_id)
    cached = result.with_name(SUMMARY_FILE)
    try:
        return json.loads(cached.read_text())
    except (OSError, ValueError):
        pass
    try:
        summary = summarize(json.loads(result.read_text())).model_dump(mode="json")
    except (OSError, ValueError):  # the result is gone (expired): the job record says the rest
        return None
    atomic_write_bytes(cached, json.dumps(summary).encode())
    return summary


def _job_or_404(state: ServiceState, job_id: str) -> Job:
    assert state.store is not None
    job = state.store.get(job_id)
    if job is None:
        raise ServiceError(404, ErrorKind.NOT_FOUND, f"no job with id {job_id!r} (it may have expired)")
    return job


def completed_job(state: ServiceState, job_id: str) -> Job:
    job = _job_or_404(state, job_id)
    if job.status != COMPLETED:
        detail = f": {job.error}" if job.error else ""
        raise ServiceError(
            409, ErrorKind.CONFLICT, f"job {job_id} is {job.status}, it has no result{detail}",
            extra={"status_of_job": job.status},
        )
    return job


def resolve_under_root(state: ServiceState, requested: str) -> Path:
    """The real path of ``requested`` (symlinks resolved) if it lies under the data root; 403/404 otherwise."""
    root = state.settings.data_root
    if root is None:
        raise ServiceError(
            403, HTTPErrorKind.FORBIDDEN, "server-side paths are disabled (LANP_DATA_ROOT is not set)"
        )
    if "\x00" in requested:
        raise ServiceError(400, HTTPErrorKind.BAD_REQUEST, "the path contains a NUL byte")
    real_root = root.resolve()
    candidate = Path(requested)
    resolved = (candidate if candidate.is_absolute() else real_root / candidate).resolve()
    if not resolved.is_relative_to(real_root):
        raise ServiceError(403, HTTPErrorKind.FORBIDDEN, f"{requested!r} is outside the allowed data root")
    if not resolved.is_file():
        raise ServiceError(404, ErrorKind.NOT_FOUND, f"{requested!r} is not a file under the data root")
    return resolved


def _sniff_file(path: Path, shown: str) -> None:
    from lanp_vad.pipeline.video import sniff_container

    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    if not head:
        raise ServiceError(422, ErrorKind.EMPTY, f"{shown!r} is empty")
    if sniff_container(head) is None:
        raise ServiceError(
            415, ErrorKind.NOT_VIDEO, f"{shown!r} is not a video: its first bytes match no video container"
        )


@router.get("", response_model=JobPage, summary="The jobs, newest first, one page at a time")
def list_jobs(
    status: JobStatusName | None = Query(None, description="only jobs in this status"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31),
    state: ServiceState = Depends(ready_state),
) -> dict[str, Any]:
    assert state.store is not None
    jobs, total = state.store.list(status=status, limit=limit, offset=offset)
    return {"jobs": [_status(state, job) for job in jobs], "total": total, "limit": limit, "offset": offset}


@router.post(
    "",
    status_code=202,
    summary="Submit a video (upload or server-side path) for scoring",
    response_model=JobStatus,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                **MULTIPART_VIDEO_BODY,
                "application/json": {"schema": PathJobRequest.model_json_schema()},
            },
        }
    },
    responses={
        **ERROR_RESPONSES,
        400: problem("a malformed path (e.g. a NUL byte)"),
        403: problem("path outside the data root, paths disabled, or a callback URL in a denied network"),
        404: problem("no such file under the data root"),
    },
)
async def submit_job(
    request: Request,
    threshold: float | None = Query(None, ge=0, le=1, description="override the default threshold (uploads)"),
    callback_url: AnyHttpUrl | None = Query(None, max_length=2048,
                                            description="POSTed a signed notice when the job ends (uploads)"),
    events: dict[str, float] = Depends(event_options),
    state: ServiceState = Depends(ready_state),
) -> Response:
    """202 with ``Location: /jobs/{id}``; poll it, then fetch ``/jobs/{id}/result``."""
    from lanp_vad.pipeline.video import sniff_container

    assert state.store is not None and state.worker is not None
    settings = state.settings
    if state.worker.depth >= settings.queue_size:  # refuse before receiving a large upload
        raise queue_full(state, state.worker.depth)
    if callback_url is not None:
        await asyncio.to_thread(check_destination, state.egress, str(callback_url), "the callback URL")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        job_request = await read_json_body(request, PathJobRequest, settings.body_timeout_s)
        if job_request.callback_url is not None:
            callback_url = job_request.callback_url
            await asyncio.to_thread(check_destination, state.egress, str(callback_url), "the callback URL")
        path = resolve_under_root(state, job_request.path)
        _sniff_file(path, job_request.path)
        state.disk.check_room(0, "the job")
        source_kind, video = "path", job_request.path
        threshold = job_request.threshold if job_request.threshold is not None else threshold
        events = {**events, **event_options(job_request.smooth, job_request.min_duration, job_request.merge_gap)}
    else:
        upload = await state.uploads.receive(request, settings.jobs_dir / "inputs", sniff_container)
        path, source_kind, video = upload.path, "upload", upload.filename
    callback = str(callback_url) if callback_url else None
    job = state.store.create(
        video=video,
        source_kind=source_kind,
        input_path=path,
        threshold=threshold,
        callback_url=callback,
        webhook=bool(callback or settings.webhook_url),
        events=events,
    )
    try:
        state.worker.submit_job(job.id)
    except QueueFullError as error:
        state.store.delete(job.id)
        if source_kind == "upload":
            state.uploads.discard(path)
        raise queue_full(state, state.worker.depth) from error
    return JSONResponse(_status(state, job), status_code=202, headers={"Location": f"/jobs/{job.id}"})


@router.get(
    "/{job_id}", response_model=JobStatus, summary="A job's status and progress", responses={404: problem("no job")}
)
def get_job(job_id: str, state: ServiceState = Depends(ready_state)) -> dict[str, Any]:
    return _status(state, _job_or_404(state, job_id))


@router.get(
    "/{job_id}/result",
    summary="A completed job's result (the POST /score document, or CSV of frames)",
    response_model=VideoScore,
    responses={**RESULT_RESPONSES, 404: problem("no job"), 409: problem("not completed"), 410: problem("gone")},
)
async def get_result(
    job_id: str, format: ResultFormat = Query("json"), state: ServiceState = Depends(ready_state)
) -> Response:
    completed_job(state, job_id)
    path = result_path(state.settings.jobs_dir, job_id)
    if not path.is_file():
        raise ServiceError(410, HTTPErrorKind.GONE, f"the result file of job {job_id} is gone")
    if format == "json":
        return FileResponse(path, media_type="application/json")
    document = await asyncio.to_thread(lambda: parse_document(json.loads(path.read_text())))
    return csv_response(document)


@router.get(
    "/{job_id}/plot.png",
    summary="The score curve with threshold and event segments",
    responses={200: {"content": {"image/png": {}}}, 404: problem("no job"), 409: problem("not completed")},
    response_class=Response,
)
async def get_plot(job_id: str, state: ServiceState = Depends(ready_state)) -> Response:
    completed_job(state, job_id)
    result = result_path(state.settings.jobs_dir, job_id)
    cached = result.with_name("plot.png")
    if not cached.is_file():
        state.disk.check_room(0, "the plot")

        def render() -> None:
            png = plot_png(parse_document(json.loads(result.read_text())))
            atomic_write_bytes(cached, png)

        await asyncio.to_thread(render)
    return FileResponse(cached, media_type="image/png")


@router.delete(
    "/{job_id}",
    status_code=202,
    response_model=JobStatus,
    summary="Cancel a job (a running one stops at its next snippet batch)",
    responses={404: problem("no job"), 409: problem("the job already ended")},
)
def cancel_job(job_id: str, state: ServiceState = Depends(ready_state)) -> Response:
    assert state.worker is not None and state.store is not None
    job = _job_or_404(state, job_id)
    if job.is_terminal or not state.worker.cancel_job(job_id):
        job = _job_or_404(state, job_id)
        raise ServiceError(
            409, ErrorKind.CONFLICT, f"job {job_id} already ended ({job.status})", extra={"status_of_job": job.status}
        )
    return JSONResponse(_status(state, _job_or_404(state, job_id)), status_code=202)


