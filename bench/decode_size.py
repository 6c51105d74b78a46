"""Decoding to the size the features need: peak memory on an 8K clip, and what the decode-time scaling does to
features.

1. Memory (issue 12, defect 3): an 8000x4096 H.264 clip of ``--frames`` frames is decoded snippet by snippet in a
   fresh spawned process per way, and that process's peak RSS is printed:
   - ``plain``: what a competent user writes with PyAV: each 16-frame snippet's frames kept as full-size RGB
     arrays (``frame.to_ndarray``), then resized;
   - ``full size``: ``open_video`` without a size limit (what every spec without ``decode_short_side`` gets);
   - ``bounded``: ``open_video(max_short_side=1080)``, the default extractor's bound, scaled by FFmpeg as each
     frame is decoded;
   - with ``--extract``: the whole in-process extraction (``FeatureExtractor.extract_video``, EfficientNet-Lite0,
     random-init weights, 4 frames a snippet) with and without the bound, torch included.
2. Features (``--features``): a real clip (UCSD Ped2 test 01, ``../shared/data``) upscaled x4 to 1440x960 and
   re-encoded, then EfficientNet-Lite0 (real ImageNet weights) features extracted at full-size decode and with the
   default bound; per-snippet cosine similarity and relative L2 difference between the two, beside the same
   figures between the upscaled clip and that clip re-encoded once more at CRF 18 (both decoded at full size:
   the scale of an ordinary re-encode).

    python bench/decode_size.py [--frames 20] [--extract] [--features [--upscale 4] [--oversample N]] [--no-memory]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from bench.decode import _peak_rss_mib  # noqa: E402
from lanp_vad.pipeline.video import open_video  # noqa: E402
from lanp_vad.pipeline.video.snippets import SnippetPlan  # noqa: E402

WIDTH, HEIGHT = 8000, 4096
BOUND = 1080  # the default extractor's decode_short_side (DEFAULT_DECODE_SHORT_SIDE)


def write_8k_clip(path: Path, frames: int) -> Path:
    """A smooth moving gradient at 8000x4096 (small file, full-size frames), H.264 ultrafast."""
    rows = np.linspace(0, 200, HEIGHT, dtype=np.float32)[:, None]
    cols = np.linspace(0, 200, WIDTH, dtype=np.float32)[None, :]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        for index in range(frames):
            luma = ((rows + cols + 7 * index) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.repeat(luma[..., None], 3, axis=2), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _plain(path: str) -> int:
    """A user's PyAV loop: full-size RGB frames gathered per 16-frame snippet, then handed on."""
    snippets, frames = 0, []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 16:
                snippets, frames = snippets + 1, []
    return snippets + bool(frames)


def _ours(path: str, bound: int | None) -> int:
    with open_video(path, backend="pyav", max_short_side=bound) as reader:
        plan = SnippetPlan.build(reader.info.num_frames)
        return sum(1 for _ in reader.iter_snippets(plan))


def _extract(path: str, bound: int | None) -> int:
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    extractor = FeatureExtractor(ExtractionConfig(weights="random-init:0", device="cpu", frames_per_snippet=4,
                                                  decode_short_side=bound))
    return extractor.extract_video(path).features.shape[0]


WAYS = {"plain": (_plain, ()), "full size": (_ours, (None,)), "bounded": (_ours, (BOUND,)),
        "extract, full size": (_extract, (None,)), "extract, bounded": (_extract, (BOUND,))}


def _child(way: str, path: str, sender) -> None:  # noqa: ANN001 (a multiprocessing Connection)
    function, args = WAYS[way]
    snippets = function(path, *args)
    sender.send((snippets, _peak_rss_mib()))


def peak_rss(way: str, path: Path) -> tuple[int, float]:
    """(snippets, peak RSS MiB) of ``way`` run in a fresh spawned process."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(way, str(path), sender))
    process.start()
    result = receiver.recv()
    process.join()
    return result


def memory(frames: int, extract: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        clip = write_8k_clip(Path(folder) / "8k.mp4", frames)
        print(f"peak RSS decoding an {WIDTH}x{HEIGHT} clip of {frames} frames ({clip.stat().st_size / 1e6:.1f} MB):")
        ways = [way for way in WAYS if extract or not way.startswith("extract")]
        results = {way: peak_rss(way, clip) for way in ways}
        for way, (snippets, mib) in results.items():
            print(f"  {way:20s} {mib:8.0f} MiB  ({snippets} snippets)")
        print(f"  plain / bounded: {results['plain'][1] / results['bounded'][1]:.1f}x;"
              f" full size / bounded: {results['full size'][1] / results['bounded'][1]:.1f}x")
        if extract:
            ratio = results["extract, full size"][1] / results["extract, bounded"][1]
            print(f"  extraction, full size / bounded: {ratio:.1f}x")


def upscale(source: Path, target: Path, factor: int) -> Path:
    """``source`` re-encoded at ``factor`` times its size (Lanczos), H.264 CRF 18 like the Ped2 files."""
    with av.open(str(source)) as inp, av.open(str(target), mode="w") as out:
        video = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height = video.codec_context.width * factor, video.codec_context.height * factor
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "18", "preset": "fast"}
        for index, frame in enumerate(inp.decode(video=0)):
            big = frame.reformat(width=stream.width, height=stream.height, format="yuv420p", interpolation="LANCZOS")
            big.pts, big.time_base = index, 1 / Fraction(video.average_rate)
            for packet in stream.encode(big):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return target


def _compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(median cosine similarity, median relative L2 difference) per snippet."""
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    relative = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    return float(np.median(cosine)), float(np.median(relative))


def features(data: Path, factor: int, oversample: int | None) -> None:
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    source = data / "ucsd-ped2/videos/test/01.mp4"
    if not source.exists():
        sys.exit(f"no clip at {source}")
    full = FeatureExtractor(ExtractionConfig(device="cpu", frames_per_snippet=4, decode_short_side=None))
    bound = oversample * full.spec.resize if oversample else "auto"
    bounded = FeatureExtractor(ExtractionConfig(device="cpu", frames_per_snippet=4, decode_short_side=bound))
    with tempfile.TemporaryDirectory() as folder:
        big = upscale(source, Path(folder) / "01_big.mp4", factor)
        again = upscale(big, Path(folder) / "01_big_again.mp4", 1)
        at_full, at_bound = full.extract_video(big).features, bounded.extract_video(big).features
        reencoded = full.extract_video(again).features
    print(f"EfficientNet-Lite0 features of Ped2 test 01 upscaled x{factor} ({360 * factor}x{240 * factor}, "
          f"{len(at_full)} snippets), "
          f"decoded at full size vs with decode_short_side={bounded.spec.decode_short_side}:")
    for label, (a, b) in (("full-size decode vs bounded decode", (at_full, at_bound)),
                          ("upscale vs it re-encoded (CRF 18)", (at_full, reencoded))):
        cosine, relative = _compare(a, b)
        print(f"  {label:36s} cosine {cosine:.5f}, relative L2 {relative:.4f} (medians per snippet)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames of the 8K clip")
    parser.add_argument("--extract", action="store_true", help="also measure the whole in-process extraction")
    parser.add_argument("--features", action="store_true", help="compare features with and without the bound")
    parser.add_argument("--upscale", type=int, default=4, help="--features: how much to upscale the Ped2 clip")
    parser.add_argument("--oversample", type=int, help="--features: bound = this x the resize (default: the "
                        "extractor's default bound)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 8K memory measurement")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    if not args.no_memory:
        memory(args.frames, args.extract)
    if args.features:
        features(args.data, args.upscale, args.oversample)


if __name__ == "__main__":
    main()
