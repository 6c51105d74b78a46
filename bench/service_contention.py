"""Streams, uploads and jobs on the service's one device scheduler: each beside its no-contention figure, one run.

A real ``lanp serve`` (CPU) with the benchmark model; the streams are the test source (the clip looped over HTTP
at real-time pace) watched through ``POST /streams``, their records read from ``/streams/{id}/events``. Measured:

- ``POST /score`` latency of the clip (a real multipart upload, one at a time): alone, then with N streams live;
- the streams' snippet latency (arrival of a snippet's last frame to its score) and drops: alone, while the
  uploads come in, and while a long job runs (the clip remuxed many times over into one file under the data
  root, ``POST /jobs {"path": ...}``), plus the job's duration alone and with the streams.

Run through ``python bench/streams.py --contention N [--only-contention]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SNIPPET_RECORDS = ("snippet", "dropped")


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def repeat_clip(clip: Path, out: Path, repeats: int) -> Path:
    """``clip``'s video packets ``repeats`` times over in one file (remuxed, not re-encoded)."""
    with av.open(str(out), "w") as output:
        offset = 0
        stream = None
        for _ in range(repeats):
            with av.open(str(clip)) as source:
                video = source.streams.video[0]
                stream = stream or output.add_stream_from_template(video)
                last = 0
                for packet in source.demux(video):
                    if packet.dts is None:
                        continue
                    packet.pts = None if packet.pts is None else packet.pts + offset
                    packet.dts += offset
                    last = max(last, packet.pts if packet.pts is not None else packet.dts)
                    packet.stream = stream
                    output.mux(packet)
                offset = last + int(packet.duration or 1)
    return out


def start_server(model: Path, work: Path, streams: int) -> tuple[subprocess.Popen, str]:
    from bench.streams import free_port

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANP_MODEL_DIR": str(model), "LANP_DEVICE": "cpu",
           "LANP_WORK_DIR": str(work / "service"), "LANP_DATA_ROOT": str(work), "LANP_MAX_STREAMS": str(streams),
           "LANP_STREAM_SCHEMES": '["http"]', "LANP_MAX_SYNC_SECONDS": "600",
           "LANP_ALLOWED_NETWORKS": '["127.0.0.1/32"]'}  # the sources play on loopback
    log = (work / "server.log").open("ab")
    process = subprocess.Popen([sys.executable, "-m", "lanp_vad", "serve", "--port", str(port), "--log-level",
                                "warning"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not start: {(work / 'server.log').read_text()[-2000:]}")


class StreamRecords(threading.Thread):
    """Reads one stream's Server-Sent Events into ``records`` until the stream ends."""

    def __init__(self, url: str, stream_id: str):
        super().__init__(daemon=True)
        self.url, self.stream_id = url, stream_id
        self.records: list[dict[str, Any]] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=None) as client, \
                client.stream("GET", f"/streams/{self.stream_id}/events") as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    self.records.append(json.loads(line[6:]))

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        return [r for r in list(self.records) if r["type"] in SNIPPET_RECORDS and start <= r["wall_time"] < end]


def upload_latencies(client: httpx.Client, clip: Path, *, count: int | None = None,
                     seconds: float | None = None) -> list[float]:
    """``POST /score`` of ``clip`` one after another: ``count`` times, or for ``seconds``."""
    latencies: list[float] = []
    body = clip.read_bytes()
    deadline = time.monotonic() + (seconds or 0)
    while (count is not None and len(latencies) < count) or (seconds is not None and time.monotonic() < deadline):
        started = time.perf_counter()
        response = client.post("/score", files={"file": (clip.name, body, "video/mp4")})
        response.raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


def run_job(client: httpx.Client, name: str) -> dict[str, Any]:
    job_id = client.post("/jobs", json={"path": name}).json()["id"]
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "canceled"):
            if job["status"] != "completed":
                raise SystemExit(f"the benchmark job {job['status']}: {job.get('error')}")
            return job
        time.sleep(0.2)


def lag_figures(records: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [r["latency_s"] for r in records if r["type"] == "snippet"]
    p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (float("nan"),) * 2
    return {"snippets": len(latencies), "dropped": sum(r["type"] == "dropped" for r in records),
            "latency_p50_s": float(p50), "latency_p95_s": float(p95)}


def _say(label: str, figures: dict[str, Any]) -> None:
    print(f"  streams {label}: snippet latency p50 {figures['latency_p50_s']:.2f} s, p95 "
          f"{figures['latency_p95_s']:.2f} s, {figures['snippets']} scored, {figures['dropped']} dropped ({load()})")


def measure_contention(clip: Path, model: Path, work: Path, *, streams: int, seconds: float,
                       start_source: Callable[[Path], tuple[subprocess.Popen, str]]) -> dict[str, Any]:
    """The figures of the module docstring (printed and returned)."""
    repeat_clip(clip, work / "long.mp4", 30)
    server, url = start_server(model, work, streams)
    sources: list[subprocess.Popen] = []
    results: dict[str, Any] = {"streams": streams}
    print(f"service contention: {streams} stream(s) of {clip.name} beside uploads of it and a job of it x30")
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            upload_latencies(client, clip, count=1)  # the first request pays the lazy start-up
            alone = upload_latencies(client, clip, count=5)
            results["score_alone_s"] = float(np.median(alone))
            job = run_job(client, "long.mp4")
            results["job_alone_s"] = job["finished_at"] - job["started_at"]
            print(f"  POST /score alone: median {results['score_alone_s']:.2f} s; job alone "
                  f"{results['job_alone_s']:.1f} s ({load()})")
            readers = []
            for _ in range(streams):
                source, source_url = start_source(clip)
                sources.append(source)
                created = client.post("/streams", json={"url": source_url})
                created.raise_for_status()
                reader = StreamRecords(url, created.json()["id"])
                reader.start()
                readers.append(reader)
            while not all(reader.between(0, float("inf")) for reader in readers):
                time.sleep(0.5)
            time.sleep(3)  # past the first snippets' start-up

            def window(label: str, action: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
                start = time.time()
                value = action()
                figures = lag_figures([r for reader in readers for r in reader.between(start, time.time())])
                _say(label, figures)
                return value, figures

            _, results["streams_alone"] = window("alone", lambda: time.sleep(seconds))
            with_streams, results["streams_with_uploads"] = window(
                "while uploads come in", lambda: upload_latencies(client, clip, seconds=seconds))
            results["score_with_streams_s"] = float(np.median(with_streams))
            print(f"  POST /score with {streams} stream(s): median {results['score_with_streams_s']:.2f} s "
                  f"({len(with_streams)} uploads), {results['score_with_streams_s'] / results['score_alone_s']:.2f}x "
                  f"alone ({load()})")
            job, results["streams_with_job"] = window("while the long job runs", lambda: run_job(client, "long.mp4"))
            results["job_with_streams_s"] = job["finished_at"] - job["started_at"]
            print(f"  job with {streams} stream(s): {results['job_with_streams_s']:.1f} s, "
                  f"{results['job_with_streams_s'] / results['job_alone_s']:.2f}x alone ({load()})")
            for reader in readers:
                client.delete(f"/streams/{reader.stream_id}")
    finally:
        for process in [*sources, server]:
            process.kill()
            process.wait()
    return results
