"""Snippet planning: which frames make up each fixed-length snippet of a video, and which snippet holds each frame.

Conventions (the public I3D / ResNeXt features of RTFM and LANP):

- Snippets are ``length`` frames (16) starting every ``stride`` frames (16: non-overlapping).
- ``pad_last=True``: a last, partial snippet is kept and padded by repeating the video's last frame, so a video of
  ``n`` frames has ``T = ceil(n / 16)`` snippets. An exact multiple of 16 gets no extra snippet (RTFM's rule).
  ``pad_last=False``: the partial snippet is dropped and its frames map to snippet ``-1``.
- ``pad_exact=True`` reproduces TEVAD's ``gt-sh2`` ShanghaiTech ground truth, built with ``T = floor(n/16) + 1``:
  when ``n`` is a multiple of the stride, one extra snippet made only of copies of the last frame is appended
  (no frame maps to it). Only meaningful with ``stride == length`` and ``pad_last``.
- With overlap (``stride < length``) a frame belongs to several snippets; ``frame_to_snippet`` gives the snippet
  whose start is the latest at or before the frame. With gaps (``stride > length``) the frames of a gap map to
  the snippet before it, so every frame of a video still gets a score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError

SNIPPET_LENGTH = 16
"""Frames per snippet (and the default stride): the field's convention, shared by extraction, ground truth and
evaluation (a frame's score is its snippet's, repeated this many times)."""



class SnippetPlanError(UserError):
    """A snippet plan that cannot be built (no frames, non-positive length, or no complete snippet)."""

    kind = ErrorKind.INVALID_ARGUMENT


@dataclass(frozen=True)
class SnippetPlan:
    """The snippets of one video of ``num_frames`` frames; build it with :meth:`build`."""

    num_frames: int
    length: int = SNIPPET_LENGTH
    stride: int = SNIPPET_LENGTH
    pad_last: bool = True
    pad_exact: bool = False

    @classmethod
    def build(
        cls,
        num_frames: int,
        *,
        length: int = SNIPPET_LENGTH,
        stride: int = SNIPPET_LENGTH,
        pad_last: bool = True,
        pad_exact: bool = False,
    ) -> SnippetPlan:
        """Validate the arguments and return the plan; raises SnippetPlanError when it would have no snippet."""
        if num_frames < 1:
            raise SnippetPlanError(f"a video needs at least one frame to be cut into snippets, got {num_frames}")
        if length < 1 or stride < 1:
            raise SnippetPlanError(f"snippet length and stride must be positive, got {length} and {stride}")
        if pad_exact and not (pad_last and stride == length):
            raise SnippetPlanError("pad_exact needs pad_last and non-overlapping snippets (stride == length)")
        if not pad_last and num_frames < length:
            raise SnippetPlanError(
                f"a video of {num_frames} frames is shorter than one {length}-frame snippet and pad_last is off"
            )
        return cls(num_frames, length, stride, pad_last, pad_exact)

    @cached_property
    def num_snippets(self) -> int:
        """T: complete snippets, plus the padded partial one with ``pad_last``, plus one with ``pad_exact``."""
        n, length, stride = self.num_frames, self.length, self.stride
        complete = (n - length) // stride + 1 if n >= length else 0
        if not self.pad_last:
            return complete
        padded = min(math.ceil(max(n - length, 0) / stride) + 1, math.ceil(n / stride))
        return padded + int(self.pad_exact and n % stride == 0)

    @cached_property
    def starts(self) -> np.ndarray:
        """The first frame of each snippet (a padding-only snippet starts at the last frame)."""
        return np.minimum(np.arange(self.num_snippets) * self.stride, self.num_frames - 1)

    def frame_indices(self, snippet: int) -> np.ndarray:
        """The ``length`` frame indices of snippet ``snippet``, the last frame repeated past the video's end."""
        self._check_snippet(snippet)
        start = snippet * self.stride
        return np.minimum(np.arange(start, start + self.length), self.num_frames - 1)

    def snippet_frame_range(self, snippet: int) -> tuple[int, int]:
        """``(start, end_exclusive)`` of the real frames in snippet ``snippet`` (padding not counted)."""
        self._check_snippet(snippet)
        start = int(self.starts[snippet])
        return start, max(min(snippet * self.stride + self.length, self.num_frames), start + 1)

    @cached_property
    def frame_to_snippet(self) -> np.ndarray:
        """For each frame, the snippet that holds it (latest start at or before it); -1 for dropped frames."""
        frames = np.arange(self.num_frames)
        snippet = np.minimum(frames // self.stride, self.num_snippets - 1)
        last_start = (self.num_snippets - 1) * self.stride
        covered_until = max(last_start + self.length, self.num_snippets * self.stride)
        return np.where(frames < covered_until, snippet, -1).astype(np.int64)

    def expand_to_frames(self, snippet_values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Per-frame values from per-snippet ones (a frame takes its snippet's value; ``fill`` for dropped frames)."""
        values = np.asarray(snippet_values)
        if values.shape[0] != self.num_snippets:
            raise ValueError(f"expected {self.num_snippets} snippet values, got {values.shape[0]}")
        mapping = self.frame_to_snippet
        out = np.full((self.num_frames, *values.shape[1:]), fill, dtype=np.result_type(values.dtype, type(fill)))
        kept = mapping >= 0
        out[kept] = values[mapping[kept]]
        return out

    def _check_snippet(self, snippet: int) -> None:
        if not 0 <= snippet < self.num_snippets:
            raise IndexError(f"snippet {snippet} out of range for a plan of {self.num_snippets} snippets")
