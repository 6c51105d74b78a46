"""Live streams: ``POST /streams`` starts watching a URL, ``GET /streams[/{id}]`` reports, ``DELETE`` stops,
``GET /streams/{id}/events`` streams the watcher's records (scores, events, connection changes) as Server-Sent
Events. See ``service.streams``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from lanp_vad.service.routers.common import PROTECTED_RESPONSES, problem, read_json_body
from lanp_vad.service.state import ServiceState, ready_state, require_api_key

router = APIRouter(tags=["streams"], dependencies=[Depends(require_api_key)], responses=PROTECTED_RESPONSES)
NO_STREAM = {404: problem("no such stream")}
KEEP_ALIVE_S = 15.0
"""An event client hears a comment line this often while nothing happens (proxies keep the connection)."""


MAX_URL_LENGTH = 2048
"""The longest stream or callback URL (every record and notice of a stream repeats its URL)."""


class StreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="rtsp://, http(s)://, udp://, srt://... (LANP_STREAM_SCHEMES) or a path under "
                     "LANP_DATA_ROOT", min_length=1, max_length=MAX_URL_LENGTH)
    threshold: float | None = Field(None, ge=0, le=1, description="the events' threshold (default: the model's)")
    callback_url: AnyHttpUrl | None = Field(
        None, max_length=MAX_URL_LENGTH,
        description="POSTed a signed notice at each event_start / event_end and when the stream stops")


@router.post(
    "/streams",
    status_code=201,
    summary="Start watching a live stream",
    openapi_extra={"requestBody": {"required": True,
                                   "content": {"application/json": {"schema": StreamRequest.model_json_schema()}}}},
    responses={
        400: problem("a malformed URL (e.g. a NUL byte)"),
        413: problem("a request body over 16 KiB"),
        403: problem("scheme not allowed, or a path outside the data root"),
        404: problem("no such file under the data root"),
        422: problem("the source cannot be opened"),
        429: problem("LANP_MAX_STREAMS streams are running"),
    },
)
async def start_stream(request: Request, state: ServiceState = Depends(ready_state)) -> dict[str, Any]:
    body = await read_json_body(request, StreamRequest, state.settings.body_timeout_s)  # after the key is checked
    callback = str(body.callback_url) if body.callback_url else None
    run = await asyncio.to_thread(state.streams.start, body.url, threshold=body.threshold, callback_url=callback)
    return run.summary()


@router.get("/streams", summary="The streams being watched (and the last few stopped ones)")
def list_streams(state: ServiceState = Depends(ready_state)) -> dict[str, Any]:
    return {"streams": [run.summary() for run in list(state.streams.runs.values())]}


@router.get("/streams/{stream_id}", summary="One stream: status, counts, last score and event", responses=NO_STREAM)
def get_stream(stream_id: str, state: ServiceState = Depends(ready_state)) -> dict[str, Any]:
    return state.streams.get(stream_id).summary()


@router.delete(
    "/streams/{stream_id}",
    summary="Stop watching (the last partial snippet is scored, events closed)",
    responses=NO_STREAM,
)
async def stop_stream(stream_id: str, state: ServiceState = Depends(ready_state)) -> dict[str, Any]:
    run = await asyncio.to_thread(state.streams.stop, stream_id)
    return run.summary()


class EventStream(StreamingResponse):
    """An SSE response that gives its event-client slot back however it ends (also when the client leaves before
    the first byte)."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None]):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


@router.get("/streams/{stream_id}/events", summary="The stream's records as Server-Sent Events",
            response_class=StreamingResponse,
            responses={**NO_STREAM, 429: problem("LANP_MAX_EVENT_CLIENTS event clients are connected")})
async def stream_events(
    stream_id: str,
    last_event_id: int = Header(0, alias="Last-Event-ID", description="resume after this record"),
    state: ServiceState = Depends(ready_state),
) -> StreamingResponse:
    run = state.streams.get(stream_id)
    give_back = state.streams.take_event_client(state.settings.max_event_clients)
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()
    forget = run.listen(lambda: loop.call_soon_threadsafe(woken.set))

    async def events() -> AsyncIterator[str]:
        sequence = last_event_id
        while True:
            woken.clear()
            records, ended = run.since(sequence)
            for sequence, kind, data in records:
                yield f"id: {sequence}\nevent: {kind}\ndata: {data}\n\n"
            if (ended and not records) or state.streams.closing.is_set():
                return
            if not records:
                try:
                    await asyncio.wait_for(woken.wait(), KEEP_ALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"

    def release() -> None:
        forget()
        give_back()

    return EventStream(events(), release)
