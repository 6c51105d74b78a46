"""Event segments of a live session as its frame scores arrive: the offline rules, decided as early as they can be.

Offline, ``pipeline.scoring.segments.find_segments`` smooths a whole video's frame scores, thresholds them, merges
runs separated by short gaps and drops short runs. ``LiveSegmenter`` gives the same segments for a session that is
still going, using the same functions: a frame's smoothed score is final once the frames of its smoothing window
have arrived; runs over final smoothed scores go through ``find_segments`` itself (with no further smoothing), so
merging and the minimum duration are its own. A segment *starts* (``event_start``) as soon as it is long enough,
and *ends* (``event_end``) once more than the merge gap of final below-threshold frames follows it, so nothing
later can extend it. At the end of the session the last frames are smoothed with the edge rule, as offline.

Memory: the scores since the last quiet stretch (plus one smoothing window), so it grows only during an event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lanp_vad.pipeline.scoring.segments import Segment, find_segments, frames_for, smooth_scores


@dataclass(frozen=True)
class SegmentEvent:
    """``start`` (the segment is long enough to count) or ``end`` (it can no longer grow), in session frames."""

    kind: str
    segment: Segment


class LiveSegmenter:
    """Feed ``add(scores, times)`` per scored snippet, then ``finish()``; both return the events now decided."""

    def __init__(self, fps: float, threshold: float, *, smooth_s: float, min_duration_s: float, merge_gap_s: float):
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps, self.threshold = fps, threshold
        self.min_duration_s, self.merge_gap_s = min_duration_s, merge_gap_s
        self.window = frames_for(smooth_s, fps)
        self.before = (self.window - 1) // 2 if self.window > 1 else 0
        self.after = self.window - 1 - self.before if self.window > 1 else 0
        self.max_gap = frames_for(merge_gap_s, fps)
        self._reset()

    def _reset(self) -> None:
        self.base = 0  # session frame of scores[0]
        self.region = 0  # first session frame whose runs are still undecided
        self.scores = np.zeros(0)
        self.times = np.zeros(0)
        self.announced: set[int] = set()  # start frames of the region's segments that had their event_start
        self.ended: set[int] = set()  # ... and their event_end

    @property
    def num_frames(self) -> int:
        return self.base + self.scores.size

    def add(self, scores: np.ndarray, times: np.ndarray) -> list[SegmentEvent]:
        """Append frame scores (with their stream times) and return the events that became certain."""
        self.scores = np.concatenate((self.scores, np.asarray(scores, dtype=np.float64)))
        self.times = np.concatenate((self.times, np.asarray(times, dtype=np.float64)))
        return self._update(final=False)

    def finish(self) -> list[SegmentEvent]:
        """The session ended: decide the rest (edge smoothing at the end, as offline) and start afresh."""
        events = self._update(final=True)
        self._reset()
        return events

    def _time(self, frame: int) -> float:
        """Stream time of session frame ``frame``; one frame period after the last for the end of the session."""
        if frame < self.num_frames:
            return float(self.times[frame - self.base])
        return float(self.times[-1] + 1.0 / self.fps)

    def _update(self, *, final: bool) -> list[SegmentEvent]:
        settled = self.num_frames if final else self.num_frames - self.after
        if settled <= self.region or self.scores.size == 0:
            return []
        smoothed = smooth_scores(self.scores, self.window)[self.region - self.base : settled - self.base]
        runs = find_segments(smoothed, self.fps, self.threshold, smooth_s=0.0, min_duration_s=self.min_duration_s,
                             merge_gap_s=self.merge_gap_s)
        events = []
        for run in runs:
            start, end = self.region + run.start_frame, self.region + run.end_frame
            raw = self.scores[start - self.base : end - self.base]
            segment = Segment(start_frame=start, end_frame=end, start_s=self._time(start), end_s=self._time(end),
                              peak=float(raw.max()), peak_frame=start + int(raw.argmax()), mean=float(raw.mean()))
            if start in self.ended:
                continue
            if start not in self.announced:
                self.announced.add(start)
                events.append(SegmentEvent("start", segment))
            if final or settled - end > self.max_gap:
                self.ended.add(start)
                events.append(SegmentEvent("end", segment))
        above = np.flatnonzero(smoothed > self.threshold)
        if final or above.size == 0 or smoothed.size - above[-1] - 1 > self.max_gap:
            self._forget_until(settled)
        return events

    def _forget_until(self, frame: int) -> None:
        """Everything before ``frame`` is decided: keep only the smoothing context of what comes next."""
        self.region = frame
        self.announced.clear()
        self.ended.clear()
        keep_from = max(self.base, frame - self.before)
        self.scores = self.scores[keep_from - self.base :]
        self.times = self.times[keep_from - self.base :]
        self.base = keep_from
