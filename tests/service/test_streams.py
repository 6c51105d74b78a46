"""Live streams in the real server: POST /streams on a clip played over HTTP by a source process, the records as
Server-Sent Events (and resumed with Last-Event-ID), the concurrent-stream limit, the scheme allow-list and the
data root, DELETE ending the stream cleanly; streams sharing the device with a job and an upload; stream events
sent to a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import LiveServer, wait_for
from tests.service.test_api import Receiver
from tests.videos import write_video


@pytest.fixture(scope="module")
def stream_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("streams-work")
    (work / "root").mkdir()
    live = LiveServer({"LANP_MODEL_DIR": str(tiny_model_dir), "LANP_DEVICE": "cpu", "LANP_WORK_DIR": str(work),
                       "LANP_DATA_ROOT": str(work / "root"), "LANP_API_KEY": "k", "LANP_MAX_STREAMS": "1",
                       "LANP_STREAM_SCHEMES": '["http"]', "LANP_ALLOWED_NETWORKS": '["127.0.0.1/32"]',
                       "LANP_RUNTIME": "torch"}, work / "server.log")
    live.start()
    yield live
    live.stop()


def _events(response: httpx.Response) -> Iterator[tuple[int, str, dict]]:
    """(id, event, data) of each Server-Sent Event of the response, comments skipped."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if fields:
                yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}
            continue
        name, _, value = line.partition(": ")
        fields[name] = value


@pytest.mark.timeout(300)
def test_stream_lifecycle(stream_server: LiveServer, camera: str) -> None:
    headers = {"X-API-Key": "k"}
    with httpx.Client(base_url=stream_server.url, headers=headers, timeout=120) as client:
        assert httpx.post(f"{stream_server.url}/streams", json={"url": camera}).status_code == 401
        created = client.post("/streams", json={"url": camera})
        assert created.status_code == 201, created.text
        stream = created.json()["id"]
        refused = client.post("/streams", json={"url": camera})
        assert refused.status_code == 429 and refused.json()["kind"] == "too_many_streams"
        forbidden = client.post("/streams", json={"url": "rtsp://127.0.0.1/x"})
        assert forbidden.status_code == 403 and "LANP_STREAM_SCHEMES" in forbidden.json()["detail"]
        assert client.post("/streams", json={"url": "/etc/hostname"}).status_code == 403
        bad = client.post("/streams", json={"url": "\u0000"})  # schemathesis found this one as a 500
        assert bad.status_code == 400 and bad.json()["kind"] == "bad_request"

        seen: list[tuple[int, str, dict]] = []
        with client.stream("GET", f"/streams/{stream}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for event in _events(response):
                seen.append(event)
                if sum(kind == "snippet" for _, kind, _ in seen) >= 3:
                    break
        kinds = [kind for _, kind, _ in seen]
        assert kinds[:2] == ["start", "connected"] and "snippet" in kinds
        scores = [data["score"] for _, kind, data in seen if kind == "snippet"]
        assert all(0.0 <= score <= 1.0 for score in scores)
        assert [data["snippet"] for _, kind, data in seen if kind == "snippet"][:3] == [0, 1, 2]

        with client.stream("GET", f"/streams/{stream}/events", headers={"Last-Event-ID": str(seen[1][0])}) as resumed:
            first = next(_events(resumed))
        assert first[0] == seen[2][0] and first[1:] == seen[2][1:]

        listed = client.get("/streams").json()["streams"]
        assert [s["id"] for s in listed] == [stream] and listed[0]["status"] == "live"
        assert client.get(f"/streams/{stream}").json()["snippets_scored"] >= 3

        stopped = client.delete(f"/streams/{stream}")
        assert stopped.status_code == 200 and stopped.json()["running"] is False
        assert stopped.json()["status"] == "stopped"
        with client.stream("GET", f"/streams/{stream}/events", headers={"Last-Event-ID": str(seen[-1][0])}) as rest:
            tail = list(_events(rest))  # ends by itself: the stream is over
        assert tail[-1][1] == "stopped" and "disconnected" in [kind for _, kind, _ in tail]
        assert client.get("/streams/nope").status_code == 404
        again = client.post("/streams", json={"url": camera})  # the limit counts running streams only
        assert again.status_code == 201
        client.delete(f"/streams/{again.json()['id']}")


def _metric(text: str, name: str, **labels: str) -> float:
    """One sample of the Prometheus text (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == (f"{name}{{{wanted}}}" if wanted else name):
            return float(value)
    return 0.0


@pytest.mark.timeout(300)
def test_a_stream_an_upload_and_a_long_job_share_the_device(stream_server: LiveServer, camera: str,
                                                            tmp_path: Path) -> None:
    """While a stream plays, a long job and a synchronous upload both complete, the stream keeps scoring during
    the job (its snippets wait about one batch, not the job), and every forward pass went through the scheduler."""
    root = Path(stream_server.env["LANP_DATA_ROOT"])
    write_video(root / "long.avi", codec="mpeg4", num_frames=16000, fps=25)  # 1000 snippets: 4 s on a quiet machine
    upload = write_video(tmp_path / "upload.mp4", num_frames=80, width=160, height=120, fps=25)
    with httpx.Client(base_url=stream_server.url, headers={"X-API-Key": "k"}, timeout=120) as client:
        stream = client.post("/streams", json={"url": camera}).json()["id"]
        wait_for(lambda: client.get(f"/streams/{stream}").json()["snippets_scored"] >= 2, 60, what="the stream")
        job = client.post("/jobs", json={"path": "long.avi"}).json()["id"]
        with upload.open("rb") as handle:
            scored = client.post("/score", files={"file": ("upload.mp4", handle, "video/mp4")})
        assert scored.status_code == 200 and scored.json()["num_frames"] == 80
        done = wait_for(lambda: (lambda j: j if j["status"] in ("completed", "failed") else None)(
            client.get(f"/jobs/{job}").json()), 240, what="the job")
        assert done["status"] == "completed", done
        records = []
        with client.stream("GET", f"/streams/{stream}/events") as response:
            for _, kind, data in _events(response):
                records.append((kind, data))
                if kind == "snippet" and data["wall_time"] > done["finished_at"] + 1.5:
                    break
        client.delete(f"/streams/{stream}")
        metrics = client.get("/metrics").text
    during = [data for kind, data in records if kind in ("snippet", "dropped")
              and done["started_at"] < data["wall_time"] < done["finished_at"]]
    job_s = done["finished_at"] - done["started_at"]
    latencies = [data["latency_s"] for data in during if "latency_s" in data]
    # the stream went on during the job (at half its real-time pace at least: the machine may be loaded)
    assert job_s > 2.5 and len(during) >= max(3, 0.5 * job_s / (16 / 25) - 1), (job_s, len(during))
    assert latencies and max(latencies) < 0.6 * job_s, (job_s, latencies)  # a snippet waits a batch, not the job
    for group in ("requests", "streams"):
        assert _metric(metrics, "lanp_device_seconds_total", group=group) > 0, group
    waits = _metric(metrics, "lanp_device_wait_seconds_count", group="streams")
    assert waits > 0 and _metric(metrics, "lanp_device_wait_seconds_bucket", group="streams", le="5.0") == waits


@pytest.mark.timeout(300)
def test_stream_events_go_to_the_webhooks_signed_and_in_order(stream_server: LiveServer, camera: str) -> None:
    receiver = Receiver()
    receiver.failures["/camera"] = 1  # the first notice is retried
    try:
        with httpx.Client(base_url=stream_server.url, headers={"X-API-Key": "k"}, timeout=120) as client:
            assert client.post("/streams", json={"url": camera, "threshold": 1.5}).status_code == 422
            created = client.post("/streams", json={"url": camera, "threshold": 0.0,  # every snippet is above it
                                                    "callback_url": receiver.url("/camera")})
            assert created.status_code == 201, created.text
            stream = created.json()["id"]
            wait_for(lambda: any(json.loads(p["body"])["event"] == "stream.event_start"
                                 for p in receiver.posts("/camera")), 60, what="the event_start notice")
            client.delete(f"/streams/{stream}")
            wait_for(lambda: any(json.loads(p["body"])["event"] == "stream.stopped"
                                 for p in receiver.posts("/camera")), 60, what="the stopped notice")
            summary = client.get(f"/streams/{stream}").json()
    finally:
        receiver.http.shutdown()
    posts = receiver.posts("/camera")
    events = [json.loads(post["body"])["event"] for post in posts]
    assert events == ["stream.event_start", "stream.event_start", "stream.event_end", "stream.stopped"]  # 1 retry
    key = (Path(stream_server.env["LANP_WORK_DIR"]) / "webhook.key").read_bytes().strip()
    assert key != b"k"  # never the API key: every client holds that one
    for post in posts:
        timestamp = post["headers"]["X-LANP-Timestamp"]
        expected = hmac.new(key, timestamp.encode() + b"." + post["body"], hashlib.sha256).hexdigest()
        assert post["headers"]["X-LANP-Signature"] == f"sha256={expected}"  # the server's own random key
    notices = [json.loads(post["body"]) for post in posts]
    assert {notice["stream"]["id"] for notice in notices} == {stream}
    assert notices[0]["stream"]["url"] == camera and notices[0]["record"]["start_frame"] == 0
    end = notices[2]["record"]
    assert end["end_frame"] > end["start_frame"] == 0 and end["thumbnail"]["jpeg_base64"]
    assert notices[3]["record"]["snippets_scored"] >= 1
    assert summary["webhooks"] == {"delivered": 3, "failed": 0, "last_error": None}
