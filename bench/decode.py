"""Decoding speed and memory: decord vs PyAV through ``open_video(...).iter_snippets``, side by side.

1. Throughput on the real clips (UCSD Ped2 test set + CCTV clips, ``../shared/data``): frames/s and snippets/s of
   each backend over ``--repeats`` runs (median quoted), and their ratio.
2. Memory stays flat with duration: a synthetic 320x240 H.264 clip of ``--long-frames`` frames is decoded snippet
   by snippet in a fresh child process per (backend, length), once for a quarter of the clip and once for all of
   it; peak RSS of the two should match (the ratio is printed).

CPU timings on a shared machine are noisy: few repetitions, medians quoted.
    python bench/decode.py [--repeats 3] [--long-frames 6000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lanp_vad.pipeline.video import open_video  # noqa: E402
from lanp_vad.pipeline.video.snippets import SnippetPlan  # noqa: E402

BACKENDS = ("decord", "pyav")


def decode_all(paths: list[Path], backend: str, batch: int) -> tuple[int, int]:
    """Decode every snippet of every path; returns (frames delivered, padding included; snippets)."""
    frames = snippets = 0
    for path in paths:
        with open_video(path, backend=backend) as reader:
            plan = SnippetPlan.build(reader.info.num_frames)
            for _, clip in reader.iter_snippets(plan, batch=batch):
                snippets += 1
                frames += clip.shape[0]
    return frames, snippets


def throughput(paths: list[Path], repeats: int, batch: int) -> dict[str, dict[str, float]]:
    results = {}
    for backend in BACKENDS:
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            frames, snippets = decode_all(paths, backend, batch)
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        results[backend] = {
            "median_s": median,
            "frames_per_s": frames / median,
            "snippets_per_s": snippets / median,
            "frames": frames,
        }
    return results


def _peak_rss_child(path: str, backend: str, frames: int, sender) -> None:  # noqa: ANN001
    """Decode the snippets covering the first ``frames`` frames, then report this process's peak RSS (MiB).

    The backend's import is part of the peak (decord's alone is ~700 MiB here)."""
    with open_video(path, backend=backend) as reader:
        plan = SnippetPlan.build(reader.info.num_frames)
        last = (frames - 1) // plan.stride
        for index, _ in reader.iter_snippets(plan, batch=4):
            if index >= last:
                break
    sender.send(_peak_rss_mib())


def _peak_rss_mib() -> float:
    """This process's peak RSS: VmHWM on Linux (ru_maxrss survives exec, so a spawned child would report its
    parent's peak), ru_maxrss elsewhere."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(path: Path, backend: str, frames: int) -> float:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_peak_rss_child, args=(str(path), backend, frames, sender))
    process.start()
    value = receiver.recv()
    process.join()
    return value


def write_long_clip(path: Path, num_frames: int) -> None:
    import av
    import numpy as np

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "50"}
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        for index in range(num_frames):
            frame = np.roll(base, index, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4, help="snippets per decode call")
    parser.add_argument("--long-frames", type=int, default=6000, help="length of the memory-test clip")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    paths = sorted((args.data / "ucsd-ped2/videos/test").glob("*.mp4")) + sorted(
        (args.data / "cctv-clips").glob("*.mp4")
    )
    if not paths:
        sys.exit(f"no clips under {args.data}")
    speed = throughput(paths, args.repeats, args.batch)
    frames = speed["pyav"]["frames"]
    print(f"throughput on {len(paths)} real clips ({frames} frames delivered), median of {args.repeats}:")
    for backend, row in speed.items():
        print(
            f"  {backend:7s} {row['frames_per_s']:8.0f} frames/s  {row['snippets_per_s']:7.1f} snippets/s"
            f"  ({row['median_s']:.2f} s)"
        )
    print(f"  decord / pyav speed ratio: {speed['decord']['frames_per_s'] / speed['pyav']['frames_per_s']:.2f}")

    memory = {}
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "long.mp4"
        write_long_clip(clip, args.long_frames)
        quarter = args.long_frames // 4
        print(f"peak RSS decoding a 320x240 clip snippet by snippet ({quarter} vs {args.long_frames} frames):")
        for backend in BACKENDS:
            short, full = peak_rss(clip, backend, quarter), peak_rss(clip, backend, args.long_frames)
            memory[backend] = {"quarter_mib": short, "full_mib": full, "ratio": full / short}
            print(f"  {backend:7s} {short:7.1f} MiB -> {full:7.1f} MiB (ratio {full / short:.3f})")

    if args.json:
        args.json.write_text(json.dumps({"throughput": speed, "peak_rss": memory}, indent=2))


if __name__ == "__main__":
    main()
