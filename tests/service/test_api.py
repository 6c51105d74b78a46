"""The API conventions on a real server: job listing, retention, webhooks (signed, retried, state in the job
record) against receivers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.conftest import LiveServer, free_port, start_server, wait_for
from tests.service.test_service import upload, wait_for_job
from tests.videos import write_video

SECRET = "webhook-secret"
TTL_HOURS = 0.003  # 10.8 s


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST; ``failures[path]`` answers that many 503s first."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.failures: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                left = receiver.failures.get(self.path, 0)
                if left:
                    receiver.failures[self.path] = left - 1
                self.send_response(503 if left else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.http = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posts(self, path: str) -> list[dict[str, Any]]:
        return [post for post in self.received if post["path"] == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    live = Receiver()
    yield live
    live.http.shutdown()


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, receiver: Receiver) -> Iterator[
    LiveServer
]:
    live = start_server(
        tmp_path_factory.mktemp("api-work"),
        tiny_model_dir,
        LANP_JOB_TTL_HOURS=str(TTL_HOURS),
        LANP_WEBHOOK_URL=receiver.url("/all"),
        LANP_WEBHOOK_SECRET=SECRET,
        LANP_WEBHOOK_ATTEMPTS="3",
        LANP_ALLOWED_NETWORKS='["127.0.0.1/32"]',  # the receivers; loopback is denied by default
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_video(tmp_path_factory.mktemp("api-clips") / "clip.mp4", num_frames=20, fps=10).read_bytes()


def test_jobs_are_listed_newest_first_with_paging_and_a_status_filter(api_server: LiveServer, clip: bytes) -> None:
    with api_server.client() as client:
        ids = [upload(client, "/jobs", clip, f"clip{index}.mp4").json()["id"] for index in range(3)]
        for job_id in ids:
            assert wait_for_job(client, job_id)["status"] == "completed"
        first = client.get("/jobs", params={"limit": 2}).json()
        assert first["limit"] == 2 and first["offset"] == 0 and first["total"] >= 3
        assert [job["id"] for job in first["jobs"]] == ids[::-1][:2]
        second = client.get("/jobs", params={"limit": 2, "offset": 2}).json()
        assert second["jobs"][0]["id"] == ids[0]
        completed = client.get("/jobs", params={"status": "completed", "limit": 500}).json()
        assert set(ids) <= {job["id"] for job in completed["jobs"]}
        assert all(job["status"] == "completed" for job in completed["jobs"])
        assert client.get("/jobs", params={"status": "failed"}).json()["jobs"] == []
        assert client.get("/jobs", params={"status": "nonsense"}).status_code == 422


def test_ended_jobs_are_signed_and_sent_to_the_server_webhook(api_server: LiveServer, receiver: Receiver,
                                                               clip: bytes) -> None:
    with api_server.client() as client:
        job = upload(client, "/jobs", clip, "signed.mp4").json()
        assert job["webhook_status"] == "pending"
        wait_for_job(client, job["id"])
        record = wait_for(lambda: (r := client.get(f"/jobs/{job['id']}").json())["webhook_status"] != "pending"
                          and r)
    assert record["webhook_status"] == "delivered" and record["webhook_attempts"] == 1
    post = next(p for p in receiver.posts("/all") if json.loads(p["body"])["job"]["id"] == job["id"])
    timestamp = post["headers"]["X-LANP-Timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + post["body"], hashlib.sha256).hexdigest()
    assert post["headers"]["X-LANP-Signature"] == f"sha256={expected}"
    notice = json.loads(post["body"])
    assert notice["event"] == "job.ended" and notice["job"]["status"] == "completed"
    assert isinstance(notice["segments"], list) and abs(int(timestamp) - time.time()) < 60


def test_a_callback_url_is_retried_with_backoff_and_its_state_recorded(
    api_server: LiveServer, receiver: Receiver, clip: bytes
) -> None:
    receiver.failures["/flaky"] = 2
    receiver.failures["/down"] = 99
    with api_server.client() as client:
        flaky = upload(client, "/jobs", clip, callback_url=receiver.url("/flaky")).json()
        down = upload(client, "/jobs", clip, callback_url=receiver.url("/down")).json()

        def ended(job_id: str) -> dict[str, Any] | None:
            record = client.get(f"/jobs/{job_id}").json()
            return record if record["webhook_status"] in ("delivered", "failed") else None

        flaky_record = wait_for(lambda: ended(flaky["id"]))
        down_record = wait_for(lambda: ended(down["id"]))
    assert flaky_record["webhook_status"] == "delivered"
    assert flaky_record["webhook_attempts"] == 3 + 1  # two 503s and a 200 to the callback, one to the server URL
    assert len(receiver.posts("/flaky")) == 3
    assert down_record["webhook_status"] == "failed"
    # which URL failed, not what answered there (a port oracle); the server's own URL is named, not shown
    assert down_record["webhook_error"] == f"{receiver.url('/down')}: not delivered (3 attempts)"
    assert len(receiver.posts("/down")) == 3  # LANP_WEBHOOK_ATTEMPTS
    sent_at = [float(post["headers"]["X-LANP-Timestamp"]) for post in receiver.posts("/down")]
    assert sent_at[2] - sent_at[0] >= 2  # backoff 1 s then 2 s (timestamps have 1 s resolution)


def test_ended_jobs_expire_with_their_files(api_server: LiveServer, clip: bytes) -> None:
    work = Path(api_server.env["LANP_WORK_DIR"])
    with api_server.client() as client:
        job = upload(client, "/jobs", clip, "expiring.mp4").json()
        assert wait_for_job(client, job["id"])["status"] == "completed"
        assert client.get(f"/jobs/{job['id']}/result").status_code == 200
        assert (work / "jobs" / job["id"]).is_dir()
        gone = wait_for(lambda: (r := client.get(f"/jobs/{job['id']}")).status_code == 404 and r, timeout_s=40)
    assert gone.json()["kind"] == "not_found" and "expired" in gone.json()["detail"]
    assert not (work / "jobs" / job["id"]).exists()
    assert list((work / "jobs" / "inputs").iterdir()) == [] or wait_for(
        lambda: list((work / "jobs" / "inputs").iterdir()) == [], timeout_s=40
    )


def test_a_bad_callback_url_is_refused(api_server: LiveServer, clip: bytes) -> None:
    with httpx.Client(base_url=api_server.url, headers={"X-API-Key": "test-key"}) as client:
        response = upload(client, "/jobs", clip, callback_url="ftp://example.com/x")
    assert response.status_code == 422 and response.json()["kind"] == "invalid_argument"


def test_urls_are_shown_without_passwords_and_query_secrets() -> None:
    from lanp_vad.service.egress import public_url

    assert public_url("rtsp://admin:s3cret@10.0.0.7:554/live") == "rtsp://admin:***@10.0.0.7:554/live"
    assert public_url("http://127.0.0.1:8080/camera.ts") == "http://127.0.0.1:8080/camera.ts"
    assert public_url("https://hooks.example/in?token=abc&channel=2&apiKey=k") == \
        "https://hooks.example/in?token=***&channel=2&apiKey=***"
    assert public_url("rtsp://[::1]:99999/x") == "<an invalid URL>"
