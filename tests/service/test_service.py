"""The service for real: a uvicorn process (started as the container starts it) serving a small real model.

One server for the whole module (plus one restart); clips are real Ped2 footage or tiny PyAV-written videos.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from pipeline.scoring.result import segment_document
from pipeline.scoring.scorer import Scorer
from pipeline.scoring.segments import find_segments
from tests.service.conftest import API_KEY, LiveServer, still_running
from tests.videos import write_video

PED2_CLIP = "ucsd-ped2/videos/test/01.mp4"


def decoded_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def upload(client: httpx.Client, url: str, content: bytes, name: str = "clip.mp4", **params: Any) -> httpx.Response:
    return client.post(url, files={"file": (name, content, "video/mp4")}, params=params)


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get(f"/jobs/{job_id}").json()
        if status["status"] in ("completed", "failed", "canceled"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s: {status}")


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 2-second, 64x48 H.264 clip: cheap enough to score many times."""
    return write_video(tmp_path_factory.mktemp("clips") / "small.mp4", num_frames=20, fps=10).read_bytes()


@pytest.fixture(scope="module")
def ped2_result(server: LiveServer, shared_data: Path) -> dict[str, Any]:
    with server.client() as client:
        response = upload(client, "/score", (shared_data / PED2_CLIP).read_bytes(), "01.mp4", threshold=0.55)
    assert response.status_code == 200, response.text
    return response.json()


def test_ped2_clip_one_score_per_decoded_frame_same_as_the_scorer(
    ped2_result: dict[str, Any], shared_data: Path, tiny_model_dir: Path
) -> None:
    clip = shared_data / PED2_CLIP
    frames = decoded_frame_count(clip)
    assert ped2_result["num_frames"] == frames == len(ped2_result["frame_scores"]) == len(ped2_result["timestamps"])
    assert ped2_result["fps"] == pytest.approx(10.0)
    assert ped2_result["num_snippets"] == -(-frames // 16)  # the last partial snippet is padded, not dropped
    assert ped2_result["model"]["name"] == tiny_model_dir.name and len(ped2_result["model"]["sha256"]) == 64
    assert ped2_result["feature_spec"]["backbone"] == "efficientnet_lite0"
    direct = Scorer.from_model_dir(tiny_model_dir, device="cpu").score_video(clip, threshold=0.55)
    assert direct.to_dict() == {**ped2_result, "video": direct.video}


def test_segments_are_consistent_with_scores_and_threshold(server: LiveServer, ped2_result: dict[str, Any]) -> None:
    with server.client() as client:
        options = client.get("/models").json()["models"][0]["segments"]
    scores = np.asarray(ped2_result["frame_scores"])
    assert ped2_result["threshold"] == 0.55 and scores.min() < 0.55 < scores.max()  # override took effect
    stamps = np.asarray(ped2_result["timestamps"])
    expected = find_segments(scores, ped2_result["fps"], 0.55, timestamps_s=stamps, **options)
    assert ped2_result["segments"] == [segment_document(index, s) for index, s in enumerate(expected, 1)]
    for segment in ped2_result["segments"]:
        inside = scores[segment["start_frame"] : segment["end_frame"]]
        assert segment["peak"] == pytest.approx(inside.max()) and segment["peak"] > 0.55
        assert segment["start_s"] == pytest.approx(ped2_result["timestamps"][segment["start_frame"]])


def test_api_key_is_required(server: LiveServer, small_clip: bytes) -> None:
    with server.client(key=None) as client:
        response = upload(client, "/score", small_clip)
        assert response.status_code == 401 and "X-API-Key" in response.json()["detail"]
        assert client.get("/jobs/whatever").status_code == 401
        assert client.get("/healthz").status_code == 200  # probes stay open for orchestrators
    with server.client(key="wrong") as client:
        assert client.get("/models").status_code == 401


def test_too_large_uploads_are_refused_before_and_during_the_upload(server: LiveServer) -> None:
    big = b"\x00\x00\x00\x18ftypmp42" + bytes(3 * 2**20)
    with server.client() as client:
        declared = upload(client, "/score", big)
        assert declared.status_code == 413 and "upload limit of 2.0 MiB" in declared.json()["detail"]

        def chunks() -> Any:  # no Content-Length: the limit must hold while streaming
            boundary = b"--b0undary"
            yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
            for offset in range(0, len(big), 256 * 1024):
                yield big[offset : offset + 256 * 1024]
            yield b"\r\n" + boundary + b"--\r\n"

        streamed = client.post(
            "/score", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
        )
        assert streamed.status_code == 413 and streamed.json()["kind"] == "too_large"


def test_non_videos_are_refused_with_415(server: LiveServer) -> None:
    with server.client() as client:
        text = upload(client, "/score", b"name,label\nvideo,1\n" * 300, "list.csv")
        assert text.status_code == 415 and "'list.csv' is not a video" in text.json()["detail"]
        raw = client.post("/score", content=b"abc", headers={"Content-Type": "application/octet-stream"})
        assert raw.status_code == 415 and "multipart/form-data" in raw.json()["detail"]


def test_undecodable_video_is_422_with_the_reason(server: LiveServer, shared_data: Path) -> None:
    header = (shared_data / PED2_CLIP).read_bytes()[:6000]
    with server.client() as client:
        truncated = upload(client, "/score", header + bytes(4000), "cut.mp4")
        assert truncated.status_code == 422, truncated.text
        body = truncated.json()
        assert body["kind"].startswith("video_") and "cannot be scored" in body["detail"]
        empty = upload(client, "/score", b"", "empty.mp4")
        assert empty.status_code == 422 and "empty" in empty.json()["detail"]


def test_concurrent_uploads_succeed_or_get_503_never_500(server: LiveServer, small_clip: bytes) -> None:
    def post(_: int) -> httpx.Response:
        with server.client() as client:
            return upload(client, "/score", small_clip)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    for response in responses:
        if response.status_code == 503:
            assert response.headers["Retry-After"] == "7" and response.json()["kind"] == "queue_full"
        else:
            assert response.json()["num_frames"] == 20
    assert 503 in statuses  # queue size 2 with 8 clients: some must have been turned away


def test_server_side_paths_only_under_the_data_root(server: LiveServer) -> None:
    with server.client() as client:
        for path in ("../../etc/passwd", "/etc/passwd", "escape.mp4"):
            response = client.post("/jobs", json={"path": path})
            assert response.status_code == 403, (path, response.text)
            assert "outside the allowed data root" in response.json()["detail"]
        assert client.post("/jobs", json={"path": "missing.mp4"}).status_code == 404
        accepted = client.post("/jobs", json={"path": "clip.mp4", "threshold": 0.5})
        assert accepted.status_code == 202 and accepted.headers["Location"] == f"/jobs/{accepted.json()['id']}"
        assert wait_for_job(client, accepted.json()["id"])["status"] == "completed"


def test_job_result_csv_plot_and_cancel(server: LiveServer, small_clip: bytes, shared_data: Path) -> None:
    with server.client() as client:
        submitted = upload(client, "/jobs", small_clip, "small.mp4")
        assert submitted.status_code == 202
        job_id = submitted.json()["id"]
        finished = wait_for_job(client, job_id)
        assert finished["status"] == "completed" and finished["progress"] == 1.0
        result = client.get(f"/jobs/{job_id}/result").json()
        csv_rows = client.get(f"/jobs/{job_id}/result", params={"format": "csv"}).text.strip().splitlines()
        assert csv_rows[0] == "frame,time_s,snippet,score,in_segment" and len(csv_rows) == 1 + result["num_frames"]
        assert [float(row.split(",")[3]) for row in csv_rows[1:]] == result["frame_scores"]
        plot = client.get(f"/jobs/{job_id}/plot.png")
        assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")

        long_job = upload(client, "/jobs", (shared_data / PED2_CLIP).read_bytes(), "01.mp4").json()
        canceled = client.delete(f"/jobs/{long_job['id']}")
        assert canceled.status_code == 202
        assert wait_for_job(client, long_job["id"])["status"] == "canceled"
        assert client.get(f"/jobs/{long_job['id']}/result").status_code == 409
        assert client.delete(f"/jobs/{long_job['id']}").status_code == 409
        assert client.get("/jobs/not-a-job").status_code == 404


def test_metrics_count_videos_and_errors(server: LiveServer) -> None:
    with server.client() as client:
        text = client.get("/metrics").text
    assert "lanp_request_seconds_bucket" in text and "lanp_queue_depth" in text
    scored = next(line for line in text.splitlines() if line.startswith("lanp_videos_scored_total"))
    assert float(scored.split()[-1]) >= 1
    assert 'lanp_errors_total{kind="not_a_video"}' in text


def test_jobs_survive_a_server_restart_and_no_temp_file_is_left(server: LiveServer, small_clip: bytes) -> None:
    with server.client() as client:
        done = upload(client, "/jobs", small_clip, "before.mp4").json()
        assert wait_for_job(client, done["id"])["status"] == "completed"
        done_result = client.get(f"/jobs/{done['id']}/result").json()
        interrupted = upload(client, "/jobs", small_clip, "interrupted.mp4").json()
    children = server.descendants()
    assert children, "the isolated decode and probe processes should be running"
    server.stop(kill=True)  # dies with a job pending or running
    assert not still_running(children), "processes of a killed server must not outlive it"
    server.start()
    with server.client() as client:
        assert client.get(f"/jobs/{done['id']}").json()["status"] == "completed"
        assert client.get(f"/jobs/{done['id']}/result").json() == done_result
        assert wait_for_job(client, interrupted["id"])["status"] == "completed"  # re-queued, then run
    work = Path(server.env["LANP_WORK_DIR"])
    assert list((work / "uploads").iterdir()) == []
    assert list((work / "jobs" / "inputs").iterdir()) == []


def test_fuzzed_requests_never_get_a_500(server: LiveServer) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=60)
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}")

        check()
    assert not failures, failures[:5]
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code == 200


def test_error_bodies_are_json_with_a_kind(server: LiveServer) -> None:
    with server.client() as client:
        bad = client.post("/score", params={"threshold": 3}, files={"file": ("a.mp4", io.BytesIO(b"x"))})
    assert bad.status_code == 422 and bad.json()["kind"] == "invalid_request" and "threshold" in bad.json()["detail"]


def test_a_stopped_server_leaves_no_process_behind(server: LiveServer, small_clip: bytes) -> None:
    """Last in the module: it stops the shared server (SIGTERM, as an orchestrator does)."""
    with server.client() as client:
        assert upload(client, "/score", small_clip).status_code == 200
    children = server.descendants()
    assert children, "the isolated decode and probe processes should be running"
    server.stop()
    assert "Application shutdown complete" in server.log_path.read_text()[-2000:]  # the lifespan ran to its end
    assert not still_running(children)
