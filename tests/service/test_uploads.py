"""``UploadGate`` through a real ASGI app: streaming multipart to disk, the field name, limits, the server-wide
byte budget, and that a refused upload leaves no file behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from lanp_vad.pipeline.video import sniff_container
from lanp_vad.service.disk import DiskGuard
from lanp_vad.service.problems import ServiceError, problem_response
from lanp_vad.service.uploads import UploadGate
from tests.videos import write_video

MIB = 2**20


def gate_app(gate: UploadGate, directory: Path) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        try:
            stored = await gate.receive(request, directory, sniff_container)
        except ServiceError as error:
            return problem_response(error)
        return JSONResponse({"name": stored.filename, "size": stored.size, "container": stored.container,
                             "path": str(stored.path)})

    return Starlette(routes=[Route("/upload", receive, methods=["POST"])])


@pytest.fixture
def gate(tmp_path: Path) -> UploadGate:
    return UploadGate(max_bytes=1 * MIB, max_concurrent=2, max_bytes_in_flight=int(1.5 * MIB), body_timeout_s=5,
                      retry_after_s=3, max_kept_bytes=MIB, disk=DiskGuard(tmp_path, min_free_bytes=0))


@pytest.fixture
def client(gate: UploadGate, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(gate_app(gate, tmp_path / "uploads")) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=10).read_bytes()


def test_an_upload_is_stored_and_counted_until_discarded(client: TestClient, gate: UploadGate, clip: bytes) -> None:
    response = client.post("/upload", files={"file": ("../../etc/a b.mp4", clip, "video/mp4")})
    stored = response.json()
    assert response.status_code == 200 and stored["name"] == "a b.mp4" and stored["container"] == "mp4"
    path = Path(stored["path"])
    assert path.read_bytes() == clip and gate.bytes_in_flight >= len(clip)
    gate.discard(path)
    assert not path.exists() and gate.bytes_in_flight == 0


def test_the_video_must_be_in_the_field_named_file(client: TestClient, tmp_path: Path, clip: bytes) -> None:
    wrong = client.post("/upload", files={"video": ("clip.mp4", clip, "video/mp4")})
    assert wrong.status_code == 422 and "'file'" in wrong.json()["detail"]
    missing = client.post("/upload", data={"note": "no file here"}, files={"other": ("", b"", "text/plain")})
    assert missing.status_code == 422
    assert list((tmp_path / "uploads").iterdir()) == []


def test_limits_per_upload_and_for_the_whole_server(client: TestClient, gate: UploadGate, tmp_path: Path,
                                                   clip: bytes) -> None:
    too_big = client.post("/upload", files={"file": ("big.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(2 * MIB))})
    assert too_big.status_code == 413 and too_big.json()["limit"] == "max_upload_mb"
    first = client.post("/upload", files={"file": ("one.mp4", clip + bytes(900 * 1024))})
    assert first.status_code == 200
    second = client.post("/upload", files={"file": ("two.mp4", clip + bytes(900 * 1024))})
    assert second.status_code == 503 and second.json()["limit"] == "max_uploads_in_flight_mb"
    assert second.headers["Retry-After"] == "3"
    assert [path.name for path in (tmp_path / "uploads").iterdir()] == [Path(first.json()["path"]).name]
    gate.discard(Path(first.json()["path"]))
    assert client.post("/upload", files={"file": ("three.mp4", clip)}).status_code == 200


def test_non_videos_and_empty_files_are_refused_and_removed(client: TestClient, tmp_path: Path) -> None:
    text = client.post("/upload", files={"file": ("notes.mp4", b"plain text " * 1000)})
    assert text.status_code == 415 and text.json()["kind"] == "not_video"
    empty = client.post("/upload", files={"file": ("empty.mp4", b"")})
    assert empty.status_code == 422 and empty.json()["kind"] == "empty"
    assert list((tmp_path / "uploads").iterdir()) == []
