"""Benchmark: ``lanp extract``'s engine versus a naive loop, and peak memory on a one-hour video.

1. Speed, side by side on the same videos and the same backbone/transform: the engine (worker decoding,
   cross-video batches) versus the naive loop (pytorchvideo ``EncodedVideo.get_clip`` with the PyAV decoder for
   every 16-frame clip, one forward per clip). Prints snippets/s, real-time factor and the ratio (medians).
2. Memory: RSS (this process plus its decoding workers) while extracting a generated one-hour 320x240 video at
   10 fps (Ped2's rate), sampled at 10 %, 50 % and 100 % of the snippets: it must stay flat.

CPU timings on a shared machine are noisy: few repetitions, medians quoted. Example:
    python bench/extract.py --videos ../shared/data/ucsd-ped2/videos/test --limit 4 --repeats 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.features.archive import extract_archive  # noqa: E402
from pipeline.features.config import ExtractionConfig  # noqa: E402
from pipeline.features.extractor import FeatureExtractor  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)


def _encoded_video_class() -> type:
    """pytorchvideo's EncodedVideo; its import needs the old torchvision module name (aliased here only)."""
    import torchvision.transforms._functional_tensor as functional_tensor

    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional_tensor)
    from pytorchvideo.data.encoded_video import EncodedVideo

    return EncodedVideo


def naive_loop(videos: list[Path], extractor: FeatureExtractor) -> tuple[int, float]:
    """One get_clip (PyAV) and one forward per 16-frame clip; returns (snippets, video seconds)."""
    encoded_video = _encoded_video_class()
    offsets = None
    snippets, seconds = 0, 0.0
    for path in videos:
        video = encoded_video.from_path(str(path), decoder="pyav", decode_audio=False)
        fps = float(video._container.streams.video[0].average_rate)
        duration = float(video.duration)
        clip_s = 16 / fps
        for index in range(math.ceil(duration / clip_s - 1e-6)):
            frames = video.get_clip(index * clip_s, (index + 1) * clip_s)["video"]  # (3, L, H, W) float 0-255
            if frames is None or frames.shape[1] == 0:
                break
            snippet = frames.permute(1, 2, 3, 0).to(torch.uint8)
            if offsets is None:
                length = extractor.spec.snippet_length
                count = extractor.spec.frames_per_snippet
                offsets = (np.arange(count) + 0.5) * length / count
            picked = snippet[np.minimum(offsets.astype(int), snippet.shape[0] - 1)]
            extractor.features(picked[None])
            snippets += 1
        seconds += duration
        video.close()
    return snippets, seconds


def engine(videos: list[Path], extractor: FeatureExtractor, workers: int) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as out:
        report = extract_archive(videos, out, extractor, workers=workers, progress=False)
    if report.failed:
        raise RuntimeError(report.summary())
    return report.snippets, report.video_seconds


def _rss_mib(pid: int) -> float:
    """RSS of ``pid`` and all its descendants, from /proc (MiB)."""
    total = 0
    pending = [pid]
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


def write_long_video(path: Path, minutes: float, fps: int = 10) -> Path:
    """A 320x240 H.264 video of cheap moving content (a bright square over a gradient)."""
    import av

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


def memory_profile(extractor: FeatureExtractor, minutes: float) -> dict[str, float]:
    """RSS at 10 / 50 / 100 % of the snippets of a long video, extracted through a decoding worker."""
    with tempfile.TemporaryDirectory() as folder:
        video = write_long_video(Path(folder) / "long.mp4", minutes)
        total = math.ceil(minutes * 60 * 10 / 16)
        marks: dict[str, float] = {}
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], _rss_mib(os.getpid()))

        def progress(done: int, _: int) -> None:
            for fraction in (0.1, 0.5, 1.0):
                key = f"rss_mib_at_{int(fraction * 100)}pct"
                if key not in marks and done >= fraction * total:
                    marks[key] = round(_rss_mib(os.getpid()), 1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        extractor.extract_video(video, timeout_s=600, progress=progress)
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
    return {**marks, "peak_rss_mib": round(peak[0], 1), "video_minutes": minutes, "seconds": round(elapsed, 1),
            "realtime_factor": round(minutes * 60 / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_videos = Path(__file__).resolve().parents[2] / "shared/data/ucsd-ped2/videos/test"
    parser.add_argument("--videos", type=Path, default=default_videos)
    parser.add_argument("--limit", type=int, default=4, help="first N videos of the folder")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="pretrained")
    parser.add_argument("--frames-per-snippet", type=int, default=4)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--memory-minutes", type=float, default=60.0, help="length of the generated video (0: skip)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    videos = sorted(args.videos.glob("*.mp4"))[: args.limit]
    extractor = FeatureExtractor(ExtractionConfig(backbone=args.backbone, weights=args.weights, device="cpu",
                                                  frames_per_snippet=args.frames_per_snippet, crop_size=args.size))
    results: dict[str, object] = {"spec": extractor.spec.model_dump(mode="json"), "videos": [str(v) for v in videos],
                                  "cpu_threads": torch.get_num_threads(), "repeats": args.repeats}
    runs = (("naive", lambda: naive_loop(videos, extractor)),
            ("engine", lambda: engine(videos, extractor, args.workers)))
    for name, run in runs:
        times, snippets, seconds = [], 0, 0.0
        for _ in range(args.repeats):
            started = time.perf_counter()
            snippets, seconds = run()
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        results[name] = {"snippets": snippets, "median_s": round(median, 2),
                         "snippets_per_s": round(snippets / median, 2), "realtime_factor": round(seconds / median, 2),
                         "times_s": [round(t, 2) for t in times]}
        print(f"{name:7s} {snippets} snippets, median {median:.1f} s: {snippets / median:.1f} snippets/s, "
              f"{seconds / median:.1f}x real time", flush=True)
    ratio = results["engine"]["snippets_per_s"] / results["naive"]["snippets_per_s"]  # type: ignore[index]
    results["speedup_engine_vs_naive"] = round(ratio, 2)
    print(f"engine / naive: {ratio:.2f}x")
    if args.memory_minutes > 0:
        memory = FeatureExtractor(ExtractionConfig(device="cpu", frames_per_snippet=1, crop_size=112))
        results["memory"] = memory_profile(memory, args.memory_minutes)
        print("memory:", results["memory"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
