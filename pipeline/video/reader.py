"""What every reader shares: ``VideoInfo``, the ``VideoReader`` interface, output sizes and frame resampling.

A reader delivers frames at ``info``'s size: sources larger than the caller's limits are scaled down while they
are decoded (FFmpeg's swscale, bilinear, which averages over the scale factor like an antialiased filter), so a
huge source never sits in memory at full size for longer than one frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from lanp_vad.pipeline.video.errors import CorruptVideoError
from lanp_vad.pipeline.video.snippets import SnippetPlan

SCALING = "BILINEAR"
"""swscale's filter for downscaling; of swscale's filters the closest to torch's antialiased bilinear (mean
absolute difference under 2 levels at a 2x reduction)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a reader delivers: frames after optional resampling and downscaling, and what the source holds.

    ``timestamps_s`` are seconds from the first frame, one per delivered frame (``None`` when the container has
    none, e.g. a folder of images: use ``index / fps``); they keep the gaps of frames a recorder dropped.
    ``source_indices`` maps each delivered frame to the frame of the source it shows (the identity unless
    resampled).
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
        """Delivered frames ``indices`` (any order, repeats allowed) as uint8 ``(len, H, W, 3)``.

        A reader may read the returned array again on its next call (frames shared by overlapping snippets are
        not decoded twice): copy it before modifying it in place."""
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.info.num_frames):
            raise IndexError(f"{self.info.source}: frame index out of range 0..{self.info.num_frames - 1}")
        unique, inverse = np.unique(self.info.source_indices[wanted], return_inverse=True)
        if unique.size == 0:
            return np.zeros((0, self.info.height, self.info.width, 3), dtype=np.uint8)
        frames = self._decode_source_frames(unique)
        if unique.size == wanted.size and np.array_equal(unique, self.info.source_indices[wanted]):
            return frames  # each frame once, in order: no copy (full-size frames are large)
        return frames[inverse.reshape(-1)]

    def _decode_source_frames(self, source_indices: np.ndarray) -> np.ndarray:
        """Source frames at sorted unique ``source_indices``, uint8 RGB at the delivered size (``info``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder and any file this reader opened."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def output_size(width: int, height: int, max_side: int | None, max_short_side: int | None = None) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, so the long side is at most ``max_side`` and the short side at
    most ``max_short_side`` (either None: no limit); never scaled up."""
    scale = 1.0
    if max_side is not None:
        scale = min(scale, max_side / max(width, height))
    if max_short_side is not None:
        scale = min(scale, max_short_side / min(width, height))
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def rgb_at_size(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """A decoded frame as uint8 RGB ``(height, width, 3)``, converted and scaled in one swscale pass."""
    if (frame.width, frame.height) == (width, height):
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(width=width, height=height, format="rgb24", interpolation=SCALING).to_ndarray()


def scale_rgb(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 RGB ``(N, H, W, 3)`` frames scaled to ``(N, height, width, 3)`` with the same swscale filter as
    :func:`rgb_at_size`, for readers whose decoder hands over RGB (decord, image folders)."""
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([rgb_at_size(av.VideoFrame.from_ndarray(frame, format="rgb24"), width, height) for frame in frames])


def build_info(
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
    """VideoInfo of the delivered frames, resampled by timestamp to ``target_fps`` when given.

    The duration runs to the last timestamp plus one frame, so dropped frames (timestamp gaps) count as time.
    """
    if count < 1:
        raise CorruptVideoError(f"{name}: the video has no frames")
    if timestamps is not None:
        timestamps = timestamps.astype(np.float64) - float(timestamps[0])
    times = timestamps if timestamps is not None else np.arange(count) / fps
    duration = float(times[-1]) + 1.0 / fps if timestamps is not None else count / fps
    if target_fps is None:
        indices = np.arange(count, dtype=np.int64)
        out_fps, out_times = fps, timestamps
    else:
        out_count = max(1, math.ceil(duration * target_fps - 1e-6))  # grid times inside [0, duration)
        out_times = np.arange(out_count) / target_fps
        # the frame on screen at each output time; a hundredth of a frame absorbs rounded container timestamps
        on_screen = np.searchsorted(times, out_times + 0.01 / fps, side="right") - 1
        indices = np.clip(on_screen, 0, count - 1)
        out_fps = target_fps
        duration = len(indices) / float(out_fps)
    return VideoInfo(
        num_frames=len(indices),
        fps=float(out_fps),
        duration_s=duration,
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
