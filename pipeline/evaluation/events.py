"""Event-level metrics: what an operator counts (events found, false alarms per hour), not frame ranking.

Events are intervals of frames ``[start, end)``. True events are the runs of abnormal frames of the ground truth;
predicted events come from the scores through the product's own segmenter (threshold, smoothing, minimum
duration, gap merging: the caller passes it, so that evaluation and ``lanp score`` make the same events).

**The overlap rule** (half coverage, both ways):
- a true event is *detected* when predicted events cover at least ``min_overlap`` (default 0.5) of its frames;
- a predicted event is *correct* when at least ``min_overlap`` of its frames lie inside true events; every other
  predicted event is a *false alarm*.
Event recall = detected / true events; event precision = correct / predicted events; false alarms per hour =
false alarms / total duration of the evaluated videos in hours. Half coverage rather than any overlap, so that one
event spanning a whole video does not count as precise, and rather than IoU, so that an event split in two by a
short dip still counts as found.

``sweep`` evaluates a grid of thresholds; ``suggest_threshold`` picks the one with the best event recall whose
false-alarm rate stays within a target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError

Interval = tuple[int, int]
Segmenter = Callable[[np.ndarray, float, float], list[Interval]]  # (frame scores, fps, threshold) -> events

DEFAULT_MIN_OVERLAP = 0.5
SWEEP_THRESHOLDS = tuple(round(value, 2) for value in np.linspace(0.0, 1.0, 51))


@dataclass(frozen=True)
class EventVideo:
    """One evaluated video: per-frame scores, 0/1 frame labels of the same length, its frame rate."""

    video_id: str
    frame_scores: np.ndarray
    frame_labels: np.ndarray
    fps: float


@dataclass(frozen=True)
class EventCounts:
    """Counts of one threshold over a set of videos, and the rates made from them."""

    threshold: float
    true_events: int
    detected: int
    predicted_events: int
    correct: int
    hours: float

    @property
    def false_alarms(self) -> int:
        return self.predicted_events - self.correct

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            **asdict(self),
            "false_alarms": self.false_alarms,
            "event_recall": self.detected / self.true_events if self.true_events else None,
            "event_precision": self.correct / self.predicted_events if self.predicted_events else None,
            "false_alarms_per_hour": self.false_alarms / self.hours if self.hours > 0 else None,
        }


def label_intervals(labels: np.ndarray) -> list[Interval]:
    """``[start, end)`` of every run of 1s in a 0/1 frame-label array."""
    edges = np.diff(np.concatenate(([0], np.asarray(labels).astype(np.int8) != 0, [0])).astype(np.int8))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _covered(intervals: Sequence[Interval], length: int) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    for start, end in intervals:
        mask[max(0, start) : min(length, end)] = True
    return mask


def match_events(
    predicted: Sequence[Interval], truth: Sequence[Interval], num_frames: int, *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> tuple[int, int]:
    """``(detected true events, correct predicted events)`` of one video under the overlap rule."""
    if not 0.0 < min_overlap <= 1.0:
        raise UserError(f"min_overlap must lie in (0, 1], got {min_overlap}", kind=ErrorKind.INVALID_ARGUMENT)
    predicted_mask, true_mask = _covered(predicted, num_frames), _covered(truth, num_frames)

    def share(interval: Interval, mask: np.ndarray) -> float:
        start, end = interval
        return float(mask[start:end].mean()) if end > start else 0.0

    detected = sum(share(interval, predicted_mask) >= min_overlap for interval in truth)
    correct = sum(share(interval, true_mask) >= min_overlap for interval in predicted)
    return int(detected), int(correct)


def event_counts(
    videos: Sequence[EventVideo], threshold: float, segmenter: Segmenter, *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> EventCounts:
    """Event counts of every video at one threshold."""
    true_events = detected = predicted_events = correct = 0
    seconds = 0.0
    for video in videos:
        if video.frame_scores.shape != video.frame_labels.shape:
            raise UserError(f"{video.video_id}: {video.frame_scores.size} frame scores but "
                            f"{video.frame_labels.size} frame labels", kind=ErrorKind.INVALID_GROUND_TRUTH)
        truth = label_intervals(video.frame_labels)
        predicted = segmenter(video.frame_scores, video.fps, threshold)
        found, right = match_events(predicted, truth, video.frame_scores.size, min_overlap=min_overlap)
        true_events += len(truth)
        predicted_events += len(predicted)
        detected += found
        correct += right
        seconds += video.frame_scores.size / video.fps
    return EventCounts(float(threshold), true_events, detected, predicted_events, correct, seconds / 3600.0)


def sweep(
    videos: Sequence[EventVideo], segmenter: Segmenter, thresholds: Sequence[float] = SWEEP_THRESHOLDS, *,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> list[EventCounts]:
    """``event_counts`` at every threshold, in the order given."""
    return [event_counts(videos, threshold, segmenter, min_overlap=min_overlap) for threshold in thresholds]


def suggest_threshold(points: Sequence[EventCounts], max_false_alarms_per_hour: float) -> EventCounts | None:
    """The sweep point with the highest event recall among those within ``max_false_alarms_per_hour`` (ties: the
    highest threshold, i.e. the fewest alarms); ``None`` when no threshold stays within the target."""
    within = [p for p in points if p.hours > 0 and p.false_alarms / p.hours <= max_false_alarms_per_hour]
    if not within:
        return None
    return max(within, key=lambda p: (p.detected / p.true_events if p.true_events else 0.0, p.threshold))
