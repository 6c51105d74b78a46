"""Benchmark: ``lanp extract``'s engine beside the plain loop a user would write, per inference runtime.

For one spec (``--spec default``: EfficientNet-Lite0, 16 frames a snippet at 224 px, what ``lanp extract`` does by
default; ``demo``: 4 frames at 160 px, what ``lanp demo`` does; ``x3d``: X3D-XS, its own 4 frames at 160 px) it
runs, each in a fresh process so that peak RSS and CPU times are its own:

- ``engine``: ``extract_archive`` (decoding worker processes, cross-video batches) with ``--runtime R``;
- ``plain``: one in-process loop: PyAV decodes every frame, the snippet's frames are picked, resized, cropped and
  normalised with the same transform, and batches of ~64 frames go through the backbone in runtime R.

It prints video frames/s, the real-time factor, peak RSS (process and children) and user/system CPU seconds of
each, then engine(R) / plain(torch eager) and engine(R) / plain(R); for the plain loop also where its time went
(decoding, the transform, the backbone). ``--memory-minutes M`` also extracts a
generated M-minute 320x240 video through the decoding worker, sampling RSS at 10 / 50 / 100 % (it must stay flat).
CPU timings on a shared machine are noisy: quote medians with the load average. Example (the issue's
measurement, 4 Ped2 test clips, 70 s of video):

    python bench/extract.py --spec default --runtimes torch onnxruntime openvino --limit 4 --json out.json
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPECS = {
    "default": {},  # EfficientNet-Lite0, 8 of each snippet's 16 frames, 224 px crop of a 256 px resize
    # the other candidate specs of the cost / accuracy table (docs/performance.md), each written out in full so
    # that it keeps its meaning whatever the default is: frames per snippet x input size
    "f16": {"frames_per_snippet": 16},
    "f4": {"frames_per_snippet": 4},
    "s160": {"frames_per_snippet": 16, "crop_size": 160, "resize": 160},
    "f8s160": {"frames_per_snippet": 8, "crop_size": 160, "resize": 160},
    "demo": {"frames_per_snippet": 4, "crop_size": 160, "resize": 160},
    "x3d": {"backbone": "x3d_xs", "weights": "random-init:0", "frames_per_snippet": 4, "crop_size": 160,
            "resize": 160},
}
PLAIN_BATCH_FRAMES = 64


def rss_mib(pid: int) -> float:
    """RSS of ``pid`` and all its descendants, from /proc (MiB)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


class PeakRss:
    """Samples the RSS of this process and its children every 0.2 s while in the ``with`` block."""

    def __enter__(self) -> PeakRss:
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mib(os.getpid()))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def write_long_video(path: Path, minutes: float, fps: int = 10) -> Path:
    """A 320x240 H.264 video of cheap moving content (a bright square over a gradient)."""
    import av
    import numpy as np

    rows = np.linspace(0, 120, 240, dtype=np.uint8)[:, None, None]
    background = np.broadcast_to(rows, (240, 320, 3)).copy()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps * 10)}
        for index in range(int(minutes * 60 * fps)):
            frame = background.copy()
            top, left = (index * 3) % 200, (index * 5) % 280
            frame[top : top + 40, left : left + 40] = 250
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def memory_profile(runtime: str, spec: str, minutes: float) -> dict[str, float]:
    """RSS at 10 / 50 / 100 % of the snippets of a generated long video, extracted through the decoding worker."""
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    extractor = FeatureExtractor(ExtractionConfig(device="cpu", runtime=runtime, **SPECS[spec]))
    with tempfile.TemporaryDirectory() as folder:
        video = write_long_video(Path(folder) / "long.mp4", minutes)
        marks: dict[str, float] = {}

        def progress(done: int, total: int) -> None:
            for percent in (10, 50, 100):
                if f"rss_mib_at_{percent}pct" not in marks and done * 100 >= percent * total:
                    marks[f"rss_mib_at_{percent}pct"] = round(rss_mib(os.getpid()), 1)

        started = time.perf_counter()
        with PeakRss() as peak:
            extractor.extract_video(video, timeout_s=600, progress=progress)
        elapsed = time.perf_counter() - started
    return {**marks, "peak_rss_mib": round(peak.peak, 1), "video_minutes": minutes, "seconds": round(elapsed, 1),
            "realtime_factor": round(minutes * 60 / elapsed, 1), "runtime": extractor.runtime}


def plain_loop(videos: list[Path], extractor: object) -> tuple[int, float, dict[str, float]]:
    """Decode every frame with PyAV, pick each snippet's frames, transform and forward in ~64-frame batches.

    Also returns where the time went: seconds spent decoding, transforming (resize / crop / normalise) and in
    the backbone's runtime."""
    import av
    import numpy as np
    import torch

    from lanp_vad.pipeline.video.worker import snippet_frame_offsets

    length, picked = extractor.spec.snippet_length, extractor.spec.frames_per_snippet  # type: ignore[attr-defined]
    offsets = snippet_frame_offsets(length, picked)
    per_batch = max(1, PLAIN_BATCH_FRAMES // picked)
    frames, seconds = 0, 0.0
    stages = {"decode_s": 0.0, "transform_s": 0.0, "inference_s": 0.0}

    def forward(batch: list[np.ndarray]) -> None:
        started = time.perf_counter()
        clips = extractor.clips(torch.from_numpy(np.stack(batch)))  # type: ignore[attr-defined]
        transformed = time.perf_counter()
        extractor.forward_clips(clips)  # type: ignore[attr-defined]
        stages["transform_s"] += transformed - started
        stages["inference_s"] += time.perf_counter() - transformed

    for path in videos:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            snippet: list[np.ndarray] = []
            batch: list[np.ndarray] = []
            count = 0
            decoding = time.perf_counter()
            for frame in container.decode(stream):
                snippet.append(frame.to_ndarray(format="rgb24"))
                count += 1
                if len(snippet) == length:
                    batch.append(np.stack([snippet[index] for index in offsets]))
                    snippet = []
                if len(batch) == per_batch:
                    stages["decode_s"] += time.perf_counter() - decoding
                    forward(batch)
                    batch = []
                    decoding = time.perf_counter()
            if snippet:  # the last partial snippet, padded with its last frame
                snippet += [snippet[-1]] * (length - len(snippet))
                batch.append(np.stack([snippet[index] for index in offsets]))
            stages["decode_s"] += time.perf_counter() - decoding
            if batch:
                forward(batch)
            frames += count
            seconds += count / float(stream.average_rate)
    return frames, seconds, {name: round(value, 2) for name, value in stages.items()}


def run_one(mode: str, runtime: str, spec: str, videos: list[Path], workers: int) -> dict[str, object]:
    """One measurement in this process: the extractor is built (and its export cached) before the clock starts."""
    import resource

    from lanp_vad.pipeline.features.archive import extract_archive
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    # as ``lanp extract`` does, the engine's decoders start while the extractor is built
    extractor = FeatureExtractor(ExtractionConfig(device="cpu", runtime=runtime, **SPECS[spec]),
                                 archive_workers=workers if mode == "engine" else 0)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    started = time.perf_counter()
    with PeakRss() as peak:
        if mode == "engine":
            with tempfile.TemporaryDirectory() as out:
                report = extract_archive(videos, out, extractor, workers=workers, progress=False)
            if report.failed:
                raise SystemExit(report.summary())
            frames, seconds, stages = report.frames, report.video_seconds, {}
        else:
            frames, seconds, stages = plain_loop(videos, extractor)
    elapsed = time.perf_counter() - started
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return {
        "mode": mode, "runtime": extractor.runtime, "spec": spec, "frames": frames, "seconds": round(elapsed, 2),
        "frames_per_s": round(frames / elapsed, 2), "realtime_factor": round(seconds / elapsed, 2),
        "peak_rss_mib": round(peak.peak, 1),
        "user_s": round(sum(a.ru_utime - b.ru_utime for a, b in zip(after, usage, strict=True)), 1),
        "system_s": round(sum(a.ru_stime - b.ru_stime for a, b in zip(after, usage, strict=True)), 1),
        **stages,
    }


def run_fresh(mode: str, runtime: str, args: argparse.Namespace, videos: list[Path]) -> dict[str, object]:
    """One run of ``mode`` in a fresh process (its own peak RSS and CPU times)."""
    command = [sys.executable, __file__, "--one", mode, runtime, "--spec", args.spec,
               "--workers", str(args.workers), *map(str, videos)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} / {runtime} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(modes: list[str], runtime: str, args: argparse.Namespace, videos: list[Path]) -> list[dict[str, object]]:
    """Each of ``modes`` ``--repeats`` times, interleaved (A B A B ...: a load that comes and goes hits both
    alike), each run in a fresh process; per mode the median run by wall time, with every run's wall time."""
    runs: dict[str, list[dict[str, object]]] = {mode: [] for mode in modes}
    for _ in range(args.repeats):
        for mode in modes:
            runs[mode].append(run_fresh(mode, runtime, args, videos))
    results = []
    for mode in modes:
        ordered = sorted(runs[mode], key=lambda run: run["seconds"])
        result = {**ordered[len(ordered) // 2], "all_seconds": [run["seconds"] for run in runs[mode]],
                  "all_cpu_s": [round(run["user_s"] + run["system_s"], 1) for run in runs[mode]]}
        print(f"{mode:6s} {result['runtime']:11s} {result['frames_per_s']:7.1f} frames/s  "
              f"{result['realtime_factor']:5.2f}x real time  peak RSS {result['peak_rss_mib']:6.0f} MiB  "
              f"user {result['user_s']} s  system {result['system_s']} s  (wall {result['all_seconds']}, "
              f"CPU-s {result['all_cpu_s']})", flush=True)
        if "decode_s" in result:
            print(f"       where the time went: decode {result['decode_s']} s, resize / crop / normalise "
                  f"{result['transform_s']} s, backbone {result['inference_s']} s", flush=True)
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_videos = Path(__file__).resolve().parents[2] / "shared/data/ucsd-ped2/videos/test"
    parser.add_argument("--videos", type=Path, default=default_videos)
    parser.add_argument("--limit", type=int, default=4, help="first N videos of the folder")
    parser.add_argument("--spec", choices=sorted(SPECS), default="default")
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime", "openvino"])
    parser.add_argument("--workers", type=int, default=1, help="the engine's decoding processes")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each measurement; the engine and the plain loop of a runtime alternate")
    parser.add_argument("--skip-torch", action="store_true",
                        help="skip the plain torch-eager loop (slow; only the 3x target needs it)")
    parser.add_argument("--memory-minutes", type=float, default=0.0,
                        help="also extract a generated video this long through the worker, sampling RSS (0: skip)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("MODE", "RUNTIME"), help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.spec, args.paths, args.workers)))
        return

    videos = sorted(args.videos.glob("*.mp4"))[: args.limit]
    if not videos:
        raise SystemExit(f"no .mp4 videos in {args.videos}")
    load = os.getloadavg()
    print(f"spec {args.spec}, {len(videos)} videos, {os.cpu_count()} CPUs, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}", flush=True)
    results: dict[str, object] = {"spec": args.spec, "videos": [str(v) for v in videos], "load_average": load}
    plain_torch = None if args.skip_torch else measure(["plain"], "torch", args, videos)[0]
    results["plain_torch"] = plain_torch
    for runtime in args.runtimes:
        if runtime == "torch" and plain_torch is not None:
            plain, engine = plain_torch, measure(["engine"], runtime, args, videos)[0]
        else:
            plain, engine = measure(["plain", "engine"], runtime, args, videos)
        ratios = {"engine_vs_plain_same_runtime": round(engine["frames_per_s"] / plain["frames_per_s"], 2)}
        if plain_torch is not None:
            ratios["engine_vs_plain_torch"] = round(engine["frames_per_s"] / plain_torch["frames_per_s"], 2)
        paired = [round(p / e, 2) for p, e in zip(plain["all_seconds"], engine["all_seconds"], strict=True)]
        results[runtime] = {"plain": plain, "engine": engine, "paired_ratios": paired, **ratios}
        versus_torch = (f"engine / plain loop (torch eager) {ratios['engine_vs_plain_torch']:.2f}x, "
                        if plain_torch is not None else "")
        print(f"  {runtime}: {versus_torch}engine / plain loop ({runtime}) "
              f"{ratios['engine_vs_plain_same_runtime']:.2f}x (medians; run by run {paired})", flush=True)
    if args.memory_minutes > 0:
        results["memory"] = memory_profile(args.runtimes[-1], args.spec, args.memory_minutes)
        print("memory:", results["memory"], flush=True)
    results["load_average_after"] = os.getloadavg()
    print(f"load average after: {statistics.fmean(results['load_average_after']):.2f} (1/5/15 min mean)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
