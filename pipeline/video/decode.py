"""Video decoding: one reader over decord (fast path) and PyAV (fallback), or a folder of frame images.

``open_video`` checks the input before decoding a single frame (non-empty, a known container or at least one
FFmpeg can open, a video stream, a decodable codec, a sane resolution) and raises a typed :class:`VideoError`
otherwise. Metadata comes from the container: frame count, frame rate and per-frame timestamps (seconds from the
first frame); a frame rate is never assumed, it is read from the container or derived from the timestamps.

Frames are decoded snippet by snippet (:meth:`VideoReader.iter_snippets`), so memory does not grow with the
video's length: decord fetches each group of snippets with ``get_batch``; PyAV decodes sequentially and keeps only
the frames of the snippets being assembled.

Damaged files: a reader promises ``info.num_frames`` frames; if it cannot deliver one of them (a truncated or
corrupt file), the video fails with :class:`CorruptVideoError` rather than returning a silently shorter result.
With ``backend="auto"`` a decord failure (at open or mid-video) is logged and PyAV takes over; PyAV failing too
is final.

Nothing here keeps global state and every argument is picklable, so readers can be opened inside worker
processes. A hanging decode cannot be interrupted in-process: :func:`probe_video` runs the metadata probe in a
child process and kills it after a timeout; the extraction engine runs whole decodes in workers the same way.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import av
import av.error
import numpy as np

from pipeline.video.snippets import SnippetPlan
from pipeline.video.spawn import start_process

logger = logging.getLogger(__name__)

VideoSource = str | Path | BinaryIO
Backend = Literal["auto", "decord", "pyav"]

MAX_SIDE = 8192
"""No video side may exceed this many pixels (checked on the header, before any frame is decoded)."""
DEFAULT_MAX_PIXELS = 7680 * 4320
"""Default cap on width x height of the source (8K UHD): larger frames are refused as too large to decode."""
DEFAULT_FOLDER_FPS = 25.0
"""Frame rate given to a folder of frame images when none is passed: 25 fps, the PAL rate of most surveillance
cameras. It only sets timestamps; snippets and scores are counted in frames. Pass ``folder_fps`` when the source
rate is known (UCSD Ped2: 10)."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_TEXT_FORMATS = frozenset({"tty"})  # FFmpeg shows any text file as "ANSI art" video
_IMAGE_FORMATS = frozenset({"image2"})  # single still images (plus every "*_pipe" image demuxer)
_HEADER_DURATION_FORMATS = frozenset({"matroska,webm", "flv", "asf"})
TRUNCATION_TOLERANCE = 0.02
"""A file holding fewer frames than its header announces, by more than this fraction (and two frames), is
treated as truncated."""


class VideoError(ValueError):
    """Base of every input-video error; ``kind`` is a short stable name for metrics and manifests."""

    kind = "invalid"


class EmptyFileError(VideoError):
    """The file (or uploaded stream) has no bytes."""

    kind = "empty"


class NotAVideoError(VideoError):
    """The bytes are not any container FFmpeg knows (random bytes, a text file, ...)."""

    kind = "not_video"


class NoVideoStreamError(VideoError):
    """A valid media file without a video stream (audio only, subtitles only)."""

    kind = "no_video_stream"


class UnsupportedCodecError(VideoError):
    """The video stream's codec has no decoder here."""

    kind = "unsupported_codec"


class CorruptVideoError(VideoError):
    """A known container that cannot be read, or that fails to deliver the frames it promises (truncated)."""

    kind = "corrupt"


class ResolutionTooLargeError(VideoError):
    """The header announces a frame size above the limits; refused before decoding a frame."""

    kind = "too_large"


class DecodeTimeoutError(VideoError):
    """Probing or decoding did not finish within its time limit and was killed."""

    kind = "timeout"


@dataclass(frozen=True)
class VideoInfo:
    """What a reader delivers: frames after optional resampling and downscaling, and what the source holds.

    ``timestamps_s`` are seconds from the first frame, one per delivered frame (``None`` when the container has
    none, e.g. a folder of images: use ``index / fps``). ``source_indices`` maps each delivered frame to the
    frame of the source it shows (the identity unless resampled).
    """

    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    timestamps_s: np.ndarray | None
    backend: str
    source: str
    source_num_frames: int
    source_fps: float
    source_width: int
    source_height: int
    codec: str | None = None
    container: str | None = None
    source_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64), repr=False)


_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "mp4"),
    (4, b"moov", "mov"),
    (4, b"mdat", "mov"),
    (4, b"wide", "mov"),
    (4, b"free", "mov"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (0, b"FLV\x01", "flv"),
    (0, b"\x00\x00\x01\xba", "mpeg-ps"),
    (0, b"\x00\x00\x01\xb3", "mpeg-video"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf"),
    (0, b"OggS", "ogg"),
    (0, b"\x00\x00\x00\x01\x67", "h264-annexb"),
    (0, b"\x00\x00\x00\x01\x40", "hevc-annexb"),
    (0, b"\x00\x00\x00\x01\x09", "h264-annexb"),
    (0, b"DKIF", "ivf"),
    (0, b"GIF8", "gif"),
)


def sniff_container(head: bytes) -> str | None:
    """The container type from a file's first bytes (at least 16; 376 to recognise MPEG-TS), or None.

    Recognises mp4/mov, matroska/webm, avi, flv, MPEG-PS/TS, ASF/WMV, Ogg, raw H.264/HEVC, IVF and GIF; WAV
    and other RIFF types are reported as such, so a caller can tell audio from video (``"wav"`` is not a video).
    """
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"AVI ": "avi", b"WAVE": "wav"}.get(head[8:12], "riff")
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) >= 1 and head[0] == 0x47 and all(head[i] == 0x47 for i in range(188, len(head), 188)):
        return "mpeg-ts" if len(head) >= 189 else None
    return None


def open_video(
    source: VideoSource,
    *,
    backend: Backend = "auto",
    target_fps: float | None = None,
    max_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    folder_fps: float = DEFAULT_FOLDER_FPS,
) -> VideoReader:
    """Open a video file, a seekable binary file object, or a folder of frame images, checking it first.

    ``target_fps`` resamples by timestamp (each output frame shows the source frame on screen at that time;
    frames repeat when the target exceeds the source rate). ``max_side`` downscales, preserving the aspect ratio,
    so that neither side exceeds it. ``max_pixels`` refuses sources whose width x height exceeds it.
    """
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"unknown decoding backend {backend!r}; choose auto, decord or pyav")
    if target_fps is not None and not target_fps > 0:
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    if isinstance(source, str | Path) and Path(source).is_dir():
        return _FolderReader(Path(source), target_fps, max_side, max_pixels, folder_fps)
    input_ = _Input.of(source, max_pixels)
    header = _probe_header(input_)
    if backend != "pyav":
        try:
            return _DecordReader(input_, header, target_fps, max_side, fallback=backend == "auto")
        except VideoError:
            raise
        except Exception as error:  # decord raises bare RuntimeErrors; any failure means "use the fallback"
            if backend == "decord":
                raise CorruptVideoError(f"{input_.name}: decord cannot read this video: {error}") from error
            logger.warning("decord could not open %s (%s); falling back to PyAV", input_.name, error)
    return _PyAVReader(input_, header, target_fps, max_side)


def probe_video(source: str | Path, timeout_s: float = 30.0, **open_kwargs: object) -> VideoInfo:
    """:func:`open_video`'s metadata, read in a child process killed after ``timeout_s`` (DecodeTimeoutError).

    Starting the child (spawn) costs about a second, so keep ``timeout_s`` well above that. Typed errors of the
    probe are re-raised here unchanged. Takes a path only: save an upload to a file first.
    """
    if not isinstance(source, str | Path):
        raise TypeError("probe_video needs a path (save an uploaded stream to a file first)")
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_probe_child, args=(str(source), open_kwargs, sender), daemon=True)
    start_process(process)
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise DecodeTimeoutError(f"{source}: probing the video did not finish within {timeout_s:g} s")
        try:
            ok, payload = receiver.recv()
        except EOFError as error:
            raise CorruptVideoError(
                f"{source}: the probe process died while reading the file (exit code {process.exitcode})"
            ) from error
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        receiver.close()
    if ok:
        return payload
    raise payload


def _probe_child(source: str, open_kwargs: dict, sender) -> None:  # noqa: ANN001 (a multiprocessing Connection)
    try:
        with open_video(source, **open_kwargs) as reader:
            sender.send((True, reader.info))
    except Exception as error:  # sent back to the parent, which re-raises it
        sender.send((False, error))
    finally:
        sender.close()


class VideoReader:
    """An open video: ``info`` plus snippet-by-snippet decoding. Use as a context manager."""

    info: VideoInfo

    def iter_snippets(self, plan: SnippetPlan, batch: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(snippet index, frames uint8 (length, H, W, 3))`` for every snippet of ``plan`` in order.

        ``batch`` snippets are decoded together (one decord call); memory holds at most that many snippets.
        """
        if plan.num_frames != self.info.num_frames:
            raise ValueError(
                f"{self.info.source}: the snippet plan is for {plan.num_frames} frames but the video "
                f"delivers {self.info.num_frames}"
            )
        if batch < 1:
            raise ValueError(f"batch must be positive, got {batch}")
        for first in range(0, plan.num_snippets, batch):
            snippets = range(first, min(first + batch, plan.num_snippets))
            indices = np.concatenate([plan.frame_indices(i) for i in snippets])
            frames = self.read_frames(indices)
            for position, snippet in enumerate(snippets):
                yield snippet, frames[position * plan.length : (position + 1) * plan.length]

    def read_frames(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """Delivered frames ``indices`` (any order, repeats allowed) as uint8 ``(len, H, W, 3)``."""
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.info.num_frames):
            raise IndexError(f"{self.info.source}: frame index out of range 0..{self.info.num_frames - 1}")
        unique, inverse = np.unique(self.info.source_indices[wanted], return_inverse=True)
        if unique.size == 0:
            return np.zeros((0, self.info.height, self.info.width, 3), dtype=np.uint8)
        frames = _downscale(self._decode_source_frames(unique), self.info.width, self.info.height)
        return frames[inverse.reshape(-1)]

    def _decode_source_frames(self, source_indices: np.ndarray) -> np.ndarray:
        """Source frames at sorted unique ``source_indices``, at the source's size, uint8 RGB."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder and any file this reader opened."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class _Input:
    """A file path or a seekable binary stream, with a name for messages and the frame-size limit."""

    path: Path | None
    stream: BinaryIO | None
    name: str
    max_pixels: int

    @classmethod
    def of(cls, source: VideoSource, max_pixels: int) -> _Input:
        if isinstance(source, str | Path):
            path = Path(source)
            mode = path.stat().st_mode  # FileNotFoundError names the path
            if stat.S_ISREG(mode) and path.stat().st_size == 0:
                raise EmptyFileError(f"{path}: the file is empty (0 bytes)")
            return cls(path, None, str(path), max_pixels)
        name = str(getattr(source, "name", "") or "<uploaded stream>")
        if not (hasattr(source, "read") and hasattr(source, "seek")):
            raise TypeError(f"expected a path or a binary file object, got {type(source).__name__}")
        if hasattr(source, "seekable") and not source.seekable():
            raise VideoError(f"{name}: the stream is not seekable; save it to a file first")
        source.seek(0)
        if not source.read(1):
            raise EmptyFileError(f"{name}: the uploaded stream is empty (0 bytes)")
        source.seek(0)
        return cls(None, source, name, max_pixels)

    def handle(self) -> str | BinaryIO:
        """What a decoder opens: the path, or the stream rewound to its start."""
        if self.stream is None:
            return str(self.path)
        self.stream.seek(0)
        return self.stream

    def head(self, size: int = 512) -> bytes:
        if self.stream is None:
            with open(self.path, "rb") as file:
                return file.read(size)
        self.stream.seek(0)
        data = self.stream.read(size)
        self.stream.seek(0)
        return data


@dataclass(frozen=True)
class _Header:
    """What the container header says about its first video stream."""

    width: int
    height: int
    rate: float | None
    codec: str
    container: str
    announced_frames: int


def _open_container(input_: _Input) -> av.container.InputContainer:
    """av.open with FFmpeg's failure turned into NotAVideoError (unknown bytes) or CorruptVideoError.

    FFmpeg decodes a few frames while probing the streams; its ``max_pixels`` codec option (given to every
    stream) makes that probe, and PyAV's decoding, refuse frames above our limit too.
    """
    try:
        container = av.open(
            input_.handle(), mode="r", metadata_errors="ignore", options={"max_pixels": str(input_.max_pixels)}
        )
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        if isinstance(error, FileNotFoundError | PermissionError | IsADirectoryError):
            raise
        kind = sniff_container(input_.head())
        if kind is None:
            raise NotAVideoError(f"{input_.name}: not a video file (no known container): {error}") from error
        raise CorruptVideoError(f"{input_.name}: a damaged {kind} file that cannot be opened: {error}") from error
    format_name = container.format.name
    if format_name in _TEXT_FORMATS or format_name in _IMAGE_FORMATS or format_name.endswith("_pipe"):
        container.close()
        what = "a text file" if format_name in _TEXT_FORMATS else "a still image"
        raise NotAVideoError(f"{input_.name}: {what} ({format_name}), not a video; pass a folder for frames")
    return container


def _probe_header(input_: _Input) -> _Header:
    """Check the container, its video stream, codec and frame size before our decoding starts."""
    with _open_container(input_) as container:
        if not container.streams.video:
            others = ", ".join(sorted({s.type for s in container.streams})) or "no streams at all"
            raise NoVideoStreamError(f"{input_.name}: the file has no video stream ({others})")
        stream = container.streams.video[0]
        codec = stream.codec_context.name if stream.codec_context is not None else None
        if not codec or codec == "none":
            raise UnsupportedCodecError(f"{input_.name}: the video codec is unknown or has no decoder here")
        try:
            av.codec.Codec(codec, "r")
        except (av.error.FFmpegError, ValueError) as error:
            raise UnsupportedCodecError(f"{input_.name}: no decoder for the video codec {codec!r}") from error
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_resolution(input_.name, width, height, input_.max_pixels)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return _Header(
            width,
            height,
            float(rate) if rate else None,
            codec,
            container.format.name,
            _announced_frames(container, stream, float(rate) if rate else None),
        )


def _announced_frames(container: av.container.InputContainer, stream: av.VideoStream, rate: float | None) -> int:
    """The frame count the header announces (0 when it does not say): nb_frames, else duration x rate.

    Durations count only from containers that store one in their header; elsewhere (MPEG-TS, raw streams)
    FFmpeg estimates it from the bit rate, too loosely to call a file truncated.
    """
    if stream.frames > 0:
        return int(stream.frames)
    if container.format.name not in _HEADER_DURATION_FORMATS:
        return 0
    if stream.duration is not None and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None and len(container.streams) == 1:
        duration_s = container.duration / av.time_base
    else:
        return 0
    return round(duration_s * rate) if rate else 0


def _check_complete(name: str, header: _Header, count: int) -> None:
    """Refuse a file that holds clearly fewer frames than its header announces (truncated)."""
    if header.announced_frames and count < header.announced_frames * (1 - TRUNCATION_TOLERANCE) - 2:
        raise CorruptVideoError(
            f"{name}: the header announces {header.announced_frames} frames but the file holds {count} (truncated)"
        )


def _check_resolution(name: str, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise CorruptVideoError(f"{name}: the header gives no frame size ({width}x{height})")
    if max(width, height) > MAX_SIDE or width * height > max_pixels:
        raise ResolutionTooLargeError(
            f"{name}: frame size {width}x{height} exceeds the limit ({MAX_SIDE} px a side, "
            f"{max_pixels} pixels); refused before decoding"
        )


def _output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Downscaled (width, height) preserving aspect so that neither side exceeds max_side (never upscaled)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _downscale(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize uint8 ``(N, H, W, 3)`` frames (antialiased bilinear), the same for every backend.

    Done here rather than in the decoders so all backends give the same pixels (and because decord's own
    resize fails on exact halvings, e.g. 64x48 -> 32x24).
    """
    if frames.shape[1:3] == (height, width):
        return frames
    import torch

    batch = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(batch, size=(height, width), mode="bilinear", antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _frame_rate(name: str, container_rate: float | None, timestamps: np.ndarray | None, count: int) -> float:
    """The container's rate, else the rate the timestamps imply; never an assumed default."""
    if container_rate and math.isfinite(container_rate) and container_rate > 0:
        return container_rate
    if timestamps is not None and count >= 2 and timestamps[-1] > timestamps[0]:
        return (count - 1) / float(timestamps[-1] - timestamps[0])
    raise CorruptVideoError(f"{name}: the container gives no frame rate and no timestamps to derive one")


def _build_info(
    *,
    name: str,
    backend: str,
    count: int,
    fps: float,
    timestamps: np.ndarray | None,
    size: tuple[int, int],
    out_size: tuple[int, int],
    target_fps: float | None,
    codec: str | None,
    container: str | None,
) -> VideoInfo:
    """VideoInfo of the delivered frames, resampled by timestamp to ``target_fps`` when given."""
    if count < 1:
        raise CorruptVideoError(f"{name}: the video has no frames")
    if timestamps is not None:
        timestamps = timestamps.astype(np.float64) - float(timestamps[0])
    if target_fps is None:
        indices = np.arange(count, dtype=np.int64)
        out_fps, out_times = fps, timestamps
    else:
        times = timestamps if timestamps is not None else np.arange(count) / fps
        duration = float(times[-1]) + 1.0 / fps
        out_count = max(1, math.ceil(duration * target_fps - 1e-6))  # grid times inside [0, duration)
        out_times = np.arange(out_count) / target_fps
        # the frame on screen at each output time; a hundredth of a frame absorbs rounded container timestamps
        on_screen = np.searchsorted(times, out_times + 0.01 / fps, side="right") - 1
        indices = np.clip(on_screen, 0, count - 1)
        out_fps = target_fps
    return VideoInfo(
        num_frames=len(indices),
        fps=float(out_fps),
        duration_s=len(indices) / float(out_fps),
        width=out_size[0],
        height=out_size[1],
        timestamps_s=out_times,
        backend=backend,
        source=name,
        source_num_frames=count,
        source_fps=float(fps),
        source_width=size[0],
        source_height=size[1],
        codec=codec,
        container=container,
        source_indices=indices.astype(np.int64),
    )


class _DecordReader(VideoReader):
    """decord (``decord2``): random access by frame index, ``get_batch`` per group of snippets.

    With ``fallback``, a decord failure mid-video hands the remaining snippets to PyAV (logged); without, it is
    a CorruptVideoError.
    """

    def __init__(
        self,
        input_: _Input,
        header: _Header,
        target_fps: float | None,
        max_side: int | None,
        *,
        fallback: bool,
    ) -> None:
        import decord

        self._input, self._header, self._allow_fallback = input_, header, fallback
        out_size = _output_size(header.width, header.height, max_side)
        self._reader = decord.VideoReader(input_.handle(), ctx=decord.cpu(0), num_threads=1)
        count = len(self._reader)
        _check_complete(input_.name, header, count)
        timestamps = self._reader.get_frame_timestamp(np.arange(count))[:, 0] if count else None
        if timestamps is not None and not np.all(np.isfinite(timestamps)):
            timestamps = None
        fps = _frame_rate(input_.name, header.rate or self._reader.get_avg_fps(), timestamps, count)
        self.info = _build_info(
            name=input_.name,
            backend="decord",
            count=count,
            fps=fps,
            timestamps=timestamps,
            size=(header.width, header.height),
            out_size=out_size,
            target_fps=target_fps,
            codec=header.codec,
            container=header.container,
        )
        self._fallback: _PyAVReader | None = None

    def _decode_source_frames(self, source_indices: np.ndarray) -> np.ndarray:
        if self._fallback is None:
            try:
                frames = self._reader.get_batch(source_indices.tolist()).asnumpy()
                if frames.shape[0] != len(source_indices):
                    raise RuntimeError(f"got {frames.shape[0]} of {len(source_indices)} frames")
            except Exception as error:  # decord reports damage as bare RuntimeErrors
                if not self._allow_fallback:
                    raise CorruptVideoError(
                        f"{self._input.name}: decoding failed near frame {int(source_indices[0])}: {error}"
                    ) from error
                logger.warning("decord failed on %s (%s); continuing with PyAV", self._input.name, error)
                self._fallback = _PyAVReader(self._input, self._header, None, None)
            else:
                return frames
        if source_indices[-1] >= self._fallback.info.num_frames:
            raise CorruptVideoError(
                f"{self._input.name}: the video promised {self.info.source_num_frames} frames but only "
                f"{self._fallback.info.num_frames} can be decoded (truncated or corrupt)"
            )
        return self._fallback._decode_source_frames(source_indices)

    def close(self) -> None:
        if self._fallback is not None:
            self._fallback.close()
        self._reader = None  # decord releases the file when its reader is collected


class _PyAVReader(VideoReader):
    """PyAV: packet timestamps from a demux pass, then one sequential decode that keeps only needed frames."""

    def __init__(self, input_: _Input, header: _Header, target_fps: float | None, max_side: int | None) -> None:
        self._input = input_
        timestamps = self._packet_timestamps()
        _check_complete(input_.name, header, len(timestamps))
        fps = _frame_rate(input_.name, header.rate, timestamps, len(timestamps))
        self.info = _build_info(
            name=input_.name,
            backend="pyav",
            count=len(timestamps),
            fps=fps,
            timestamps=timestamps if np.all(np.isfinite(timestamps)) else None,
            size=(header.width, header.height),
            out_size=_output_size(header.width, header.height, max_side),
            target_fps=target_fps,
            codec=header.codec,
            container=header.container,
        )
        self._container: av.container.InputContainer | None = None
        self._frames: Iterator | None = None
        self._next_index = 0
        self._kept: dict[int, np.ndarray] = {}

    def _packet_timestamps(self) -> np.ndarray:
        """Seconds of every video packet in presentation order (demux only, no decoding)."""
        stamps: list[float] = []
        with _open_container(self._input) as container:
            stream = container.streams.video[0]
            time_base = float(stream.time_base) if stream.time_base else math.nan
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    pts = packet.pts if packet.pts is not None else packet.dts
                    stamps.append(pts * time_base if pts is not None else math.nan)
            except av.error.FFmpegError as error:
                logger.warning("%s: demuxing stopped early (%s)", self._input.name, error)
        return np.sort(np.asarray(stamps, dtype=np.float64))

    def _decode_source_frames(self, source_indices: np.ndarray) -> np.ndarray:
        first = int(source_indices[0])
        if any(int(i) < self._next_index and int(i) not in self._kept for i in source_indices):
            self._restart()
        self._kept = {i: frame for i, frame in self._kept.items() if i >= first}
        wanted = set(source_indices.tolist())
        last = int(source_indices[-1])
        while self._next_index <= last:
            frame = self._next_frame()
            if self._next_index in wanted:
                self._kept[self._next_index] = frame.to_ndarray(format="rgb24")
            self._next_index += 1
        return np.stack([self._kept[int(i)] for i in source_indices])

    def _next_frame(self) -> av.VideoFrame:
        if self._frames is None:
            self._restart()
        try:
            return next(self._frames)
        except StopIteration:
            raise CorruptVideoError(
                f"{self._input.name}: the video promised {self.info.source_num_frames} frames but decoding "
                f"ended after {self._next_index} (truncated or corrupt)"
            ) from None
        except av.error.FFmpegError as error:
            raise CorruptVideoError(
                f"{self._input.name}: decoding failed at frame {self._next_index}: {error}"
            ) from error

    def _restart(self) -> None:
        """Reopen the container and decode from the first frame again."""
        self.close()
        self._container = _open_container(self._input)
        self._frames = self._container.decode(video=0)
        self._next_index = 0
        self._kept = {}

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container, self._frames = None, None


def _natural_key(path: Path) -> list[int | str]:
    """Sort key that puts frame 2 before frame 10 even without zero padding."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


class _FolderReader(VideoReader):
    """A folder of frame images (ShanghaiTech's test set), sorted by name; fps from ``folder_fps``."""

    def __init__(
        self, folder: Path, target_fps: float | None, max_side: int | None, max_pixels: int, folder_fps: float
    ) -> None:
        from PIL import Image

        self._image = Image
        self._files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural_key
        )
        if not self._files:
            raise NotAVideoError(f"{folder}: the folder holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
        if not folder_fps > 0:
            raise ValueError(f"folder_fps must be positive, got {folder_fps}")
        self._size = self._image_size(self._files[0])
        _check_resolution(str(folder), *self._size, max_pixels)
        self.info = _build_info(
            name=str(folder),
            backend="images",
            count=len(self._files),
            fps=folder_fps,
            timestamps=None,
            size=self._size,
            out_size=_output_size(*self._size, max_side),
            target_fps=target_fps,
            codec=None,
            container="images",
        )

    def _image_size(self, path: Path) -> tuple[int, int]:
        try:
            with self._image.open(path) as image:
                return image.size
        except OSError as error:
            raise CorruptVideoError(f"{path}: not a readable image: {error}") from error

    def _decode_source_frames(self, source_indices: np.ndarray) -> np.ndarray:
        return np.stack([self._load(self._files[int(i)]) for i in source_indices])

    def _load(self, path: Path) -> np.ndarray:
        try:
            with self._image.open(path) as image:
                if image.size != self._size:
                    raise CorruptVideoError(
                        f"{path}: frame size {image.size[0]}x{image.size[1]} differs from the first frame's "
                        f"{self._size[0]}x{self._size[1]}"
                    )
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
        except OSError as error:
            raise CorruptVideoError(f"{path}: not a readable image: {error}") from error


__all__ = [
    "CorruptVideoError",
    "DecodeTimeoutError",
    "EmptyFileError",
    "NoVideoStreamError",
    "NotAVideoError",
    "ResolutionTooLargeError",
    "UnsupportedCodecError",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "open_video",
    "probe_video",
    "sniff_container",
]
