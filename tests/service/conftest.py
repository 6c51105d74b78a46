"""A real uvicorn server on 127.0.0.1, started the way the container starts it (Dockerfile ENTRYPOINT + CMD)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.service.tiny_model import make_tiny_model
from tests.videos import write_video

API_KEY = "test-key"


def wait_for(condition: Any, timeout_s: float = 30.0, what: str = "the condition") -> Any:
    """Poll ``condition`` until it returns something truthy (returned); AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stream_records(client: httpx.Client, stream: str, until: Any, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """A stream's records (Server-Sent Events' data) from the first, read until ``until(records)`` holds;
    AssertionError when ``timeout_s`` passes first."""
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    with client.stream("GET", f"/streams/{stream}/events", timeout=timeout_s) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                records.append(json.loads(line[6:]))
                if until(records):
                    return records
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"the stream's records never matched: {[r['type'] for r in records]}")


def crowd_with_event_clients(server: LiveServer, clip: bytes, clients: int = 32) -> dict[str, Any]:
    """Times ``POST /score`` of ``clip`` alone and beside ``clients`` idle event clients of a quiet stream (its
    source never answers), then one more client's status (None: it got an event stream) and the DELETE's time."""
    from tests.service import raw_http

    def score() -> tuple[int, float]:
        started = time.monotonic()
        status = client.post("/score", files={"file": ("clip.mp4", clip, "video/mp4")}).status_code
        return status, time.monotonic() - started

    silent = raw_http.Responder()
    try:
        with server.client() as client:
            _, alone_s = score()
            stream = client.post("/streams", json={"url": silent.url()}).json()["id"]
            listeners = [raw_http.send_get(server.port, f"/streams/{stream}/events", api_key=API_KEY)
                         for _ in range(clients)]
            time.sleep(1.0)
            try:
                one_more: httpx.Response | None = client.get(f"/streams/{stream}/events", timeout=10)
            except httpx.ReadTimeout:
                one_more = None
            scored, crowded_s = score()
            started = time.monotonic()
            client.delete(f"/streams/{stream}")
            delete_s = time.monotonic() - started
            for listener in listeners:
                listener.close()
    finally:
        silent.close()
    return {"one_more": one_more, "scored": scored, "alone_s": alone_s, "crowded_s": crowded_s,
            "delete_s": delete_s}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _dockerfile_instruction(name: str) -> list[str]:
    """The exec-form arguments of the Dockerfile's last ``name`` instruction (ENTRYPOINT / CMD)."""
    lines = (REPO_ROOT / "Dockerfile").read_text().splitlines()
    found = [line[len(name) :].strip() for line in lines if line.startswith(f"{name} ")]
    assert found, f"the Dockerfile has no {name}"
    return json.loads(found[-1])


def container_command(port: int) -> list[str]:
    """The image's ENTRYPOINT + CMD, with the host and port made local to this test."""
    # The image copies docker/entrypoint.sh to /app/docker/entrypoint.sh; here it is run from the checkout.
    entrypoint = [part.replace("/app/", f"{REPO_ROOT}/", 1) for part in _dockerfile_instruction("ENTRYPOINT")]
    command = _dockerfile_instruction("CMD")
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        command[command.index(flag) + 1] = value
    return entrypoint + command


def _live_parents() -> dict[int, int]:
    """pid -> parent pid of every process that is not a zombie (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended while we looked
            continue
        state, parent = text[text.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            parents[int(stat.parent.name)] = int(parent)
    return parents


def descendant_pids(pid: int) -> set[int]:
    """Every live process below ``pid``."""
    parents = _live_parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def still_running(pids: set[int], wait_s: float = 15.0) -> set[int]:
    """Those of ``pids`` still alive after up to ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    alive = pids & set(_live_parents())
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = pids & set(_live_parents())
    return alive


class LiveServer:
    """One uvicorn process serving the tiny model; restartable on the same work directory and job database."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> None:
        venv_bin = str(Path(sys.executable).parent)
        env = {**os.environ, **self.env, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}
        command = container_command(self.port)
        with self.log_path.open("ab") as log:
            log.write(f"$ {shlex.join(command)}\n".encode())
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}): {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready in {timeout_s} s: {self.log_path.read_text()[-3000:]}")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def descendants(self) -> set[int]:
        assert self.process is not None
        return descendant_pids(self.process.pid)

    def client(self, *, key: str | None = API_KEY, timeout: float = 120.0) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny-model")


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[str]:
    """A clip looped as MPEG-TS over HTTP at real-time pace by the live test source process: its URL."""
    clip = write_video(tmp_path / "clip.mp4", num_frames=120, width=160, height=120, fps=25)
    port = free_port()
    source = subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline.live.stream_source", str(clip), "--port", str(port), "--loop"],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.PIPE, text=True,
    )
    assert source.stdout.readline().startswith("PORT")
    yield f"http://127.0.0.1:{port}/camera.ts"
    source.kill()
    source.wait()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An allowed root holding one small clip, plus a symlink that points to a clip outside it."""
    root = tmp_path_factory.mktemp("data-root")
    write_video(root / "clip.mp4", num_frames=20, fps=10)
    outside = write_video(tmp_path_factory.mktemp("outside") / "secret.mp4", num_frames=20, fps=10)
    (root / "escape.mp4").symlink_to(outside)
    return root


def start_server(work: Path, model_dir: Path, **settings: str) -> LiveServer:
    """A started server on ``work`` with the API key set; ``settings``: more ``LANP_*`` variables."""
    work.mkdir(parents=True, exist_ok=True)
    live = LiveServer(
        {
            "LANP_MODEL_DIR": str(model_dir),
            "LANP_DEVICE": "cpu",
            "LANP_WORK_DIR": str(work),
            "LANP_API_KEY": API_KEY,
            **settings,
        },
        work / "server.log",
    )
    live.start()
    return live


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, data_root: Path) -> Iterator[LiveServer]:
    live = start_server(
        tmp_path_factory.mktemp("service-work"),
        tiny_model_dir,
        LANP_DATA_ROOT=str(data_root),
        # torch keeps the slow clip seconds of work (an exported runtime scores it before a client could hang up)
        LANP_RUNTIME="torch",
        LANP_MAX_UPLOAD_MB="2",
        LANP_MAX_SYNC_SECONDS="30",
        LANP_MAX_SYNC_FRAMES="10000",
        LANP_MAX_SYNC_MEGAPIXEL_FRAMES="50",
        LANP_QUEUE_SIZE="2",
        LANP_RETRY_AFTER_S="7",
        LANP_HEADER_TIMEOUT_S="2",
        LANP_BODY_TIMEOUT_S="2",
        LANP_MAX_CONCURRENT_UPLOADS="2",
        LANP_MAX_UPLOADS_IN_FLIGHT_MB="3",
        LANP_SHUTDOWN_GRACE_S="2",
    )
    yield live
    live.stop()
