"""Event segments: runs of frames whose (lightly smoothed) anomaly score lies above a threshold.

A segment is what an operator wants to jump to: ``start_frame`` (inclusive) to ``end_frame`` (EXCLUSIVE), the
same span in seconds, the peak of the raw scores inside and the frame where it is (the event's thumbnail), and
their mean. Pure numpy.

Steps: a centred moving average over ``smooth_s`` seconds (edges padded with the edge value) -> frames
strictly above ``threshold`` -> runs separated by at most ``merge_gap_s`` seconds merged -> runs shorter than
``min_duration_s`` dropped.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_SMOOTH_S = 0.5
DEFAULT_MIN_DURATION_S = 0.5
DEFAULT_MERGE_GAP_S = 1.0


class Segment(BaseModel):
    """One event: frames ``[start_frame, end_frame)``, seconds ``[start_s, end_s)``, raw-score peak and mean."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start_frame: int
    end_frame: int = Field(description="exclusive")
    start_s: float
    end_s: float = Field(description="when frame end_frame would start")
    peak: float
    peak_frame: int = Field(description="the frame with the highest score (the thumbnail)")
    mean: float

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


def frames_for(seconds: float, fps: float) -> int:
    """A duration in seconds as a whole number of frames (at least 0)."""
    return max(0, int(round(seconds * fps)))


def smooth_scores(scores: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` frames, edges padded with the edge value (<= 1: a copy)."""
    scores = np.asarray(scores, dtype=np.float64)
    if window <= 1 or scores.size == 0:
        return scores.copy()
    before = (window - 1) // 2
    padded = np.pad(scores, (before, window - 1 - before), mode="edge")
    cumulative = np.concatenate(([0.0], np.cumsum(padded)))
    return (cumulative[window:] - cumulative[:-window]) / window


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end_exclusive) of every run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _merge(runs: list[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] <= max_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def frame_times(num_frames: int, fps: float, timestamps_s: np.ndarray | None = None) -> np.ndarray:
    """Start time of every frame plus one closing time (length ``num_frames + 1``): decoder timestamps when
    given (the closing time one frame period after the last), else ``frame / fps``."""
    if timestamps_s is not None and len(timestamps_s) == num_frames and num_frames > 0:
        times = np.asarray(timestamps_s, dtype=np.float64)
        return np.concatenate((times, [times[-1] + 1.0 / fps]))
    return np.arange(num_frames + 1, dtype=np.float64) / fps


def find_segments(
    frame_scores: np.ndarray,
    fps: float,
    threshold: float,
    *,
    smooth_s: float = DEFAULT_SMOOTH_S,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    merge_gap_s: float = DEFAULT_MERGE_GAP_S,
    timestamps_s: np.ndarray | None = None,
) -> list[Segment]:
    """Event segments of one video's per-frame scores (see the module docstring for the steps)."""
    scores = np.asarray(frame_scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"frame scores must be one-dimensional, got shape {scores.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not np.isfinite(scores).all():
        raise ValueError("frame scores contain NaN or inf")
    if min(smooth_s, min_duration_s, merge_gap_s) < 0:
        raise ValueError("smooth_s, min_duration_s and merge_gap_s must not be negative")
    smoothed = smooth_scores(scores, frames_for(smooth_s, fps))
    runs = _merge(_runs(smoothed > threshold), frames_for(merge_gap_s, fps))
    min_frames = max(1, frames_for(min_duration_s, fps))
    times = frame_times(scores.size, fps, timestamps_s)
    return [
        Segment(
            start_frame=start,
            end_frame=end,
            start_s=float(times[start]),
            end_s=float(times[end]),
            peak=float(scores[start:end].max()),
            peak_frame=start + int(np.argmax(scores[start:end])),
            mean=float(scores[start:end].mean()),
        )
        for start, end in runs
        if end - start >= min_frames
    ]
