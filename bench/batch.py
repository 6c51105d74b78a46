"""Archive throughput of batch scoring: the local worker pool vs a plain loop vs Ray, and memory growth.

Runs the same archive (real Ped2 clips, repeated under new names to reach ``--videos``) in fresh output folders:

- ``plain x1``: what a competent user writes without this job: one Scorer in this process, a loop over the
  videos writing each ``POST /score`` document to a JSON file (the baseline; no isolation, no resume, no tables);
- ``local x1``: ``pipeline.jobs.batch.run_batch`` with one killable worker process;
- ``local xN``: N worker processes, each with its own Scorer and cores/N torch threads;
- ``ray xN``: Ray Data with N actors on a local Ray instance (``--no-ray`` to skip);

and prints video-hours per hour, snippets/s and the ratio to the baseline (medians over ``--repeats``), then
the peak memory (RSS summed over the process tree from /proc, sampled every 50 ms) of the local pool on a small and a 4x
larger archive. The model is a random-init classifier over ``--backbone`` features unless ``--model`` is given:
throughput does not depend on the weights' values. CPU timings on a shared machine are noisy: few repetitions,
medians quoted.

    python bench/batch.py --videos 12 --workers 2 --json bench-batch.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from lanp_vad.pipeline.jobs.batch import run_batch
from lanp_vad.pipeline.jobs.config import BatchConfig
from lanp_vad.pipeline.video.inputs import VideoInput

REPO_ROOT = Path(__file__).resolve().parents[1]
PED2 = REPO_ROOT.parent / "shared" / "data" / "ucsd-ped2" / "videos"
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def make_model(directory: Path, backbone: str, crop: int | None, frames: int | None, device: str) -> Path:
    """A random-init classifier over ``backbone`` features, saved as a model directory."""
    import torch

    from lanp_vad.models.classifier import LANPClassifier
    from lanp_vad.models.config import LANPConfig
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.training.model_dir import save_model

    torch.manual_seed(0)
    spec = FeatureExtractor(ExtractionConfig(backbone=backbone, weights="random-init:0", device=device,
                                             crop_size=crop, frames_per_snippet=frames)).spec
    config = LANPConfig()
    return save_model(directory, LANPClassifier(spec.dim, config.classifier), spec, config, {"threshold": 0.5})


def make_archive(count: int) -> list[VideoInput]:
    """``count`` videos cycling through the Ped2 clips (test then train), each with its own id."""
    clips = sorted(PED2.glob("test/*.mp4")) + sorted(PED2.glob("train/*.mp4"))
    if not clips:
        raise SystemExit(f"no Ped2 clips under {PED2}")
    return [VideoInput(f"v{index:04d}_{clips[index % len(clips)].stem}", clips[index % len(clips)])
            for index in range(count)]


def tree_rss_bytes(root: int) -> int:
    """RSS of process ``root`` and all its descendants, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in members]
        members.update(children)
        frontier.extend(children)
    total = 0
    for pid in members:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except OSError:
            continue
    return total


class PeakMemory:
    """Peak RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(os.getpid()))
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _result(engine: str, workers: int, videos: list[VideoInput], seconds: float, snippets: int,
            video_seconds: float, peak_rss: int) -> dict:
    return {
        "engine": engine, "workers": workers, "videos": len(videos), "seconds": seconds,
        "snippets": snippets, "snippets_per_s": snippets / seconds,
        "video_hours_per_hour": video_seconds / seconds, "peak_rss_mib": peak_rss / 2**20,
    }


def measure(videos: list[VideoInput], model: Path, work: Path, *, engine: str, workers: int, device: str) -> dict:
    """One run into a fresh folder: wall time, throughput and peak memory of the process tree."""
    out = Path(tempfile.mkdtemp(dir=work, prefix=f"{engine}{workers}-"))
    if engine == "plain":
        return measure_plain(videos, model, out, device=device)
    config = BatchConfig(engine=engine, workers=workers, device=device)
    with PeakMemory() as memory:
        start = time.perf_counter()
        report = run_batch(videos, model, out, config, progress=False)
        seconds = time.perf_counter() - start
    if report.failed:
        raise SystemExit(f"{engine} x{workers}: videos failed: {report.failed}")
    summary = (out / "summary.csv").read_text().splitlines()[1:]
    video_seconds = sum(float(line.split(",")[2]) for line in summary)
    return _result(engine, workers, videos, seconds, report.snippets, video_seconds, memory.peak)


def measure_plain(videos: list[VideoInput], model: Path, out: Path, *, device: str) -> dict:
    """The plain loop: one in-process Scorer, one JSON per video (model loading included, as in the engines)."""
    from lanp_vad.pipeline.scoring.config import ScoringConfig
    from lanp_vad.pipeline.scoring.scorer import Scorer

    with PeakMemory() as memory:
        start = time.perf_counter()
        scorer = Scorer.from_model_dir(model, device=device, config=ScoringConfig(decode_timeout_s=None))
        snippets, video_seconds = 0, 0.0
        for video in videos:
            document = scorer.score_video(video.path).model_dump(mode="json")
            (out / f"{video.video_id}.json").write_text(json.dumps(document))
            snippets += len(document["snippet_scores"])
            video_seconds += document["duration_s"]
        seconds = time.perf_counter() - start
    return _result("plain", 1, videos, seconds, snippets, video_seconds, memory.peak)


def median_run(repeats: int, **kwargs: object) -> dict:
    runs = [measure(**kwargs) for _ in range(repeats)]
    result = dict(runs[0])
    for key in ("seconds", "snippets_per_s", "video_hours_per_hour", "peak_rss_mib"):
        result[key] = statistics.median(run[key] for run in runs)
    result["repeats"] = repeats
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", type=Path, help="a model directory (default: random-init over --backbone)")
    parser.add_argument("--backbone", default="x3d_xs")
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--memory-videos", type=int, nargs=2, default=(10, 40), metavar=("SMALL", "LARGE"))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as temporary:
        work = Path(temporary)
        model = args.model or make_model(work / "model", args.backbone, args.crop, args.frames, args.device)
        videos = make_archive(args.videos)
        common = {"videos": videos, "model": model, "work": work, "device": args.device, "repeats": args.repeats}
        results = [median_run(engine="plain", workers=1, **common), median_run(engine="local", workers=1, **common)]
        if args.workers > 1:
            results.append(median_run(engine="local", workers=args.workers, **common))
        if not args.no_ray:
            import ray

            ray.init(include_dashboard=False, log_to_driver=False)
            results.append(median_run(engine="ray", workers=args.workers, **common))
            ray.shutdown()
        baseline = results[0]
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"{len(videos)} videos, device {args.device}, median of {args.repeats} run(s); load average {load} "
              "(noisy shared CPUs)")
        print(f"{'engine':<10} {'seconds':>8} {'snippets/s':>11} {'video-h/h':>10} {'peak MiB':>9} {'ratio':>6}")
        for result in results:
            result["ratio_vs_plain_loop"] = result["snippets_per_s"] / baseline["snippets_per_s"]
            print(f"{result['engine']} x{result['workers']:<5} {result['seconds']:8.1f} "
                  f"{result['snippets_per_s']:11.2f} {result['video_hours_per_hour']:10.2f} "
                  f"{result['peak_rss_mib']:9.0f} {result['ratio_vs_plain_loop']:6.2f}")

        small, large = args.memory_videos
        memory = [measure(make_archive(count), model, work, engine="local", workers=args.workers,
                          device=args.device) for count in (small, large)]
        growth = memory[1]["peak_rss_mib"] / memory[0]["peak_rss_mib"]
        print(f"peak memory, local x{args.workers}: {small} videos {memory[0]['peak_rss_mib']:.0f} MiB, "
              f"{large} videos {memory[1]['peak_rss_mib']:.0f} MiB (ratio {growth:.2f})")
    if args.json:
        args.json.write_text(json.dumps({"throughput": results, "memory": memory, "memory_ratio": growth}, indent=2))


if __name__ == "__main__":
    main()
