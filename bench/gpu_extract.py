"""GPU benchmark of the extraction engine (for a lent GPU machine): i3d_r50, bf16, 1 crop and 10 crops.

Footage: the Ped2 and CCTV videos copied (not linked: the engine lists a file once) until ~20 minutes of video;
and the same footage transcoded to 1280x720. For each setting it reports end-to-end frames/s of
``extract_archive`` with decoding workers, GPU utilisation sampled during the run (pynvml when installed, else
``nvidia-smi``), and where the time goes, measured separately: decoding (all workers, no model), host-to-device
copy of pinned uint8 snippets, and transform + forward on the device. Goal on an H200 with 16 cores: 15,000 frames/s
at 320x240 with 1 crop, 2,500 with 10 crops.

    python bench/gpu_extract.py --json gpu.json            # on the GPU machine (weights: random-init unless given)
    python bench/gpu_extract.py --smoke                    # a tiny CPU run that checks the script end to end
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lanp_vad.pipeline.features.archive import extract_archive  # noqa: E402
from lanp_vad.pipeline.features.config import ExtractionConfig  # noqa: E402
from lanp_vad.pipeline.features.extractor import FeatureExtractor  # noqa: E402
from lanp_vad.pipeline.video import open_video  # noqa: E402
from lanp_vad.pipeline.video.worker import DecodeSettings  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_footage(folder: Path, minutes: float, size: tuple[int, int] | None) -> tuple[list[Path], float]:
    """Copies (or transcodes to ``size``) of the real clips until ``minutes`` of video; returns (files, seconds)."""
    sources = sorted((DATA / "ucsd-ped2" / "videos").rglob("*.mp4")) + sorted((DATA / "cctv-clips").glob("*.mp4"))
    if not sources:
        raise SystemExit(f"no videos under {DATA}")
    folder.mkdir(parents=True, exist_ok=True)
    durations = {}
    for source in sources:
        with open_video(source) as reader:
            durations[source] = reader.info.duration_s
    if size is not None:
        sources = [_transcode(source, folder / f"720p_{index}.mp4", size) for index, source in enumerate(sources)]
        durations = {new: durations[old] for new, old in zip(sources, durations, strict=True)}
    files, total, copy = [], 0.0, 0
    while total < minutes * 60:
        for source in sources:
            target = folder / f"r{copy}_{source.parent.name}_{source.name}"
            shutil.copyfile(source, target)
            files.append(target)
            total += durations[source]
            if total >= minutes * 60:
                break
        copy += 1
    return files, total


def _transcode(source: Path, target: Path, size: tuple[int, int]) -> Path:
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        rate = inp.streams.video[0].average_rate
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for frame in inp.decode(video=0):
            for packet in stream.encode(frame.reformat(width=size[0], height=size[1], format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return target


class UtilisationSampler:
    """GPU utilisation (%) sampled every 0.2 s in a thread: pynvml if importable, else nvidia-smi."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            return float(pynvml.nvmlDeviceGetUtilizationRates(pynvml.nvmlDeviceGetHandleByIndex(0)).gpu)
        except Exception:
            try:
                query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
                output = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                return float(output.split()[0])
            except Exception:
                return None

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> UtilisationSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_util_median": None}
        return {"gpu_util_mean": round(statistics.fmean(self.samples), 1),
                "gpu_util_median": round(statistics.median(self.samples), 1)}


def _decode_one(args: tuple[DecodeSettings, str]) -> int:
    settings, path = args
    torch.set_num_threads(1)
    reader, plan = settings.open(path)
    frames = 0
    with reader:
        for _, chunk in settings.iter_chunks(reader, plan, 8):
            frames += chunk.shape[0] * plan.length
    return frames


def decode_only(files: list[Path], settings: DecodeSettings, workers: int) -> float:
    """Video frames/s of decoding alone, all workers busy, no model."""
    started = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=torch.multiprocessing.get_context("spawn")) as pool:
        frames = sum(pool.map(_decode_one, [(settings, str(path)) for path in files]))
    return frames / (time.perf_counter() - started)


def _timed(device: torch.device, work, repeats: int) -> float:
    """Median seconds of ``work()`` (CUDA-synchronised)."""
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def device_split(extractor: FeatureExtractor, height: int, width: int, repeats: int) -> dict[str, float]:
    """Per-snippet milliseconds of host-to-device copy and of transform + forward, on a full batch."""
    frames = extractor.decode.frames_per_snippet
    batch = extractor.batch_size
    host = torch.randint(0, 256, (batch, frames, height, width, 3), dtype=torch.uint8)
    if extractor.device.type == "cuda":
        host = host.pin_memory()
    on_device = host.to(extractor.device)
    copy = _timed(extractor.device, lambda: host.to(extractor.device, non_blocking=True), repeats)
    forward = _timed(extractor.device, lambda: extractor.forward_clips(extractor.transform(on_device)), repeats)
    return {"transfer_ms_per_snippet": round(1000 * copy / batch, 3),
            "transform_forward_ms_per_snippet": round(1000 * forward / batch, 3)}


def run_setting(files: list[Path], seconds: float, *, crops: int, args: argparse.Namespace, size: tuple[int, int]
                ) -> dict[str, object]:
    extractor = FeatureExtractor(ExtractionConfig(backbone=args.backbone, weights=args.weights, crops=crops,
                                                  device=args.device, batch_size=args.batch_size,
                                                  crop_size=args.crop_size))
    with tempfile.TemporaryDirectory() as out, UtilisationSampler() as sampler:
        report = extract_archive(files, out, extractor, workers=args.workers, progress=False)
    frames_per_s = report.frames / report.seconds
    result: dict[str, object] = {
        "crops": crops, "resolution": f"{size[0]}x{size[1]}", "videos": len(files),
        "video_minutes": round(seconds / 60, 1),
        "frames": report.frames, "seconds": round(report.seconds, 1), "frames_per_s": round(frames_per_s, 1),
        "snippets_per_s": round(report.snippets / report.seconds, 1), "failed": len(report.failed),
        "final_batch_size": extractor.batch_size, **sampler.summary(),
    }
    result["decode_only_frames_per_s"] = round(decode_only(files[: max(args.workers, 4)], extractor.decode,
                                                           args.workers), 1)
    result.update(device_split(extractor, size[1], size[0], args.repeats))
    per_snippet_frames = extractor.spec.snippet_length
    result["forward_bound_frames_per_s"] = round(
        1000 * per_snippet_frames / max(result["transform_forward_ms_per_snippet"], 1e-9), 1)  # type: ignore[arg-type]
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run: 20 s of footage, x3d_xs at 64 px")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--backbone", default="i3d_r50")
    parser.add_argument("--weights", default="random-init:0", help="speed does not depend on the weights' values")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=15, help="decoding processes (one core left for the main)")
    parser.add_argument("--batch-size", type=int, default=64, help="snippets per forward (halved on OOM)")
    parser.add_argument("--crop-size", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-720p", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.smoke:
        args.minutes, args.backbone, args.device, args.workers = 20 / 60, "x3d_xs", "cpu", 1
        args.batch_size, args.crop_size, args.repeats = 4, 64, 1

    runs: list[dict[str, object]] = []
    results: dict[str, object] = {"args": {k: str(v) for k, v in vars(args).items()},
                                  "torch": torch.__version__, "cuda": torch.cuda.is_available(), "runs": runs}
    if torch.cuda.is_available():
        results["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as folder:
        files, seconds = build_footage(Path(folder) / "native", args.minutes, None)
        with open_video(files[0]) as reader:
            native = (reader.info.width, reader.info.height)
        for crops in (1, 10):
            runs.append(run_setting(files, seconds, crops=crops, args=args, size=native))
        if not args.skip_720p:
            minutes = args.minutes if not args.smoke else 5 / 60
            files, seconds = build_footage(Path(folder) / "720p", minutes, (1280, 720))
            runs.append(run_setting(files, seconds, crops=1, args=args, size=(1280, 720)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"done: {len(runs)} settings" + (f", JSON in {args.json}" if args.json else ""))


if __name__ == "__main__":
    main()
