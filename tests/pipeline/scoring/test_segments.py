"""Property-style tests of event segments on many random score curves."""

from __future__ import annotations

import numpy as np
import pytest

from lanp_vad.pipeline.scoring.segments import find_segments, frame_times, smooth_scores

SEEDS = range(40)


def _random_curve(seed: int) -> tuple[np.ndarray, float, float]:
    rng = np.random.default_rng(seed)
    length = int(rng.integers(1, 400))
    # Piecewise-constant blocks plus noise: real curves repeat each snippet score over 16 frames.
    blocks = rng.random(length // 8 + 1)
    scores = np.clip(np.repeat(blocks, 8)[:length] + rng.normal(0, 0.05, length), 0, 1)
    return scores, float(rng.choice([5.0, 10.0, 25.0, 30.0])), float(rng.uniform(0.2, 0.8))


@pytest.mark.parametrize("seed", SEEDS)
def test_without_smoothing_segments_are_exactly_the_runs_above_threshold(seed: int) -> None:
    scores, fps, threshold = _random_curve(seed)
    segments = find_segments(scores, fps, threshold, smooth_s=0, min_duration_s=0, merge_gap_s=0)
    covered = np.zeros(scores.size, dtype=bool)
    for segment in segments:
        inside = scores[segment.start_frame : segment.end_frame]
        assert (inside > threshold).all()
        assert segment.peak == pytest.approx(inside.max())
        assert segment.mean == pytest.approx(inside.mean())
        assert segment.start_s == pytest.approx(segment.start_frame / fps)
        assert segment.end_s == pytest.approx(segment.end_frame / fps)  # end exclusive
        covered[segment.start_frame : segment.end_frame] = True
    np.testing.assert_array_equal(covered, scores > threshold)
    # Maximal runs: the frame before and after each segment is at or below the threshold.
    for segment in segments:
        assert segment.start_frame == 0 or scores[segment.start_frame - 1] <= threshold
        assert segment.end_frame == scores.size or scores[segment.end_frame] <= threshold


@pytest.mark.parametrize("seed", SEEDS)
def test_merging_and_min_duration(seed: int) -> None:
    scores, fps, threshold = _random_curve(seed)
    gap_s, min_s = 1.0, 0.8
    raw = find_segments(scores, fps, threshold, smooth_s=0, min_duration_s=0, merge_gap_s=0)
    segments = find_segments(scores, fps, threshold, smooth_s=0, min_duration_s=min_s, merge_gap_s=gap_s)
    max_gap, min_frames = round(gap_s * fps), max(1, round(min_s * fps))
    for first, second in zip(segments, segments[1:], strict=False):
        assert second.start_frame - first.end_frame > max_gap  # otherwise they would have been merged
    for segment in segments:
        assert segment.num_frames >= min_frames
        # Every merged segment starts and ends on a raw run and covers only whole raw runs.
        inner = [run for run in raw if segment.start_frame <= run.start_frame < segment.end_frame]
        assert inner and inner[0].start_frame == segment.start_frame
        assert inner[-1].end_frame == segment.end_frame
    # No raw run vanishes unless its merged group was too short.
    for run in raw:
        if not any(s.start_frame <= run.start_frame < s.end_frame for s in segments):
            group = find_segments(scores, fps, threshold, smooth_s=0, min_duration_s=0, merge_gap_s=gap_s)
            holder = next(s for s in group if s.start_frame <= run.start_frame < s.end_frame)
            assert holder.num_frames < min_frames


def test_smoothing_removes_a_one_frame_spike_and_keeps_a_plateau() -> None:
    scores = np.zeros(100)
    scores[10] = 1.0
    scores[50:70] = 1.0
    segments = find_segments(scores, 10.0, 0.5, smooth_s=0.5, min_duration_s=0, merge_gap_s=0)
    assert [(s.start_frame, s.end_frame) for s in segments] == [(50, 70)]
    assert segments[0].peak == 1.0 and segments[0].mean == 1.0


def test_smoothing_is_a_centred_moving_average() -> None:
    values = np.arange(10, dtype=float)
    smoothed = smooth_scores(values, 3)
    np.testing.assert_allclose(smoothed[1:-1], values[1:-1])
    assert smoothed[0] == pytest.approx((0 + 0 + 1) / 3) and smoothed.shape == values.shape


def test_decoder_timestamps_are_used_when_present() -> None:
    scores = np.array([0.0, 0.9, 0.9, 0.0])
    stamps = np.array([10.0, 10.5, 11.0, 11.5])
    (segment,) = find_segments(
        scores, 2.0, 0.5, smooth_s=0, min_duration_s=0, merge_gap_s=0, timestamps_s=stamps
    )
    assert (segment.start_s, segment.end_s) == (10.5, 11.5)
    assert frame_times(4, 2.0, stamps)[-1] == 12.0


@pytest.mark.parametrize(
    ("scores", "fps", "message"),
    [
        (np.zeros((2, 2)), 10.0, "one-dimensional"),
        (np.zeros(3), 0.0, "fps"),
        (np.array([np.nan]), 1.0, "NaN"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(scores: np.ndarray, fps: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        find_segments(scores, fps, 0.5)


def test_empty_curve_has_no_segments() -> None:
    assert find_segments(np.zeros(0), 10.0, 0.5) == []
