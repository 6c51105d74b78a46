"""Hostile-client drills against a real server (``lanp serve`` as the container starts it, on 127.0.0.1).

Each drill sends what a careless or hostile client sends and compares the answer with what a hardened service
must do; the table shows drill, sent, expected, observed and verdict. Beside each drill that matters for
capacity it reports the plain number: how long an abandoned request keeps the worker, SIGTERM-to-exit time, peak
RSS of the server's process tree for an 8K and a 1000-fps input. The baseline each drill is judged against is a
well-behaved client doing the same thing (e.g. the small clip scored on an idle server).

    python bench/drills.py [--model DIR] [--json out.json]

Uses the tiny EfficientNet-Lite0 test model unless ``--model`` is given; the server runs with its defaults except
where a drill needs a small limit (listed in LIMITS). Timings are noisy on a shared machine: read them with the
load average the script prints.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service import raw_http  # noqa: E402  (after the path insert: run as a script)
from tests.service.conftest import API_KEY, LiveServer, descendant_pids, start_server, still_running  # noqa: E402
from tests.videos import write_video  # noqa: E402

LIMITS = {
    "LANP_HEADER_TIMEOUT_S": "3",
    "LANP_BODY_TIMEOUT_S": "3",
    "LANP_MAX_CONCURRENT_UPLOADS": "4",
    "LANP_MAX_UPLOADS_IN_FLIGHT_MB": "64",
    "LANP_MAX_UPLOAD_MB": "32",
    "LANP_SHUTDOWN_GRACE_S": "5",
    "LANP_MAX_JOB_ATTEMPTS": "1",
}


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, drill: str, sent: str, expected: str, observed: str, ok: bool) -> None:
        self.rows.append({"drill": drill, "sent": sent, "expected": expected, "observed": observed,
                          "verdict": "PASS" if ok else "FAIL"})
        print(f"{'PASS' if ok else 'FAIL'}  {drill}: {observed}", flush=True)

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


def drill_sigterm(table: Table, server: LiveServer, slow: bytes) -> float:
    assert server.process is not None
    children = server.descendants()
    socket = raw_http.send_upload(server.port, "/score", slow, api_key=API_KEY)
    time.sleep(2.0)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(120)
    exit_s = time.monotonic() - started
    socket.close()
    left = still_running(children, wait_s=5.0)
    table.add("SIGTERM mid-request", "SIGTERM while a long /score runs", "exit within grace (5 s) + 5 s",
              f"exited in {exit_s:.1f} s, {len(left)} child processes left 5 s later", exit_s < 10 and not left)
    return exit_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: the tiny test model)")
    parser.add_argument("--json", type=Path, help="also write the table and figures here")
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
    server = start_server(work / "server", model, **LIMITS)
    table = Table()
    figures: dict[str, Any] = {}
    try:
        figures["abandoned"] = drill_abandoned(table, server, slow, small)
        drill_limits(table, server, clips)
        drill_disconnects(table, server, slow)
        drill_slow_clients(table, server, small)
        drill_upload_pressure(table, server)
        drill_conventions(table, server, small, truncated)
        drill_jobs(table, server, small, slow)
        figures["peak_rss_mib"] = drill_memory(table, server, clips)
        with server.client() as client:
            figures["five_hundreds"] = five_hundreds(client)
        table.add("5xx from client behaviour", "all drills above", "0", str(figures["five_hundreds"]),
                  figures["five_hundreds"] == 0)
        figures["sigterm_exit_s"] = drill_sigterm(table, server, slow)
    finally:
        server.stop(kill=True)
    print()
    print(table.render())
    print("load average after:", os.getloadavg())
    if args.json:
        args.json.write_text(json.dumps({"rows": table.rows, "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
