"""POST /score latency and throughput against a naive endpoint, and server memory while scoring a long upload.

Runs, side by side in one run on the same model and clip:
- the service (``lanp serve`` app: streamed upload to disk, one inference worker, snippet-batched extraction);
- a naive endpoint (reads the whole body into memory, decodes every frame into one array, then scores it).
The service decodes in its persistent, killable worker process (isolation on, the default); ``--in-process``
serves with ``LANP_ISOLATE_DECODE=false`` (decoding in the inference thread) for comparison.
Prints p50/p95 latency with 1 client, throughput with 1/4/16 concurrent clients and the ratio, then samples the
service's RSS while it scores a long upload (flat = memory independent of video length). Medians only; the
machine may be shared, so repeat counts are small and the numbers noisy.

    python bench/service.py [--model DIR] [--device cpu|cuda] [--clip-seconds 10] [--long-seconds 3600]
                            [--requests 4] [--in-process] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import av
import httpx
import numpy as np
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_clip(path: Path, seconds: float, fps: int = 25, size: tuple[int, int] = (320, 240)) -> Path:
    """A synthetic surveillance-like clip: a textured static scene with a moving square."""
    width, height = size
    rng = np.random.default_rng(0)
    background = (rng.random((height, width, 3)) * 60 + 80).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps * 2)}
        for index in range(int(seconds * fps)):
            frame = background.copy()
            x = (index * 3) % (width - 20)
            frame[100:120, x : x + 20] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def naive_app() -> FastAPI:
    """The baseline: whole body in memory, every frame decoded into one array, then scored; no queue."""
    from lanp_vad.pipeline.scoring.scorer import Scorer
    from lanp_vad.pipeline.video import open_video

    scorer = Scorer.from_model_dir(os.environ["LANP_MODEL_DIR"], device=os.environ.get("LANP_DEVICE", "cpu"))
    app = FastAPI()

    def score(body: bytes) -> dict:
        import io

        with open_video(io.BytesIO(body)) as reader:
            info = reader.info
            frames = reader.read_frames(np.arange(info.num_frames))  # the whole video in memory
        extractor = scorer.extractor
        offsets = np.linspace(0, 15, extractor.decode.frames_per_snippet).round().astype(int)
        starts = np.arange(0, info.num_frames, 16)
        snippets = np.stack([frames[np.minimum(start + offsets, info.num_frames - 1)] for start in starts])
        scores = scorer.head(extractor.features(snippets))
        return {"num_frames": info.num_frames, "frame_scores": np.repeat(scores, 16)[: info.num_frames].tolist()}

    @app.post("/naive-score")
    async def naive_score(request: Request) -> dict:
        form = await request.form()
        body = await form["file"].read()
        return await run_in_threadpool(score, body)

    return app


def start(command: list[str], env: dict[str, str], url: str, log: Path, timeout_s: float = 900.0) -> subprocess.Popen:
    with log.open("ab") as stream:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=stream, stderr=stream)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url + "/openapi.json", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{command} did not start; see {log}")


def post(url: str, clip: bytes) -> float:
    started = time.perf_counter()
    response = httpx.post(url, files={"file": ("clip.mp4", clip, "video/mp4")}, timeout=3600)
    response.raise_for_status()
    return time.perf_counter() - started


def measure(url: str, clip: bytes, requests: int, clip_seconds: float) -> dict:
    latencies = [post(url, clip) for _ in range(requests)]
    result = {"p50_s": statistics.median(latencies), "p95_s": float(np.percentile(latencies, 95))}
    for clients in (1, 4, 16):
        total = max(requests, clients)
        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: post(url, clip), range(total)))
        result[f"throughput_{clients}"] = total * clip_seconds / (time.perf_counter() - started)  # video s / s
    return result


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_while(pid: int, work: Callable[[], float]) -> tuple[float, list[float]]:
    """Run ``work`` while sampling ``pid``'s resident memory once a second."""
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mib(pid))
            time.sleep(1.0)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        return work(), samples
    finally:
        done.set()
        sampler.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: a tiny EfficientNet-Lite0 model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--long-seconds", type=float, default=3600.0)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--in-process", action="store_true", help="serve with LANP_ISOLATE_DECODE=false")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lanp-bench-service-"))
    model = args.model
    if model is None:
        from tests.service.tiny_model import make_tiny_model

        model = make_tiny_model(work / "tiny-model")
    clip = write_clip(work / "clip.mp4", args.clip_seconds).read_bytes()
    env = {"LANP_MODEL_DIR": str(model), "LANP_DEVICE": args.device, "LANP_WORK_DIR": str(work / "service"),
           "LANP_QUEUE_SIZE": "64", "LANP_MAX_SYNC_SECONDS": str(args.long_seconds + 60),
           "LANP_MAX_SYNC_FRAMES": str(int((args.long_seconds + 60) * 25)), "LANP_MAX_SYNC_MEGAPIXEL_FRAMES": "1e9",
           "LANP_MAX_CONCURRENT_UPLOADS": "32", "LANP_MAX_UPLOADS_IN_FLIGHT_MB": "65536",
           "LANP_MAX_UPLOAD_MB": "4096", "LANP_ISOLATE_DECODE": str(not args.in_process).lower()}
    results: dict = {"device": args.device, "clip_seconds": args.clip_seconds, "requests": args.requests,
                     "isolate_decode": not args.in_process}
    for name, module, path, port in (("service", "lanp_vad.service.app:create_app", "/score", 8931),
                                     ("naive", "bench.service:naive_app", "/naive-score", 8932)):
        url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "uvicorn", module, "--factory", "--port", str(port), "--log-level", "warning"]
        process = start(command, env, url, work / f"{name}.log")
        try:
            results[name] = measure(url + path, clip, args.requests, args.clip_seconds)
            if name == "service" and args.long_seconds > 0:
                long_clip = write_clip(work / "long.mp4", args.long_seconds, size=(160, 120)).read_bytes()
                wall_s, samples = rss_while(process.pid, partial(post, url + path, long_clip))
                results["long_upload"] = {"seconds": args.long_seconds, "wall_s": wall_s}
                results["long_upload"].update(rss_samples_mib=[round(s, 1) for s in samples],
                                              rss_min_mib=min(samples), rss_max_mib=max(samples))
        finally:
            process.terminate()
            process.wait(30)
        print(name, json.dumps(results[name]), flush=True)
        if name == "service" and "long_upload" in results:
            print("long_upload", json.dumps(results["long_upload"]), flush=True)
    service, naive = results["service"], results["naive"]
    ratio = naive["p50_s"] / service["p50_s"]
    print(f"latency p50 {service['p50_s']:.2f} s vs naive {naive['p50_s']:.2f} s (naive/service {ratio:.2f}x)")
    for clients in (1, 4, 16):
        key = f"throughput_{clients}"
        print(f"{clients:>2} clients: {service[key]:.2f} vs naive {naive[key]:.2f} video-s/s "
              f"(ratio {service[key] / naive[key]:.2f}x)")
    if "long_upload" in results:
        long = results["long_upload"]
        print(f"{args.long_seconds:.0f} s upload: RSS {long['rss_min_mib']:.0f}..{long['rss_max_mib']:.0f} MiB "
              f"over {len(long['rss_samples_mib'])} samples, {long['wall_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
