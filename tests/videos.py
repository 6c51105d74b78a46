"""Tiny real test videos written with PyAV, and the bad inputs a video service meets, for everyone's tests.

``write_video(path, codec=..., num_frames=..., width=..., height=..., fps=...)`` encodes real H.264/mp4,
MPEG-4/avi, VP9/webm or MJPEG/avi (or any container given by ``path``'s suffix). Frame ``i`` shows
``content(i, height, width)`` (default: a moving gradient and a bright square whose position encodes ``i``, so
frames differ and decoded pixels can be compared). The other makers write zero-byte, random, text, audio-only,
truncated and header-patched files, and folders of frame images.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np

Content = Callable[[int, int, int], np.ndarray]

CODECS: dict[str, tuple[str, str, str]] = {
    # name: (default suffix, PyAV encoder, pixel format)
    "h264": (".mp4", "libx264", "yuv420p"),
    "mpeg4": (".avi", "mpeg4", "yuv420p"),
    "vp9": (".webm", "libvpx-vp9", "yuv420p"),
    "mjpeg": (".avi", "mjpeg", "yuvj420p"),
}


def moving_square(index: int, height: int, width: int) -> np.ndarray:
    """A smooth gradient plus a bright square that moves with the frame index (uint8 RGB)."""
    rows = np.linspace(0, 160, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 160, width, dtype=np.float32)[None, :]
    frame = np.empty((height, width, 3), dtype=np.float32)
    frame[..., 0] = rows + 0 * cols
    frame[..., 1] = cols + 0 * rows
    frame[..., 2] = (rows + cols) / 2
    side = max(4, min(height, width) // 4)
    top = (index * 3) % max(1, height - side)
    left = (index * 5) % max(1, width - side)
    frame[top : top + side, left : left + side] = 250
    return frame.astype(np.uint8)


def write_video(
    path: Path,
    *,
    codec: str = "h264",
    num_frames: int = 24,
    width: int = 64,
    height: int = 48,
    fps: int = 10,
    content: Content = moving_square,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    positions: Sequence[int] | None = None,
) -> Path:
    """Encode ``num_frames`` frames of ``content`` with ``codec`` into ``path`` (suffix picks the container);
    ``positions`` places frame ``i`` at timeline position ``positions[i]`` (gaps: frames never recorded)."""
    _, encoder, pixel_format = CODECS[codec]
    path = Path(path)
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(encoder, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pixel_format
        stream.options = {"g": "8", **(options or {})}
        if codec == "vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8", **stream.options}
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(content(index, height, width), format="rgb24")
            if positions is not None:
                frame.pts = positions[index]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, *, num_frames: int = 20, width: int = 64, height: int = 48) -> Path:
    """A folder of PNG frames named without zero padding (``1.png`` .. ``N.png``) to exercise natural sorting."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(num_frames):
        Image.fromarray(moving_square(index, height, width)).save(folder / f"{index + 1}.png")
    return folder


def write_audio_only(path: Path, *, seconds: float = 0.5, rate: int = 8000) -> Path:
    """A valid WAV (or any PyAV audio container by suffix) with a sine tone and no video stream."""
    path = Path(path)
    samples = (np.sin(np.arange(int(seconds * rate)) * 0.2) * 8000).astype(np.int16)[None, :]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_zero_byte(path: Path) -> Path:
    Path(path).write_bytes(b"")
    return Path(path)


def write_random_bytes(path: Path, *, size: int = 4096, seed: int = 0) -> Path:
    """Bytes no container claims (the first bytes are forced away from any magic number)."""
    data = bytearray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    data[:4] = b"\x7fZQ\x01"
    Path(path).write_bytes(bytes(data))
    return Path(path)


def write_text(path: Path) -> Path:
    Path(path).write_text("this is a plain text file pretending to be a video\n" * 20)
    return Path(path)


def write_truncated(path: Path, source: Path, *, keep_fraction: float = 0.5) -> Path:
    """The first ``keep_fraction`` of ``source``'s bytes, as a download cut off mid-way leaves it."""
    data = Path(source).read_bytes()
    Path(path).write_bytes(data[: max(1, int(len(data) * keep_fraction))])
    return Path(path)


def patch_avi_codec(path: Path, fourcc: bytes = b"ZZZZ") -> Path:
    """Rewrite an AVI's video codec tag (``strh`` handler and ``strf`` biCompression) to ``fourcc``.

    A cheap, real "unsupported codec" file: the container is valid, no decoder knows the tag.
    """
    data = bytearray(Path(path).read_bytes())
    strh = data.find(b"strh")
    strf = data.find(b"strf", strh)
    if min(strh, strf) < 0:
        raise ValueError(f"{path}: not an AVI with strh/strf headers")
    data[strh + 12 : strh + 16] = fourcc  # after the chunk id, chunk size and fccType
    data[strf + 8 + 16 : strf + 8 + 20] = fourcc  # biCompression in the BITMAPINFOHEADER
    Path(path).write_bytes(bytes(data))
    return Path(path)


def write_dropped_frames_avi(path: Path, *, stored: Sequence[int], fps: int = 10) -> Path:
    """An MPEG-4 AVI that stores only the frames at positions ``stored`` of its timeline, as a recorder that drops
    frames writes it: FFmpeg's AVI muxer fills each timestamp gap with empty chunks, so the header counts
    ``stored[-1] + 1`` frames while ``len(stored)`` pictures decode (OpenCV's ``tree.avi`` is such a file).
    Stored frame ``i`` shows ``moving_square(i)``."""
    return write_video(path, codec="mpeg4", num_frames=len(stored), fps=fps, positions=stored)


def write_size_switch(path: Path, *, later: tuple[int, int], first: tuple[int, int] = (64, 48),
                      frames: int = 16) -> Path:
    """An MPEG-TS whose header (its first part) says ``first`` (width, height) and whose later frames are
    ``later``: two H.264 streams back to back, as a source that changes its size mid-stream sends them."""
    parts = []
    for (width, height), count in ((first, frames), (later, 4)):
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": "ultrafast"}
            for index in range(count):
                frame = av.VideoFrame.from_ndarray(moving_square(index, height, width), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        parts.append(buffer.getvalue())
    Path(path).write_bytes(b"".join(parts))
    return Path(path)


def write_video_then_audio(path: Path, *, video_frames: int = 75, audio_seconds: float = 60.0) -> Path:
    """An MPEG-TS with a video and an audio stream whose video ends after ``video_frames`` frames (3 s) while its
    audio goes on: served at its pace, a source that keeps sending packets but no more video."""
    rate = 16000  # one of MP2's rates
    with av.open(str(path), mode="w", format="mpegts") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.options = {"preset": "ultrafast"}
        audio = container.add_stream("mp2", rate=rate, layout="mono")
        for index in range(video_frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(moving_square(index, 48, 64), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = np.zeros((1, 1152), dtype=np.int16)
        for index in range(int(audio_seconds * rate / 1152)):
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, index * 1152
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return Path(path)
