"""Benchmark: cameras per core, for offline extraction and for ``lanp watch``, beside the decode floor.

An operator sizes hardware in cameras per core: how many cameras of a given size and frame rate one core keeps up
with in real time. Footage is made from the real clips on this machine (``bench/footage.py``: upscaled to 720p,
1080p or 4K and encoded as a camera records, H.264 veryfast CRF 23, GOP 50, at 10 or 25 fps). For every size and
rate it measures, in one run, interleaved, ``--repeats`` times (medians):

- ``floor``: decoding alone, the plainest PyAV loop (``for frame in container.decode(video=0)``, PyAV's default
  threading), in this process: CPU-s (user + system) and wall. Nothing that reads the video can cost less.
- ``extract``: ``extract_archive`` on the clip (what ``lanp extract`` runs), in a fresh process
  (``bench/extract.py --one engine``): CPU-s of the process and its decoding workers, from a built extractor on.
- ``watch`` (``--watch``): ``lanp watch`` of the clip served as MPEG-TS over HTTP at real-time pace (the test
  source), with a seeded head of the same spec: CPU-s of the watcher while it streams (from its ``connected``
  record to the end), and whether it dropped anything.

Cameras per core = video seconds / CPU-s (a camera needs CPU-s / video-s of a core): the real-time capacity of
one core if nothing else ran, for the floor, the extraction and the watcher; ``x floor`` = CPU-s / floor CPU-s.

``--costs`` prints the extraction CPU-s of each candidate spec (``--specs``: frames per snippet x input size, as
in ``bench/extract.py``) on the camera clip and on four Ped2 test clips, each beside its decode floor.

``--stages`` prints instead where the extraction time of one clip goes, each stage in isolation, user and system
CPU-s apart: decoding alone; decoding + colour conversion and scaling (the reader's chunks, as the engine's
workers make them); the shared-memory hand-off (the real decode pool and engine loop with a model that does
nothing, minus the in-process read); the transform (resize / crop / normalise); the backbone; and the whole
extraction (``extract``) with what is left over.

    python bench/cameras.py --stages --size 1080p --fps 25 [--spec default]
    python bench/cameras.py --costs --size 1080p --fps 25 --repeats 3 [--specs default f8 ...]
    python bench/cameras.py --sizes 720p 1080p 4k --rates 10 25 --repeats 3 [--watch] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.extract import SPECS  # noqa: E402
from bench.footage import SIZES, camera_clip  # noqa: E402


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


class CpuClock:
    """User and system CPU-s of this process and its reaped children, and wall seconds, since the last ``lap``."""

    def __init__(self) -> None:
        self._last = self._now()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + children.ru_utime, own.ru_stime + children.ru_stime, time.perf_counter()

    def lap(self) -> dict[str, float]:
        now = self._now()
        user, system, wall = (a - b for a, b in zip(now, self._last, strict=True))
        self._last = now
        return {"user_s": user, "system_s": system, "cpu_s": user + system, "wall_s": wall}


def decode_floor(path: Path) -> dict[str, Any]:
    """The plainest decode: every frame through PyAV's default decoder settings, nothing kept."""
    import av

    clock = CpuClock()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        seconds = frames / float(stream.average_rate)
    return {**clock.lap(), "frames": frames, "video_s": seconds}


class NullModel:
    """A model that takes the engine's chunks and computes nothing: what is left is decoding and the hand-off."""

    runtime = "none"

    def __init__(self, extractor: Any):
        import torch

        self.spec, self.decode, self.batch_size = extractor.spec, extractor.decode, extractor.batch_size
        self.device = torch.device("cpu")

    def clips(self, snippets: Any) -> Any:
        import torch

        return torch.empty(snippets.shape[0], 1)

    def forward_clips(self, clips: Any) -> Any:
        import numpy as np

        return np.zeros((clips.shape[0], self.spec.dim), np.float32)


def stage_breakdown(path: Path, spec: str, runtime: str) -> dict[str, dict[str, float]]:
    """Each stage of one clip's extraction in isolation (see the module docstring); CPU-s user / system."""
    import av
    import torch

    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.engine import DecodePool, run_engine
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.video.inputs import VideoInput

    extractor = FeatureExtractor(ExtractionConfig(device="cpu", runtime=runtime, **SPECS[spec]))
    stages: dict[str, dict[str, float]] = {}
    clock = CpuClock()
    with av.open(str(path)) as container:  # the reader's decoder settings, every frame, no conversion
        for _ in container.decode(video=0):
            pass
    stages["decode"] = clock.lap()
    totals = {name: {"user_s": 0.0, "system_s": 0.0, "cpu_s": 0.0, "wall_s": 0.0}
              for name in ("read", "transform", "backbone")}

    def add(name: str) -> None:
        for key, value in clock.lap().items():
            totals[name][key] += value

    reader, plan = extractor.decode.open(path)
    with reader, torch.inference_mode():
        clock.lap()
        for _, chunk in extractor.decode.iter_chunks(reader, plan, extractor.batch_size):
            add("read")
            clips = extractor.clips(torch.from_numpy(chunk))
            add("transform")
            extractor.forward_clips(clips)
            add("backbone")
    stages["colour + scale"] = {key: totals["read"][key] - stages["decode"][key] for key in totals["read"]}
    pool = DecodePool.for_archive(extractor.decode, workers=1, snippets_per_chunk=extractor.batch_size,
                                  device=extractor.device)
    pool.start()
    time.sleep(2.0)  # the worker's start-up (imports) is not the hand-off
    clock.lap()
    with pool.lease():
        run_engine(NullModel(extractor), [VideoInput(path.stem, path)], pool, on_done=lambda *a: None,
                   on_failed=lambda video, kind, message: sys.exit(f"{kind}: {message}"))
    pool.close()  # reaped: its CPU time is now in RUSAGE_CHILDREN
    engine_without_model = clock.lap()
    stages["shared-memory hand-off"] = {
        key: engine_without_model[key] - totals["read"][key] for key in engine_without_model}
    stages["transform"] = totals["transform"]
    stages["backbone"] = totals["backbone"]
    return stages


def extract_fresh(path: Path | list[Path], spec: str, runtime: str) -> dict[str, Any]:
    """``extract_archive`` on the clip(s) in a fresh process (``bench/extract.py --one engine``)."""
    paths = path if isinstance(path, list) else [path]
    command = [sys.executable, str(ROOT / "bench" / "extract.py"), "--one", "engine", runtime, "--spec", spec,
               "--workers", "1", *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"extraction of {path} failed:\n{done.stderr[-3000:]}")
    run = json.loads(done.stdout.strip().splitlines()[-1])
    return {"user_s": run["user_s"], "system_s": run["system_s"], "cpu_s": run["user_s"] + run["system_s"],
            "wall_s": run["seconds"], "runtime": run["runtime"]}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU-s of a running process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch_stream(path: Path, model: Path, work: Path) -> dict[str, Any]:
    """``lanp watch`` of the clip served at real-time pace: CPU-s while streaming, snippets scored and dropped."""
    from bench.streams import free_port, python

    port = free_port()
    source = python("-m", "tests.pipeline.live.stream_source", str(path), "--port", str(port),
                    stdout=subprocess.PIPE, text=True)
    out = work / "watch.jsonl"
    out.unlink(missing_ok=True)
    watcher = None
    try:
        assert source.stdout is not None and source.stdout.readline().startswith("PORT")
        watcher = python("-m", "lanp_vad", "watch", f"http://127.0.0.1:{port}/camera.ts", "--model", str(model),
                         "--out", str(out), "--device", "cpu", "--max-reconnects", "0")
        started_cpu = None
        while watcher.poll() is None:
            if started_cpu is None and out.exists() and '"connected"' in out.read_text():
                started_cpu, started_wall = _cpu_seconds(watcher.pid), time.perf_counter()
            elif started_cpu is not None:
                last_cpu = _cpu_seconds(watcher.pid)
            time.sleep(0.2)
        records = [json.loads(line) for line in out.read_text().splitlines()]
    finally:
        for process in (source, watcher):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    if started_cpu is None:
        raise SystemExit(f"lanp watch never connected: {out.read_text() if out.exists() else 'no output'}")
    snippets = [r for r in records if r["type"] == "snippet"]
    dropped = sum(1 for r in records if r["type"] == "dropped")
    return {"cpu_s": last_cpu - started_cpu, "wall_s": time.perf_counter() - started_wall,
            "snippets": len(snippets), "dropped": dropped,
            "video_s": max((r["end_s"] for r in snippets), default=0.0)}


def capacity(runs: list[dict[str, Any]], video_s: float) -> dict[str, Any]:
    """Medians of ``runs`` and the cameras one core keeps up with."""
    cpu = statistics.median(run["cpu_s"] for run in runs)
    wall = statistics.median(run["wall_s"] for run in runs)
    return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "all_cpu_s": [round(r["cpu_s"], 2) for r in runs],
            "cameras_per_core": round(video_s / cpu, 2),
            **({"dropped": max(r["dropped"] for r in runs)} if "dropped" in runs[0] else {})}


def measure_cameras(args: argparse.Namespace) -> dict[str, Any]:
    """The cameras-per-core table: every size and rate, the floor, extraction (and watch) interleaved."""
    results: dict[str, Any] = {"spec": args.spec, "load_before": os.getloadavg(), "rows": []}
    with tempfile.TemporaryDirectory() as scratch:
        model = None
        if args.watch:
            from bench.streams import make_model

            model = make_model(Path(scratch) / "model", SPECS[args.spec])
        print(f"spec {args.spec}; {load()}", flush=True)
        print(f"{'camera':>12s} {'floor CPU-s':>11s} {'extract CPU-s':>13s} {'x floor':>7s} {'cams/core':>9s}"
              f"{'  watch CPU-s  x floor  cams/core  dropped' if args.watch else ''}   (floor cams/core)", flush=True)
        for size in args.sizes:
            for fps in args.rates:
                clip = camera_clip(size, fps, args.seconds)
                runs: dict[str, list[dict[str, Any]]] = {"floor": [], "extract": [], "watch": []}
                for _ in range(args.repeats):
                    runs["floor"].append(decode_floor(clip))
                    runs["extract"].append(extract_fresh(clip, args.spec, args.runtime))
                    if model is not None:
                        runs["watch"].append(watch_stream(clip, model, Path(scratch)))
                video_s = runs["floor"][0]["video_s"]
                row = {"size": size, "fps": fps, "video_s": video_s,
                       **{kind: capacity(done, video_s) for kind, done in runs.items() if done}}
                for kind in ("extract", "watch"):
                    if kind in row:
                        row[kind]["x_floor"] = round(row[kind]["cpu_s"] / row["floor"]["cpu_s"], 2)
                results["rows"].append(row)
                watch = row.get("watch")
                watched = (f"  {watch['cpu_s']:11.2f} {watch['x_floor']:7.2f}x {watch['cameras_per_core']:9.2f}"
                           f"  {watch['dropped']:7d}" if watch else "")
                print(f"{size + ' ' + str(fps) + ' fps':>12s} {row['floor']['cpu_s']:11.2f} "
                      f"{row['extract']['cpu_s']:13.2f} {row['extract']['x_floor']:6.2f}x "
                      f"{row['extract']['cameras_per_core']:9.2f}{watched}   ({row['floor']['cameras_per_core']:.1f})"
                      f"  wall: extract {row['extract']['wall_s']} s of {video_s:.0f} s video", flush=True)
    results["load_after"] = os.getloadavg()
    print(load(), flush=True)
    return results


def spec_costs(args: argparse.Namespace) -> dict[str, Any]:
    """Extraction CPU-s of each candidate spec on the camera clip and on the first Ped2 test clips, beside the
    decode floor of each, interleaved over ``--repeats`` (medians)."""
    from bench.footage import SHARED

    inputs = {f"{args.size} {args.fps} fps": [camera_clip(args.size, args.fps, args.seconds)],
              "ped2 test 01-04": sorted((SHARED / "ucsd-ped2/videos/test").glob("*.mp4"))[:4]}
    floors = {name: [] for name in inputs}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {(s, n): [] for s in args.specs for n in inputs}
    print(f"spec costs, runtime {args.runtime}; {load()}", flush=True)
    for _ in range(args.repeats):
        for name, clips in inputs.items():
            floor = [decode_floor(clip) for clip in clips]
            floors[name].append({"cpu_s": sum(f["cpu_s"] for f in floor), "video_s": sum(f["video_s"] for f in floor)})
            for spec in args.specs:
                runs[spec, name].append(extract_fresh(clips, spec, args.runtime))
    table: dict[str, Any] = {"load_before": os.getloadavg(), "rows": []}
    print(f"{'spec':>8s} {'settings':>44s}" + "".join(f" {name + ' CPU-s':>22s} {'x floor':>7s}" for name in inputs))
    for spec in args.specs:
        row: dict[str, Any] = {"spec": spec, "settings": SPECS[spec]}
        cells = []
        for name in inputs:
            floor = statistics.median(f["cpu_s"] for f in floors[name])
            cpu = statistics.median(r["cpu_s"] for r in runs[spec, name])
            row[name] = {"cpu_s": round(cpu, 2), "floor_cpu_s": round(floor, 2), "x_floor": round(cpu / floor, 2),
                         "video_s": floors[name][0]["video_s"], "all_cpu_s": [r["cpu_s"] for r in runs[spec, name]]}
            cells.append(f" {cpu:22.2f} {cpu / floor:6.2f}x")
        table["rows"].append(row)
        print(f"{spec:>8s} {json.dumps(SPECS[spec]):>44s}" + "".join(cells), flush=True)
    print("floors (CPU-s): " + ", ".join(
        f"{name} {statistics.median(f['cpu_s'] for f in floors[name]):.2f}" for name in inputs) + f"; {load()}")
    return table


def print_stages(args: argparse.Namespace) -> dict[str, Any]:
    clip = camera_clip(args.size, args.fps, args.seconds)
    print(f"{clip.name}, spec {args.spec}, runtime {args.runtime}; {load()}", flush=True)
    stages = stage_breakdown(clip, args.spec, args.runtime)
    stages["extract (whole)"] = extract_fresh(clip, args.spec, args.runtime)
    parts = [stages[name] for name in stages if name not in ("decode", "extract (whole)")]
    summed = {key: stages["decode"][key] + sum(part[key] for part in parts) for key in ("user_s", "system_s")}
    stages["left over (whole - stages)"] = {key: stages["extract (whole)"][key] - summed[key] for key in summed}
    print(f"{'stage':>28s} {'system s':>9s} {'user s':>8s} {'CPU-s':>7s}")
    for name, figures in stages.items():
        cpu = figures["user_s"] + figures["system_s"]
        print(f"{name:>28s} {figures['system_s']:9.2f} {figures['user_s']:8.2f} {cpu:7.2f}")
    floor = stages["decode"]["user_s"] + stages["decode"]["system_s"]
    whole = stages["extract (whole)"]["cpu_s"]
    print(f"whole extraction / decode floor: {whole / floor:.2f}x; {load()}", flush=True)
    return {"clip": clip.name, "spec": args.spec, "stages": stages, "x_floor": whole / floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", action="store_true", help="the per-stage breakdown of one clip instead")
    parser.add_argument("--costs", action="store_true",
                        help="extraction CPU-s of each of --specs on the --size/--fps clip and Ped2 instead")
    parser.add_argument("--specs", nargs="+", choices=sorted(SPECS),
                        default=["f16", "default", "f4", "s160", "f8s160", "demo"])
    parser.add_argument("--size", choices=sorted(SIZES), default="1080p", help="--stages: the clip's size")
    parser.add_argument("--fps", type=int, default=25, help="--stages: the clip's rate")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["720p", "1080p", "4k"])
    parser.add_argument("--rates", nargs="+", type=int, default=[10, 25])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each clip")
    parser.add_argument("--spec", choices=sorted(SPECS), default="default")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--watch", action="store_true", help="also `lanp watch` each clip at real-time pace")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = print_stages(args) if args.stages else spec_costs(args) if args.costs else measure_cameras(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
