"""Camera footage for the benchmarks: real clips upscaled and re-encoded the way a surveillance camera records.

The real footage on this machine is small (UCSD Ped2 at 360x240, 10 fps; the CCTV store clips at 320x240, 30 fps),
and every decode figure taken on it says little about a 1080p camera, where decoding and colour conversion are a
real share of the work. ``camera_clip`` plays those clips back to back (CCTV first, then the Ped2 test clips), crops
each to 16:9, upscales it (bicubic) to the camera's size and encodes it as cameras do: H.264, x264 ``veryfast``,
CRF 23, a keyframe every 50 frames, at the camera's frame rate (frames between two source frames are blended, so
the encoder and decoder see motion, not repeated frames). Clips are written once into ``bench/results/footage``
(git-ignored) and reused while their name (size, rate, length) matches.

    python bench/footage.py --size 1080p --fps 25 --seconds 30      # prints the path
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = ROOT / "bench" / "results" / "footage"
SHARED = ROOT.parent / "shared" / "data"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
GOP = 50
CRF = 23
PRESET = "veryfast"


def source_clips(shared: Path = SHARED) -> list[Path]:
    """The real clips the footage is made of, in playing order: the CCTV clips, then the Ped2 test clips."""
    clips = sorted((shared / "cctv-clips").glob("*.mp4")) + sorted((shared / "ucsd-ped2/videos/test").glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no real clips under {shared} (cctv-clips/, ucsd-ped2/videos/test/)")
    return clips


def _source_frames(clips: list[Path], seconds: float) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames of the clips played back to back, cropped to 16:9, with their start times, up to ``seconds``."""
    frames, times, offset = [], [], 0.0
    for clip in clips:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate)
            for index, frame in enumerate(container.decode(stream)):
                rgb = frame.to_ndarray(format="rgb24")
                height, width = rgb.shape[:2]
                crop = min(height, round(width * 9 / 16))
                top = (height - crop) // 2
                frames.append(np.ascontiguousarray(rgb[top : top + crop, : round(crop * 16 / 9)]))
                times.append(offset + index / rate)
            offset = times[-1] + 1 / rate
        if offset >= seconds:
            break
    if offset < seconds:
        raise SystemExit(f"the real clips hold only {offset:.1f} s of video; ask for fewer --seconds")
    return frames, times


def camera_clip(size: str, fps: int, seconds: float = 30.0, *, shared: Path = SHARED, folder: Path = FOOTAGE) -> Path:
    """The footage of a ``size`` camera at ``fps`` (written on first use, then reused)."""
    width, height = SIZES[size]
    path = folder / f"camera-{size}-{fps}fps-{seconds:g}s.mp4"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    frames, times = _source_frames(source_clips(shared), seconds)
    staged = path.with_suffix(".partial.mp4")
    with av.open(str(staged), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": PRESET, "crf": str(CRF), "g": str(GOP), "keyint_min": str(GOP)}
        for index in range(round(seconds * fps)):
            at = index / fps
            after = min(int(np.searchsorted(times, at, side="right")), len(times) - 1)
            before = max(after - 1, 0)
            span = times[after] - times[before]
            weight = 0.0 if span <= 0 else min(max((at - times[before]) / span, 0.0), 1.0)
            if weight == 0 or frames[before].shape != frames[after].shape:  # a boundary between two sizes
                blended = frames[before]
            else:
                blended = ((1 - weight) * frames[before] + weight * frames[after]).astype(np.uint8)
            picture = av.VideoFrame.from_ndarray(blended, format="rgb24").reformat(
                width=width, height=height, format="yuv420p", interpolation="BICUBIC")
            picture.pts = index
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    staged.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="1080p")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    print(camera_clip(args.size, args.fps, args.seconds))


if __name__ == "__main__":
    main()
