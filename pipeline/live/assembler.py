"""Snippets from a live frame stream, cut exactly as offline extraction cuts a file.

Offline, a video of ``n`` delivered frames (resampled to the spec's fps, scaled down to its size limits) is split
by ``SnippetPlan`` and only the frames at ``snippet_frame_offsets`` feed the backbone. ``SnippetAssembler`` does the
same on frames as they arrive: it resamples by timestamp with the offline rule (the frame on screen at each grid
time), keeps (as RGB) only the frames a pending snippet samples, hands out each snippet the moment its last frame
arrives, and at the end of a session pads the last partial snippet with the last frame as ``pad_last`` says. So a
session's snippets are those of a file holding the same frames. Memory: at most one snippet's sampled frames.

Each snippet carries the stream times of the frames its score covers (``[i * stride, (i + 1) * stride)``, the last
one to the end), since offline each frame takes the score of the snippet that holds it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.video.reader import output_size, rgb_at_size
from lanp_vad.pipeline.video.snippets import SnippetPlan, SnippetPlanError
from lanp_vad.pipeline.video.worker import DecodeSettings, snippet_frame_offsets

GRID_TOLERANCE_FRAMES = 0.01
"""A grid time may lead a frame's timestamp by this fraction of a source frame (offline's rounding allowance)."""
DEFAULT_FPS = 25.0
"""The rate assumed for a source that announces none and whose first frames share one timestamp."""


@dataclass
class Snippet:
    """One snippet of a live session: the sampled frames (None once dropped) and the frames its score covers."""

    session: int
    index: int
    frames: np.ndarray | None
    first_frame: int
    times: np.ndarray
    first_arrival: float
    completed: float
    fps: float
    padded: bool = False
    dropped: bool = False

    @property
    def end_frame(self) -> int:
        return self.first_frame + len(self.times)

    def drop(self) -> None:
        """Release the pixels: inference fell behind and this snippet will not be scored."""
        self.frames, self.dropped = None, True


@dataclass
class SessionEnd:
    """A session is over (source ended, connection lost, or a stop): the frames that no snippet covers follow."""

    session: int
    reason: str
    kind: str | None
    leftover_times: np.ndarray = field(default_factory=lambda: np.zeros(0))


class Resampler:
    """Delivered frames ``(time, frame)`` from source frames, by the offline rule of ``pipeline.video.decode``.

    Without a target rate, times are the source's from its first frame. With one, grid time ``k / target`` shows
    the last source frame whose time is at most the grid time plus ``GRID_TOLERANCE_FRAMES`` source frames; a
    grid time is decided when the next source frame arrives, and ``finish`` fills the grid up to one source frame
    after the last (the offline duration)."""

    def __init__(self, target_fps: float | None, source_fps: float | None):
        self.target = target_fps
        self.source_fps = source_fps
        self.origin: float | None = None
        self.previous: tuple[float, av.VideoFrame] | None = None
        self.next_grid = 0

    def _tolerance(self) -> float:
        return GRID_TOLERANCE_FRAMES / self.source_fps if self.source_fps else 0.0

    def push(self, seconds: float, frame: av.VideoFrame) -> Iterator[tuple[float, av.VideoFrame]]:
        if self.origin is None:
            self.origin = seconds
        relative = seconds - self.origin
        if self.target is None:
            yield relative, frame
            return
        if self.previous is not None:
            yield from self._fill(lambda grid: grid / self.target + self._tolerance() < relative)
        self.previous = (relative, frame)

    def finish(self) -> Iterator[tuple[float, av.VideoFrame]]:
        if self.target is None or self.previous is None:
            return
        duration = self.previous[0] + 1.0 / (self.source_fps or self.target)
        count = max(1, math.ceil(duration * self.target - 1e-6))
        yield from self._fill(lambda grid: grid < count)

    def _fill(self, more: Callable[[int], bool]) -> Iterator[tuple[float, av.VideoFrame]]:
        """The previous source frame at every grid point ``more`` accepts, from the next undecided one."""
        assert self.previous is not None and self.target is not None
        while more(self.next_grid):
            yield self.next_grid / self.target, self.previous[1]
            self.next_grid += 1


class SnippetAssembler:
    """One session's frames in, snippets out (see the module docstring)."""

    def __init__(self, settings: DecodeSettings, *, session: int, source_fps: float | None, width: int,
                 height: int):
        if settings.stride > settings.snippet_length:
            raise UserError(
                f"live scoring needs snippets that touch or overlap (stride {settings.stride} > length "
                f"{settings.snippet_length})", kind=ErrorKind.INVALID_MODEL,
            )
        self.settings = settings
        self.session = session
        self.offsets = snippet_frame_offsets(settings.snippet_length, settings.frames_per_snippet)
        self.out_width, self.out_height = output_size(width, height, settings.max_side, settings.max_short_side)
        self.resampler = Resampler(settings.target_fps, source_fps)
        self.source_fps = source_fps
        self.count = 0  # delivered frames so far
        self.next_snippet = 0
        self.kept: dict[int, np.ndarray] = {}
        self.times: dict[int, float] = {}  # delivered frames not yet covered by a handed-out snippet
        self.arrivals: dict[int, float] = {}
        self.last: tuple[int, av.VideoFrame] | None = None

    @property
    def fps(self) -> float | None:
        """The delivered frame rate: the target, the source's, or what the first timestamps imply."""
        if self.settings.target_fps is not None:
            return self.settings.target_fps
        if self.source_fps:
            return self.source_fps
        stamps = sorted(self.times.values())
        return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else None

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return rgb_at_size(frame, self.out_width, self.out_height)

    def _sampled(self, index: int) -> bool:
        """Whether some snippet feeds delivered frame ``index`` to the backbone."""
        stride, length = self.settings.stride, self.settings.snippet_length
        first = max(0, -(-(index - length + 1) // stride))
        return any(index - snippet * stride in self.offsets for snippet in range(first, index // stride + 1))

    def push(self, seconds: float, frame: av.VideoFrame, arrival: float | None = None) -> list[Snippet]:
        """Take one decoded source frame; returns the snippets it completes."""
        arrival = time.time() if arrival is None else arrival
        completed = []
        for stamp, delivered in self.resampler.push(seconds, frame):
            completed.extend(self._deliver(stamp, delivered, arrival))
        return completed

    def _deliver(self, stamp: float, frame: av.VideoFrame, arrival: float) -> list[Snippet]:
        index = self.count
        self.count += 1
        self.times[index], self.arrivals[index] = stamp, arrival
        self.last = (index, frame)
        if self._sampled(index):
            self.kept[index] = self._rgb(frame)
        stride, length = self.settings.stride, self.settings.snippet_length
        if index != self.next_snippet * stride + length - 1:
            return []
        snippet = self._snippet(self.next_snippet, self.next_snippet * stride + self.offsets,
                                range(self.next_snippet * stride, (self.next_snippet + 1) * stride), arrival)
        return [snippet]

    def _snippet(self, number: int, sampled: np.ndarray, covered: range, completed: float,
                 padded: bool = False) -> Snippet:
        frames = np.stack([self.kept[int(i)] for i in sampled])
        snippet = Snippet(
            session=self.session, index=number, frames=frames, first_frame=covered.start,
            times=np.array([self.times.pop(i) for i in covered]),
            first_arrival=self.arrivals[covered.start], completed=completed, fps=self.fps or DEFAULT_FPS,
            padded=padded,
        )
        for i in covered:
            self.arrivals.pop(i, None)
        self.kept = {i: image for i, image in self.kept.items() if i >= covered.stop}
        self.next_snippet = number + 1
        return snippet

    def finish(self, reason: str, kind: str | None = None) -> tuple[list[Snippet], SessionEnd]:
        """The session is over: the padded last snippet(s) (``pad_last``) and the end marker with the frames left."""
        snippets: list[Snippet] = []
        for stamp, delivered in self.resampler.finish():
            snippets.extend(self._deliver(stamp, delivered, time.time()))
        settings = self.settings
        if self.count and self.last is not None:
            try:
                plan = SnippetPlan.build(self.count, length=settings.snippet_length, stride=settings.stride,
                                         pad_last=settings.pad_last)
            except SnippetPlanError:
                plan = None
            if plan is not None and self.next_snippet < plan.num_snippets:
                last_index, last_frame = self.last
                self.kept.setdefault(last_index, self._rgb(last_frame))
                now = time.time()
                for number in range(self.next_snippet, plan.num_snippets):
                    stop = self.count if number == plan.num_snippets - 1 else (number + 1) * settings.stride
                    covered = range(min(number * settings.stride, self.count - 1), stop)
                    sampled = plan.frame_indices(number)[self.offsets]
                    snippets.append(self._snippet(number, sampled, covered, now, padded=True))
        leftover = np.array([self.times[i] for i in sorted(self.times)])
        self.times.clear()
        return snippets, SessionEnd(self.session, reason, kind, leftover)
