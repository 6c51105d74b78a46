"""The service for real: a uvicorn process (started as the container starts it) serving a small real model.

One server for the whole module (plus one restart); every clip is written here with PyAV (no ../shared needed).
"""

from __future__ import annotations

import io
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from lanp_vad.pipeline.scoring.result import VideoScore, numbered
from lanp_vad.pipeline.scoring.scorer import Scorer
from lanp_vad.pipeline.scoring.segments import find_segments
from tests.service import raw_http
from tests.service.conftest import API_KEY, LiveServer, still_running, wait_for
from tests.videos import write_video

VIDEO_KINDS = {"empty", "not_video", "no_video_stream", "unsupported_codec", "corrupt", "too_large", "timeout"}


def decoded_frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """``response`` is RFC 9457 problem details with ``status`` and ``kind``; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert body["status"] == status and body["kind"] == kind and body["type"] == f"urn:lanp:problem:{kind}"
    assert body["title"] and body["detail"]
    return body


def metric(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (any labels) in a Prometheus text page."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


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
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="module")
def slow_clip(clips: Path) -> Path:
    """9000 tiny frames at 1000 fps: within every /score limit of the test server, but seconds of work."""
    return write_video(clips / "slow.avi", codec="mpeg4", num_frames=9000, fps=1000)


@pytest.fixture(scope="module")
def medium_clip(clips: Path) -> Path:
    """180 frames (12 snippets, the last one partial) of 96x72 H.264 at 10 fps: a few snippet batches."""
    return write_video(clips / "medium.mp4", num_frames=180, width=96, height=72, fps=10)


@pytest.fixture(scope="module")
def medium_result(server: LiveServer, medium_clip: Path) -> dict[str, Any]:
    with server.client() as client:
        response = upload(client, "/score", medium_clip.read_bytes(), "medium.mp4", threshold=0.5)
    assert response.status_code == 200, response.text
    return response.json()


def test_one_score_per_decoded_frame_same_as_the_scorer(
    medium_result: dict[str, Any], medium_clip: Path, tiny_model_dir: Path
) -> None:
    frames = decoded_frame_count(medium_clip)
    assert medium_result["num_frames"] == frames == len(medium_result["frame_scores"])
    assert frames == len(medium_result["timestamps"])
    assert medium_result["fps"] == pytest.approx(10.0)
    assert medium_result["num_snippets"] == -(-frames // 16)  # the last partial snippet is padded, not dropped
    assert medium_result["model"]["name"] == tiny_model_dir.name and len(medium_result["model"]["sha256"]) == 64
    assert medium_result["feature_spec"]["backbone"] == "efficientnet_lite0"
    with Scorer.from_model_dir(tiny_model_dir, device="cpu", runtime="torch") as scorer:  # the server's runtime
        direct = scorer.score_video(medium_clip, threshold=0.5)
    assert direct.model_dump(mode="json") == {**medium_result, "video": direct.video}
    assert VideoScore.model_validate(medium_result).model_dump() == medium_result  # the declared schema is exact


def test_segments_are_the_pipelines_for_the_requested_threshold(
    server: LiveServer, medium_result: dict[str, Any]
) -> None:
    with server.client() as client:
        options = client.get("/models").json()["models"][0]["segments"]
    scores = np.asarray(medium_result["frame_scores"])
    stamps = np.asarray(medium_result["timestamps"])
    expected = find_segments(scores, medium_result["fps"], 0.5, timestamps_s=stamps, **options)
    assert medium_result["threshold"] == 0.5
    assert medium_result["segments"] == [segment.model_dump() for segment in numbered(expected)]


def test_event_rules_are_request_options_of_score_and_jobs(
    server: LiveServer, medium_clip: Path, medium_result: dict[str, Any]
) -> None:
    """``smooth`` / ``min_duration`` / ``merge_gap`` on POST /score and POST /jobs give the events that the same
    ScoringConfig gives offline (resegment), and a job records what it overrode."""
    from lanp_vad.pipeline.scoring.config import ScoringConfig
    from lanp_vad.pipeline.scoring.result import resegment

    scores = np.asarray(medium_result["frame_scores"])
    threshold = float(np.median(scores))
    options = {"smooth": 0, "min_duration": 0.2, "merge_gap": 0}
    config = ScoringConfig(threshold=threshold, smooth_s=0, min_duration_s=0.2, merge_gap_s=0)
    expected = resegment(medium_result, config)
    with server.client() as client:
        scored = upload(client, "/score", medium_clip.read_bytes(), "medium.mp4", threshold=threshold, **options)
        assert scored.status_code == 200, scored.text
        job = upload(client, "/jobs", medium_clip.read_bytes(), "medium.mp4", threshold=threshold, **options).json()
        assert job["event_options"] == {"smooth_s": 0, "min_duration_s": 0.2, "merge_gap_s": 0}
        assert wait_for_job(client, job["id"])["status"] == "completed"
        stored = client.get(f"/jobs/{job['id']}/result").json()
        refused = upload(client, "/score", medium_clip.read_bytes(), "medium.mp4", merge_gap=-1)
    assert scored.json()["segments"] == stored["segments"] == expected["segments"]
    assert scored.json()["segment_config"] == stored["segment_config"] == config.segments.model_dump()
    assert refused.status_code == 422 and refused.json()["kind"] == "invalid_argument"


def test_api_key_is_required(server: LiveServer, small_clip: bytes) -> None:
    with server.client(key=None) as client:
        response = upload(client, "/score", small_clip)
        assert response.status_code == 401 and "X-API-Key" in response.json()["detail"]
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "X-API-Key"  # not Basic: a page's fetch() is not prompted
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


def test_undecodable_video_is_422_with_the_reason_and_no_server_path(server: LiveServer, medium_clip: Path) -> None:
    header = medium_clip.read_bytes()[:3000]
    work = server.env["LANP_WORK_DIR"]
    with server.client() as client:
        truncated = upload(client, "/score", header + bytes(4000), "cut.mp4")
        assert truncated.status_code == 422, truncated.text
        body = truncated.json()
        assert body["kind"] in VIDEO_KINDS and "cannot be scored" in body["detail"] and "'cut.mp4'" in body["detail"]
        assert work not in truncated.text and ".upload" not in truncated.text  # defect 10: no server paths
        empty = upload(client, "/score", b"", "empty.mp4")
        assert empty.status_code == 422 and empty.json()["kind"] == "empty"
        job = upload(client, "/jobs", header + bytes(4000), "cut.mp4").json()
        failed = wait_for_job(client, job["id"])
        assert failed["status"] == "failed" and failed["error_kind"] in VIDEO_KINDS, failed
        assert work not in failed["error"] and ".upload" not in failed["error"] and "'cut.mp4'" in failed["error"]


def test_the_upload_must_be_in_the_field_named_file(server: LiveServer, small_clip: bytes) -> None:
    with server.client() as client:
        response = client.post("/score", files={"video": ("clip.mp4", small_clip, "video/mp4")})
    assert response.status_code == 422 and response.json()["kind"] == "invalid_argument"
    assert "'file'" in response.json()["detail"] and "'video'" in response.json()["detail"]


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
        nul = assert_problem(client.post("/jobs", json={"path": "clip\u0000.mp4"}), 400, "bad_request")
        assert "NUL" in nul["detail"]  # and documented: schemathesis found it undocumented in the OpenAPI
        schema = client.get("/openapi.json").json()
        assert "400" in schema["paths"]["/jobs"]["post"]["responses"]
        accepted = client.post("/jobs", json={"path": "clip.mp4", "threshold": 0.5})
        assert accepted.status_code == 202 and accepted.headers["Location"] == f"/jobs/{accepted.json()['id']}"
        assert wait_for_job(client, accepted.json()["id"])["status"] == "completed"


def test_job_result_csv_plot_and_cancel(server: LiveServer, small_clip: bytes, medium_clip: Path) -> None:
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

        long_job = upload(client, "/jobs", medium_clip.read_bytes(), "medium.mp4").json()
        canceled = client.delete(f"/jobs/{long_job['id']}")
        assert canceled.status_code == 202
        assert wait_for_job(client, long_job["id"])["status"] == "canceled"
        assert client.get(f"/jobs/{long_job['id']}/result").status_code == 409
        assert client.delete(f"/jobs/{long_job['id']}").status_code == 409
        missing = client.get("/jobs/not-a-job")
        assert missing.status_code == 404 and missing.json()["kind"] == "not_found"


def test_metrics_count_videos_and_errors(server: LiveServer) -> None:
    with server.client() as client:
        text = client.get("/metrics").text
    assert "lanp_request_seconds_bucket" in text and "lanp_queue_depth" in text
    scored = next(line for line in text.splitlines() if line.startswith("lanp_videos_scored_total"))
    assert float(scored.split()[-1]) >= 1
    assert 'lanp_errors_total{kind="not_video"}' in text


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
        completed = client.get("/jobs", params={"status": "completed", "limit": 500}).json()["total"]
    work = Path(server.env["LANP_WORK_DIR"])
    assert list((work / "uploads").iterdir()) == []
    assert len(list((work / "jobs" / "inputs").iterdir())) <= completed  # only completed jobs keep their video


def test_fuzzed_requests_never_get_a_500_and_match_the_typed_schema(server: LiveServer) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    headers = {"X-API-Key": API_KEY}
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", headers=headers)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=server.url, headers=headers, timeout=60)
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}")
            try:
                case.validate_response(
                    response,
                    checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
                )
            except Exception as error:  # schemathesis reports every failed check in one exception
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {error}")

        check()
    assert not failures, failures[:5]
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").status_code == 200


def test_error_bodies_are_json_with_a_kind(server: LiveServer) -> None:
    with server.client() as client:
        bad = client.post("/score", params={"threshold": 3}, files={"file": ("a.mp4", io.BytesIO(b"x"))})
    assert bad.status_code == 422 and bad.json()["kind"] == "invalid_argument" and "threshold" in bad.json()["detail"]


def test_every_error_is_problem_details(server: LiveServer, small_clip: bytes) -> None:
    with server.client(key=None) as anonymous:
        assert_problem(anonymous.get("/models"), 401, "unauthorized")
    with server.client() as client:
        assert_problem(client.get("/no/such/route"), 404, "not_found")
        assert_problem(client.get("/jobs/not-a-job"), 404, "not_found")
        wrong_method = assert_problem(client.put("/score"), 405, "method_not_allowed")
        assert "Method Not Allowed" in wrong_method["detail"]
        assert_problem(upload(client, "/score", b"\x00\x00\x00\x18ftypmp42" + bytes(3 * 2**20)), 413, "too_large")
        assert_problem(upload(client, "/score", b"just text, no video" * 300, "a.mp4"), 415, "not_video")
        assert_problem(client.post("/score", content=b"x", headers={"Content-Type": "text/plain"}), 415,
                       "unsupported_media_type")
        assert_problem(client.get("/jobs", params={"limit": 0}), 422, "invalid_argument")
        done = upload(client, "/jobs", small_clip).json()
        assert wait_for_job(client, done["id"])["status"] == "completed"
        conflict = assert_problem(client.delete(f"/jobs/{done['id']}"), 409, "conflict")
        assert conflict["status_of_job"] == "completed"


def test_sync_scoring_limits_name_the_limit(server: LiveServer, clips: Path) -> None:
    """Defect 1: /score counts work (frames, pixels x frames), not only seconds, and says which limit it hit."""
    many_frames = write_video(clips / "many.avi", codec="mpeg4", num_frames=10100, fps=1000)  # 10.1 s, 632 snippets
    big_frames = write_video(clips / "big.mp4", num_frames=200, width=640, height=480, fps=100)  # 61 Mpx-frames
    long_clip = write_video(clips / "long.mp4", num_frames=40, fps=1)  # 40 s
    with server.client() as client:
        for clip, limit in ((many_frames, "max_sync_frames"), (big_frames, "max_sync_megapixel_frames"),
                            (long_clip, "max_sync_seconds")):
            body = assert_problem(upload(client, "/score", clip.read_bytes(), clip.name), 413, "too_large")
            assert body["limit"] == limit and f"LANP_{limit.upper()}" in body["detail"]
            assert "POST /jobs" in body["detail"]


def test_docs_are_offline_and_behind_the_api_key(server: LiveServer) -> None:
    """Defect 9 and issue 14: /docs, /redoc and /openapi.json need the key; their assets are served locally."""
    with server.client(key=None) as anonymous:
        for path in ("/docs", "/redoc", "/openapi.json"):
            refused = assert_problem(anonymous.get(path), 401, "unauthorized")
            assert refused and anonymous.get(path).headers["www-authenticate"].startswith("Basic")
    with httpx.Client(base_url=server.url, auth=("anyone", API_KEY)) as browser:  # a browser's login prompt
        for path in ("/docs", "/redoc"):
            page = browser.get(path)
            assert page.status_code == 200 and "cdn" not in page.text.lower()
            assets = [src for src in page.text.split('"') if src.startswith("/docs-assets/")]
            assert assets and all(browser.get(asset).status_code == 200 for asset in assets)
        schema = browser.get("/openapi.json").json()
    score_ok = schema["paths"]["/score"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert score_ok == {"$ref": "#/components/schemas/VideoScore"}
    result_ok = schema["paths"]["/jobs/{job_id}/result"]["get"]["responses"]["200"]["content"]["application/json"]
    assert result_ok["schema"] == score_ok
    assert "application/problem+json" in schema["paths"]["/score"]["post"]["responses"]["422"]["content"]


def test_an_abandoned_score_request_frees_the_worker_and_is_no_error(
    server: LiveServer, slow_clip: Path, small_clip: bytes
) -> None:
    """Defects 1 and 5: a client that hangs up cancels its scoring at the next snippet batch; it is logged and
    counted as a disconnect (499), not as a 500."""
    device_s = "lanp_device_seconds_total"
    with server.client() as client:
        before = client.get("/metrics").text
        abandoned = raw_http.send_upload(server.port, "/score", slow_clip.read_bytes(), api_key=API_KEY)
        # uploaded, probed and being scored (its first snippet batch took a turn on the device), however loaded
        wait_for(lambda: metric(client.get("/metrics").text, device_s) > metric(before, device_s), 60,
                 what="the abandoned request's scoring")
        abandoned.close()
        started = time.monotonic()
        assert upload(client, "/score", small_clip).status_code == 200
        next_clip_s = time.monotonic() - started
        after = wait_for(lambda: (lambda text: text if metric(text, "lanp_client_disconnects_total")
                                  > metric(before, "lanp_client_disconnects_total") else None)(
            client.get("/metrics").text), 30, what="the disconnect to be counted")
    assert metric(after, "lanp_client_disconnects_total") - metric(before, "lanp_client_disconnects_total") == 1
    assert 'stage="scoring"' in after
    assert metric(after, "lanp_videos_scored_total") - metric(before, "lanp_videos_scored_total") == 1  # not 2
    assert not [line for line in after.splitlines() if 'status="500"' in line or 'kind="internal"' in line]
    assert next_clip_s < 20, f"the next clip waited {next_clip_s:.1f} s behind an abandoned one"


def test_a_client_gone_mid_upload_leaves_nothing_and_is_no_error(server: LiveServer, slow_clip: Path) -> None:
    with server.client() as client:
        before = client.get("/metrics").text
        gone = raw_http.send_upload(server.port, "/score", slow_clip.read_bytes(), api_key=API_KEY,
                                    sent_fraction=0.5)
        time.sleep(0.5)
        gone.close()
        time.sleep(1.0)
        after = client.get("/metrics").text
    assert metric(after, "lanp_client_disconnects_total") - metric(before, "lanp_client_disconnects_total") == 1
    assert 'stage="upload"' in after and 'status="500"' not in after
    assert list((Path(server.env["LANP_WORK_DIR"]) / "uploads").iterdir()) == []


def test_slow_clients_are_cut_off(server: LiveServer, small_clip: bytes) -> None:
    """Defect 7: headers that never end are cut off after LANP_HEADER_TIMEOUT_S, a stalled body gets 408."""
    loris = raw_http.partial_headers(server.port)
    closed_after = raw_http.closed_by_server(loris, within_s=10)
    assert closed_after is not None and closed_after < 6, closed_after
    stalled = raw_http.send_upload(server.port, "/score", small_clip, api_key=API_KEY, sent_fraction=0.5)
    started = time.monotonic()
    assert raw_http.read_status(stalled) == 408
    assert time.monotonic() - started < 6
    stalled.close()


def test_upload_concurrency_and_bytes_in_flight_are_bounded(server: LiveServer) -> None:
    """Defect 7: beyond LANP_MAX_UPLOADS_IN_FLIGHT_MB bytes of uploads, or LANP_MAX_CONCURRENT_UPLOADS uploads being
    received at once, 503 + Retry-After naming the limit; the server keeps answering."""
    blob = b"\x00\x00\x00\x18ftypmp42" + bytes(int(1.8 * 2**20))
    with server.client() as client:
        held = raw_http.send_upload(server.port, "/score", blob, api_key=API_KEY, sent_fraction=0.95)
        time.sleep(0.3)
        over_budget = assert_problem(upload(client, "/score", blob), 503, "queue_full")  # 1.7 + 1.8 MiB > 3 MiB
        assert over_budget["limit"] == "max_uploads_in_flight_mb"
        held.close()
        both = [raw_http.send_upload(server.port, "/score", blob, api_key=API_KEY, sent_fraction=0.3)
                for _ in range(2)]
        time.sleep(0.3)
        third = upload(client, "/score", b"\x00\x00\x00\x18ftypmp42" + bytes(1000))
        assert assert_problem(third, 503, "queue_full")["limit"] == "max_concurrent_uploads"
        assert third.headers["Retry-After"] == "7" and client.get("/healthz").status_code == 200
        for connection in both:
            connection.close()


def test_a_crashed_decode_worker_is_our_500_not_the_videos_422(server: LiveServer, slow_clip: Path,
                                                                small_clip: bytes) -> None:
    """Issue 9: a decode worker's own crash is ``worker_crashed`` (500), and the next video is scored again."""
    import os

    with server.client() as client:
        job = upload(client, "/jobs", slow_clip.read_bytes(), "slow.avi").json()
        deadline = time.monotonic() + 60
        while client.get(f"/jobs/{job['id']}").json()["progress"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in server.descendants():  # the decode (and probe) processes die under it
            os.kill(pid, signal.SIGKILL)
        failed = wait_for_job(client, job["id"])
        assert failed["status"] == "failed" and failed["error_kind"] == "worker_crashed", failed
        assert upload(client, "/score", small_clip).status_code == 200  # replaced, serving on
        text = client.get("/metrics").text
    assert 'lanp_errors_total{kind="worker_crashed"}' in text


def test_sigterm_cancels_a_request_in_flight_and_exits_in_bounded_time(
    server: LiveServer, small_clip: bytes, slow_clip: Path
) -> None:
    """Last in the module: it stops the shared server. Defect 1: SIGTERM while a long /score runs gives it
    LANP_SHUTDOWN_GRACE_S (2 s here), then cancels it and exits; no process is left behind."""
    with server.client() as client:
        assert upload(client, "/score", small_clip).status_code == 200
    children = server.descendants()
    assert children, "the isolated decode and probe processes should be running"
    in_flight = raw_http.send_upload(server.port, "/score", slow_clip.read_bytes(), api_key=API_KEY)
    time.sleep(2.0)  # being scored
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(60)
    exit_s = time.monotonic() - started
    in_flight.close()
    assert exit_s < 2 + 8, f"SIGTERM took {exit_s:.1f} s"
    assert "Application shutdown complete" in server.log_path.read_text()[-3000:]  # the lifespan ran to its end
    assert not still_running(children)
