"""Live streams: latency from a frame's arrival to its snippet's score, and how many real-time streams one machine
sustains, for ``lanp watch`` beside the plain loop a competent user would write, in one run.

The source is the test source (``tests/pipeline/live/stream_source.py``): a real clip (Ped2 test clip 01 by
default, 360x240 at 10 fps) looped as MPEG-TS over HTTP on 127.0.0.1 at real-time pace, one source process per
stream. The model is EfficientNet-Lite0 (the offline-pretrained default backbone) with the demo's spec (4 of 16
frames a snippet, 160 px) and a seeded LANP head; the contract is speed, not accuracy.

- ``lanp watch``: the watcher (reader thread, bounded backlog, batched inference, temporal context so scores equal
  offline scoring; a snippet's score waits for its right-hand neighbour).
- plain: ``av.open(url)``; decode every frame to RGB; every 16 frames run the extractor and the classifier on that
  one snippet, in the decoding loop (no backlog, no context: its scores differ from offline scoring).

Latency: every frame of every scored snippet, ``score time - arrival time`` (frames arrive evenly inside a snippet,
so each frame's latency is interpolated between the snippet's first and last frame). Sustained streams: k streams
at once (k watcher processes, k sources) for ``--seconds``; a stream keeps up when it dropped nothing and its last
scores came within ``--max-lag`` seconds of the source's real-time schedule (so a reader that throttles the
source through full socket buffers does not look fast); the real-time factor is stream seconds scored / wall
seconds. k grows until a stream falls behind. The first stream's resident memory is sampled while it streams
(flat = bounded buffers). Medians; the machine may be shared (the load average is printed).

Contention (``--contention N``, in ``bench/service_contention.py``): a real ``lanp serve`` with N streams on
its one device scheduler; ``POST /score`` latency of a short clip alone and with the N streams running, and the
streams' snippet latency alone, while uploads come in and while a long job runs, side by side.

    python bench/streams.py [--clip PATH] [--seconds 20] [--max-streams 6] [--max-lag 6] [--threads 1]
                            [--contention N] [--only-contention] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CLIP = ROOT.parent / "shared" / "data" / "ucsd-ped2" / "videos" / "test" / "01.mp4"


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


STREAM_SPEC = {"frames_per_snippet": 4, "crop_size": 160}
"""The spec the stream benchmark's head is made for (the demo's)."""


def make_model(directory: Path, spec_settings: dict[str, Any] | None = None) -> Path:
    """A seeded LANP head for the features of ``spec_settings`` (``ExtractionConfig`` fields; the demo's spec by
    default): speed benchmarks need the real extractor and classifier, not a trained model."""
    from lanp_vad.models.classifier import create_classifier
    from lanp_vad.models.config import LANPConfig
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.training.model_dir import save_model

    settings = STREAM_SPEC if spec_settings is None else spec_settings
    spec = FeatureExtractor(ExtractionConfig(device="cpu", **settings)).spec
    config = LANPConfig()
    classifier = create_classifier(dim=spec.dim, config=config.classifier, seed=0)
    return save_model(directory, classifier, spec, config, {"threshold": 0.5, "note": "benchmark head"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def python(*args: str, **kwargs: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, **kwargs)


def start_source(clip: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = python("-m", "tests.pipeline.live.stream_source", str(clip), "--port", str(port), "--loop",
                     stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("PORT")
    return process, f"http://127.0.0.1:{port}/camera.ts"


def plain_worker(url: str, model: Path, seconds: float, out: Path, threads: int) -> None:
    """The plain loop (see the module docstring), writing one JSON line per snippet."""
    import av
    import torch

    torch.set_num_threads(threads)

    from lanp_vad.pipeline.scoring.config import ScoringConfig
    from lanp_vad.pipeline.scoring.scorer import Scorer
    from lanp_vad.pipeline.video.worker import snippet_frame_offsets

    scorer = Scorer.from_model_dir(model, device="cpu", config=ScoringConfig(decode_timeout_s=None))
    offsets = snippet_frame_offsets(16, scorer.extractor.decode.frames_per_snippet)
    scorer.warm_up()
    frames, arrivals, stamps = [], [], []
    started = time.time()
    with av.open(url) as container, out.open("w") as sink:
        for frame in container.decode(video=0):
            arrivals.append(time.time())
            stamps.append(frame.time)
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 16:
                score = float(scorer.classify(scorer.extractor.features(np.stack(frames)[offsets][None]))[0])
                now = time.time()
                sink.write(json.dumps({"type": "snippet", "score": score, "latency_s": now - arrivals[-1],
                                       "first_frame_latency_s": now - arrivals[0], "start_s": stamps[0],
                                       "end_s": stamps[-1] + 0.1, "wall_time": now}) + "\n")
                sink.flush()
                frames, arrivals, stamps = [], [], []
            if time.time() - started > seconds:
                return


def run_streams(kind: str, count: int, clip: Path, model: Path, seconds: float, work: Path,
                threads: int) -> list[list[dict]]:
    """``count`` streams at once for ``seconds``; each stream's records."""
    sources, watchers, outs = [], [], []
    try:
        for index in range(count):
            source, url = start_source(clip)
            sources.append(source)
            out = work / f"{kind}-{count}-{index}.jsonl"
            out.unlink(missing_ok=True)
            outs.append(out)
            if kind == "watch":
                watchers.append(python("-m", "lanp_vad", "watch", url, "--model", str(model), "--out", str(out),
                                       "--device", "cpu", "--threads", str(threads)))
            else:
                watchers.append(python(__file__, "--plain-worker", url, str(model), str(seconds), str(out),
                                       str(threads)))
        deadline = time.monotonic() + seconds + 120  # start-up (torch import, model load) is not stream time
        while time.monotonic() < deadline and any(w.poll() is None for w in watchers):
            if kind == "watch" and all(_stream_seconds(_records(o)) >= seconds for o in outs):
                break
            if _records(outs[0]):
                RSS_MIB.setdefault(kind, []).append(_rss_mib(watchers[0].pid))
            time.sleep(0.5)
        for watcher in watchers:
            if watcher.poll() is None:
                watcher.send_signal(signal.SIGTERM)
        for watcher in watchers:
            try:
                watcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                watcher.kill()
    finally:
        for process in sources + watchers:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [_records(out) for out in outs]


RSS_MIB: dict[str, list[float]] = {}
"""The first stream's resident memory, sampled every half second while it streams (the latest run per kind)."""


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _stream_seconds(records: list[dict]) -> float:
    snippets = [r for r in records if r["type"] == "snippet"]
    return snippets[-1]["end_s"] - snippets[0]["start_s"] if snippets else 0.0


def frame_latencies(records: list[dict]) -> np.ndarray:
    values = [np.linspace(r["first_frame_latency_s"], r["latency_s"], 16) for r in records if r["type"] == "snippet"]
    return np.concatenate(values) if values else np.zeros(0)


def summarise(records: list[dict], max_lag: float) -> dict[str, Any]:
    snippets = [r for r in records if r["type"] == "snippet"]
    dropped = sum(r["type"] == "dropped" for r in records)
    if len(snippets) < 2:
        return {"keeps_up": False, "snippets": len(snippets), "dropped": dropped, "rtf": 0.0}
    wall = snippets[-1]["wall_time"] - snippets[0]["wall_time"]
    stream = snippets[-1]["end_s"] - snippets[0]["end_s"]
    # lag behind the source's real-time schedule: counts time a slow reader leaves frames in socket buffers
    # (where the source is throttled), which the latency from arrival does not see
    origin = snippets[0]["wall_time"] - snippets[0]["latency_s"] - snippets[0]["end_s"]
    lag = max(r["wall_time"] - origin - r["end_s"] for r in snippets[-3:])
    return {"keeps_up": dropped == 0 and lag <= max_lag, "snippets": len(snippets), "dropped": dropped,
            "rtf": stream / wall if wall > 0 else 0.0, "final_lag_s": lag}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--seconds", type=float, default=20.0, help="stream seconds per measurement")
    parser.add_argument("--max-streams", type=int, default=6)
    parser.add_argument("--max-lag", type=float, default=6.0, help="a stream keeps up if its last scores lag less")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per stream process (both kinds)")
    parser.add_argument("--contention", type=int, default=2, metavar="N",
                        help="streams beside uploads and a long job in a real server (0: skip)")
    parser.add_argument("--only-contention", action="store_true", help="skip the lanp watch / plain figures")
    parser.add_argument("--plain-worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_worker:
        url, model, seconds, out, threads = args.plain_worker
        plain_worker(url, Path(model), float(seconds), Path(out), int(threads))
        return
    if not args.clip.exists():
        sys.exit(f"clip {args.clip} not found (the shared data folder is beside the project; or give --clip)")
    results: dict[str, Any] = {"clip": str(args.clip), "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        model = make_model(work / "model")
        print(f"model: EfficientNet-Lite0, 4 of 16 frames at 160 px; clip {args.clip.name}; {load()}")
        if args.contention:
            from bench.service_contention import measure_contention

            results["contention"] = measure_contention(args.clip, model, work, streams=args.contention,
                                                       seconds=args.seconds, start_source=start_source)
        if not args.only_contention:
            results.update(watch_and_plain(args, model, work))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def watch_and_plain(args: argparse.Namespace, model: Path, work: Path) -> dict[str, Any]:
    """Latency and sustained streams of ``lanp watch`` beside the plain loop (see the module docstring)."""
    results: dict[str, Any] = {}
    for kind in ("watch", "plain"):
        RSS_MIB.pop(kind, None)
        latencies = frame_latencies(run_streams(kind, 1, args.clip, model, args.seconds, work, args.threads)[0])
        rss = RSS_MIB.get(kind) or [float("nan")]
        results[f"{kind}_rss_mib_first_last"] = [rss[0], rss[-1]]
        p50, p95 = (np.percentile(latencies, [50, 95]) if latencies.size else (np.nan, np.nan))
        results[f"{kind}_latency_p50_s"], results[f"{kind}_latency_p95_s"] = float(p50), float(p95)
        print(f"{kind:5s} 1 stream: frame-to-score latency p50 {p50:.2f} s, p95 {p95:.2f} s "
              f"({latencies.size} frames); RSS {rss[0]:.0f} -> {rss[-1]:.0f} MiB while streaming ({load()})")
    for kind in ("watch", "plain"):
        sustained = 0
        for count in range(1, args.max_streams + 1):
            streams = [summarise(r, args.max_lag) for r in
                       run_streams(kind, count, args.clip, model, args.seconds, work, args.threads)]
            rtf = float(np.median([s["rtf"] for s in streams]))
            ok = all(s["keeps_up"] for s in streams)
            print(f"{kind:5s} {count} stream(s): median real-time factor {rtf:.2f}, "
                  f"dropped {sum(s['dropped'] for s in streams)}, keeps up: {ok} ({load()})")
            results[f"{kind}_{count}_streams"] = streams
            if not ok:
                break
            sustained = count
        results[f"{kind}_sustained_streams"] = sustained
    ratio = results["watch_sustained_streams"] / max(results["plain_sustained_streams"], 1)
    print(f"sustained real-time streams: lanp watch {results['watch_sustained_streams']}, plain "
          f"{results['plain_sustained_streams']} (ratio {ratio:.2f}); latency p50 ratio (plain / watch) "
          f"{results['plain_latency_p50_s'] / results['watch_latency_p50_s']:.2f}")
    return results


if __name__ == "__main__":
    main()
