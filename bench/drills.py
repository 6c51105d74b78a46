"""Hostile-client drills against a real server (``lanp serve`` as the container starts it, on 127.0.0.1).

Each drill sends what a careless or hostile client sends and compares the answer with what a hardened service
must do; the table shows drill, sent, expected, observed and verdict. Beside each drill that matters for
capacity it reports the plain number: how long an abandoned request keeps the worker, SIGTERM-to-exit time, peak
RSS of the server's process tree for an 8K and a 1000-fps input, /score beside 32 idle event clients, how late a
job's callback hears of it beside a receiver that never answers. The baseline each drill is judged against is a
well-behaved client doing the same thing (e.g. the small clip scored on an idle server).

The surfaces: request bodies and origins; streams (URL size, request forgery through redirects and decimal IPs,
port oracles, retry budget, the stream limit under concurrency, stop latency, secrets, event clients, frames
that change size); webhooks (a silent receiver); evidence (concurrent cuts, the cache bound); the disk (a 48 MB
tmpfs work directory, when run as root); ``lanp evaluate`` on features of another dimension; a soak (mixed work
for ``--soak-minutes``, the main process's RSS sampled every 10 s, which must end within 10 % of its start).

    python bench/drills.py [--model DIR] [--json out.json] [--soak-minutes 30] [--soak-only]

Uses the tiny EfficientNet-Lite0 test model unless ``--model`` is given; the server runs with its defaults except
where a drill needs a small limit (listed in LIMITS). Every connection goes to 127.0.0.1 (127.0.0.2, also this
machine's loopback, plays an internal host). Timings are noisy on a shared machine: read them with the load
average the script prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service import raw_http  # noqa: E402  (after the path insert: run as a script)
from tests.service.conftest import (  # noqa: E402
    API_KEY,
    LiveServer,
    crowd_with_event_clients,
    descendant_pids,
    free_port,
    start_server,
    still_running,
    stream_records,
    wait_for,
)
from tests.service.raw_http import PacedFile  # noqa: E402
from tests.service.test_api import Receiver  # noqa: E402
from tests.videos import write_size_switch, write_video, write_video_then_audio  # noqa: E402

LIMITS = {
    "LANP_HEADER_TIMEOUT_S": "3",
    "LANP_BODY_TIMEOUT_S": "3",
    "LANP_MAX_CONCURRENT_UPLOADS": "4",
    "LANP_MAX_UPLOADS_IN_FLIGHT_MB": "64",
    "LANP_MAX_UPLOAD_MB": "32",
    "LANP_SHUTDOWN_GRACE_S": "5",
    "LANP_MAX_JOB_ATTEMPTS": "1",
    "LANP_MAX_STREAMS": "4",
    "LANP_STREAM_MAX_RECONNECTS": "2",
    "LANP_ALLOWED_NETWORKS": '["127.0.0.1/32"]',  # the drills' sources and receivers; 127.0.0.2 plays an internal host
    "LANP_WEBHOOK_ATTEMPTS": "2",
    "LANP_EVIDENCE_CACHE_MB": "0.25",
    "LANP_WEBHOOK_URL": "",  # set by main(): a receiver that accepts and never answers
}


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, drill: str, sent: str, expected: str, observed: str, ok: bool | None) -> None:
        """One row; ``ok`` None: the drill could not run here (SKIP)."""
        verdict = "SKIP" if ok is None else "PASS" if ok else "FAIL"
        self.rows.append({"drill": drill, "sent": sent, "expected": expected, "observed": observed,
                          "verdict": verdict})
        print(f"{verdict}  {drill}: {observed}", flush=True)

    def render(self) -> str:
        keys = ("drill", "sent", "expected", "observed", "verdict")
        widths = {key: max(len(key), *(len(row[key]) for row in self.rows)) for key in keys}
        lines = [" | ".join(key.ljust(widths[key]) for key in keys), "-+-".join("-" * widths[key] for key in keys)]
        lines += [" | ".join(row[key].ljust(widths[key]) for key in keys) for row in self.rows]
        return "\n".join(lines)


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and every process below it, MiB."""
    total = 0
    for member in {pid, *descendant_pids(pid)}:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def peak_rss_while(pid: int, action: Callable[[], Any]) -> tuple[Any, float]:
    """(``action()``'s result, the peak RSS of ``pid``'s tree sampled every 50 ms meanwhile)."""
    peak = [tree_rss_mib(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], tree_rss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return action(), peak[0]
    finally:
        done.set()
        sampler.join()


def post_file(client: httpx.Client, path: str, content: bytes, name: str = "clip.mp4",
              **params: Any) -> httpx.Response:
    return client.post(path, files={"file": (name, content, "application/octet-stream")}, params=params)


def five_hundreds(client: httpx.Client) -> int:
    """5xx answers the server has counted (any route), from /metrics."""
    count = 0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("lanp_request_seconds_count") and 'status="5' in line and 'status="503"' not in line:
            count += int(float(line.rsplit(" ", 1)[1]))
    return count


def drill_abandoned(table: Table, server: LiveServer, slow: bytes, small: bytes) -> dict[str, float]:
    with server.client() as client:
        started = time.monotonic()
        assert post_file(client, "/score", small).status_code == 200
        idle_s = time.monotonic() - started
        socket = raw_http.send_upload(server.port, "/score", slow, api_key=API_KEY)
        time.sleep(2.0)
        socket.close()
        started = time.monotonic()
        status = post_file(client, "/score", small).status_code
        after_abandon_s = time.monotonic() - started
    ok = status == 200 and after_abandon_s < idle_s + 10
    table.add("abandoned /score", "1000-fps clip, client hangs up after 2 s, then a 2 s clip",
              "the worker is freed at the next snippet batch", f"next clip {after_abandon_s:.2f} s "
              f"(idle server {idle_s:.2f} s), status {status}", ok)
    return {"small_clip_idle_s": idle_s, "small_clip_after_abandon_s": after_abandon_s}


def drill_limits(table: Table, server: LiveServer, clips: Path) -> None:
    bomb = write_video(clips / "bomb.avi", codec="mpeg4", num_frames=12000, fps=1000)  # 12 s, 750 snippets
    with server.client() as client:
        started = time.monotonic()
        answer = post_file(client, "/score", bomb.read_bytes(), "bomb.avi")
        seconds = time.monotonic() - started
    body = answer.json()
    table.add("frame-count bomb", "64x48, 1000 fps, 12 s (12000 frames) to /score",
              "413 naming max_sync_frames", f"{answer.status_code} limit={body.get('limit')} in {seconds:.2f} s",
              answer.status_code == 413 and body.get("limit") == "max_sync_frames")


def drill_disconnects(table: Table, server: LiveServer, slow: bytes) -> None:
    with server.client() as client:
        before = five_hundreds(client)
        for fraction in (0.3, 1.0):
            socket = raw_http.send_upload(server.port, "/score", slow, api_key=API_KEY, sent_fraction=fraction)
            time.sleep(1.0)
            socket.close()
        time.sleep(1.0)
        text = client.get("/metrics").text
        after = five_hundreds(client)
    counted = [line for line in text.splitlines() if line.startswith("lanp_client_disconnects_total")]
    table.add("client disconnects", "2 uploads dropped (mid-body, mid-scoring)", "no 5xx; counted as disconnects",
              f"5xx +{after - before}; {'; '.join(counted)}", after == before and len(counted) >= 1)


def drill_slow_clients(table: Table, server: LiveServer, small: bytes) -> None:
    loris = [raw_http.partial_headers(server.port) for _ in range(16)]
    closed = [raw_http.closed_by_server(connection, within_s=15) for connection in loris]
    table.add("slow loris", "16 connections whose headers never end", "closed after LANP_HEADER_TIMEOUT_S (3 s)",
              f"{sum(c is not None for c in closed)}/16 closed, slowest "
              f"{max((c for c in closed if c is not None), default=float('nan')):.1f} s",
              all(c is not None and c < 8 for c in closed))
    stalled = raw_http.send_upload(server.port, "/score", small, api_key=API_KEY, sent_fraction=0.5)
    started = time.monotonic()
    status = raw_http.read_status(stalled)
    table.add("stalled body", "half an upload, then silence", "408 after LANP_BODY_TIMEOUT_S (3 s)",
              f"{status} after {time.monotonic() - started:.1f} s", status == 408)


def drill_upload_pressure(table: Table, server: LiveServer) -> None:
    blob = b"\x00\x00\x00\x18ftypmp42" + bytes(24 * 2**20)
    with server.client() as client:
        before = five_hundreds(client)
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: post_file(client, "/score", blob).status_code, range(16)))
        after = five_hundreds(client)
    table.add("upload flood", "16 x 24 MiB uploads at once", "503 + Retry-After beyond 4 uploads / 64 MiB; no 5xx",
              f"statuses {sorted(set(answers))} ({answers.count(503)} x 503), 5xx +{after - before}",
              503 in answers and after == before and set(answers) <= {415, 422, 503})


def drill_conventions(table: Table, server: LiveServer, small: bytes, truncated: bytes) -> None:
    with server.client() as client:
        wrong = post_file_field(client, small)
        cut = post_file(client, "/score", truncated, "cut.mp4")
    table.add("wrong field name", "-F video=@clip.mp4", "422 asking for 'file'", f"{wrong.status_code}",
              wrong.status_code == 422 and "'file'" in wrong.text)
    work = server.env["LANP_WORK_DIR"]
    table.add("server paths", "a truncated upload", "422 naming the client's file, no server path",
              f"{cut.status_code} {cut.json().get('kind')}, path shown: {work in cut.text or '.upload' in cut.text}",
              cut.status_code == 422 and work not in cut.text and ".upload" not in cut.text)
    with httpx.Client(base_url=server.url) as anonymous:
        statuses = {path: anonymous.get(path).status_code for path in ("/docs", "/redoc", "/openapi.json")}
    table.add("docs without key", "GET /docs, /redoc, /openapi.json", "401 each", str(statuses),
              set(statuses.values()) == {401})


def post_file_field(client: httpx.Client, content: bytes) -> httpx.Response:
    return client.post("/score", files={"video": ("clip.mp4", content, "video/mp4")})


def drill_jobs(table: Table, server: LiveServer, small: bytes, slow: bytes) -> None:
    with server.client() as client:
        ids = [post_file(client, "/jobs", small, f"job{index}.mp4").json()["id"] for index in range(6)]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = [client.get(f"/jobs/{job_id}").json()["status"] for job_id in ids]
            if all(state == "completed" for state in states):
                break
            time.sleep(0.3)
        listed = [job["id"] for job in client.get("/jobs", params={"limit": 500}).json()["jobs"]]
    lost = [job_id for job_id in ids if job_id not in listed]
    table.add("jobs accounted", "6 jobs", "6 completed, listed once each",
              f"{states.count('completed')} completed, {len(lost)} lost, {len(listed) - len(set(listed))} duplicated",
              states.count("completed") == 6 and not lost and len(listed) == len(set(listed)))
    with server.client() as client:
        interrupted = post_file(client, "/jobs", slow, "interrupted.avi").json()["id"]
        while client.get(f"/jobs/{interrupted}").json()["status"] != "running":
            time.sleep(0.1)
    server.stop(kill=True)
    server.start()
    inputs = Path(server.env["LANP_WORK_DIR"]) / "jobs" / "inputs"
    with server.client() as client:
        record = client.get(f"/jobs/{interrupted}").json()
        kept = len(list(inputs.iterdir()))
        completed = client.get("/jobs", params={"status": "completed", "limit": 500}).json()["total"]
    table.add("interrupted job", "kill -9 while a job runs (LANP_MAX_JOB_ATTEMPTS=1), restart",
              "failed 'interrupted', its upload deleted",
              f"{record['status']} {record['error_kind']}; {kept} inputs kept for {completed} completed jobs",
              record["error_kind"] == "interrupted" and kept <= completed)


def drill_memory(table: Table, server: LiveServer, clips: Path) -> dict[str, float]:
    assert server.process is not None
    eight_k = write_video(clips / "8k.mp4", num_frames=20, width=8000, height=4096, fps=10,
                          options={"preset": "ultrafast"})
    thousand = write_video(clips / "1000fps.avi", codec="mpeg4", num_frames=8000, width=64, height=64, fps=1000)
    peaks = {"idle": tree_rss_mib(server.process.pid)}
    with server.client(timeout=600) as client:
        for name, clip in (("8K 20 frames", eight_k), ("1000 fps 8 s", thousand)):
            answer, peak = peak_rss_while(server.process.pid, lambda c=clip: post_file(client, "/jobs",
                                                                                     c.read_bytes(), c.name))
            job_id = answer.json()["id"]

            def finished(job: str = job_id) -> dict[str, Any]:
                return client.get(f"/jobs/{job}").json()

            record, peak_scoring = peak_rss_while(server.process.pid, lambda: _wait(finished))
            peaks[name] = max(peak, peak_scoring)
            table.add(f"peak RSS, {name}", f"{clip.stat().st_size / 2**20:.1f} MB to /jobs", "bounded, no 5xx",
                      f"{record['status']} {record.get('error_kind') or ''}; server tree peak {peaks[name]:.0f} MiB "
                      f"(idle {peaks['idle']:.0f} MiB)",
                      record["status"] in ("completed", "failed") and record.get("error_kind") != "internal")
    return peaks


def _wait(poll: Callable[[], dict[str, Any]], timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = poll()
        if record["status"] in ("completed", "failed", "canceled"):
            return record
        time.sleep(0.3)
    raise TimeoutError("job did not end")


def drill_sigterm(table: Table, server: LiveServer, slow: bytes, camera: str, clips: Path) -> float:
    """SIGTERM while a long /score runs, a live stream plays with an event client, and another stream's source
    sends packets but no more video."""
    assert server.process is not None
    children = server.descendants()
    source = PacedFile(write_video_then_audio(clips / "sigterm-audio.ts"), bytes_per_s=24_000)
    with server.client() as client:
        playing = client.post("/streams", json={"url": camera}).json()["id"]
        quiet = client.post("/streams", json={"url": source.url}).json()["id"]
        stream_records(client, quiet, lambda got: any(r["type"] == "snippet" and r["snippet"] >= 2 for r in got))
    listener = raw_http.send_get(server.port, f"/streams/{playing}/events", api_key=API_KEY)
    time.sleep(3.0)
    socket = raw_http.send_upload(server.port, "/score", slow, api_key=API_KEY)
    time.sleep(2.0)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(120)
    exit_s = time.monotonic() - started
    socket.close()
    listener.close()
    source.close()
    left = still_running(children, wait_s=5.0)
    grace = float(LIMITS["LANP_SHUTDOWN_GRACE_S"])
    table.add("SIGTERM mid-request", "SIGTERM while a long /score runs, 2 streams and an event client are open",
              f"exit within grace ({grace:g} s) + 5 s", f"exited in {exit_s:.1f} s, {len(left)} child processes "
              "left 5 s later", exit_s < grace + 5 and not left)
    return exit_s


# ------------------------------------------------------------------------------------- streams, webhooks, evidence


def camera_source(clip: Path) -> tuple[subprocess.Popen[str], str]:
    """The live test source looping ``clip`` as MPEG-TS over HTTP on 127.0.0.1: (its process, its URL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.pipeline.live.stream_source", str(clip), "--port", "0", "--loop"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline().split()[1])
    return process, f"http://127.0.0.1:{port}/camera.ts"


def main_rss_mib(server: LiveServer) -> float:
    """Resident memory of the server's main process (not its decode workers), MiB."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drill_unauthenticated_body(table: Table, server: LiveServer) -> None:
    before = main_rss_mib(server)
    started = time.monotonic()
    statuses = []
    for _ in range(4):
        connection = raw_http.send_declared(server.port, "POST", "/streams", declared=400 * 2**20,
                                            sent=b'{"url": "' + b"a" * 2**20, headers={"Content-Type":
                                                                                          "application/json"})
        statuses.append(raw_http.read_status(connection))
        connection.close()
    seconds = time.monotonic() - started
    grown = main_rss_mib(server) - before
    table.add("unauthenticated body", "4 x POST /streams without a key, 400 MiB declared, 1 MiB sent",
              "401 before the body is read; RSS flat", f"statuses {statuses} in {seconds:.1f} s, RSS {grown:+.0f} MiB",
              statuses == [401] * 4 and grown < 50)


def drill_stream_url(table: Table, server: LiveServer) -> None:
    with server.client() as client:
        too_long = client.post("/streams", json={"url": "http://127.0.0.1/" + "a" * 20 * 2**20})
        long_url = f"http://127.0.0.1:{free_port()}/" + "a" * 1900
        stream = client.post("/streams", json={"url": long_url}).json()["id"]
        records = stream_records(client, stream, lambda got: got[-1]["type"] == "stopped", 120)  # it gives up
        client.delete(f"/streams/{stream}")
    sizes = [len(json.dumps(record)) for record in records if record["type"] == "reconnecting"]
    table.add("stream URL size", "a 20 MiB URL; a 1.9 KiB URL to a closed port", "413/422; records without it",
              f"{too_long.status_code}; reconnect records {max(sizes, default=0)} bytes each",
              too_long.status_code in (413, 422) and bool(sizes) and max(sizes) < 1024)


def drill_forgery(table: Table, server: LiveServer) -> None:
    with raw_http.internal_service() as (internal, redirect, decimal), server.client() as client:
        direct = [client.post("/streams", json={"url": url}).status_code
                  for url in (internal.url(), decimal, internal.url(scheme="rtsp"))]
        hooks = [client.post("/jobs", json={"path": "clip.mp4", "callback_url": url}).status_code
                 for url in (internal.url(), decimal)]
        stream = client.post("/streams", json={"url": redirect.url()}).json()["id"]
        stream_records(client, stream, lambda got: any(r["type"] == "reconnecting" for r in got), 60)
        client.delete(f"/streams/{stream}")
        reached = internal.connections
    table.add("request forgery", "streams / callbacks to 127.0.0.2 (an internal port), its decimal form, a "
              "redirect to it", "403; the internal port never reached",
              f"streams {direct}, callbacks {hooks}, connections to it {reached}",
              set(direct) == {403} and set(hooks) == {403} and reached == 0)


def drill_port_oracle(table: Table, server: LiveServer) -> dict[str, float]:
    with raw_http.port_kinds() as targets, server.client() as client:
        streams = {name: client.post("/streams", json={"url": url}).json()["id"] for name, url in targets.items()}
        started = time.monotonic()
        ended = {name: stream_records(client, stream, lambda got: got[-1]["type"] in ("stopped", "gave_up"), 300)
                 for name, stream in streams.items()}
        gave_up_s = time.monotonic() - started
        for stream in streams.values():
            client.delete(f"/streams/{stream}")
    reasons = {(r.get("kind"), r.get("reason")) for records in ended.values() for r in records
               if r["type"] in ("reconnecting", "gave_up")}
    gave_up = sum(any(r["type"] == "gave_up" for r in records) for records in ended.values())
    table.add("port oracle, retry budget", "streams to a closed, silent, non-HTTP and HTTP port",
              "one reason for all; each gives up after LANP_STREAM_MAX_RECONNECTS",
              f"{len(reasons)} distinct reason(s); {gave_up}/4 gave up within {gave_up_s:.0f} s",
              len(reasons) == 1 and gave_up == 4)
    return {"gave_up_s": gave_up_s}


def drill_slow_webhook(table: Table, server: LiveServer) -> dict[str, float]:
    """LANP_WEBHOOK_URL (LIMITS) accepts and never answers; how late does a job's own callback hear of its end?"""
    receiver = Receiver()
    delays = []
    try:
        with server.client() as client:
            jobs = [client.post("/jobs", json={"path": "clip.mp4", "callback_url": receiver.url(f"/job{n}")}).json()
                    for n in range(3)]
            for n in range(len(jobs)):
                wait_for(lambda n=n: receiver.posts(f"/job{n}"), 180, what=f"job {n}'s notice")
                delays.append(time.time() - json.loads(receiver.posts(f"/job{n}")[0]["body"])["job"]["finished_at"])
    finally:
        receiver.http.shutdown()
    table.add("slow webhook receiver", "3 jobs; LANP_WEBHOOK_URL never answers", "each callback at once",
              f"callbacks {', '.join(f'{d:.1f}' for d in delays)} s after the job ended", max(delays) < 5)
    return {"callback_delays_s": delays}


def drill_clip_race(table: Table, server: LiveServer, clips: Path) -> None:
    clip = write_video(clips / "yard.mp4", num_frames=300, width=320, height=240, fps=10)
    with server.client() as client:
        job = post_file(client, "/jobs", clip.read_bytes(), "yard.mp4").json()["id"]
        _wait(lambda: client.get(f"/jobs/{job}").json())
        params = {"threshold": 0.0, "pre_roll": 7, "post_roll": 7}
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: client.get(f"/jobs/{job}/events/1/clip.mp4", params=params), range(8)))
        sizes = sorted({len(answer.content) for answer in answers if answer.status_code == 200})
        held_before = evidence_bytes(server, job)
        for roll in range(1, 13):
            client.get(f"/jobs/{job}/events/1/clip.mp4", params={"threshold": 0.0, "pre_roll": roll,
                                                               "post_roll": roll})
        held = evidence_bytes(server, job)
    statuses = [answer.status_code for answer in answers]
    table.add("concurrent clip cuts", "8 concurrent GETs of one uncached clip", "8 x 200, one clip",
              f"statuses {sorted(statuses)}, sizes {sizes}", statuses == [200] * 8 and len(sizes) == 1)
    limit = float(LIMITS["LANP_EVIDENCE_CACHE_MB"]) * 2**20
    table.add("evidence cache", "12 clips of one event, each roll different",
              "at most LANP_EVIDENCE_CACHE_MB (+1 clip)",
              f"{held / 2**20:.2f} MiB kept (cap {limit / 2**20:.2f} MiB; {held_before / 2**20:.2f} MiB before)",
              held <= limit + max(sizes, default=0))


def evidence_bytes(server: LiveServer, job: str) -> int:
    folder = Path(server.env["LANP_WORK_DIR"]) / "jobs" / job / "evidence"
    return sum(path.stat().st_size for path in folder.iterdir()) if folder.is_dir() else 0


def drill_stream_limit(table: Table, server: LiveServer, camera: str, clips: Path) -> dict[str, float]:
    with server.client() as client, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: client.post("/streams", json={"url": camera}), range(16)))
        created = [answer.json()["id"] for answer in answers if answer.status_code == 201]
        running = sum(stream["running"] for stream in client.get("/streams").json()["streams"])
        for stream in created:
            client.delete(f"/streams/{stream}")
    limit = int(LIMITS["LANP_MAX_STREAMS"])
    table.add("stream limit race", "16 concurrent POST /streams", f"{limit} run (LANP_MAX_STREAMS), the rest 429",
              f"{len(created)} created, {running} running", len(created) == running == limit)
    source = PacedFile(write_video_then_audio(clips / "then-audio.ts"), bytes_per_s=24_000)
    try:
        with server.client() as client:
            stream = client.post("/streams", json={"url": source.url}).json()["id"]
            stream_records(client, stream, lambda got: any(r["type"] == "snippet" and r["snippet"] >= 2 for r in got))
            time.sleep(3.0)  # its video is over, its audio goes on
            started = time.monotonic()
            client.delete(f"/streams/{stream}")
            stop_s = time.monotonic() - started
    finally:
        source.close()
    table.add("stream stop", "DELETE a stream that sends audio but no more video", "stopped within 1 s",
              f"{stop_s:.2f} s", stop_s < 1.0)
    return {"stop_s": stop_s}


def drill_secrets(table: Table, server: LiveServer, camera: str) -> None:
    port = camera.split(":")[2].split("/")[0]
    secret_camera = f"http://admin:hunter2@127.0.0.1:{port}/camera.ts?token=t0ps3cret"
    with server.client() as client:
        stream = client.post("/streams", json={"url": secret_camera}).json()["id"]
        records = stream_records(client, stream, lambda got: any(r["type"] == "snippet" for r in got), 60)
        shown = json.dumps(records) + client.get("/streams").text
        client.delete(f"/streams/{stream}")
        job = client.post("/jobs", json={"path": "clip.mp4", "callback_url":
                                         f"http://127.0.0.1:{free_port()}/hook?access_token=t0ps3cret"}).json()["id"]
        error = wait_for(lambda: client.get(f"/jobs/{job}").json()["webhook_error"], 240, what="the webhook")
    shown += error
    leaked = [secret for secret in ("hunter2", "t0ps3cret", LIMITS["LANP_WEBHOOK_URL"]) if secret in shown]
    key = (Path(server.env["LANP_WORK_DIR"]) / "webhook.key").read_text().strip()
    table.add("secrets in answers", "a camera URL with a password and token; a callback with a token",
              "masked everywhere; signing key not the API key", f"leaked: {leaked or 'none'}; key is the API key: "
              f"{key == API_KEY}", not leaked and key != API_KEY)


def drill_event_clients(table: Table, server: LiveServer, small: bytes) -> dict[str, float]:
    crowd = crowd_with_event_clients(server, small)
    one_more = crowd.pop("one_more")
    status = "an open event stream" if one_more is None else one_more.status_code
    table.add("event clients", "32 SSE clients on a quiet stream, then a 33rd, a /score and a DELETE",
              "429 beyond 32; /score and DELETE as fast as without them",
              f"33rd {status}; /score {crowd['crowded_s']:.2f} s (alone {crowd['alone_s']:.2f} s, {crowd['scored']}); "
              f"DELETE {crowd['delete_s']:.2f} s",
              status == 429 and crowd["scored"] == 200 and crowd["crowded_s"] < crowd["alone_s"] + 2
              and crowd["delete_s"] < 1.5)
    return crowd


def drill_size_switch(table: Table, server: LiveServer, clips: Path) -> None:
    assert server.process is not None
    answers = {}
    for later in ((1920, 1080), (16000, 64)):
        path = write_size_switch(clips / f"switch-{later[0]}.ts", later=later)
        with server.client() as client:
            answer, peak = peak_rss_while(server.process.pid, lambda p=path: post_file(
                client, "/score", p.read_bytes(), p.name))
        answers[f"{later[0]}x{later[1]}"] = (answer.status_code, answer.json().get("kind"), peak)
    table.add("size switch mid-stream", "64x48 header, later frames 1920x1080 / 16000x64, to /score",
              "refused or scaled with bounded memory (no 5xx)",
              "; ".join(f"{size}: {status} {kind or ''}, tree peak {peak:.0f} MiB"
                        for size, (status, kind, peak) in answers.items()),
              all(status < 500 for status, _, _ in answers.values()))


def drill_evaluate(table: Table, work: Path) -> None:
    from lanp_vad.pipeline.research.synthetic import write_synthetic_features

    archive = write_synthetic_features(work / "archive", scale="tiny", dim=24, salience=6.0, seed=3)
    lanp = [sys.executable, "-m", "lanp_vad"]
    subprocess.run([*lanp, "train", "--features", str(archive), "--out", str(work / "model24"), "--no-progress",
                    "--set", "train.epochs=1"], check=True, capture_output=True)
    features = work / "mixed"
    features.mkdir()
    rng = np.random.default_rng(0)
    np.save(features / "a.npy", rng.random((12, 24), dtype=np.float32))
    np.save(features / "b.npy", rng.random((12, 5), dtype=np.float32))
    (work / "mixed.csv").write_text("a,16,32\nb,16,32\n")
    done = subprocess.run([*lanp, "evaluate", "--model", str(work / "model24"), "--features", str(features),
                           "--gt", str(work / "mixed.csv")], capture_output=True, text=True)
    lines = done.stderr.strip().splitlines()
    table.add("evaluate, wrong dimension", "lanp evaluate on a folder whose second file is 5-d (model 24-d)",
              "one line, kind spec_mismatch, exit 2", f"exit {done.returncode}, {len(lines)} line(s): "
              f"{lines[-1][:80] if lines else ''}", done.returncode == 2 and len(lines) == 1)


def drill_origin(table: Table, server: LiveServer, small: bytes) -> None:
    with server.client() as client:
        statuses = {origin: client.post("/jobs", files={"file": ("x.mp4", small)}, headers={"Origin": origin})
                    .status_code for origin in ("https://evil.example", f"http://127.0.0.1:{server.port}")}
    table.add("cross-origin POST", "POST /jobs with Origin: another site / the server's own",
              "403 / 202", str(statuses), list(statuses.values()) == [403, 202])


def drill_disk(table: Table, model: Path, work: Path, clips: Path) -> None:
    """A server whose work directory is a 48 MB tmpfs (mounting one needs root: skipped otherwise)."""
    mount = work / "small-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        table.add("full disk", "work directory on a 48 MB tmpfs", "507 / disk_full", "skipped: mounting needs root",
                  None)
        return
    root = work / "disk-root"
    root.mkdir()
    write_video(root / "long.avi", codec="mpeg4", num_frames=6000, fps=25)
    server = start_server(mount / "work", model, LANP_DATA_ROOT=str(root), LANP_MIN_FREE_DISK_MB="8",
                          LANP_MAX_STORED_UPLOADS_MB="0.25", LANP_RUNTIME="torch")
    clip = write_video(clips / "disk.mp4", num_frames=300, width=320, height=240, fps=25).read_bytes()
    filler = mount / "filler"
    try:
        with server.client() as client:
            kept = [post_file(client, "/jobs", clip, f"kept{n}.mp4").json()["id"] for n in range(6)]
            for job in kept:
                _wait(lambda j=job: client.get(f"/jobs/{j}").json())
            inputs = Path(server.env["LANP_WORK_DIR"]) / "jobs" / "inputs"
            stored = sum(path.stat().st_size for path in inputs.iterdir())
            running = client.post("/jobs", json={"path": "long.avi"}).json()["id"]
            wait_for(lambda: client.get(f"/jobs/{running}").json()["status"] == "running", 60, what="running")
            with filler.open("wb") as stream, contextlib.suppress(OSError):
                while True:
                    stream.write(bytes(2**20))
            started = time.monotonic()
            ended = wait_for(lambda: (lambda j: j if j["status"] != "running" else None)(
                client.get(f"/jobs/{running}").json()), 120, what="the running job to end")
            ended_s = time.monotonic() - started
            answers = {"readyz": client.get("/readyz"), "upload": post_file(client, "/score", clip),
                       "path job": client.post("/jobs", json={"path": "long.avi"}),
                       "plot": client.get(f"/jobs/{kept[-1]}/plot.png"),
                       "clip": client.get(f"/jobs/{kept[-1]}/events/1/clip.mp4", params={"threshold": 0.0})}
            left = [path.name for path in Path(server.env["LANP_WORK_DIR"]).rglob("*")
                    if ".tmp" in path.name or ".partial" in path.name or path.parent.name == "uploads"]
            filler.unlink()
            recovered = wait_for(lambda: client.get("/readyz").status_code == 200, 90, what="ready again")
    finally:
        filler.unlink(missing_ok=True)
        server.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)
    statuses = {what: f"{answer.status_code} {answer.json().get('kind', '')}" for what, answer in answers.items()}
    table.add("stored uploads", "6 completed upload jobs, LANP_MAX_STORED_UPLOADS_MB 0.25",
              "kept videos within the budget", f"{stored / 2**20:.2f} MiB kept", stored <= 0.25 * 2**20)
    table.add("full disk", "the disk fills while a job runs; then uploads, a path job, a plot, a clip, /readyz",
              "job failed disk_full; 507 disk_full; readyz 503; no partial file; ready again after",
              f"job {ended['status']} {ended['error_kind']} {ended_s:.1f} s after; {statuses}; partial files "
              f"{len(left)}; ready again {bool(recovered)}",
              ended["error_kind"] == "disk_full" and answers["readyz"].status_code == 503 and not left
              and all(answer.status_code == 507 for what, answer in answers.items() if what != "readyz"))


def soak_round(client: httpx.Client, camera: str, small: bytes, medium: bytes, big: bytes, roll: int) -> None:
    """One round of mixed work: a /score, a job with its plot and evidence, a hostile upload, a large frame, a
    stream with an event client."""
    post_file(client, "/score", small)
    post_file(client, "/score", small[:1500] + bytes(3000), "cut.mp4")
    job = post_file(client, "/jobs", medium, "medium.mp4").json()["id"]
    large = post_file(client, "/jobs", big, "large.mp4").json()["id"]
    _wait(lambda: client.get(f"/jobs/{job}").json())
    client.get(f"/jobs/{job}/plot.png")
    client.get(f"/jobs/{job}/events/1/thumbnail.jpg", params={"threshold": 0.0})
    client.get(f"/jobs/{job}/events/1/clip.mp4", params={"threshold": 0.0, "pre_roll": roll % 5, "post_roll": 1})
    stream = client.post("/streams", json={"url": camera}).json()["id"]
    stream_records(client, stream, lambda got: sum(r["type"] == "snippet" for r in got) >= 4, 60)
    client.delete(f"/streams/{stream}")
    _wait(lambda: client.get(f"/jobs/{large}").json())


def drill_soak(table: Table, server: LiveServer, camera: str, clips: Path, small: bytes, minutes: float
               ) -> dict[str, Any]:
    """Mixed work for ``minutes`` after two warm-up rounds; the main process's RSS sampled every 10 s."""
    medium = write_video(clips / "soak-medium.mp4", num_frames=200, width=160, height=120, fps=10).read_bytes()
    big = write_video(clips / "soak-large.mp4", num_frames=8, width=1920, height=1080, fps=10).read_bytes()
    series: list[tuple[float, float]] = []
    # A connection per request: a kept-alive one idle past LANP_HEADER_TIMEOUT_S (3 s here) while the client reads
    # a stream's events is closed by the server, and a request sent just then is reset (the keep-alive race).
    with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=600,
                      limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for roll in range(2):
            soak_round(client, camera, small, medium, big, roll)
        started = time.monotonic()
        done = threading.Event()

        def sample() -> None:
            while True:
                series.append((time.monotonic() - started, main_rss_mib(server)))
                if done.wait(10.0):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rounds = 0
        while time.monotonic() - started < minutes * 60:
            soak_round(client, camera, small, medium, big, rounds)
            rounds += 1
        done.set()
        sampler.join()
    first = float(np.median([rss for _, rss in series[:3]]))
    last = float(np.median([rss for _, rss in series[-3:]]))
    table.add("soak", f"{minutes:g} min of mixed work ({rounds} rounds) after 2 warm-up rounds",
              "main RSS ends within 10 % of its start", f"{first:.0f} -> {last:.0f} MiB ({last / first - 1:+.1%}), "
              f"peak {max(rss for _, rss in series):.0f} MiB", last <= 1.10 * first)
    return {"rounds": rounds, "rss_mib": [(round(t), round(rss)) for t, rss in series]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: the tiny test model)")
    parser.add_argument("--json", type=Path, help="also write the table and figures here")
    parser.add_argument("--soak-minutes", type=float, default=30.0, help="length of the soak (0: no soak)")
    parser.add_argument("--soak-only", action="store_true", help="run the soak alone (on a fresh server)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lanp-drills-"))
    clips = work / "clips"
    clips.mkdir()
    model = args.model
    if model is None:
        from tests.service.tiny_model import make_tiny_model

        model = make_tiny_model(work / "tiny-model")
    print("load average before:", os.getloadavg(), flush=True)
    small = write_video(clips / "small.mp4", num_frames=20, fps=10).read_bytes()
    slow = write_video(clips / "slow.avi", codec="mpeg4", num_frames=8000, fps=1000).read_bytes()
    truncated = small[:1500] + bytes(3000)
    root = work / "root"
    root.mkdir()
    (root / "clip.mp4").write_bytes(small)
    never_answers = raw_http.Responder()
    camera_process, camera = camera_source(write_video(clips / "camera.mp4", num_frames=120, width=160, height=120,
                                                       fps=25))
    LIMITS["LANP_WEBHOOK_URL"] = never_answers.url("/all?token=operator-secret")
    server = start_server(work / "server", model, LANP_DATA_ROOT=str(root), **LIMITS)
    table = Table()
    figures: dict[str, Any] = {}
    try:
        if args.soak_only:
            figures["soak"] = drill_soak(table, server, camera, clips, small, args.soak_minutes)
            return
        drill_unauthenticated_body(table, server)
        figures["slow_webhook"] = drill_slow_webhook(table, server)
        drill_secrets(table, server, camera)  # early: its job's notice waits behind the silent receiver's queue
        drill_origin(table, server, small)
        drill_stream_url(table, server)
        drill_forgery(table, server)
        figures["event_clients"] = drill_event_clients(table, server, small)
        figures["stream_stop"] = drill_stream_limit(table, server, camera, clips)
        drill_clip_race(table, server, clips)
        drill_size_switch(table, server, clips)
        figures["port_oracle"] = drill_port_oracle(table, server)
        figures["abandoned"] = drill_abandoned(table, server, slow, small)
        drill_limits(table, server, clips)
        drill_disconnects(table, server, slow)
        drill_slow_clients(table, server, small)
        drill_upload_pressure(table, server)
        drill_conventions(table, server, small, truncated)
        drill_jobs(table, server, small, slow)
        figures["peak_rss_mib"] = drill_memory(table, server, clips)
        if args.soak_minutes > 0:
            figures["soak"] = drill_soak(table, server, camera, clips, small, args.soak_minutes)
        with server.client() as client:
            figures["five_hundreds"] = five_hundreds(client)
        table.add("5xx from client behaviour", "all drills above", "0", str(figures["five_hundreds"]),
                  figures["five_hundreds"] == 0)
        figures["sigterm_exit_s"] = drill_sigterm(table, server, slow, camera, clips)
        drill_evaluate(table, work)
        drill_disk(table, model, work, clips)
    finally:
        server.stop(kill=True)
        camera_process.kill()
        never_answers.close()
        print()
        print(table.render())
        print("load average after:", os.getloadavg())
        if args.json:
            args.json.write_text(json.dumps({"rows": table.rows, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
